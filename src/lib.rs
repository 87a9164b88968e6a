//! driftless: a GitOps agent for Kubernetes.
//!
//! The library is a pipeline with data flowing one way:
//! `source` (Git) → `render` (manifests) → `plan` (order, diff) → `apply` (server-side apply,
//! prune, inventory) → `health` → `status`. The agent loop and the CLI are thin drivers of it.
// `deny`, not `forbid`: `memory` allows itself one call into the C library.
#![deny(unsafe_code)]

pub mod agent;
pub mod apply;
pub mod change;
pub mod cluster;
pub mod diff;
pub mod duration;
pub mod error;
pub mod hash;
pub mod health;
pub mod inventory;
pub mod memory;
pub mod object;
pub mod plan;
pub mod render;
pub mod source;
