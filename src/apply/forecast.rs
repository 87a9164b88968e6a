//! What a sync would do, as `driftless plan` and the pull-request previews report it: objects
//! to create, to change (with their diffs), to prune, left alone, and every reason the sync
//! would fail, each naming its file and object. Pure data; [`Engine::plan`] fills it and the
//! top-level `preview` module prints it.
//!
//! [`Engine::plan`]: super::Engine::plan

use serde::Serialize;

use crate::change::ApiWarning;
use crate::object::ObjectRef;
use crate::plan::ValidationError;

/// Why an object is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Left {
    /// The `driftless.dev/ignore` annotation (or Argo CD's `Skip` sync option).
    Annotated,
    /// `IfNotPresent` and it exists.
    Exists,
}

/// Why the sync would fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureReason {
    /// The manifest is not a valid object for this cluster (fields, name, kind or version not
    /// served).
    Invalid,
    /// An ignore rule or an apply-policy, wave or hook annotation cannot be used.
    Policy,
    /// The object belongs to another inventory.
    Conflict,
    /// The identity that syncs (the GitSync's ServiceAccount) may not write it.
    Forbidden,
    /// A field that cannot change would change (the sync would need `--force`).
    Immutable,
    /// An admission webhook or policy refused it.
    Admission,
    /// The API server refused it for another reason.
    Refused,
    /// The prune or recreate of driftless's own objects.
    Protected,
    /// The set is empty and pruning would delete the whole inventory.
    EmptySet,
    /// The commit could not be fetched.
    Fetch,
    /// The render failed.
    Render,
    /// A SOPS document could not be decrypted.
    Decryption,
}

impl FailureReason {
    /// The word a report shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Policy => "invalid policy",
            Self::Conflict => "owned by another inventory",
            Self::Forbidden => "forbidden",
            Self::Immutable => "immutable field",
            Self::Admission => "refused by admission",
            Self::Refused => "refused",
            Self::Protected => "protected",
            Self::EmptySet => "empty set",
            Self::Fetch => "fetch failed",
            Self::Render => "render failed",
            Self::Decryption => "decryption failed",
        }
    }

    /// Classifies an API server's refusal of a dry-run from its HTTP code and message.
    pub fn of_refusal(code: Option<u16>, message: &str, immutable: bool) -> Self {
        if code == Some(403) && !message.contains("admission webhook") {
            Self::Forbidden
        } else if immutable {
            Self::Immutable
        } else if message.contains("admission webhook")
            || message.contains("ValidatingAdmissionPolicy")
        {
            Self::Admission
        } else if code == Some(422) {
            Self::Invalid
        } else {
            Self::Refused
        }
    }
}

/// One reason the sync would fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The file (and document) the object came from, when one object is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The object, `Kind/namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub reason: FailureReason,
    /// What is wrong, in the API server's or the validator's words (Secret values masked).
    pub message: String,
}

impl Failure {
    /// A failure of the whole set (a render, an empty set).
    pub fn of_set(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            file: None,
            object: None,
            reason,
            message: message.into(),
        }
    }

    /// A validation error, its file and object taken apart from its message.
    pub fn of_validation(e: &ValidationError) -> Self {
        let (file, object) = e.origin();
        Self {
            file: Some(file.to_string()),
            object,
            reason: FailureReason::Invalid,
            message: e.to_string(),
        }
    }
}

/// One object to create or change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// `Kind/namespace/name`.
    pub object: String,
    #[serde(rename = "ref")]
    pub id: ObjectRef,
    /// The file it comes from.
    pub file: String,
    /// Unified diff live → desired (noise removed, Secret values masked); for a create, every
    /// line added.
    pub diff: String,
}

/// An object named with its reference (prunes, objects left alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    /// `Kind/namespace/name`.
    pub object: String,
    #[serde(rename = "ref")]
    pub id: ObjectRef,
}

impl From<ObjectRef> for Named {
    fn from(id: ObjectRef) -> Self {
        Self {
            object: id.to_string(),
            id,
        }
    }
}

/// An object left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    #[serde(flatten)]
    pub named: Named,
    pub why: Left,
}

