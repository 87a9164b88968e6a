//! Loading plain manifests: reading and parsing the files `walk` finds.
//!
//! Owns turning bytes into [`Manifest`]s within the limits of [`LoadOptions`]: YAML streams
//! (many documents per file, parsed by serde-saphyr with its budgets on so alias bombs and deep
//! nesting fail fast) and JSON files, with `List` kinds expanded into their items. Everything a
//! user can get wrong comes back as a [`LoadError`] naming the file. The limits and errors live
//! in `limits`, below both this module and `walk`, which finds the files.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;

use super::limits::{LoadError, LoadOptions, read_limited};
use super::walk::manifest_files;
use crate::decrypt::{self, Tree};
use crate::object::{Manifest, Source};

/// Loads every manifest under `root`: see the `render` module docs for the rules.
///
/// Objects come back in a deterministic order: files sorted by relative path, then by position
/// in the file.
///
/// # Errors
/// The first [`LoadError`] met; each names the file (or directory) and, for limits, the limit.
pub fn load_dir(root: &Path, opts: &LoadOptions) -> Result<Vec<Manifest>, LoadError> {
    let files = manifest_files(root, opts)?;
    let mut manifests = Vec::new();
    let mut total_bytes: u64 = 0;
    for rel in files {
        let path = root.join(&rel);
        let size = fs::metadata(&path)
            .map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if size > opts.max_file_bytes {
            return Err(LoadError::FileTooLarge {
                path,
                limit: opts.max_file_bytes,
            });
        }
        total_bytes = total_bytes.saturating_add(size);
        if total_bytes > opts.max_total_bytes {
            return Err(LoadError::TotalTooLarge {
                path,
                limit: opts.max_total_bytes,
            });
        }
        let text = read_limited(&path, opts.max_file_bytes)?;
        let docs = parse_documents(&path, &text, opts)?;
        expand(&path, &rel, docs, &mut manifests)?;
        if manifests.len() > opts.max_objects {
            return Err(LoadError::TooManyObjects {
                path,
                limit: opts.max_objects,
            });
        }
    }
    Ok(manifests)
}

/// Parses a tool's YAML output (one stream) into manifests attributed to `origin`, with the
/// same parser budgets and `List` expansion as files.
pub(super) fn parse_stream(
    origin: &Path,
    text: &str,
    opts: &LoadOptions,
) -> Result<Vec<Manifest>, LoadError> {
    // A tool's output is not the file in Git (keys reordered, fields added), so its encrypted
    // objects are decrypted value by value, without the file order its MAC would need.
    let docs = parse_file(origin, text, opts)?
        .into_iter()
        .map(|d| (d, None))
        .collect();
    let mut manifests = Vec::new();
    expand(origin, origin, docs, &mut manifests)?;
    Ok(manifests)
}

/// Parses the bytes of one file named `name` exactly as [`load_dir`] parses a file it read:
/// UTF-8 check, YAML or JSON by the extension, the same budgets, `List` expansion. The entry
/// point of the `load_manifests` fuzz target (`fuzz/`).
///
/// # Errors
/// The [`LoadError`] that [`load_dir`] would give for a file with these bytes.
pub fn parse_bytes(
    name: &Path,
    bytes: &[u8],
    opts: &LoadOptions,
) -> Result<Vec<Manifest>, LoadError> {
    if bytes.len() as u64 > opts.max_file_bytes {
        return Err(LoadError::FileTooLarge {
            path: name.to_path_buf(),
            limit: opts.max_file_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|err| LoadError::NotUtf8 {
        path: name.to_path_buf(),
        offset: err.valid_up_to(),
    })?;
    let docs = parse_documents(name, text, opts)?;
    let mut manifests = Vec::new();
    expand(name, name, docs, &mut manifests)?;
    if manifests.len() > opts.max_objects {
        return Err(LoadError::TooManyObjects {
            path: name.to_path_buf(),
            limit: opts.max_objects,
        });
    }
    Ok(manifests)
}

/// A parsed document, and its tree in file order when it is SOPS-encrypted.
type Document = (Value, Option<Arc<Tree>>);

/// Parses a file's documents; those that carry SOPS metadata (rare) are read a second time in
/// file order, which their MAC needs and `Value` does not keep. Should the two parses ever
/// disagree on the documents, the encrypted ones go on without their order and are decrypted
/// as a tool's output is (values checked, not the MAC).
fn parse_documents(
    path: &Path,
    text: &str,
    opts: &LoadOptions,
) -> Result<Vec<Document>, LoadError> {
    let docs = parse_file(path, text, opts)?;
    if !docs.iter().any(decrypt::is_encrypted) {
        return Ok(docs.into_iter().map(|d| (d, None)).collect());
    }
    let ordered: Vec<Tree> = if path.extension().is_some_and(|ext| ext == "json") {
        serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(text))
            .map(|t| vec![t])
            .unwrap_or_default()
    } else {
        serde_saphyr::from_multiple_with_options(text, yaml_options(opts, text.len()))
            .unwrap_or_default()
    };
    let ordered: Vec<Tree> = ordered.into_iter().filter(|t| *t != Tree::Null).collect();
    let aligned = ordered.len() == docs.len();
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let tree = (aligned && decrypt::is_encrypted(&d)).then(|| Arc::new(ordered[i].clone()));
            (d, tree)
        })
        .collect())
}

