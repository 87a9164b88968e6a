//! Finding the manifest files under a root directory.
//!
//! Owns the rules for which files are read: `*.yaml`, `*.yml` and `*.json`, recursively; hidden
//! entries (a name starting with `.`) and `.driftlessignore` matches skipped; symlinks followed
//! only while their target stays inside the root; each directory and file visited once (which
//! also breaks symlink cycles); directories holding a Kustomize or Helm entry point rejected
//! until rendering them is supported. Parsing lives in the sibling `load` module; the limits
//! and errors both share in `limits`.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::limits::{LoadError, LoadOptions, read_limited};

/// Name of the ignore file read from the root directory (gitignore syntax).
pub const IGNORE_FILE: &str = ".driftlessignore";

/// Entry points of other renderers: (file name, tool named in the error).
const UNSUPPORTED_MARKERS: &[(&str, &str)] = &[
    ("kustomization.yaml", "Kustomize"),
    ("kustomization.yml", "Kustomize"),
    ("Kustomization", "Kustomize"),
    ("Chart.yaml", "Helm"),
];

const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn is_manifest_name(name: &Path) -> bool {
    name.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| MANIFEST_EXTENSIONS.contains(&ext))
}

/// Walks the tree under one root and collects manifest file paths.
struct Walker<'a> {
    root: &'a Path,
    canonical_root: PathBuf,
    ignore: Gitignore,
    visited: HashSet<PathBuf>,
    files: Vec<PathBuf>,
}

/// Lists the manifest files under `root`, as paths relative to it, sorted by their bytes.
///
/// # Errors
/// A [`LoadError`] naming the path for I/O failures, symlinks leaving the root, an invalid
/// `.driftlessignore` and directories that need Kustomize or Helm.
pub fn manifest_files(root: &Path, opts: &LoadOptions) -> Result<Vec<PathBuf>, LoadError> {
    let canonical_root = fs::canonicalize(root).map_err(io_error(root))?;
    if !canonical_root.is_dir() {
        return Err(LoadError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut walker = Walker {
        root,
        ignore: load_ignore(root, opts)?,
        visited: HashSet::from([canonical_root.clone()]),
        canonical_root,
        files: Vec::new(),
    };
    walker.walk()?;
    let mut files = walker.files;
    files.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(files)
}

fn load_ignore(root: &Path, opts: &LoadOptions) -> Result<Gitignore, LoadError> {
    let path = root.join(IGNORE_FILE);
    let mut builder = GitignoreBuilder::new(root);
    if path.is_file() {
        let text = read_limited(&path, opts.max_file_bytes)?;
        for line in text.lines() {
            builder
                .add_line(None, line)
                .map_err(|source| LoadError::IgnoreFile {
                    path: path.clone(),
                    source,
                })?;
        }
    }
    builder
        .build()
        .map_err(|source| LoadError::IgnoreFile { path, source })
}

/// What a directory entry is once symlinks are resolved.
enum EntryKind {
    Dir,
    File,
    Other,
}

impl Walker<'_> {
    fn walk(&mut self) -> Result<(), LoadError> {
        let mut pending = vec![PathBuf::new()];
        while let Some(rel) = pending.pop() {
            let mut subdirs = self.walk_dir(&rel)?;
            // Reverse so the stack pops subdirectories in name order.
            subdirs.reverse();
            pending.extend(subdirs);
        }
        Ok(())
    }

    /// Reads one directory: records its manifest files, returns its subdirectories to visit.
    fn walk_dir(&mut self, rel: &Path) -> Result<Vec<PathBuf>, LoadError> {
        let dir = self.root.join(rel);
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            names.push(entry.map_err(io_error(&dir))?.file_name());
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let rel_child = rel.join(&name);
            let path = self.root.join(&rel_child);
            // A dangling symlink is only an error if it is not ignored.
            let kind = entry_kind(&path);
            let is_dir = matches!(kind, Ok(EntryKind::Dir));
            if self.ignore.matched(&rel_child, is_dir).is_ignore() {
                continue;
            }
            let kind = kind?;
            if let Some((marker, tool)) = UNSUPPORTED_MARKERS.iter().find(|(m, _)| name == *m) {
                return Err(LoadError::Unsupported {
                    dir: dir.clone(),
                    marker,
                    tool,
                });
            }
            let wanted = match kind {
                EntryKind::Dir => true,
                EntryKind::File => is_manifest_name(&rel_child),
                EntryKind::Other => false,
            };
            if !wanted || !self.first_visit(&path)? {
                continue;
            }
            if is_dir {
                subdirs.push(rel_child);
            } else {
                self.files.push(rel_child);
            }
        }
        Ok(subdirs)
    }

    /// Checks that `path` resolves inside the root; true the first time its target is seen.
    ///
    /// Every directory and file is recorded by its canonical path, so a symlink to something
    /// already read (or to an ancestor, which would be a cycle) is skipped rather than read
    /// twice.
    fn first_visit(&mut self, path: &Path) -> Result<bool, LoadError> {
        let target = fs::canonicalize(path).map_err(io_error(path))?;
        // Only a symlink can resolve outside the root: every other entry's canonical path is
        // its (already checked) parent's plus its own name.
        if !target.starts_with(&self.canonical_root) {
            return Err(LoadError::SymlinkOutsideRoot {
                link: path.to_path_buf(),
                target,
            });
        }
        Ok(self.visited.insert(target))
    }
}

/// Classifies `path`, following a symlink; a dangling symlink is an error naming it.
fn entry_kind(path: &Path) -> Result<EntryKind, LoadError> {
    let meta = fs::metadata(path).map_err(io_error(path))?;
    Ok(if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    })
}
