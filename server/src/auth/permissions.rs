//! Which key ranges a user may read and write: the union of its roles' permissions, merged
//! into sorted, disjoint spans once per auth revision, so that a check is a binary search.

use mvcc::{AuthState, PermKind};

/// `[start, end)`; `None` is the end of the keyspace.
type Span = (Vec<u8>, Option<Vec<u8>>);

/// What a request needs on its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// One user's merged permissions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserPerms {
    pub root: bool,
    read: Vec<Span>,
    write: Vec<Span>,
}

/// etcd's key-or-range convention as a span: an empty `range_end` is the key alone, `[0]`
/// runs to the end of the keyspace.
fn span(key: &[u8], range_end: &[u8]) -> Span {
    match range_end {
        [] => {
            let mut end = key.to_vec();
            end.push(0);
            (key.to_vec(), Some(end))
        }
        [0] => (key.to_vec(), None),
        end => (key.to_vec(), Some(end.to_vec())),
    }
}

fn end_reaches(end: &Option<Vec<u8>>, wanted: &Option<Vec<u8>>) -> bool {
    match (end, wanted) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(w)) => e >= w,
    }
}

fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        if let Some(last) = out.last_mut() {
            // Overlapping or touching: one span.
            if last.1.as_ref().is_none_or(|e| *e >= start) {
                if !end_reaches(&last.1, &end) {
                    last.1 = end;
                }
                continue;
            }
        }
        out.push((start, end));
    }
    out
}

fn covers(spans: &[Span], wanted: &Span) -> bool {
    let at = spans.partition_point(|(start, _)| *start <= wanted.0);
    at > 0 && end_reaches(&spans[at - 1].1, &wanted.1)
}

impl UserPerms {
    /// `None` when `user` does not exist.
    pub fn of(state: &AuthState, user: &str) -> Option<UserPerms> {
        let u = state.users.get(user)?;
        let mut perms = UserPerms {
            root: u.roles.contains(mvcc::ROOT),
            ..Default::default()
        };
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for p in u
            .roles
            .iter()
            .filter_map(|r| state.roles.get(r))
            .flat_map(|r| &r.permissions)
        {
            let s = span(&p.key, &p.range_end);
            if p.kind.reads() {
                read.push(s.clone());
            }
            if p.kind.writes() {
                write.push(s);
            }
        }
        perms.read = merge(read);
        perms.write = merge(write);
        Some(perms)
    }

    /// Whether the user may do `need` on the key or range (etcd's convention).
    pub fn allows(&self, need: Need, key: &[u8], range_end: &[u8]) -> bool {
        if self.root {
            return true;
        }
        let spans = match need {
            Need::Read => &self.read,
            Need::Write => &self.write,
        };
        covers(spans, &span(key, range_end))
    }
}

/// The permission kind etcd's protobuf number stands for.
pub fn kind_of(number: i32) -> Option<PermKind> {
    match number {
        0 => Some(PermKind::Read),
        1 => Some(PermKind::Write),
        2 => Some(PermKind::ReadWrite),
        _ => None,
    }
}

pub fn number_of(kind: PermKind) -> i32 {
    match kind {
        PermKind::Read => 0,
        PermKind::Write => 1,
        PermKind::ReadWrite => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvcc::{Permission, Role, User};

    fn state(perms: Vec<(PermKind, &str, &str)>) -> AuthState {
        let mut s = AuthState::default();
        let role = Role {
            permissions: perms
                .into_iter()
                .map(|(kind, k, e)| Permission {
                    kind,
                    key: k.as_bytes().to_vec(),
                    range_end: e.as_bytes().to_vec(),
                })
                .collect(),
        };
        s.roles.insert("r".into(), role);
        s.users.insert(
            "u".into(),
            User {
                password_hash: None,
                roles: ["r".to_string()].into(),
            },
        );
        s
    }

    #[test]
    fn a_prefix_grant_covers_keys_and_ranges_inside_it_only() {
        let p = UserPerms::of(&state(vec![(PermKind::Read, "foo/", "foo0")]), "u").unwrap();
        assert!(p.allows(Need::Read, b"foo/a", b""));
        assert!(p.allows(Need::Read, b"foo/", b"foo0"));
        assert!(p.allows(Need::Read, b"foo/a", b"foo/b"));
        assert!(!p.allows(Need::Read, b"foo/", b"foo1"));
        assert!(!p.allows(Need::Read, b"fo", b""));
        assert!(!p.allows(Need::Read, b"foo/", b"\0"));
        assert!(!p.allows(Need::Write, b"foo/a", b""));
    }

    #[test]
    fn spans_of_several_roles_merge_when_they_touch() {
        let p = UserPerms::of(
            &state(vec![
                (PermKind::ReadWrite, "a", "c"),
                (PermKind::Read, "c", "e"),
                (PermKind::Write, "k", ""),
                (PermKind::Read, "x", "\0"),
            ]),
            "u",
        )
        .unwrap();
        assert!(p.allows(Need::Read, b"a", b"e"));
        assert!(!p.allows(Need::Write, b"a", b"e"));
        assert!(p.allows(Need::Write, b"k", b""));
        assert!(!p.allows(Need::Write, b"k", b"l"));
        assert!(p.allows(Need::Read, b"zzz", b"\0"));
        assert!(UserPerms::of(&AuthState::default(), "u").is_none());
    }
}
