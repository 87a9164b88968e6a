//! The API server's warnings about a GitSync's objects (deprecated API versions) as `Warning`
//! Events on the GitSync: one per distinct message per revision, not one per sync, since a
//! re-sync of the same commit (the drift interval, a retry) gets the same warnings again.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::Context;
use super::crd::GitSync;
use super::events::event;
use super::reason::Reason;
use crate::change::ApiWarning;
use crate::cluster::warnings::MAX_WARNINGS;

/// Objects named in one Event; the others are counted.
const NAMED: usize = 3;

/// The messages already published, per GitSync (`namespace/name`), for the revision they were
/// published at: one entry per GitSync, at most [`MAX_WARNINGS`] messages in it.
#[derive(Debug, Default)]
pub struct Published(Mutex<HashMap<String, (String, HashSet<String>)>>);

impl Published {
    /// The messages of `warnings` not yet published for `key` at `revision`, each with the
    /// objects that got it; marks them published. A new revision starts afresh.
    pub fn fresh<'a>(
        &self,
        key: &str,
        revision: &str,
        warnings: &'a [ApiWarning],
    ) -> Vec<(&'a str, Vec<&'a ApiWarning>)> {
        let Ok(mut published) = self.0.lock() else {
            return Vec::new();
        };
        let (at, seen) = published
            .entry(key.to_owned())
            .or_insert_with(|| (revision.to_owned(), HashSet::new()));
        if at != revision {
            *at = revision.to_owned();
            seen.clear();
        }
        let mut fresh: Vec<(&str, Vec<&ApiWarning>)> = Vec::new();
        for w in warnings {
            if let Some((_, objects)) = fresh.iter_mut().find(|(m, _)| *m == w.message) {
                objects.push(w);
            } else if !seen.contains(&w.message) && seen.len() < MAX_WARNINGS {
                seen.insert(w.message.clone());
                fresh.push((&w.message, vec![w]));
            }
        }
        fresh
    }

    /// Forgets a deleted GitSync.
    pub fn forget(&self, key: &str) {
        if let Ok(mut published) = self.0.lock() {
            published.remove(key);
        }
    }
}

/// The Event's note: the message, then the objects that got it.
fn note(message: &str, objects: &[&ApiWarning]) -> String {
    let named: Vec<String> = objects
        .iter()
        .take(NAMED)
        .map(|w| format!("{}: {}", w.source, w.id))
        .collect();
    let more = objects.len().saturating_sub(NAMED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{message} ({}{more})", named.join(", "))
}

/// Publishes the warnings of a sync of `gs` at `revision` that were not published yet.
pub async fn publish(ctx: &Context, gs: &GitSync, revision: &str, warnings: &[ApiWarning]) {
    if warnings.is_empty() {
        return;
    }
    let key = format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any());
    for (message, objects) in ctx.api_warnings.fresh(&key, revision, warnings) {
        let note = note(message, &objects);
        tracing::warn!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "API warning: {note}");
        event(ctx, gs, EventType::Warning, Reason::ApiWarning, &note).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{ObjectRef, Source};

    fn warning(name: &str, message: &str) -> ApiWarning {
        ApiWarning {
            id: ObjectRef::new("example.com/v1beta1", "Widget", Some("apps"), name),
            source: Source::new("widgets.yaml", 0),
            message: message.into(),
        }
    }

    #[test]
    fn once_per_message_and_revision() {
        let p = Published::default();
        let ws = [
            warning("a", "deprecated"),
            warning("b", "deprecated"),
            warning("a", "unknown field"),
        ];
        let first = p.fresh("ns/gs", "main@sha1:1", &ws);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].0, "deprecated");
        assert_eq!(
            note(first[0].0, &first[0].1),
            "deprecated (widgets.yaml: Widget/apps/a, widgets.yaml: Widget/apps/b)"
        );
        assert!(
            p.fresh("ns/gs", "main@sha1:1", &ws).is_empty(),
            "same revision"
        );
        assert_eq!(p.fresh("ns/other", "main@sha1:1", &ws).len(), 2);
        assert_eq!(
            p.fresh("ns/gs", "main@sha1:2", &ws).len(),
            2,
            "new revision"
        );
        p.forget("ns/gs");
        assert_eq!(p.fresh("ns/gs", "main@sha1:2", &ws).len(), 2, "forgotten");
    }

    #[test]
    fn a_note_names_a_few_objects_and_counts_the_rest() {
        let ws: Vec<ApiWarning> = (0..5).map(|n| warning(&n.to_string(), "d")).collect();
        let refs: Vec<&ApiWarning> = ws.iter().collect();
        assert_eq!(
            note("d", &refs),
            "d (widgets.yaml: Widget/apps/0, widgets.yaml: Widget/apps/1, widgets.yaml: \
             Widget/apps/2 and 2 more)"
        );
    }
}
