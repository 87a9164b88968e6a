//! Sync waves and hooks, read from annotations (pure): `driftless.dev/sync-wave` (or Argo CD's
//! `argocd.argoproj.io/sync-wave`, or a Helm hook's `helm.sh/hook-weight`) orders objects
//! across waves, each healthy before the next starts; `driftless.dev/hook` (or Argo CD's
//! `argocd.argoproj.io/hook`) makes a Job or Pod a `PreSync`, `PostSync` or `SyncFail` hook,
//! run once per revision, and Helm's `pre-install`/`pre-upgrade` and
//! `post-install`/`post-upgrade` Job and Pod hooks are mapped to `PreSync` and `PostSync`.

use super::policy::AnnotationError;

/// driftless's wave annotation.
pub const ANNOTATION_WAVE: &str = "driftless.dev/sync-wave";
/// Argo CD's, accepted as well.
pub const ARGO_ANNOTATION_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// driftless's hook annotation.
pub const ANNOTATION_HOOK: &str = "driftless.dev/hook";
/// Argo CD's, accepted as well.
pub const ARGO_ANNOTATION_HOOK: &str = "argocd.argoproj.io/hook";
/// driftless's hook delete policy annotation.
pub const ANNOTATION_HOOK_DELETE: &str = "driftless.dev/hook-delete-policy";
/// Argo CD's, accepted as well.
pub const ARGO_ANNOTATION_HOOK_DELETE: &str = "argocd.argoproj.io/hook-delete-policy";
const HELM_HOOK: &str = "helm.sh/hook";
const HELM_WEIGHT: &str = "helm.sh/hook-weight";
const HELM_DELETE: &str = "helm.sh/hook-delete-policy";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HookPhase {
    /// Before the objects of the set are applied (after Namespaces and CRDs).
    PreSync,
    /// After every wave is applied and healthy.
    PostSync,
    /// When a hook or a wave failed.
    SyncFail,
}

impl std::fmt::Display for HookPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookPhase::PreSync => "PreSync",
            HookPhase::PostSync => "PostSync",
            HookPhase::SyncFail => "SyncFail",
        })
    }
}

/// A hook: when it runs and what happens to it afterwards. A previous run's object is always
/// deleted before the hook is created again (`BeforeHookCreation`, Argo CD's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// When.
    pub phase: HookPhase,
    /// `HookSucceeded`: deleted once it succeeded.
    pub delete_on_success: bool,
    /// `HookFailed`: deleted once it failed.
    pub delete_on_failure: bool,
}

/// The object's wave (0 by default); a hook's Helm `hook-weight` counts as its wave too (on
/// other objects it is left alone, as before).
///
/// # Errors
/// A value that is not an integer.
pub fn wave<'a>(
    annotation: impl Fn(&str) -> Option<&'a str>,
    is_hook: bool,
) -> Result<i32, AnnotationError> {
    let helm = if is_hook { Some(HELM_WEIGHT) } else { None };
    let found = [ANNOTATION_WAVE, ARGO_ANNOTATION_WAVE]
        .into_iter()
        .chain(helm)
        .find_map(|a| annotation(a).map(|v| (a, v)));
    let Some((name, value)) = found else {
        return Ok(0);
    };
    value.trim().parse().map_err(|_| AnnotationError {
        annotation: name,
        value: value.to_owned(),
        expected: "an integer",
    })
}

/// The object's hook, for kind `kind` (hooks are Jobs and Pods).
///
/// # Errors
/// An unknown phase or delete policy, or a driftless/Argo CD hook on another kind.
pub fn hook<'a>(
    kind: &str,
    annotation: impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<Hook>, AnnotationError> {
    let runs = matches!(kind, "Job" | "Pod");
    let own = [ANNOTATION_HOOK, ARGO_ANNOTATION_HOOK]
        .into_iter()
        .find_map(|a| annotation(a).map(|v| (a, v)));
    let phase = match own {
        Some((_, "Sync" | "")) => None,
        Some((name, value)) if !runs => {
            return Err(AnnotationError {
                annotation: name,
                value: format!("{value} on a {kind}"),
                expected: "a hook on a Job or Pod",
            });
        }
        Some((name, value)) => Some(match value {
            "PreSync" => HookPhase::PreSync,
            "PostSync" => HookPhase::PostSync,
            "SyncFail" => HookPhase::SyncFail,
            _ => {
                return Err(AnnotationError {
                    annotation: name,
                    value: value.to_owned(),
                    expected: "PreSync, PostSync, SyncFail (or Sync)",
                });
            }
        }),
        // Helm's install and upgrade hooks, on what can run; others stay plain objects.
        None if runs => annotation(HELM_HOOK).and_then(helm_phase),
        None => None,
    };
    let Some(phase) = phase else {
        return Ok(None);
    };
    let (delete_on_success, delete_on_failure) = delete_policy(&annotation)?;
    Ok(Some(Hook {
        phase,
        delete_on_success,
        delete_on_failure,
    }))
}

