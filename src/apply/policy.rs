//! What driftless leaves to others: the GitSync's ignore rules (Flux's `spec.ignore`, Argo
//! CD's `ignoreDifferences`) and the per-object apply policies of annotations (Flux's
//! `kustomize.toolkit.fluxcd.io/ssa` and `force`). Pure: the types, their matching and the
//! annotations' reading.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fields driftless applies when it creates an object and never afterwards.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreRule {
    /// JSON pointers (RFC 6901) of the fields; a `*` segment matches every item of a list
    /// (`/spec/replicas`, `/spec/template/spec/containers/*/image`). Argo CD's `jsonPointers`
    /// is accepted too.
    #[serde(default, alias = "jsonPointers", skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Every field these field managers own on the live object (`kube-controller-manager` for
    /// what an HPA scales). Argo CD's `managedFieldsManagers` is accepted too.
    #[serde(
        default,
        alias = "managedFieldsManagers",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub field_managers: Vec<String>,
    /// The objects the rule is for; every object when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Argo CD's spelling of `target.group` (at the rule's level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Argo CD's spelling of `target.kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Argo CD's spelling of `target.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Argo CD's spelling of `target.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which objects a rule is for; unset fields match anything.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// API group (`apps`; empty for the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version (`v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind (`Deployment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Object namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector, as `kubectl -l` takes it: `app=web,tier!=db,canary,!legacy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

/// Why a rule is not usable; checked before anything is read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A path is not a JSON pointer.
    #[error("ignore rule {rule}: path {path:?} is not a JSON pointer (it must start with /)")]
    Path {
        /// The rule's index.
        rule: usize,
        /// The path.
        path: String,
    },
    /// A label selector does not parse.
    #[error("ignore rule {rule}: label selector {selector:?}: {reason}")]
    Selector {
        /// The rule's index.
        rule: usize,
        /// The selector.
        selector: String,
        /// Why.
        reason: &'static str,
    },
    /// A rule names neither paths nor field managers.
    #[error("ignore rule {0}: names neither paths nor fieldManagers")]
    Empty(usize),
}

/// Checks every rule.
///
/// # Errors
/// The first [`RuleError`].
pub fn check_rules(rules: &[IgnoreRule]) -> Result<(), RuleError> {
    for (i, rule) in rules.iter().enumerate() {
        if rule.paths.is_empty() && rule.field_managers.is_empty() {
            return Err(RuleError::Empty(i));
        }
        if let Some(path) = rule.paths.iter().find(|p| !p.starts_with('/')) {
            return Err(RuleError::Path {
                rule: i,
                path: path.clone(),
            });
        }
        if let Some(sel) = rule.target.as_ref().and_then(|t| t.label_selector.as_ref()) {
            parse_selector(sel).map_err(|reason| RuleError::Selector {
                rule: i,
                selector: sel.clone(),
                reason,
            })?;
        }
    }
    Ok(())
}

impl IgnoreRule {
    /// True when the rule is for `object`.
    pub fn applies_to(&self, object: &Value) -> bool {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let meta = &object["metadata"];
        let t = self.target.clone().unwrap_or_default();
        let field = |ours: &Option<String>, argo: &Option<String>, theirs: &str| {
            ours.as_ref()
                .or(argo.as_ref())
                .is_none_or(|want| want == theirs)
        };
        field(&t.group, &self.group, group)
            && field(&t.version, &None, version)
            && field(
                &t.kind,
                &self.kind,
                object["kind"].as_str().unwrap_or_default(),
            )
            && field(
                &t.name,
                &self.name,
                meta["name"].as_str().unwrap_or_default(),
            )
            && field(
                &t.namespace,
                &self.namespace,
                meta["namespace"].as_str().unwrap_or_default(),
            )
            && t.label_selector.as_ref().is_none_or(|sel| {
                let labels = meta["labels"].as_object();
                parse_selector(sel).is_ok_and(|reqs| {
                    reqs.iter().all(|r| {
                        r.matches(labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str))
                    })
                })
            })
    }
}