fn parse_file(path: &Path, text: &str, opts: &LoadOptions) -> Result<Vec<Value>, LoadError> {
    let is_json = path.extension().is_some_and(|ext| ext == "json");
    if !is_json {
        return serde_saphyr::from_multiple_with_options(text, yaml_options(opts, text.len()))
            .map_err(|err| yaml_error(path, &err, opts));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|source| {
        // serde_json stops at its own nesting ceiling (128) before `depth` can look.
        if source.to_string().starts_with("recursion limit exceeded") {
            LoadError::TooDeep {
                path: path.to_path_buf(),
                limit: opts.max_depth,
                at: format!(" at line {}, column {}", source.line(), source.column()),
            }
        } else {
            LoadError::Json {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    if depth(&value) > opts.max_depth {
        return Err(LoadError::TooDeep {
            path: path.to_path_buf(),
            limit: opts.max_depth,
            at: String::new(),
        });
    }
    Ok(if value.is_null() { vec![] } else { vec![value] })
}

/// serde-saphyr options with budgets sized for one file of `len` bytes.
fn yaml_options(opts: &LoadOptions, len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = opts.max_depth;
    budget.max_documents = opts.max_objects.max(1);
    // Without aliases a file cannot hold more nodes (or scalar bytes) than it has bytes, so
    // scale these with the file: a large plain file passes, alias expansion is still capped.
    budget.max_nodes = budget.max_nodes.max(len);
    budget.max_events = budget.max_events.max(len.saturating_mul(2));
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(len);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options.emit_comments = false;
    options
}

/// The error under serde-saphyr's alias-location and snippet wrappers.
fn root_cause(mut err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    use serde_saphyr::Error::{AliasError, WithSnippet};
    while let AliasError { error, .. } | WithSnippet { error, .. } = err {
        err = error;
    }
    err
}

fn yaml_error(path: &Path, err: &serde_saphyr::Error, opts: &LoadOptions) -> LoadError {
    use serde_saphyr::Error as E;
    let path = path.to_path_buf();
    match root_cause(err) {
        E::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => LoadError::TooDeep {
            path,
            limit: opts.max_depth,
            at: err
                .location()
                .map(|loc| format!(" at line {}, column {}", loc.line(), loc.column()))
                .unwrap_or_default(),
        },
        E::ExternalMessage { source, .. } if is_parser_recursion_limit(source) => {
            LoadError::TooDeep {
                path,
                limit: opts.max_depth,
                at: err
                    .location()
                    .map(|loc| format!(" at line {}, column {}", loc.line(), loc.column()))
                    .unwrap_or_default(),
            }
        }
        E::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        } => LoadError::TooManyObjects {
            path,
            limit: opts.max_objects,
        },
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => LoadError::YamlLimit {
            path,
            message: err.to_string(),
        },
        _ => LoadError::Yaml {
            path,
            message: err.to_string(),
        },
    }
}

/// True when the YAML parser itself refused to nest deeper (flow collections such as
/// `[[[[...]]]]` reach its own ceiling before the depth budget is checked).
fn is_parser_recursion_limit(source: &serde_saphyr::ExternalMessageSource) -> bool {
    use serde_saphyr::granit_parser::ErrorKind;
    matches!(source, serde_saphyr::ExternalMessageSource::Parser(e)
        if *e.kind() == ErrorKind::RecursionLimitExceeded)
}

/// Nesting depth of a value: 0 for a scalar, 1 for a flat mapping or sequence.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// True for `kind: List` and typed lists such as `ConfigMapList` that carry `items`.
fn is_list(object: &Value) -> bool {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    kind.ends_with("List") && object.get("items").is_some_and(Value::is_array)
}

/// Turns a file's documents into manifests, expanding lists; each object gets its own index.
fn expand(
    path: &Path,
    rel: &Path,
    docs: Vec<Document>,
    out: &mut Vec<Manifest>,
) -> Result<(), LoadError> {
    let mut index = 0;
    let mut push = |value: Value, ordered: Option<Arc<Tree>>, out: &mut Vec<Manifest>| {
        if !value.is_object() {
            return Err(LoadError::NotAMapping {
                path: path.to_path_buf(),
                doc: index,
                found: describe(&value),
            });
        }
        let mut manifest = Manifest::new(Source::new(rel, index), value);
        manifest.ordered = ordered;
        out.push(manifest);
        index += 1;
        Ok(())
    };
    for (doc, ordered) in docs {
        if is_list(&doc) {
            let Value::Object(mut map) = doc else {
                continue;
            };
            if let Some(Value::Array(items)) = map.remove("items") {
                for item in items {
                    push(item, None, out)?;
                }
            }
        } else {
            push(doc, ordered, out)?;
        }
    }
    Ok(())
}
