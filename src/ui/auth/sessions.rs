//! The signed-in browsers: session id → the reviewed user and their token, in this process's
//! memory only. Keyed by the SHA-256 of the id, so the map holds nothing a cookie could be
//! rebuilt from. Bounded in time ([`LIFETIME`], from sign-in) and in number ([`MAX`]: the
//! oldest goes first); only a token the API server accepted makes a session, so filling the
//! map takes valid tokens. Times are passed in, so the store is tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::ReviewedUser;

/// How long a session lasts from sign-in (the token itself may expire sooner: each action
/// reviews it again).
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most.
pub const MAX: usize = 1024;

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub user: ReviewedUser,
    /// The bearer token, wiped from memory when dropped.
    pub token: Zeroizing<String>,
    started: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user.username)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], Session>>);

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Keeps session `id` for `user` with `token`, started `now`; makes room if full.
    pub fn insert(&self, id: &str, user: ReviewedUser, token: Zeroizing<String>, now: Instant) {
        let mut map = self.lock();
        map.retain(|_, s| !expired(s, now));
        while map.len() >= MAX {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.started).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        let started = now;
        map.insert(
            key(id),
            Session {
                user,
                token,
                started,
            },
        );
    }

    /// Session `id`, unless unknown or expired at `now`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.lock();
        let k = key(id);
        if map.get(&k).is_some_and(|s| expired(s, now)) {
            map.remove(&k);
        }
        map.get(&k).cloned()
    }

    /// Forgets session `id` (sign-out, or its token no longer valid).
    pub fn remove(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    /// How many sessions are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn expired(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.started) >= LIFETIME
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> ReviewedUser {
        ReviewedUser {
            username: name.into(),
            ..ReviewedUser::default()
        }
    }

    #[test]
    fn sessions_are_found_by_id_until_they_expire_or_are_removed() {
        let s = Sessions::default();
        let t0 = Instant::now();
        s.insert("id-1", user("ada"), Zeroizing::new("tok".into()), t0);
        let got = s.get("id-1", t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(
            (got.user.username.as_str(), got.token.as_str()),
            ("ada", "tok")
        );
        assert!(s.get("id-2", t0).is_none());
        assert!(s.get("id-1", t0 + LIFETIME).is_none(), "expired");
        assert!(s.is_empty(), "and dropped");
        s.insert("id-1", user("ada"), Zeroizing::new("tok".into()), t0);
        s.remove("id-1");
        assert!(s.get("id-1", t0).is_none());
    }

    #[test]
    fn the_oldest_session_makes_room_and_debug_hides_the_token() {
        let s = Sessions::default();
        let t0 = Instant::now();
        for i in 0..MAX {
            let at = t0 + Duration::from_millis(i as u64);
            s.insert(
                &format!("id-{i}"),
                user("u"),
                Zeroizing::new("t".into()),
                at,
            );
        }
        s.insert(
            "new",
            user("u"),
            Zeroizing::new("secret-tok".into()),
            t0 + Duration::from_secs(5),
        );
        assert_eq!(s.len(), MAX);
        assert!(s.get("id-0", t0 + Duration::from_secs(5)).is_none());
        assert!(s.get("id-1", t0 + Duration::from_secs(5)).is_some());
        let debug = format!("{:?}", s.get("new", t0).unwrap());
        assert!(!debug.contains("secret-tok"), "{debug}");
    }
}