/// One requirement of a label selector.
#[derive(Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Debug, PartialEq, Eq)]
enum Op {
    Equals(String),
    NotEquals(String),
    Exists,
    Absent,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match &self.op {
            Op::Equals(v) => value == Some(v.as_str()),
            Op::NotEquals(v) => value != Some(v.as_str()),
            Op::Exists => value.is_some(),
            Op::Absent => value.is_none(),
        }
    }
}

/// The equality-based selectors of `kubectl -l` (`in`/`notin` sets are not supported).
fn parse_selector(selector: &str) -> Result<Vec<Requirement>, &'static str> {
    let mut out = Vec::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains(" in ") || part.contains(" notin ") || part.contains('(') {
            return Err("set-based requirements (in, notin) are not supported");
        }
        let req = if let Some((k, v)) = part.split_once("!=") {
            Requirement {
                key: k.trim().into(),
                op: Op::NotEquals(v.trim().into()),
            }
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement {
                key: k.trim().into(),
                op: Op::Equals(v.trim().into()),
            }
        } else if let Some(k) = part.strip_prefix('!') {
            Requirement {
                key: k.trim().into(),
                op: Op::Absent,
            }
        } else {
            Requirement {
                key: part.into(),
                op: Op::Exists,
            }
        };
        if req.key.is_empty() {
            return Err("a requirement has no key");
        }
        out.push(req);
    }
    Ok(out)
}

/// How an object is applied, from its `driftless.dev/ssa` annotation (or Flux's
/// `kustomize.toolkit.fluxcd.io/ssa`; values are case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplyPolicy {
    /// Apply every field, taking those other managers hold (`Override`, the default).
    #[default]
    Override,
    /// Apply the fields no other field manager holds; leave theirs as they are.
    Merge,
    /// Create when missing, never update.
    IfNotPresent,
    /// Leave the object alone (as `driftless.dev/ignore: "true"`).
    Ignore,
}

/// driftless's own apply-policy annotation.
pub const ANNOTATION_SSA: &str = "driftless.dev/ssa";
/// Flux's, accepted as well.
pub const FLUX_ANNOTATION_SSA: &str = "kustomize.toolkit.fluxcd.io/ssa";
/// Recreate the object when an immutable field changes (`enabled`), as `--force` does.
pub const ANNOTATION_FORCE: &str = "driftless.dev/force";
/// Flux's, accepted as well.
pub const FLUX_ANNOTATION_FORCE: &str = "kustomize.toolkit.fluxcd.io/force";

/// Why an annotation's value is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{annotation}: {value:?} is not one of {expected}")]
pub struct AnnotationError {
    /// The annotation.
    pub annotation: &'static str,
    /// Its value.
    pub value: String,
    /// What it may be.
    pub expected: &'static str,
}

/// The policy the object's annotations (`annotation(name)`) ask for.
///
/// # Errors
/// An unknown value, so a typo does not silently override.
pub fn apply_policy<'a>(
    annotation: impl Fn(&str) -> Option<&'a str>,
) -> Result<ApplyPolicy, AnnotationError> {
    let found = [ANNOTATION_SSA, FLUX_ANNOTATION_SSA]
        .into_iter()
        .find_map(|a| annotation(a).map(|v| (a, v)));
    let Some((annotation, value)) = found else {
        return Ok(ApplyPolicy::Override);
    };
    match value.to_ascii_lowercase().as_str() {
        "override" => Ok(ApplyPolicy::Override),
        "merge" => Ok(ApplyPolicy::Merge),
        "ifnotpresent" => Ok(ApplyPolicy::IfNotPresent),
        "ignore" => Ok(ApplyPolicy::Ignore),
        _ => Err(AnnotationError {
            annotation,
            value: value.to_owned(),
            expected: "Override, Merge, IfNotPresent, Ignore",
        }),
    }
}

