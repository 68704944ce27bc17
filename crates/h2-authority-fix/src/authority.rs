//! Recognising and repairing an `:authority` value that carries a URL scheme.

/// Returns the `host[:port]` part of an authority value of the form
/// `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, or `None` when
/// `authority` has no scheme or the host part would be empty.
///
/// The result borrows from `authority`; nothing is allocated.
pub(crate) fn host_of(authority: &[u8]) -> Option<&[u8]> {
    let sep = find(authority, b"://")?;
    let scheme = &authority[..sep];
    // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    let (first, tail) = scheme.split_first()?;
    if !first.is_ascii_alphabetic()
        || !tail
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let rest = &authority[sep + 3..];
    let end = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let hostport = &rest[..end];
    // RFC 9113 §8.3.1: `:authority` MUST NOT include userinfo.
    let hostport = match hostport.iter().rposition(|&c| c == b'@') {
        Some(at) => &hostport[at + 1..],
        None => hostport,
    };
    (!hostport.is_empty()).then_some(hostport)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    fn host(s: &str) -> Option<&str> {
        host_of(s.as_bytes()).map(|h| std::str::from_utf8(h).unwrap())
    }

    #[test]
    fn strips_http_and_https_schemes() {
        assert_eq!(host("http://127.0.0.1:2379"), Some("127.0.0.1:2379"));
        assert_eq!(host("https://etcd.example:2379"), Some("etcd.example:2379"));
        assert_eq!(host("http://[::1]:2379"), Some("[::1]:2379"));
    }

    #[test]
    fn drops_path_query_fragment_and_userinfo() {
        assert_eq!(host("http://127.0.0.1:2379/v3/kv"), Some("127.0.0.1:2379"));
        assert_eq!(host("http://h:1?x=/y"), Some("h:1"));
        assert_eq!(host("http://h:1#frag"), Some("h:1"));
        assert_eq!(host("http://user:pw@h:1/"), Some("h:1"));
    }

    #[test]
    fn leaves_valid_authorities_alone() {
        assert_eq!(host("127.0.0.1:2379"), None);
        assert_eq!(host("localhost"), None);
        assert_eq!(host("[::1]:2379"), None);
        assert_eq!(host(""), None);
    }

    #[test]
    fn rejects_empty_hosts_and_bad_schemes() {
        assert_eq!(host("unix:///tmp/etcd.sock"), None);
        assert_eq!(host("http://"), None);
        assert_eq!(host("://h:1"), None);
        assert_eq!(host("1http://h:1"), None);
        assert_eq!(host("ht tp://h:1"), None);
    }
}
