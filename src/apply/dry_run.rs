//! Step 7 of the sync, the dry-run: every object that needs a write is sent with server-side
//! apply and `dryRun=All`, concurrently, and every refusal is reported at once. A refusal is
//! kept as the API server sent it ([`Refusal`]) until it is displayed, where Secret values are
//! masked. With `--dry-run`, the same requests tell what a real run would do
//! ([`Engine::report_dry_run`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{FutureExt, StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Status;
use serde_json::Value;

use super::api::{api_for, api_message};
use super::classify::{defer_namespace_dependents, missing_namespaces, waits_for_namespace};
use super::desired::{DesiredObject, Need, attributed};
use super::engine::Engine;
use super::live::LiveMap;
use super::managed::owned_fields_hash;
use super::ssa::{self, Conflicts, Mode};
use super::{SyncError, SyncOptions, progress_start, progress_tick, protect, redact};
use crate::change::{Action, ChangeSet};
use crate::cluster::{ApiWarnings, attribute};

/// Which objects a dry-run pass sends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pass<'a> {
    /// Before anything is written: every write, but those in a Namespace the set creates (they
    /// are deferred to the second pass).
    First,
    /// After the cluster stage: only these objects (by index), the deferred ones.
    Deferred(&'a HashSet<usize>),
}

/// The API server's refusal of a dry-run, as it sent it (its `Status`, with `details.causes`).
#[derive(Debug)]
pub(super) struct Refusal(pub(super) kube::Error);

/// How the API server words the refusal of a change to a field that cannot change. Most
/// messages say "immutable"; a few do not (Service `clusterIP`, RoleBinding `roleRef`,
/// StatefulSet `spec`), and `--force` must recreate those objects too.
const IMMUTABLE_MESSAGES: &[&str] = &[
    "immutable",
    "may not change once set",
    "cannot change roleRef",
    "updates to statefulset spec for fields other than",
];

impl Refusal {
    /// True when the refusal is about an immutable field: recreating the object helps. Read
    /// from the Status's message and its causes'.
    pub fn is_immutable(&self) -> bool {
        let immutable = |text: &str| IMMUTABLE_MESSAGES.iter().any(|m| text.contains(m));
        match &self.0 {
            kube::Error::Api(status) => messages(status).any(immutable),
            other => immutable(&other.to_string()),
        }
    }

    /// The HTTP status code of the refusal, when the API server answered.
    pub fn code(&self) -> Option<u16> {
        match &self.0 {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }

    /// The API server's message, with the values of `object` masked when it is a Secret.
    pub fn display(&self, object: &Value) -> String {
        redact::mask_secret_values(&api_message(&self.0), object)
    }
}

/// The Status's message and its causes' messages.
fn messages(status: &Status) -> impl Iterator<Item = &str> {
    let causes = status.details.iter().flat_map(|d| d.causes.iter());
    std::iter::once(status.message.as_str()).chain(causes.map(|c| c.message.as_str()))
}

impl Engine {
    /// Dry-runs the objects of `pass`, and fails with every refusal at once. Under `--force`,
    /// an object refused for an immutable field is to be recreated instead. After the first
    /// pass, the objects in a Namespace the set creates are deferred to the second.
    ///
    /// # Errors
    /// [`SyncError::DryRun`] naming each refused object, its file and the API server's reason.
    pub(super) async fn dry_run(
        &self,
        objects: &mut [DesiredObject],
        live: &LiveMap,
        opts: &SyncOptions,
        pass: Pass<'_>,
        warnings: &Arc<ApiWarnings>,
    ) -> Result<Answers, SyncError> {
        let missing = missing_namespaces(objects, live);
        let selected = selected(objects, pass, &missing);
        let total = match pass {
            Pass::First => objects.iter().filter(|o| o.need.is_write()).count(),
            Pass::Deferred(only) => only.len(),
        };
        progress_start(opts, "dry-run", total);
        let (refusals, mut answers) = self.send(objects, selected, opts, warnings).await;
        let mut failures = judge(objects, refusals, opts, &mut answers);
        if matches!(pass, Pass::First) {
            defer_namespace_dependents(objects, &missing);
        }
        failures.sort();
        if failures.is_empty() {
            Ok(answers)
        } else {
            Err(SyncError::DryRun(failures))
        }
    }

