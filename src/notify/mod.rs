//! Outbound feedback: chat messages, webhooks and commit statuses about what a GitSync did.
//!
//! Data flows one way: the agent describes what happened as an [`event::Notification`];
//! `filter` decides which Alerts hear it (and drops repeats); `targets` turn it into the
//! HTTP request each service documents (pure; `forge` finds a commit's repository from the
//! GitSync's URL); `resolve` reads a Provider's Secrets; `deliver` sends off the sync's path,
//! with a bounded queue, retries and a timeout per Provider. `resources` are the Provider and
//! Alert custom resources.

pub mod deliver;
pub mod event;
pub mod filter;
pub mod forge;
pub mod resolve;
pub mod resources;
pub mod targets;

pub use event::{Commit, CommitState, Counts, Kind, Notification, Severity, Source};
pub use resources::{Alert, Provider, ProviderType};
