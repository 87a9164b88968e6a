//! The Git source stage: where the manifests come from.
//!
//! This module owns everything about a Git repository and a revision in it: [`url`] parses and
//! vets the repository URL a user gives (rejecting forms that could inject options into `git`
//! or `ssh`) and redacts credentials for display; [`refs`] validates branch, tag, semver-range
//! and commit references and picks the tag a range resolves to (both pure logic); [`auth`]
//! turns credentials into what git and ssh read, never a command line; [`git`] runs the `git`
//! CLI (and OpenSSH) bounded in time; [`fetch`] keeps the repository cache, fetches
//! incrementally, makes snapshots (written out by [`objects`]' long-lived readers) and pushes the
//! sync tag; [`keys`] makes deploy keys;
//! [`verify`] checks commit and tag signatures. Its output, a checked-out tree at a
//! [`Revision`], feeds [`crate::render`].

mod ancestry;
pub mod auth;
pub mod fetch;
pub mod git;
mod host_key;
pub mod keys;
mod objects;
pub mod refs;
mod snapshot;
mod tag;
pub mod url;
pub mod verify;

pub use auth::{Auth, Sensitive};
pub use fetch::{FetchRequest, Fetched, GitCache, SourceError};
pub use refs::{GitRef, RefError, Revision, highest_match, validate_ref_name};
pub use snapshot::Snapshot;
pub use url::{RepoUrl, Transport, UrlError, redact_all};
