//! Rendering: turning a directory of the source tree into a list of [`Manifest`]s.
//!
//! [`render`] is the entry point the agent and the CLI share: a path with a kustomization is
//! built with a pinned `kustomize` (`kustomize`), a GitSync with a `helm` section (or a path
//! holding `Chart.yaml`) with `helm template` (`helm`), anything else loaded as plain
//! manifests; then the Flux-style Kustomize overrides apply, SOPS-encrypted objects are
//! decrypted (`decryption`, with [`crate::decrypt`]) and the `postBuild` variable
//! substitution (`substitute`) runs, in Flux's order. Tools run bounded and isolated (`exec`); renders are
//! cached per (commit, path, options) by the agent (`cache`). The spec types are in `spec`.
//!
//! Plain manifests ([`load_dir`]): every `*.yaml`, `*.yml` and `*.json` under
//! the root, recursively, in a deterministic order (relative path bytes, then position in the
//! file). Multi-document YAML is split, empty documents dropped, `List` kinds expanded into
//! their items. Hidden files and directories are skipped, as is anything matched by a
//! `.driftlessignore` (gitignore syntax) at the root. Symlinks are followed while they stay
//! inside the root. A subdirectory with a `kustomization.yaml` or `Chart.yaml` is an error: only
//! the rendered path itself is a Kustomize or Helm root.
//!
//! The I/O is reading the directory and running the tools; the output feeds `plan::validate`.
//!
//! [`Manifest`]: crate::object::Manifest

pub mod cache;
pub mod capabilities;
pub mod decryption;
mod dependencies;
pub mod exec;
pub mod helm;
pub mod kustomize;
mod limits;
mod load;
mod pipeline;
pub mod spec;
pub mod stability;
pub mod substitute;
mod walk;

pub use cache::RenderCache;
pub use capabilities::Capabilities;
pub use exec::{ExecError, ExecLimits};
pub use limits::{LoadError, LoadOptions};
pub use load::{load_dir, parse_bytes};
pub use pipeline::{RenderContext, RenderError, Rendered, Tools, render, renders_chart};
pub use spec::RenderSpec;
pub use walk::IGNORE_FILE;

#[cfg(test)]
mod tests;