    /// Sends the dry-runs of `selected` (indices into `objects`), `opts.concurrency` at a time.
    /// Returns the refusals, by index, and what the answers tell.
    async fn send(
        &self,
        objects: &[DesiredObject],
        selected: Vec<usize>,
        opts: &SyncOptions,
        warnings: &Arc<ApiWarnings>,
    ) -> (Vec<(usize, Refusal)>, Answers) {
        let client = self.client();
        let conflicts = Conflicts::forced_if(opts.force_conflicts);
        // NB: indices, not references, go through the stream: a closure taking a reference is
        // what makes the compiler unable to prove the sync's future `Send`.
        let results: Vec<(usize, Result<Answer, Refusal>)> =
            stream::iter(selected.into_iter().filter_map(|idx| {
                let object = &objects[idx];
                let resource = object.resource.as_ref()?;
                let dry_run = ssa::apply(
                    client,
                    resource,
                    &object.id,
                    &object.body,
                    Mode::DryRun,
                    conflicts,
                );
                let need = object.need;
                Some(
                    async move {
                        let result = attribute(warnings, idx, dry_run).await;
                        progress_tick(opts);
                        // Reduced at once: the whole answers of a large set, managed fields
                        // and all, held until the last one came, were 25 MB at 5,000 objects.
                        let answer = result.map(|o| Answer::of(&o.metadata, need));
                        (idx, answer.map_err(Refusal))
                    }
                    .boxed(),
                )
            }))
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut refusals = Vec::new();
        let mut answers = Answers::default();
        for (idx, result) in results {
            match result {
                Ok(answer) => answers.record(idx, answer),
                Err(refusal) => refusals.push((idx, refusal)),
            }
        }
        (refusals, answers)
    }

    /// In dry-run mode: reports what a real run would do, comparing the dry-run result with
    /// the live object. Returns `changes` with those outcomes and the API server's warnings.
    pub(super) async fn report_dry_run(
        &self,
        objects: &[DesiredObject],
        live: &LiveMap,
        mut changes: ChangeSet,
        warnings: &Arc<ApiWarnings>,
    ) -> ChangeSet {
        let client = self.client();
        let reported = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o.need.is_write() || o.need == Need::Deferred);
        for (idx, object) in reported {
            let action = match (live.get(&object.key), &object.resource) {
                (None, _) | (_, None) => Action::Created,
                (Some(_), Some(r)) => {
                    let api = api_for(client, r, object.key.namespace.as_deref());
                    let now = api.get_opt(&object.key.name).await.ok().flatten();
                    let dry = ssa::apply(
                        client,
                        r,
                        &object.id,
                        &object.body,
                        Mode::DryRun,
                        Conflicts::Force,
                    );
                    let after = attribute(warnings, idx, dry).await.ok();
                    match (now, after) {
                        (Some(n), Some(a))
                            if crate::diff::semantically_equal(&to_value(&n), &to_value(&a)) =>
                        {
                            Action::Unchanged
                        }
                        _ => Action::Configured,
                    }
                }
            };
            changes.push(object.id.clone(), action, Some(object.source.clone()), None);
        }
        changes.warnings = attributed(warnings, objects);
        changes
    }
}

/// What the dry-run's answers tell, by object index.
#[derive(Debug, Default)]
pub(super) struct Answers {
    /// The objects found in the cluster already: a dry-run create has no `resourceVersion`
    /// (nothing was stored), an apply to a live object carries the object's; and the objects
    /// refused for a field that cannot change, which `--force` recreates.
    pub existing: HashSet<usize>,
    /// The [`owned_fields_hash`] the apply will give each plain apply: what the inventory
    /// records for it before the apply (the API server computes the same managed fields for a
    /// dry-run as for the write).
    pub fields: HashMap<usize, String>,
}