fn helm_phase(hooks: &str) -> Option<HookPhase> {
    let names: Vec<&str> = hooks.split(',').map(str::trim).collect();
    if names
        .iter()
        .any(|h| matches!(*h, "pre-install" | "pre-upgrade"))
    {
        Some(HookPhase::PreSync)
    } else if names
        .iter()
        .any(|h| matches!(*h, "post-install" | "post-upgrade"))
    {
        Some(HookPhase::PostSync)
    } else {
        None
    }
}

/// (delete on success, delete on failure) from the delete policy annotations.
fn delete_policy<'a>(
    annotation: &impl Fn(&str) -> Option<&'a str>,
) -> Result<(bool, bool), AnnotationError> {
    let found = [
        ANNOTATION_HOOK_DELETE,
        ARGO_ANNOTATION_HOOK_DELETE,
        HELM_DELETE,
    ]
    .into_iter()
    .find_map(|a| annotation(a).map(|v| (a, v)));
    let Some((name, value)) = found else {
        return Ok((false, false));
    };
    let (mut success, mut failure) = (false, false);
    for policy in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match policy {
            "HookSucceeded" | "hook-succeeded" => success = true,
            "HookFailed" | "hook-failed" => failure = true,
            "BeforeHookCreation" | "before-hook-creation" => {}
            _ => {
                return Err(AnnotationError {
                    annotation: name,
                    value: value.to_owned(),
                    expected: "BeforeHookCreation, HookSucceeded, HookFailed",
                });
            }
        }
    }
    Ok((success, failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn waves_read_ours_argos_and_helms() {
        assert_eq!(wave(annotations(&[]), false), Ok(0));
        assert_eq!(wave(annotations(&[(ANNOTATION_WAVE, "-1")]), false), Ok(-1));
        assert_eq!(
            wave(annotations(&[(ARGO_ANNOTATION_WAVE, "5")]), false),
            Ok(5)
        );
        assert_eq!(wave(annotations(&[(HELM_WEIGHT, " 2 ")]), true), Ok(2));
        assert_eq!(wave(annotations(&[(HELM_WEIGHT, "2")]), false), Ok(0));
        assert!(wave(annotations(&[(ANNOTATION_WAVE, "first")]), false).is_err());
    }

    #[test]
    fn hooks_are_jobs_and_pods_with_their_delete_policies() {
        let h = hook(
            "Job",
            annotations(&[
                (ARGO_ANNOTATION_HOOK, "PreSync"),
                (ARGO_ANNOTATION_HOOK_DELETE, "HookSucceeded"),
            ]),
        );
        assert_eq!(
            h,
            Ok(Some(Hook {
                phase: HookPhase::PreSync,
                delete_on_success: true,
                delete_on_failure: false
            }))
        );
        assert_eq!(
            hook("Job", annotations(&[(ANNOTATION_HOOK, "Sync")])),
            Ok(None)
        );
        assert!(hook("ConfigMap", annotations(&[(ANNOTATION_HOOK, "PreSync")])).is_err());
        assert!(hook("Pod", annotations(&[(ANNOTATION_HOOK, "Presync")])).is_err());
        // Helm: Jobs and Pods become hooks, other kinds stay plain objects.
        let helm = [
            (HELM_HOOK, "pre-install,pre-upgrade"),
            (HELM_DELETE, "before-hook-creation,hook-succeeded"),
        ];
        assert_eq!(
            hook("Job", annotations(&helm))
                .unwrap()
                .map(|h| (h.phase, h.delete_on_success)),
            Some((HookPhase::PreSync, true))
        );
        assert_eq!(hook("ConfigMap", annotations(&helm)), Ok(None));
        assert_eq!(
            hook("Pod", annotations(&[(HELM_HOOK, "post-upgrade")]))
                .unwrap()
                .map(|h| h.phase),
            Some(HookPhase::PostSync)
        );
    }
}
