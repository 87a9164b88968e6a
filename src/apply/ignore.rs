//! The ignore rules and apply policies in the write path: checked with the set (step 1), and
//! step 6b, tailoring the objects they cover to their live state before the dry-run (see
//! `tailor`). Only objects that exist, need a write and are covered are read in full: one GET
//! each.

use futures::{StreamExt, stream};
use serde_json::Value;

use super::api::{api_for, api_message};
use super::desired::DesiredObject;
use super::live::LiveMap;
use super::policy::{ApplyPolicy, IgnoreRule, apply_policy, check_rules, force_annotated};
use super::tailor::{Tailoring, tailor};
use super::{SyncError, SyncOptions};
use crate::change::ChangeSet;
use crate::object::Manifest;

/// Step 1 (with validation): the ignore rules and every object's policy annotations.
///
/// # Errors
/// [`SyncError::Policy`] naming each bad rule and each object (with its file) whose
/// annotation is not understood.
pub(crate) fn check_policies(manifests: &[Manifest], opts: &SyncOptions) -> Result<(), SyncError> {
    let mut errors = Vec::new();
    if let Err(e) = check_rules(&opts.ignore) {
        errors.push(e.to_string());
    }
    for m in manifests {
        let annotation = |name: &str| m.annotation(name);
        let kind = m.kind().unwrap_or_default();
        let hook = super::phases::hook(kind, annotation);
        let is_hook = matches!(hook, Ok(Some(_)));
        let bad = [
            apply_policy(annotation).err(),
            force_annotated(annotation).err(),
            hook.err(),
            super::phases::wave(annotation, is_hook).err(),
        ];
        for e in bad.into_iter().flatten() {
            let id = m.object_ref().map(|r| r.to_string()).unwrap_or_default();
            errors.push(format!("{}: {id}: {e}", m.source));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SyncError::Policy(errors))
    }
}

/// The rules of `rules` that cover `object`.
pub(crate) fn rules_for<'a>(rules: &'a [IgnoreRule], object: &Value) -> Vec<&'a IgnoreRule> {
    rules.iter().filter(|r| r.applies_to(object)).collect()
}

/// What tailors `object` (its policy, the rules), or None when nothing does.
pub(crate) fn tailoring<'a>(
    object: &DesiredObject,
    rules: &'a [IgnoreRule],
) -> Option<Tailoring<'a>> {
    let merge = object.policy == ApplyPolicy::Merge;
    let rules = if rules.is_empty() {
        Vec::new()
    } else {
        rules_for(rules, &object.object())
    };
    (merge || !rules.is_empty()).then_some(Tailoring { rules, merge })
}

impl super::Engine {
    /// Step 6b: the objects to write that exist and that an ignore rule or `Merge` covers
    /// are read in full and tailored; the fields left alone are listed in `changes.ignored`.
    ///
    /// # Errors
    /// [`SyncError::Unreadable`] when such an object cannot be read.
    pub(super) async fn tailor_to_live(
        &self,
        objects: &mut [DesiredObject],
        live: &LiveMap,
        opts: &SyncOptions,
        changes: &mut ChangeSet,
    ) -> Result<(), SyncError> {
        let todo: Vec<usize> = (0..objects.len())
            .filter(|&i| {
                let o = &objects[i];
                o.need.is_write()
                    && live.contains_key(&o.key)
                    && tailoring(o, &opts.ignore).is_some()
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        // Owned values into the stream: a closure over references would make the sync's
        // future not `Send` (see `sync_is_send`).
        let wanted: Vec<_> = todo
            .iter()
            .map(|&i| {
                let o = &objects[i];
                let shown = format!("{}: {}", o.source, o.id);
                (o.resource.clone(), o.key.clone(), shown)
            })
            .collect();
        let client = self.client().clone();
        let reads: Vec<Result<Value, String>> =
            stream::iter(wanted.into_iter().map(move |(resource, key, shown)| {
                let client = client.clone();
                async move {
                    let resource = resource.ok_or_else(|| format!("{shown}: kind not served"))?;
                    let api = api_for(&client, &resource, key.namespace.as_deref());
                    api.get(&key.name)
                        .await
                        .map(|obj| serde_json::to_value(obj).unwrap_or_default())
                        .map_err(|e| format!("{shown}: {}", api_message(&e)))
                }
            }))
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut failures = Vec::new();
        for (&i, read) in todo.iter().zip(reads) {
            match read {
                Ok(live_object) => tailor_one(&mut objects[i], &live_object, opts, changes),
                Err(e) => failures.push(e),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(SyncError::Unreadable(failures))
        }
    }
}

/// Tailors one object's body to `live_object`, recording what was left alone.
fn tailor_one(
    object: &mut DesiredObject,
    live_object: &Value,
    opts: &SyncOptions,
    changes: &mut ChangeSet,
) {
    let Some(how) = tailoring(object, &opts.ignore) else {
        return;
    };
    let mut body = object.object();
    let ignored = tailor(&mut body, live_object, &how);
    if ignored.is_empty() {
        return;
    }
    if let Ok(raw) = serde_json::value::to_raw_value(&body) {
        object.body = raw;
    }
    changes.ignored.insert(object.id.to_string(), ignored);
}
