//! Member and cluster ids, derived the way etcd derives them so that the same flags give the
//! same ids: a member id is the first 8 bytes (big-endian) of the SHA-1 of its sorted peer URLs
//! followed by the cluster token; the cluster id is the same digest over the sorted member ids.

/// The id of a member with these peer URLs in the cluster named by `token`.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut input = urls.concat().into_bytes();
    input.extend_from_slice(token.as_bytes());
    digest_u64(&input)
}

/// The id of the cluster made of these members.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let input: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    digest_u64(&input)
}

fn digest_u64(input: &[u8]) -> u64 {
    let digest = sha1_smol::Sha1::from(input).digest().bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_ignores_url_order_and_depends_on_token() {
        let a = member_id(&["http://b:2".into(), "http://a:1".into()], "t");
        let b = member_id(&["http://a:1".into(), "http://b:2".into()], "t");
        assert_eq!(a, b);
        assert_ne!(
            a,
            member_id(&["http://a:1".into(), "http://b:2".into()], "u")
        );
    }

    #[test]
    fn cluster_id_ignores_member_order() {
        assert_eq!(cluster_id(&[3, 1, 2]), cluster_id(&[1, 2, 3]));
        assert_ne!(cluster_id(&[1, 2]), cluster_id(&[1, 2, 3]));
    }

    #[test]
    fn matches_etcd_default_single_member() {
        // etcd started with default flags reports member id 8e9e05c52164694d and cluster id
        // cdf818194e3a8c32 (documented in etcd's own examples).
        let m = member_id(&["http://localhost:2380".into()], "etcd-cluster");
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }
}
