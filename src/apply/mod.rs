//! Apply: make the cluster hold exactly a validated set of manifests.
//!
//! [`Engine::sync`] is the one entry point the CLI (`driftless apply`) and the agent share:
//! validate → read the inventory → read live metadata → classify → leave to other field
//! managers what the ignore rules and `Merge` policies give them → dry-run every object that
//! needs a write → record the union inventory → apply Namespaces and CRDs and wait for them →
//! apply the rest → prune what left the set → record the final inventory → wait for health.
//!
//! Safety rules (see docs/architecture.md): nothing is written before the whole set passed
//! validation and server-side dry-run (objects that depend on a Namespace or CRD created by the
//! same set are dry-run right after that stage, before anything else is written); nothing is
//! pruned when any step failed; an empty set never prunes without `allow_empty`; an object
//! labelled for another inventory is an error, never a silent takeover.
//!
//! The files, from the bottom up; each uses only files above it (and this one, for
//! [`SyncError`] and [`SyncOptions`]):
//!
//! | file | owns |
//! |---|---|
//! | `api` | the API handle of a resource, the API server's message of an error |
//! | `managed` | managed-field rules: driftless's own entry, kubectl's to adopt, their hash |
//! | `redact` | Secret values masked in messages |
//! | `live` | reading live metadata (LIST pages, GETs) and what is kept of it |
//! | `ssa` | one server-side apply (dry-run or not), adoption, recreation |
//! | `desired` | [`Engine::sync`]'s desired objects and what each needs (`DesiredObject`, `Need`) |
//! | `classify` | the decisions without I/O: ownership, needs, deferrals, inventories, order |
//! | `store`, `protect` | the inventory in ConfigMaps; driftless's own objects |
//! | `engine` | [`Engine`]: clients, API catalog, validation, the desired objects of a set |
//! | `read` | step 4: which objects to read, in how many requests |
//! | `policy`, `tailor` | ignore rules and apply policies; a desired object fitted to the live one |
//! | `ignore` | step 1's policy check and step 6b: the covered objects read in full and tailored |
//! | `dry_run` | step 7: the dry-run, refusals kept typed until displayed; `--dry-run`'s report |
//! | `wait` | Namespaces/CRDs ready; `--wait` health |
//! | `write` | steps 9 and 10: the staged apply |
//! | `prune` | step 11 |
//! | `forecast` | [`Plan`]: what a sync would do and why it would fail (pure) |
//! | `preview` | [`Engine::preview`] (`driftless diff`), [`Engine::plan`] (`driftless plan`) |
//! | `sync` | [`Engine::sync`]: the steps in order |

mod api;
mod classify;
mod desired;
mod dry_run;
mod engine;
pub mod forecast;
mod ignore;
mod live;
mod managed;
pub mod phases;
pub mod policy;
mod preview;
mod protect;
mod prune;
mod read;
mod redact;
mod ssa;
mod store;
mod sync;
mod tailor;
mod wait;
mod waves;
mod write;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use engine::Engine;
pub use forecast::{Failure, FailureReason, Outcome, Plan};
pub use managed::owned_fields_hash;
pub use preview::Preview;
pub use protect::{GITSYNC_CRD, Protected};
pub use store::{InventoryStore, Stored};

use crate::change::ChangeSet;
use crate::cluster::ClusterError;
use crate::inventory::ParseError;
use crate::plan::ValidationError;

/// Options of one sync, as `driftless apply` takes them.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The inventory name: which set of objects this sync owns (a DNS-1123 label).
    pub inventory: String,
    /// Where the inventory is stored.
    pub inventory_namespace: String,
    /// The namespace of namespaced objects that name none.
    pub default_namespace: String,
    /// Delete objects that left the set.
    pub prune: bool,
    /// Allow an empty set to prune everything.
    pub allow_empty: bool,
    /// Validate and report, write nothing.
    pub dry_run: bool,
    /// Recreate objects whose immutable fields changed.
    pub force: bool,
    /// Take fields owned by other field managers (server-side apply `force`).
    pub force_conflicts: bool,
    /// Wait for every object to become healthy.
    pub wait: bool,
    /// Bound of the health wait.
    pub timeout: Duration,
    /// Concurrent API requests.
    pub concurrency: usize,
    /// Where the engine reports how far it got, for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// Objects never pruned or recreated: driftless's own (default: [`Protected::from_env`]).
    pub protected: Protected,
    /// Fields applied on creation and never afterwards (the GitSync's `spec.ignore`).
    pub ignore: Vec<policy::IgnoreRule>,
    /// Run the hooks (the agent turns this off for a re-sync of the revision it applied last:
    /// hooks run once per revision).
    pub run_hooks: bool,
    /// How `--wait` judges health: CEL expressions per kind (the GitSync's
    /// `healthCheckExprs` and the built-in ones), else kstatus.
    pub health_checks: Arc<crate::health_cel::Checks>,
}