/// True when the object's annotations ask for recreation on immutable changes.
///
/// # Errors
/// A value other than `enabled`/`disabled`.
pub fn force_annotated<'a>(
    annotation: impl Fn(&str) -> Option<&'a str>,
) -> Result<bool, AnnotationError> {
    let found = [ANNOTATION_FORCE, FLUX_ANNOTATION_FORCE]
        .into_iter()
        .find_map(|a| annotation(a).map(|v| (a, v)));
    let Some((annotation, value)) = found else {
        return Ok(false);
    };
    match value.to_ascii_lowercase().as_str() {
        "enabled" | "true" => Ok(true),
        "disabled" | "false" => Ok(false),
        _ => Err(AnnotationError {
            annotation,
            value: value.to_owned(),
            expected: "enabled, disabled",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "tier": "front"}}})
    }

    fn rule(v: Value) -> IgnoreRule {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn targets_match_by_group_kind_name_namespace_and_labels() {
        let d = deployment();
        assert!(rule(json!({"paths": ["/spec/replicas"]})).applies_to(&d));
        assert!(
            rule(json!({"paths": ["/x"], "target": {"group": "apps", "kind": "Deployment"}}))
                .applies_to(&d)
        );
        assert!(
            !rule(json!({"paths": ["/x"], "target": {"group": "", "kind": "Deployment"}}))
                .applies_to(&d)
        );
        assert!(!rule(json!({"paths": ["/x"], "target": {"name": "api"}})).applies_to(&d));
        assert!(
            rule(json!({"paths": ["/x"], "target": {"labelSelector": "app=web,tier!=db,!legacy"}}))
                .applies_to(&d)
        );
        assert!(
            !rule(json!({"paths": ["/x"], "target": {"labelSelector": "app=api"}})).applies_to(&d)
        );
        // Argo CD's ignoreDifferences spelling.
        let argo = rule(
            json!({"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"],
                               "managedFieldsManagers": ["kube-controller-manager"]}),
        );
        assert!(argo.applies_to(&d));
        assert_eq!(argo.paths, ["/spec/replicas"]);
        assert_eq!(argo.field_managers, ["kube-controller-manager"]);
        assert!(!rule(json!({"kind": "StatefulSet", "paths": ["/x"]})).applies_to(&d));
    }

    #[test]
    fn bad_rules_are_named() {
        let bad = |v: Value| check_rules(&[rule(v)]).unwrap_err().to_string();
        assert_eq!(
            bad(json!({})),
            "ignore rule 0: names neither paths nor fieldManagers"
        );
        assert!(bad(json!({"paths": ["spec/replicas"]})).contains("is not a JSON pointer"));
        assert!(
            bad(json!({"paths": ["/a"], "target": {"labelSelector": "env in (a,b)"}}))
                .contains("not supported")
        );
    }

    #[test]
    fn policies_read_ours_and_fluxs_annotations() {
        let a = |k: &'static str, v: &'static str| move |name: &str| (name == k).then_some(v);
        let none = |_: &str| None;
        assert_eq!(apply_policy(none), Ok(ApplyPolicy::Override));
        assert_eq!(
            apply_policy(a(FLUX_ANNOTATION_SSA, "IfNotPresent")),
            Ok(ApplyPolicy::IfNotPresent)
        );
        assert_eq!(
            apply_policy(a(ANNOTATION_SSA, "merge")),
            Ok(ApplyPolicy::Merge)
        );
        assert!(
            apply_policy(a(ANNOTATION_SSA, "Merj"))
                .unwrap_err()
                .to_string()
                .contains("Merj")
        );
        assert_eq!(
            force_annotated(a(FLUX_ANNOTATION_FORCE, "Enabled")),
            Ok(true)
        );
        assert_eq!(force_annotated(a(ANNOTATION_FORCE, "disabled")), Ok(false));
    }
}