/// What one dry-run's answer tells.
#[derive(Debug)]
struct Answer {
    existed: bool,
    fields: Option<String>,
}

impl Answer {
    /// Reads the answer's metadata for an object whose need is `need`.
    fn of(answer: &ObjectMeta, need: Need) -> Self {
        let existed = answer
            .resource_version
            .as_deref()
            .is_some_and(|v| !v.is_empty());
        // An adoption rewrites the managed fields before its apply: not known ahead.
        let fields = (need == Need::Apply)
            .then(|| owned_fields_hash(answer))
            .filter(|hash| !hash.is_empty());
        Answer { existed, fields }
    }
}

impl Answers {
    fn record(&mut self, idx: usize, answer: Answer) {
        if answer.existed {
            self.existing.insert(idx);
        }
        if let Some(hash) = answer.fields {
            self.fields.insert(idx, hash);
        }
    }
}

/// The indices of the objects `pass` dry-runs: writes whose kind is served, in the first pass
/// but those waiting for a `missing` namespace.
fn selected(objects: &[DesiredObject], pass: Pass<'_>, missing: &HashSet<String>) -> Vec<usize> {
    objects
        .iter()
        .enumerate()
        .filter(|(idx, object)| {
            let sent = match pass {
                Pass::First => !waits_for_namespace(object, missing),
                Pass::Deferred(only) => only.contains(idx),
            };
            sent && object.need.is_write() && object.resource.is_some()
        })
        .map(|(idx, _)| idx)
        .collect()
}

/// Turns the refusals into failures, but those `--force` recreates (an immutable field, not
/// of a protected object): those objects are marked [`Need::Recreate`], and `answers` records
/// that they exist (only a live object has a field that cannot change).
fn judge(
    objects: &mut [DesiredObject],
    refusals: Vec<(usize, Refusal)>,
    opts: &SyncOptions,
    answers: &mut Answers,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (idx, refusal) in refusals {
        let object = &mut objects[idx];
        let immutable = refusal.is_immutable();
        let force = opts.force || object.force;
        if force && immutable && opts.protected.contains(&object.key) {
            let refused = protect::refuse_recreate(&object.id);
            failures.push(format!("{}: {refused}", object.source));
        } else if force && immutable {
            object.need = Need::Recreate;
            answers.existing.insert(idx);
        } else {
            let hint = if immutable {
                " (use --force to recreate it)"
            } else {
                ""
            };
            let message = refusal.display(&object.object());
            failures.push(format!("{}: {}: {message}{hint}", object.source, object.id));
        }
    }
    failures
}

