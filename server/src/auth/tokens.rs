//! Simple tokens: opaque strings mapped to a user, forgotten after `--auth-token-ttl`
//! without use. As in etcd, every member assigns each token when it applies the
//! `Authenticate` entry, so a token works on any member; each member keeps its own TTL. A
//! restart forgets them, but for those whose entries it replays from the log (the store had
//! not committed them); clients authenticate again on `invalid auth token`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ring::rand::SecureRandom;

struct Assigned {
    user: Arc<str>,
    /// Milliseconds since `Tokens::epoch`; moved on under the read lock, so that the checks
    /// of concurrent requests do not queue on one lock.
    expires: AtomicU64,
}

pub struct Tokens {
    ttl: Duration,
    epoch: Instant,
    map: RwLock<HashMap<String, Assigned>>,
}

/// Length of the random part of a token, as etcd's.
const PREFIX_LEN: usize = 16;

/// The random part of a new token; the applied entry's index completes it.
pub fn new_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = [0u8; PREFIX_LEN];
    // The system's random source failing leaves zeros: a weaker token, still unique by index.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes
        .iter()
        .map(|b| LETTERS[*b as usize % LETTERS.len()] as char)
        .collect()
}

impl Tokens {
    pub fn new(ttl: Duration) -> Self {
        Tokens {
            ttl,
            epoch: Instant::now(),
            map: RwLock::new(HashMap::new()),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Assigned>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn expiry(&self) -> u64 {
        self.now().saturating_add(self.ttl.as_millis() as u64)
    }

    pub fn assign(&self, token: String, user: String) {
        let now = self.now();
        let expires = AtomicU64::new(self.expiry());
        let mut map = self.write();
        // Expired tokens go here, where a write lock is held anyway.
        map.retain(|_, a| a.expires.load(Ordering::Relaxed) > now);
        map.insert(
            token,
            Assigned {
                user: user.into(),
                expires,
            },
        );
    }

    /// The token's user, if the token is live; using it extends its life by the TTL.
    pub fn user_of(&self, token: &str) -> Option<Arc<str>> {
        let now = self.now();
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let a = map.get(token)?;
        if a.expires.load(Ordering::Relaxed) <= now {
            return None;
        }
        a.expires.fetch_max(self.expiry(), Ordering::Relaxed);
        Some(a.user.clone())
    }

    /// Forgets every token of `user` (deleted, or its password changed).
    pub fn invalidate_user(&self, user: &str) {
        self.write().retain(|_, a| &*a.user != user);
    }

    /// Forgets every token (auth disabled).
    pub fn clear(&self) {
        self.write().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_unless_used_and_go_with_their_user() {
        let t = Tokens::new(Duration::from_millis(50));
        t.assign("a.1".into(), "u".into());
        t.assign("b.2".into(), "v".into());
        assert_eq!(t.user_of("a.1").as_deref(), Some("u"));
        t.invalidate_user("u");
        assert_eq!(t.user_of("a.1"), None);
        assert_eq!(t.user_of("garbage"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.user_of("b.2"), None);
        let p = new_prefix();
        assert_eq!(p.len(), PREFIX_LEN);
        assert!(p.chars().all(|c| c.is_ascii_alphabetic()));
    }
}
