//! driftless: a GitOps agent for Kubernetes.
//!
//! The library is a pipeline with data flowing one way:
//! `source` (Git) → `render` (manifests) → `plan` (validation, order) → `apply` (server-side
//! apply, prune, inventory) → `health` (readiness), each object's outcome recorded in a
//! `change` set. `cluster` is the connection they share. The agent loop (which writes the
//! outcome to a GitSync's status and events), the CLI and the agent's web UI (`ui`) are thin
//! drivers of it; see docs/architecture.md for the module map.
// `deny`, not `forbid`: `memory` allows itself one call into the C library.
#![deny(unsafe_code)]

pub mod agent;
pub mod apply;
pub mod change;
pub mod cluster;
pub mod decrypt;
pub mod diff;
pub mod duration;
pub mod hash;
pub mod health;
pub mod health_cel;
pub mod inputs;
pub mod inventory;
pub mod memory;
pub mod notify;
pub mod object;
pub mod plan;
pub mod preview;
pub mod pulls;
pub mod render;
pub mod source;
pub mod ui;