fn to_value(obj: &kube::api::DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::super::desired::fixtures::config_map;
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn refusal(message: &str, causes: &[&str]) -> Refusal {
        let causes = causes
            .iter()
            .map(|m| StatusCause {
                reason: "FieldValueInvalid".into(),
                message: (*m).into(),
                field: "spec".into(),
            })
            .collect();
        Refusal(kube::Error::Api(Box::new(Status {
            code: 422,
            reason: "Invalid".into(),
            message: message.into(),
            details: Some(StatusDetails {
                name: "a".into(),
                group: String::new(),
                kind: "ConfigMap".into(),
                uid: String::new(),
                causes,
                retry_after_seconds: 0,
            }),
            ..Status::default()
        })))
    }

    #[test]
    fn immutable_fields_are_found_in_the_message_or_a_cause() {
        assert!(refusal("spec.selector: field is immutable", &[]).is_immutable());
        assert!(refusal("invalid", &["spec.clusterIP: may not change once set"]).is_immutable());
        assert!(refusal("cannot change roleRef", &[]).is_immutable());
        assert!(!refusal("spec.replicas: must be positive", &["bad value"]).is_immutable());
    }

    #[test]
    fn secret_values_are_masked_only_on_display() {
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "stringData": {"password": "hunter2-TOPSECRET"}});
        let r = refusal("bad value \"hunter2-TOPSECRET\"", &[]);
        assert!(r.display(&secret).contains("***"));
        assert!(!r.display(&secret).contains("TOPSECRET"));
        let kube::Error::Api(status) = &r.0 else {
            panic!("not an API error");
        };
        assert!(status.message.contains("TOPSECRET"), "kept as sent");
    }

    fn opts(force: bool) -> SyncOptions {
        SyncOptions {
            force,
            ..SyncOptions::default()
        }
    }

    #[test]
    fn an_immutable_field_is_a_recreate_with_force_and_a_hint_without() {
        let mut objects = vec![config_map("a"), config_map("b")];
        let refusals = || {
            vec![
                (0, refusal("spec: field is immutable", &[])),
                (1, refusal("denied by policy", &[])),
            ]
        };
        let mut answers = Answers::default();
        let failures = judge(&mut objects, refusals(), &opts(false), &mut answers);
        assert_eq!(failures.len(), 2);
        assert!(
            failures[0].ends_with("(use --force to recreate it)"),
            "{failures:?}"
        );
        assert!(failures[1].ends_with("denied by policy"), "{failures:?}");
        assert_eq!(objects[0].need, Need::Apply);
        assert!(answers.existing.is_empty());
        let failures = judge(&mut objects, refusals(), &opts(true), &mut answers);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(objects[0].need, Need::Recreate);
        assert!(answers.existing.contains(&0), "a recreated object exists");
    }

    #[test]
    fn a_protected_object_is_never_recreated() {
        let mut objects = vec![config_map("a")];
        let mut o = opts(true);
        o.protected = crate::apply::Protected::none().with(objects[0].key.clone());
        let mut answers = Answers::default();
        let refused = vec![(0, refusal("immutable", &[]))];
        let failures = judge(&mut objects, refused, &o, &mut answers);
        assert_eq!(failures.len(), 1);
        assert_eq!(objects[0].need, Need::Apply);
    }

    #[test]
    fn the_first_pass_leaves_out_what_waits_for_a_namespace_and_unserved_kinds() {
        let mut objects = vec![
            config_map("a"),
            config_map("b"),
            config_map("c"),
            config_map("d"),
        ];
        objects[1].need = Need::Nothing;
        objects[2].resource = None;
        objects[3].need = Need::Adopt;
        assert_eq!(selected(&objects, Pass::First, &HashSet::new()), [0, 3]);
        let missing = HashSet::from(["app".to_string()]);
        assert!(selected(&objects, Pass::First, &missing).is_empty());
        let only = HashSet::from([3]);
        assert_eq!(selected(&objects, Pass::Deferred(&only), &missing), [3]);
    }

    #[test]
    fn an_answer_tells_whether_the_object_existed_and_the_fields_an_apply_will_own() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let ours = ManagedFieldsEntry {
            manager: Some(crate::object::FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            api_version: Some("v1".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({"f:data": {"f:key": {}}}))),
            ..ManagedFieldsEntry::default()
        };
        let created = ObjectMeta {
            managed_fields: Some(vec![ours]),
            ..ObjectMeta::default()
        };
        let answer = Answer::of(&created, Need::Apply);
        assert!(
            !answer.existed,
            "a dry-run create stores nothing: no resourceVersion"
        );
        assert_eq!(
            answer.fields.as_deref(),
            Some(&*owned_fields_hash(&created))
        );
        let live = ObjectMeta {
            resource_version: Some("42".into()),
            ..created
        };
        let adopted = Answer::of(&live, Need::Adopt);
        assert!(adopted.existed);
        assert_eq!(
            adopted.fields, None,
            "an adoption's fields are not known ahead"
        );

        let mut answers = Answers::default();
        answers.record(3, Answer::of(&live, Need::Apply));
        answers.record(4, Answer::of(&ObjectMeta::default(), Need::Apply));
        assert_eq!(answers.existing, HashSet::from([3]));
        assert_eq!(answers.fields.keys().collect::<Vec<_>>(), [&3]);
    }
}
