//! The live diff of a GitSync (`/gitsyncs/{namespace}/{name}/diff`): for each of its objects
//! that drifted since the last sync, the diff from its live state to what the next sync will
//! apply — the same normalised diff as `driftless diff`, Secret values masked.
//!
//! [`of_gitsync`] finds the drifted objects as the tree does (`objects`: the fields driftless
//! owns are not those it owned after applying, or the object is missing), takes their
//! manifests from what the agent's last successful sync applied (`agent::applied`), and hands
//! those alone to [`Engine::preview`](crate::apply::Engine::preview), the code of `driftless
//! diff`: a GET and a server-side dry-run apply per drifted object, so an undrifted GitSync of
//! 1,000 objects costs its tree's LISTs and nothing more. Once the next sync has put the object
//! back, its owned fields hash as recorded again and the diff is gone. [`view`] and [`lines`]
//! turn the diffs into what `html::drift` shows; they are pure.

use std::sync::Arc;

use kube::ResourceExt;

use super::UiState;
use super::objects::{self, Listed, ObjectsError};
use crate::agent::crd::GitSync;
use crate::apply::SyncOptions;
use crate::object::ObjectRef;

/// What kind of line of a unified diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `--- live/…` and `+++ desired/…`.
    Header,
    /// `@@ -a,b +c,d @@`.
    Hunk,
    /// In the next sync's object, not in the live one.
    Added,
    /// In the live object, not in the next sync's.
    Removed,
    Context,
}

impl LineKind {
    /// For the `class` of a line (the stylesheet colours it; the `+`/`-` stays in the text).
    pub fn class(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Hunk => "hunk",
            Self::Added => "add",
            Self::Removed => "del",
            Self::Context => "ctx",
        }
    }
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub kind: LineKind,
    pub text: String,
}

/// The diff of one drifted object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDiff {
    /// `Kind/namespace/name`.
    pub id: String,
    pub kind: String,
    pub lines: Vec<DiffLine>,
    pub added: usize,
    pub removed: usize,
}

/// What the diff page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The agent has not seen this GitSync sync since it started: it has no applied set.
    NotSynced,
    /// The objects or the diffs could not be read.
    Unreadable(String),
    /// What drifted, empty when nothing did, against the `revision` last applied.
    Diffs {
        revision: String,
        diffs: Vec<ObjectDiff>,
    },
}

/// The drift of `gs`, whose objects are `listed` (`objects::of_gitsync`, maybe through
/// `recent`), dry-run now.
pub async fn of_gitsync(
    ui: &UiState,
    gs: &GitSync,
    listed: Result<Arc<Listed>, ObjectsError>,
) -> Drift {
    let (ns, name) = (gs.namespace().unwrap_or_default(), gs.name_any());
    let Some(set) = ui.applied.get(&ns, &name) else {
        return Drift::NotSynced;
    };
    let listed = match listed {
        Ok(l) => l,
        Err(e) => return Drift::Unreadable(e.to_string()),
    };
    let revision = set.revision.clone();
    if listed.drifted.is_empty() {
        return Drift::Diffs {
            revision,
            diffs: Vec::new(),
        };
    }
    let manifests = set.manifests_where(|k| listed.drifted.contains(k));
    let opts = SyncOptions {
        inventory: set.inventory.clone(),
        inventory_namespace: set.inventory_namespace.clone(),
        default_namespace: set.default_namespace.clone(),
        ignore: set.ignore.clone(),
        prune: false,
        ..SyncOptions::default()
    };
    let preview = tokio::time::timeout(objects::TIMEOUT, ui.engine.preview(manifests, &opts));
    match preview.await {
        Ok(Ok(p)) => Drift::Diffs {
            revision,
            diffs: view(p.diffs),
        },
        Ok(Err(e)) => Drift::Unreadable(e.to_string()),
        Err(_) => Drift::Unreadable(format!("no answer within {}s", objects::TIMEOUT.as_secs())),
    }
}

/// The page's view of `driftless diff`'s output: one entry per object, in identity order.
pub fn view(mut diffs: Vec<(ObjectRef, String)>) -> Vec<ObjectDiff> {
    diffs.sort_by(|a, b| a.0.cmp(&b.0));
    diffs
        .into_iter()
        .map(|(id, text)| {
            let lines = lines(&text);
            let count = |k| lines.iter().filter(|l| l.kind == k).count();
            ObjectDiff {
                id: id.to_string(),
                kind: id.kind,
                added: count(LineKind::Added),
                removed: count(LineKind::Removed),
                lines,
            }
        })
        .collect()
}

/// The lines of a unified diff, each with its kind.
pub fn lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|l| {
            let kind = if l.starts_with("--- ") || l.starts_with("+++ ") {
                LineKind::Header
            } else if l.starts_with("@@") {
                LineKind::Hunk
            } else if l.starts_with('+') {
                LineKind::Added
            } else if l.starts_with('-') {
                LineKind::Removed
            } else {
                LineKind::Context
            };
            DiffLine {
                kind,
                text: l.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diff::unified_diff;

    #[test]
    fn a_drifted_field_is_one_line_removed_and_one_added() {
        let id = ObjectRef::new("apps/v1", "Deployment", Some("shop"), "web");
        let obj = |replicas| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": replicas}})
        };
        let text = unified_diff(&id, Some(&obj(5)), &obj(2));
        let v = view(vec![(id, text)]);
        assert_eq!(v.len(), 1);
        let d = &v[0];
        assert_eq!(
            (d.id.as_str(), d.kind.as_str()),
            ("Deployment/shop/web", "Deployment")
        );
        assert_eq!((d.added, d.removed), (1, 1));
        let kinds: Vec<LineKind> = d.lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            &kinds[..3],
            [LineKind::Header, LineKind::Header, LineKind::Hunk]
        );
        let changed: Vec<&str> = d
            .lines
            .iter()
            .filter(|l| matches!(l.kind, LineKind::Added | LineKind::Removed))
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(changed, ["-  replicas: 5", "+  replicas: 2"]);
    }

    #[test]
    fn secret_values_stay_masked_in_the_view() {
        let id = ObjectRef::new("v1", "Secret", Some("shop"), "db");
        let secret = |v: &str| {
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": v}})
        };
        let text = unified_diff(&id, Some(&secret("aGFja2Vk")), &secret("czNjcjN0"));
        let v = view(vec![(id, text)]);
        let all: String = v[0].lines.iter().map(|l| l.text.as_str()).collect();
        assert!(
            !all.contains("aGFja2Vk") && !all.contains("czNjcjN0"),
            "{all}"
        );
        assert!(all.contains("masked"), "{all}");
        assert_eq!((v[0].added, v[0].removed), (1, 1));
    }

    #[test]
    fn diffs_are_listed_in_identity_order() {
        let a = ObjectRef::new("v1", "ConfigMap", Some("b"), "z");
        let b = ObjectRef::new("apps/v1", "Deployment", Some("a"), "a");
        let v = view(vec![(b, String::new()), (a, String::new())]);
        let ids: Vec<&str> = v.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["ConfigMap/b/z", "Deployment/a/a"]);
    }
}
