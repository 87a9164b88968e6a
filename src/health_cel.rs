//! Health by CEL expressions, per kind, in Flux's `healthCheckExprs` form: `current`,
//! `inProgress` and `failed` over the object's own fields (`metadata`, `spec`, `status`), so a
//! Flux user's expressions work as they are. Evaluated as Flux evaluates them (RFC 0009): a
//! `status.observedGeneration` behind `metadata.generation` is InProgress, then `inProgress`,
//! `failed` and `current` in that order; none true is InProgress. An expression that fails to
//! evaluate (a field not there yet) keeps the object InProgress with the error as its message,
//! so `--wait` reports it if it never settles.
//!
//! Built-in checks cover common kinds whose status kstatus reads wrong ([`BUILT_IN`]); a
//! GitSync's own expressions for a kind win over them.

use std::sync::Arc;

use cel::{Context, Env, Program};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::health::{Health, HealthStatus};

/// The health expressions for one kind.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckExpr {
    /// `group/version` (or `v1`) of the kind.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// True when the object is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// True while it is still being reconciled (checked first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
    /// True when it will not become healthy without a change (stops `--wait` at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// Why an expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "health check for {api_version} {kind}: {field} expression {expr:?} does not compile: {reason}"
)]
pub struct CelError {
    /// The kind's `apiVersion`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// `current`, `inProgress` or `failed`.
    pub field: &'static str,
    /// The expression.
    pub expr: String,
    /// The parser's message.
    pub reason: String,
}

/// Built-in expressions: kinds common in clusters whose status kstatus misreads or cannot
/// judge. Each guards with `has()`, so an object without status yet is simply InProgress.
pub const BUILT_IN: &[(&str, &str, &str, &str)] = &[
    // (apiVersion, kind, current, failed)
    (
        "cert-manager.io/v1",
        "Certificate",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Issuing' && c.status == 'False' && c.reason == 'Failed')",
    ),
    (
        "cert-manager.io/v1",
        "Issuer",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'False')",
    ),
    (
        "cert-manager.io/v1",
        "ClusterIssuer",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'False')",
    ),
    (
        "argoproj.io/v1alpha1",
        "Rollout",
        "has(status.phase) && status.phase == 'Healthy'",
        "has(status.phase) && status.phase == 'Degraded'",
    ),
    (
        "postgresql.cnpg.io/v1",
        "Cluster",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        "has(status.phase) && status.phase.startsWith('Failed')",
    ),
    (
        "external-secrets.io/v1",
        "ExternalSecret",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        "has(status.conditions) && status.conditions.exists(c, c.type == 'Ready' && c.status == 'False' && c.reason == 'SecretSyncedError')",
    ),
];

/// One kind's compiled expressions.
struct Compiled {
    api_version: String,
    kind: String,
    in_progress: Option<(String, Program)>,
    failed: Option<(String, Program)>,
    current: Option<(String, Program)>,
}

/// Compiled health expressions: a GitSync's, then the built-in ones.
pub struct Checks {
    env: Arc<Env>,
    kinds: Vec<Compiled>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|k| format!("{} {}", k.api_version, k.kind))
            .collect();
        f.debug_struct("Checks").field("kinds", &kinds).finish()
    }
}

impl Checks {
    /// The built-in checks only.
    pub fn built_in() -> Checks {
        // The built-in expressions are tested to compile (`built_ins_compile`).
        Checks::new(&[]).unwrap_or_else(|_| Checks {
            env: Arc::new(Env::stdlib()),
            kinds: Vec::new(),
        })
    }