/// What a sync of a set would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub create: Vec<Planned>,
    pub change: Vec<Planned>,
    pub prune: Vec<Named>,
    /// Left alone: annotated to be ignored, or `IfNotPresent` and present.
    pub ignored: Vec<Skipped>,
    /// How many objects of the set would not change.
    pub unchanged: usize,
    /// Why the sync would fail; empty when it would succeed.
    pub failures: Vec<Failure>,
    /// The API server's warnings (deprecated versions), by object.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<PlanWarning>,
}

/// A warning of the API server about one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanWarning {
    pub object: String,
    pub message: String,
}

impl From<&ApiWarning> for PlanWarning {
    fn from(w: &ApiWarning) -> Self {
        Self {
            object: w.id.to_string(),
            message: w.message.clone(),
        }
    }
}

/// What `driftless plan` exits with: as `diff`, 0 for nothing to do, 1 for changes, 2 when the
/// sync would fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    NoChanges,
    Changes,
    WouldFail,
}

impl Plan {
    /// A plan that is only `failures` (nothing could be planned past them).
    pub fn failed(failures: Vec<Failure>) -> Self {
        Self {
            failures,
            ..Self::default()
        }
    }

    /// The plan's verdict.
    pub fn outcome(&self) -> Outcome {
        if !self.failures.is_empty() {
            Outcome::WouldFail
        } else if self.create.is_empty() && self.change.is_empty() && self.prune.is_empty() {
            Outcome::NoChanges
        } else {
            Outcome::Changes
        }
    }

    /// `2 to create, 1 to change, 1 to prune` (and the failures, the objects left alone).
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("{} to create", self.create.len()),
            format!("{} to change", self.change.len()),
            format!("{} to prune", self.prune.len()),
        ];
        if !self.ignored.is_empty() {
            parts.push(format!("{} left alone", self.ignored.len()));
        }
        if !self.failures.is_empty() {
            parts.push(format!(
                "{} error{}",
                self.failures.len(),
                if self.failures.len() == 1 { "" } else { "s" }
            ));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(kind: &str, name: &str) -> Named {
        Named::from(ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("demo".into()),
            name: name.into(),
        })
    }

    #[test]
    fn the_outcome_is_failure_first_then_any_change() {
        let mut plan = Plan::default();
        assert_eq!(plan.outcome(), Outcome::NoChanges);
        plan.prune.push(named("ConfigMap", "old"));
        assert_eq!(plan.outcome(), Outcome::Changes);
        plan.failures
            .push(Failure::of_set(FailureReason::EmptySet, "empty"));
        assert_eq!(plan.outcome(), Outcome::WouldFail);
        assert_eq!(
            plan.summary(),
            "0 to create, 0 to change, 1 to prune, 1 error"
        );
    }

    #[test]
    fn refusals_are_classified_by_code_and_words() {
        let of = FailureReason::of_refusal;
        assert_eq!(
            of(Some(403), "cannot create clusterroles", false),
            FailureReason::Forbidden
        );
        assert_eq!(
            of(
                Some(403),
                "admission webhook \"deny.example\" denied the request",
                false
            ),
            FailureReason::Admission
        );
        assert_eq!(
            of(Some(422), "spec.selector: field is immutable", true),
            FailureReason::Immutable
        );
        assert_eq!(
            of(Some(422), "spec.replicas: Invalid value", false),
            FailureReason::Invalid
        );
        assert_eq!(of(Some(400), "bad request", false), FailureReason::Refused);
        assert_eq!(of(None, "connection reset", false), FailureReason::Refused);
    }

    #[test]
    fn json_names_objects_by_text_and_by_reference() {
        let plan = Plan {
            prune: vec![named("ConfigMap", "old")],
            ..Plan::default()
        };
        let json = serde_json::to_value(&plan).unwrap_or_default();
        assert_eq!(json["prune"][0]["object"], "ConfigMap/demo/old");
        assert_eq!(json["prune"][0]["ref"]["kind"], "ConfigMap");
        assert!(json.get("warnings").is_none());
    }
}