/// How far a sync got: the phase and the objects done of those it has to write.
#[derive(Debug, Default)]
pub struct Progress {
    phase: Mutex<&'static str>,
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Progress {
    fn start(&self, phase: &'static str, total: usize) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// (phase, done, total) now.
    pub fn snapshot(&self) -> (&'static str, usize, usize) {
        let phase = self.phase.lock().map(|p| *p).unwrap_or("");
        (
            phase,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

fn progress_start(opts: &SyncOptions, phase: &'static str, total: usize) {
    if let Some(p) = &opts.progress {
        p.start(phase, total);
    }
}

fn progress_tick(opts: &SyncOptions) {
    if let Some(p) = &opts.progress {
        p.tick();
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            inventory: String::new(),
            inventory_namespace: "driftless-system".into(),
            default_namespace: "default".into(),
            prune: true,
            allow_empty: false,
            dry_run: false,
            force: false,
            force_conflicts: true,
            wait: false,
            timeout: Duration::from_secs(300),
            concurrency: 8,
            progress: None,
            protected: Protected::from_env(),
            ignore: Vec::new(),
            health_checks: Arc::new(crate::health_cel::Checks::built_in()),
            run_hooks: true,
        }
    }
}

/// Why a sync stopped. Each names the objects, their files and the API server's reason.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The inventory name is not usable as a label value and object name.
    #[error("invalid inventory name {0:?}: use lower-case letters, digits and '-' (at most 50)")]
    InventoryName(String),
    /// The manifests are invalid; nothing was written.
    #[error("{} invalid object(s); nothing was changed:\n  {}", .0.len(), join(.0))]
    Invalid(Vec<ValidationError>),
    /// The set is empty and pruning would delete everything.
    #[error(
        "the set is empty and pruning would delete all {0} object(s) of the inventory; \
         nothing was changed (pass --allow-empty to prune everything)"
    )]
    EmptySet(usize),
    /// The sync would prune or recreate driftless's own Namespace, Deployment or CRD.
    #[error("{} of driftless's own object(s) would be deleted; nothing was changed:\n  {}", .0.len(), .0.join("\n  "))]
    Protected(Vec<String>),
    /// Objects belong to another inventory.
    #[error("{} object(s) belong to another inventory; nothing was changed:\n  {}", .0.len(), .0.join("\n  "))]
    Conflict(Vec<String>),
    /// Ignore rules or apply-policy annotations that cannot be used.
    #[error("{} invalid ignore rule(s) or apply policies; nothing was changed:\n  {}", .0.len(), .0.join("\n  "))]
    Policy(Vec<String>),
    /// The server-side dry-run refused objects; nothing was written (but the Namespaces and
    /// CRDs of the set when the refused objects depend on them).
    #[error("dry-run failed for {} object(s); nothing was changed:\n  {}", .0.len(), .0.join("\n  "))]
    DryRun(Vec<String>),
    /// Objects the sync may not read (RBAC of an impersonated ServiceAccount); nothing was
    /// changed.
    #[error("cannot read {} object(s); nothing was changed:\n  {}", .0.len(), .0.join("\n  "))]
    Unreadable(Vec<String>),
    /// Applying some objects failed; the others were applied; nothing was pruned.
    #[error("apply failed for {} object(s); nothing was pruned:\n  {}", failures(.0).len(), failures(.0).join("\n  "))]
    Apply(Box<ChangeSet>),
    /// Objects did not become healthy.
    #[error("{} object(s) not healthy:\n  {}", .failures.len(), .failures.join("\n  "))]
    Health {
        /// Boxed: the largest variant otherwise.
        changes: Box<ChangeSet>,
        failures: Vec<String>,
    },
    /// The inventory could not be read or written.
    #[error("{message}")]
    Inventory { message: String },
    /// The sync stopped before it returned (it panicked): what was written is unknown, the
    /// inventory as last recorded.
    #[error("sync task failed: {0}")]
    Task(String),
    /// A corrupt inventory shard.
    #[error(transparent)]
    InventoryCorrupt(#[from] ParseError),
    /// An API call failed.
    #[error("failed to {what}: {}", api::api_message(.source))]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Discovery or connection failure.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl SyncError {
    /// The change set of a sync that got as far as writing, if any.
    pub fn changes(&self) -> Option<&ChangeSet> {
        match self {
            SyncError::Apply(c) => Some(c.as_ref()),
            SyncError::Health { changes, .. } => Some(changes),
            _ => None,
        }
    }

    /// What kind of failure this is (the reason the drivers report comes from it).
    pub fn kind(&self) -> FailureKind {
        match self {
            SyncError::InventoryName(_)
            | SyncError::Invalid(_)
            | SyncError::EmptySet(_)
            | SyncError::Conflict(_)
            | SyncError::Protected(_)
            | SyncError::DryRun(_)
            | SyncError::Policy(_)
            | SyncError::Unreadable(_) => FailureKind::Invalid,
            SyncError::Apply(_)
            | SyncError::Inventory { .. }
            | SyncError::Task(_)
            | SyncError::InventoryCorrupt(_)
            | SyncError::Api { .. }
            | SyncError::Cluster(_) => FailureKind::Apply,
            SyncError::Health { .. } => FailureKind::Health,
        }
    }
}

/// What kind of failure a [`SyncError`] is, for the reason a driver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The set was refused before anything was written (validation, dry-run, ownership).
    Invalid,
    /// Writing failed or could not finish.
    Apply,
    /// Applied, but not healthy in time.
    Health,
}

fn join(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn failures(c: &ChangeSet) -> Vec<String> {
    c.changes
        .iter()
        .filter(|c| c.action == crate::change::Action::Failed)
        .map(|c| match &c.source {
            Some(s) => format!("{s}: {c}"),
            None => c.to_string(),
        })
        .collect()
}

/// Checks an inventory name: a DNS-1123 label short enough for `driftless-inv-<name>-<n>`.
pub fn check_inventory_name(name: &str) -> Result<(), SyncError> {
    let ok = !name.is_empty()
        && name.len() <= 50
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(SyncError::InventoryName(name.to_string()))
    }
}
