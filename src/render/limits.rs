//! The plain-manifest loader's limits ([`LoadOptions`]), its errors ([`LoadError`]) and the
//! bounded file read both `walk` (the ignore file) and `load` (each manifest) use.
//!
//! Kept below both so that each depends only on this module: `walk` finds files, `load` parses
//! them, and neither reaches into the other for the types they share.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Limits on what [`load_dir`](super::load_dir) reads; exceeding one is an error naming the
/// file and the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Largest single file, in bytes (default 32 MiB).
    pub max_file_bytes: u64,
    /// Largest total of all files read, in bytes (default 256 MiB).
    pub max_total_bytes: u64,
    /// Most objects in the whole tree, after `List` expansion (default 50,000).
    pub max_objects: usize,
    /// Deepest nesting of mappings and sequences in one document (default 128).
    pub max_depth: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: 32 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_objects: 50_000,
            // Deep enough for large CRD schemas; shallow enough to keep recursion in check.
            max_depth: 128,
        }
    }
}

/// Errors from loading a directory of manifests.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading a file or directory failed.
    #[error("failed to read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The root is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The root given.
        path: PathBuf,
    },
    /// A symlink resolves outside the root directory.
    #[error("symlink {link} points outside the root directory (to {target})")]
    SymlinkOutsideRoot {
        /// The symlink.
        link: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
    },
    /// A directory needs a renderer that is not supported yet.
    #[error(
        "{dir} contains {marker}: {tool} renders only the synced path itself, not a directory \
         inside plain manifests (point the path at it, or reference it from a kustomization)"
    )]
    Unsupported {
        /// The directory.
        dir: PathBuf,
        /// The file that marks it, e.g. `kustomization.yaml`.
        marker: &'static str,
        /// The tool it needs, e.g. `Kustomize`.
        tool: &'static str,
    },
    /// `.driftlessignore` has an invalid pattern.
    #[error("invalid pattern in {path}: {source}")]
    IgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// The matcher's error.
        #[source]
        source: ignore::Error,
    },
    /// A file is larger than [`LoadOptions::max_file_bytes`].
    #[error("{path} is larger than the max file size of {limit} bytes")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The files read add up to more than [`LoadOptions::max_total_bytes`].
    #[error("reading {path} exceeds the max total size of {limit} bytes for all manifests")]
    TotalTooLarge {
        /// The file that crossed the limit.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// More objects than [`LoadOptions::max_objects`].
    #[error("{path} exceeds the max of {limit} objects for all manifests")]
    TooManyObjects {
        /// The file that crossed the limit.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// A document nests deeper than [`LoadOptions::max_depth`].
    #[error("{path} nests deeper than the max depth of {limit}{at}")]
    TooDeep {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: usize,
        /// Where, as ` at line L, column C`, when known.
        at: String,
    },
    /// Another YAML parser budget (aliases, nodes, events, ...) was exceeded.
    #[error("{path} exceeds a YAML parser limit: {message}")]
    YamlLimit {
        /// The file.
        path: PathBuf,
        /// The parser's description of the limit and location.
        message: String,
    },
    /// A file is not valid UTF-8.
    #[error("{path} is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// A YAML file does not parse.
    #[error("failed to parse YAML in {path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A JSON file does not parse.
    #[error("failed to parse JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A document (or `List` item) is not a mapping.
    #[error("{path} (document {doc}): expected a mapping (a Kubernetes object), found {found}")]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// 0-based index of the object in the file, as in [`Source::doc`](crate::object::Source::doc).
        doc: usize,
        /// What was found instead, e.g. `a sequence`.
        found: &'static str,
    },
}

/// Reads a whole file as UTF-8, refusing more than `limit` bytes even if it grew since listed.
pub(super) fn read_limited(path: &Path, limit: u64) -> Result<String, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(LoadError::FileTooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|err| LoadError::NotUtf8 {
        path: path.to_path_buf(),
        offset: err.utf8_error().valid_up_to(),
    })
}