    /// `exprs` (which win for their kinds) and the built-in checks.
    ///
    /// # Errors
    /// The first expression that does not compile, with its kind and field.
    pub fn new(exprs: &[HealthCheckExpr]) -> Result<Checks, CelError> {
        let env = Arc::new(Env::stdlib());
        let mut kinds = Vec::new();
        let built_in = BUILT_IN.iter().map(|(a, k, c, f)| HealthCheckExpr {
            api_version: (*a).into(),
            kind: (*k).into(),
            current: Some((*c).into()),
            in_progress: None,
            failed: Some((*f).into()),
        });
        for e in exprs.iter().cloned().chain(built_in) {
            let compile = |field: &'static str, expr: &Option<String>| {
                expr.as_ref()
                    .map(|x| {
                        env.compile(x)
                            .map(|p| (x.clone(), p))
                            .map_err(|err| CelError {
                                api_version: e.api_version.clone(),
                                kind: e.kind.clone(),
                                field,
                                expr: x.clone(),
                                reason: err.to_string(),
                            })
                    })
                    .transpose()
            };
            kinds.push(Compiled {
                in_progress: compile("inProgress", &e.in_progress)?,
                failed: compile("failed", &e.failed)?,
                current: compile("current", &e.current)?,
                api_version: e.api_version,
                kind: e.kind,
            });
        }
        Ok(Checks { env, kinds })
    }

    /// The health of `obj`: by its kind's expressions when there are some, else by the
    /// built-in kstatus rules ([`crate::health::evaluate`]).
    pub fn health(&self, obj: &Value) -> Health {
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            return crate::health::evaluate(obj);
        }
        self.evaluate(obj)
            .unwrap_or_else(|| crate::health::evaluate(obj))
    }

    /// The health of `obj` by the first check for its kind; None when no check covers it.
    pub fn evaluate(&self, obj: &Value) -> Option<Health> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let check = self
            .kinds
            .iter()
            .find(|c| c.api_version == api_version && c.kind == kind)?;
        if let (Some(observed), Some(generation)) = (
            obj["status"]["observedGeneration"].as_i64(),
            obj["metadata"]["generation"].as_i64(),
        ) && observed != generation
        {
            return Some(Health {
                status: HealthStatus::InProgress,
                message: format!(
                    "waiting for the controller to observe generation {generation} (observed {observed})"
                ),
            });
        }
        Some(self.run(check, obj))
    }

    fn run(&self, check: &Compiled, obj: &Value) -> Health {
        let mut ctx = Context::with_env(self.env.clone());
        if let Some(fields) = obj.as_object() {
            for (name, value) in fields {
                if ctx.add_variable(name.clone(), value.clone()).is_err() {
                    continue;
                }
            }
        }
        let order = [
            (&check.in_progress, HealthStatus::InProgress),
            (&check.failed, HealthStatus::Failed),
            (&check.current, HealthStatus::Current),
        ];
        for (expr, status) in order {
            let Some((source, program)) = expr else {
                continue;
            };
            match program.execute(&ctx) {
                Ok(cel::Value::Bool(true)) => {
                    return Health {
                        status,
                        message: format!("{source} is true"),
                    };
                }
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => {
                    return Health {
                        status: HealthStatus::InProgress,
                        message: format!("{source} is not a boolean ({other:?})"),
                    };
                }
                Err(err) => {
                    return Health {
                        status: HealthStatus::InProgress,
                        message: format!("{source}: {err}"),
                    };
                }
            }
        }
        Health {
            status: HealthStatus::InProgress,
            message: format!(
                "no health expression of {} {} is true yet",
                check.api_version, check.kind
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_ready(api_version: &str, kind: &str, condition: &str, status: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "generation": 2},
               "status": {"observedGeneration": 2,
                          "conditions": [{"type": condition, "status": status, "reason": "R", "observedGeneration": 2}]}})
    }

    #[test]
    fn built_ins_compile() {
        assert!(Checks::new(&[]).is_ok());
        assert_eq!(Checks::built_in().kinds.len(), BUILT_IN.len());
    }

    /// Expressions from Flux's CEL cheatsheet, as they are written there.
    #[test]
    fn flux_cheatsheet_expressions_work_unchanged() {
        let exprs: Vec<HealthCheckExpr> = serde_json::from_value(json!([
            {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
             "failed": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'False')",
             "current": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'True')"},
            {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
             "failed": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')",
             "current": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"},
            {"apiVersion": "fluxcd.controlplane.io/v1", "kind": "ResourceSet",
             "failed": "status.conditions.exists(e, e.type == 'Stalled' && e.status == 'True' && e.observedGeneration == metadata.generation)",
             "current": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True' && e.observedGeneration == metadata.generation)"},
            {"apiVersion": "ceph.rook.io/v1", "kind": "CephCluster",
             "failed": "status.ceph.health == 'HEALTH_ERR'", "current": "status.ceph.health == 'HEALTH_OK'"}
        ]))
        .unwrap();
        let checks = Checks::new(&exprs).unwrap();
        let status = |o: Value| checks.evaluate(&o).map(|h| h.status);
        let sealed = |s| with_ready("bitnami.com/v1alpha1", "SealedSecret", "Synced", s);
        assert_eq!(status(sealed("True")), Some(HealthStatus::Current));
        assert_eq!(status(sealed("False")), Some(HealthStatus::Failed));
        let capi = |s| with_ready("cluster.x-k8s.io/v1beta1", "Cluster", "Ready", s);
        assert_eq!(status(capi("True")), Some(HealthStatus::Current));
        assert_eq!(status(capi("False")), Some(HealthStatus::Failed));
        let rs = |t, s| with_ready("fluxcd.controlplane.io/v1", "ResourceSet", t, s);
        assert_eq!(status(rs("Ready", "True")), Some(HealthStatus::Current));
        assert_eq!(status(rs("Stalled", "True")), Some(HealthStatus::Failed));
        let ceph = |h: &str| {
            json!({"apiVersion": "ceph.rook.io/v1", "kind": "CephCluster", "metadata": {"name": "c"},
                                    "status": {"ceph": {"health": h}}})
        };
        assert_eq!(status(ceph("HEALTH_OK")), Some(HealthStatus::Current));
        assert_eq!(status(ceph("HEALTH_ERR")), Some(HealthStatus::Failed));
        assert_eq!(status(ceph("HEALTH_WARN")), Some(HealthStatus::InProgress));
    }

    #[test]
    fn missing_status_and_stale_generations_are_in_progress() {
        let checks = Checks::built_in();
        let cert = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"}});
        assert_eq!(
            checks.evaluate(&cert).unwrap().status,
            HealthStatus::InProgress
        );
        let mut ready = with_ready("cert-manager.io/v1", "Certificate", "Ready", "True");
        assert_eq!(
            checks.evaluate(&ready).unwrap().status,
            HealthStatus::Current
        );
        ready["metadata"]["generation"] = json!(3);
        assert_eq!(
            checks.evaluate(&ready).unwrap().status,
            HealthStatus::InProgress
        );
        let unknown = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert!(checks.evaluate(&unknown).is_none());
    }

    #[test]
    fn a_bad_expression_is_named_and_one_that_errors_waits() {
        let bad: Vec<HealthCheckExpr> = serde_json::from_value(json!([
            {"apiVersion": "example.com/v1", "kind": "Widget", "current": "status.phase == "}
        ]))
        .unwrap();
        let err = Checks::new(&bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("health check for example.com/v1 Widget: current expression"),
            "{err}"
        );
        let erring: Vec<HealthCheckExpr> = serde_json::from_value(json!([
            {"apiVersion": "example.com/v1", "kind": "Widget", "current": "status.phase == 'Ready'"}
        ]))
        .unwrap();
        let checks = Checks::new(&erring).unwrap();
        let widget =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        let h = checks.evaluate(&widget).unwrap();
        assert_eq!(h.status, HealthStatus::InProgress);
        assert!(
            h.message.contains("status.phase == 'Ready'"),
            "{}",
            h.message
        );
        // A user's expression wins over the built-in one for the same kind.
        let own: Vec<HealthCheckExpr> = serde_json::from_value(json!([
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "current": "true"}
        ]))
        .unwrap();
        let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "status": {"phase": "Degraded"}});
        assert_eq!(
            Checks::new(&own)
                .unwrap()
                .evaluate(&rollout)
                .unwrap()
                .status,
            HealthStatus::Current
        );
    }
}
