//! The last read of each GitSync's objects, reused for a moment while the GitSync is unchanged.
//!
//! NB: every server-sent event makes every open page fetch its fragment again, and the events
//! follow *all* GitSyncs: with a thousand of them syncing, an open GitSync page would be asked
//! four times a second, each time for its handful of LISTs, though nothing of its own changed.
//! So a read younger than [`REUSE_FOR`] is served again while the GitSync's resourceVersion is
//! the one it was read at. Its own change (a sync starting or ending) has a new
//! resourceVersion and is read afresh at once, and the timed refreshes (3 s, 30 s) come after
//! the read has aged out, so nothing a reader waits for is held back. Shared by every viewer
//! and by the GitSync page and its diff page. Failures are not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::{Client, ResourceExt};

use super::objects::{self, Listed, ObjectsError};
use crate::agent::crd::GitSync;
use crate::apply::Engine;

/// How long a read is served again while its GitSync is unchanged.
pub const REUSE_FOR: Duration = Duration::from_millis(2500);

/// One read: the GitSync's resourceVersion it was made at, when, and what it found.
type Read = (Option<String>, Instant, Arc<Listed>);

/// Reads kept, by `namespace/name`.
#[derive(Default)]
pub struct Recent(Mutex<HashMap<String, Read>>);

impl Recent {
    /// `gs`'s objects: a read of the last [`REUSE_FOR`] at its current resourceVersion, or a
    /// new one ([`objects::of_gitsync`]).
    ///
    /// # Errors
    /// Those of [`objects::of_gitsync`].
    pub async fn objects(
        &self,
        client: &Client,
        engine: &Engine,
        gs: &GitSync,
    ) -> Result<Arc<Listed>, ObjectsError> {
        let key = format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any());
        let version = gs.resource_version();
        if let Some(hit) = self.fresh(&key, version.as_deref(), Instant::now()) {
            return Ok(hit);
        }
        let listed = Arc::new(objects::of_gitsync(client, engine, gs).await?);
        self.keep(key, version, Instant::now(), listed.clone());
        Ok(listed)
    }

    fn fresh(&self, key: &str, version: Option<&str>, now: Instant) -> Option<Arc<Listed>> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (v, at, listed) = map.get(key)?;
        let young = now.saturating_duration_since(*at) < REUSE_FOR;
        (young && v.as_deref() == version).then(|| listed.clone())
    }

    /// Keeps a read, dropping those too old to be served (so the map holds the GitSyncs being
    /// looked at, not every one ever looked at).
    fn keep(&self, key: String, version: Option<String>, now: Instant, listed: Arc<Listed>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, (_, at, _)| now.saturating_duration_since(*at) < REUSE_FOR);
        map.insert(key, (version, now, listed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_reused_briefly_and_only_for_the_same_version() {
        let recent = Recent::default();
        let t0 = Instant::now();
        let listed = Arc::new(Listed {
            requests: 7,
            ..Listed::default()
        });
        recent.keep("a/web".into(), Some("10".into()), t0, listed.clone());
        let hit = recent.fresh("a/web", Some("10"), t0 + Duration::from_secs(1));
        assert!(hit.is_some_and(|h| Arc::ptr_eq(&h, &listed)));
        assert!(
            recent.fresh("a/web", Some("11"), t0).is_none(),
            "the GitSync changed"
        );
        assert!(
            recent.fresh("a/web", Some("10"), t0 + REUSE_FOR).is_none(),
            "too old"
        );
        assert!(recent.fresh("a/other", Some("10"), t0).is_none());
        recent.keep("a/other".into(), None, t0 + REUSE_FOR, listed);
        let kept = recent.0.lock().unwrap().len();
        assert_eq!(kept, 1, "the old read is dropped");
    }
}
