//! Rendering: turning a directory of the source tree into a list of [`Manifest`]s.
//!
//! Today this loads plain manifests ([`load_dir`]): every `*.yaml`, `*.yml` and `*.json` under
//! the root, recursively, in a deterministic order (relative path bytes, then position in the
//! file). Multi-document YAML is split, empty documents dropped, `List` kinds expanded into
//! their items. Hidden files and directories are skipped, as is anything matched by a
//! `.driftlessignore` (gitignore syntax) at the root. Symlinks are followed while they stay
//! inside the root. A directory with a `kustomization.yaml` or `Chart.yaml` is an error until
//! Kustomize/Helm rendering lands here.
//!
//! The only I/O is reading the directory; the output feeds `plan::validate`.
//!
//! [`Manifest`]: crate::object::Manifest

mod load;
mod walk;

pub use load::{LoadError, LoadOptions, load_dir};
pub use walk::IGNORE_FILE;

#[cfg(test)]
mod tests;
