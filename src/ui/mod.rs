//! The web UI the agent serves with `--ui-listen`: an overview of every GitSync and a page per
//! GitSync, server-rendered HTML that works without JavaScript, kept live by server-sent events
//! and a few lines of our own script. It changes nothing in the cluster unless a signed-in
//! user whom RBAC allows asks for it.
//!
//! A thin driver over the library, like `agent` and `cli`. The view models are pure functions
//! of the agent's watch cache of GitSyncs ([`model`], [`overview`], [`gitsync`], with commit
//! links from [`links`]) and of what a GitSync's page reads ([`tree`]: the resource tree;
//! [`drift`]'s view of the live diff); [`html`] renders them with maud, which escapes every
//! value; the I/O is in [`server`] (routes, security headers, compression), [`live`] (the
//! `/events` stream), [`events`] (the Kubernetes Events of one GitSync), [`objects`] (its
//! objects and their children: a handful of LISTs per view of its page, and the drift test;
//! [`recent`] serves a read again for 2.5 s while its GitSync is unchanged),
//! [`drift`] (`Engine::preview` of the drifted objects, for the diff page) and [`health`]
//! (each GitSync's objects counted by health, kept in memory for the overview: filled by the
//! GitSync pages' reads and by a background refresher with few, bounded reads).
//!
//! Reading needs no sign-in. Acting — [`actions`]: sync now, suspend, resume — needs a user
//! who signed in with a Kubernetes bearer token and whom the API server allows to `patch` that
//! GitSync ([`auth`]: TokenReview, SubjectAccessReview, sessions, CSRF); the agent then makes
//! the change with its own client, through the same `agent::control` functions as the CLI.
//!
//! The overview comes from the agent's `reflector::Store` of GitSyncs — the cache its
//! controller reads — not from a LIST per page view; the agent bumps [`Changes`] on every
//! watch event it applies to that store (status writes included), and `/events` tells the
//! browsers, at most every 250 ms. What changes no GitSync (a Pod turning Ready, a hand edit)
//! reaches an open page by the timed refresh its fragment asks for (`data-refresh`, see
//! `html::tree`). Nothing from a Secret is shown but the agent's public deploy key and Secret
//! names: the tree lists Secrets by metadata only, and the diff masks their values.

pub mod actions;
pub mod assets;
pub mod auth;
pub mod drift;
pub mod events;
pub mod gitsync;
pub mod health;
pub mod html;
pub mod links;
pub mod live;
pub mod model;
pub mod objects;
pub mod overview;
pub mod recent;
pub mod server;
pub mod tree;

pub use server::{router, serve};

use kube::runtime::reflector::Store;

use std::sync::Arc;

use crate::agent::applied::AppliedSets;
use crate::agent::crd::GitSync;
use crate::apply::Engine;

/// A counter the agent bumps each time its cache of GitSyncs changed.
pub type Changes = tokio::sync::watch::Receiver<u64>;

/// The agent's SSH deploy key (`--identity-secret`): its public half only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployKey {
    /// Namespace of the Secret holding it.
    pub namespace: String,
    /// Name of that Secret.
    pub secret: String,
    /// The OpenSSH public key line.
    pub public: String,
}

/// What the UI reads.
#[derive(Clone)]
pub struct UiState {
    /// The agent's watch cache of GitSyncs.
    pub gitsyncs: Store<GitSync>,
    /// Bumped on every change of that cache.
    pub changes: Changes,
    /// For the Events of a GitSync.
    pub client: kube::Client,
    /// The agent's deploy key, when it has one.
    pub deploy_key: Option<DeployKey>,
    /// The agent's engine: its API catalog for the objects' LISTs, and `preview` for the diff.
    pub engine: Arc<Engine>,
    /// What each GitSync's last successful sync applied (the desired side of the diff).
    pub applied: Arc<AppliedSets>,
    /// Each GitSync's objects counted by health, for the overview ([`health`]).
    pub health: Arc<health::Healths>,
}
