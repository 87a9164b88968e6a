//! Decryption in a render, as Flux does it:
//!
//! - the files a tool reads: Helm `valuesFiles` and the `envs`/`files` of Kustomize
//!   `secretGenerator`/`configMapGenerator` that are SOPS-encrypted are decrypted *before* the
//!   tool runs, into the render's private scratch directory (created 0700, files 0600, removed
//!   with the render): a values file is replaced by its plain copy, a kustomization with
//!   encrypted generator inputs is built from a copy of the repository with those files
//!   decrypted (the checkout itself is never written);
//! - the tool's output: every object that carries SOPS metadata is decrypted, between the
//!   render and variable substitution. An object read as it is in Git (a plain directory) is
//!   checked as `sops --decrypt` checks it, MAC included (the documents of one file together);
//!   one that Kustomize or Helm wrote out has lost the order and fields the MAC covers, so its
//!   encrypted values are checked one by one, as Flux does.
//!
//! Without keys an encrypted object or file fails the render, so nothing encrypted is ever
//! applied as data.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::kustomize::local_kustomizations;
use crate::decrypt::{self, DecryptError, Format, Keys};
use crate::object::Manifest;

/// Why an encrypted object could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptionError {
    /// An encrypted object and no keys to open it.
    #[error(
        "{object} in {file} is SOPS-encrypted and no decryption keys are configured (set spec.decryption, or pass --age-key, --pgp-key or --decryption-secret)"
    )]
    NoKeys {
        /// The file (and document) it came from.
        file: String,
        /// `Secret shop/db` (the name left out when it is encrypted too).
        object: String,
    },
    /// An encrypted file a tool reads, and no keys.
    #[error(
        "{file} is SOPS-encrypted and no decryption keys are configured (set spec.decryption, or pass --age-key, --pgp-key or --decryption-secret)"
    )]
    NoKeysForFile {
        /// The file, relative to the repository.
        file: String,
    },
    /// An encrypted file a tool reads could not be decrypted.
    #[error("cannot decrypt {file}: {source}")]
    File {
        /// The file, relative to the repository.
        file: String,
        /// Why.
        #[source]
        source: DecryptError,
    },
    /// The plain copy could not be written to the scratch directory.
    #[error(
        "cannot write the decrypted copy of {file} to the render's scratch directory: {source}"
    )]
    Scratch {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Decryption failed.
    #[error("cannot decrypt {object} in {file}: {source}")]
    Failed {
        /// The file.
        file: String,
        /// The object.
        object: String,
        /// Why.
        #[source]
        source: DecryptError,
    },
}

/// Decrypts the encrypted objects among `manifests`, dropping their `sops` metadata; the
/// others pass untouched. The encrypted documents of one multi-document file share one MAC
/// and are decrypted together.
///
/// # Errors
/// The first object that cannot be decrypted, named with its file.
pub fn decrypt_manifests(
    mut manifests: Vec<Manifest>,
    keys: Option<&Keys>,
) -> Result<Vec<Manifest>, DecryptionError> {
    let mut groups: Vec<(String, String, Vec<usize>)> = Vec::new();
    for (i, m) in manifests.iter_mut().enumerate() {
        if !decrypt::is_encrypted(&m.object) {
            m.ordered = None;
            continue;
        }
        if m.ordered.is_none() {
            decrypt_rewritten(m, keys)?;
            continue;
        }
        let file = m.source.file.display().to_string();
        let mac = m.object["sops"]["mac"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match groups.iter_mut().find(|(f, k, _)| *f == file && *k == mac) {
            Some((_, _, members)) => members.push(i),
            None => groups.push((file, mac, vec![i])),
        }
    }
    for (_, _, members) in groups {
        decrypt_group(&mut manifests, &members, keys)?;
    }
    Ok(manifests)
}

/// Decrypts an object a tool wrote out (values verified, not the MAC: see
/// [`decrypt::decrypt_rewritten`]) in place.
fn decrypt_rewritten(m: &mut Manifest, keys: Option<&Keys>) -> Result<(), DecryptionError> {
    let (file, object) = (m.source.to_string(), describe(m));
    let Some(keys) = keys else {
        return Err(DecryptionError::NoKeys { file, object });
    };
    m.object =
        decrypt::decrypt_rewritten(&m.object, keys).map_err(|source| DecryptionError::Failed {
            file,
            object,
            source,
        })?;
    Ok(())
}

/// Decrypts the documents at `members` (one file's, one MAC: all have their file order) in
/// place.
fn decrypt_group(
    manifests: &mut [Manifest],
    members: &[usize],
    keys: Option<&Keys>,
) -> Result<(), DecryptionError> {
    let first = &manifests[members[0]];
    let (file, object) = (first.source.to_string(), describe(first));
    let Some(keys) = keys else {
        return Err(DecryptionError::NoKeys { file, object });
    };
    let trees: Vec<_> = members
        .iter()
        .filter_map(|&i| manifests[i].ordered.take())
        .collect();
    let refs: Vec<&decrypt::Tree> = trees.iter().map(AsRef::as_ref).collect();
    let plain =
        decrypt::decrypt_documents(&refs, keys).map_err(|source| DecryptionError::Failed {
            file,
            object,
            source,
        })?;
    for (&i, tree) in members.iter().zip(plain) {
        manifests[i].object = tree.to_json();
    }
    Ok(())
}

/// The values file to give helm: `file` itself, or its decrypted copy in `scratch` when it
/// is SOPS-encrypted. `shown` names it in messages.
///
/// # Errors
/// No keys, or the file does not decrypt.
pub fn plain_values_file(
    file: PathBuf,
    shown: &str,
    keys: Option<&Keys>,
    scratch: &Path,
    index: usize,
) -> Result<PathBuf, DecryptionError> {
    let format = match Format::of(&file) {
        Format::Json => Format::Json,
        _ => Format::Yaml,
    };
    let Some(plain) = decrypted(&file, format, shown, keys)? else {
        return Ok(file);
    };
    let ext = if format == Format::Json {
        "json"
    } else {
        "yaml"
    };
    let copy = scratch.join(format!("decrypted-values-{index}.{ext}"));
    write_private(&copy, &plain).map_err(|source| DecryptionError::Scratch {
        file: shown.to_owned(),
        source,
    })?;
    Ok(copy)
}

/// The directory to build `dir` from: `dir` itself, or its place in a scratch copy of the
/// repository whose SOPS-encrypted generator inputs are decrypted.
///
/// # Errors
/// No keys, a file that does not decrypt, or the copy cannot be made.
pub fn kustomize_root(
    repo_root: &Path,
    dir: &Path,
    keys: Option<&Keys>,
    scratch: &Path,
) -> Result<PathBuf, DecryptionError> {
    let Ok(root) = std::fs::canonicalize(repo_root) else {
        return Ok(dir.to_path_buf());
    };
    let inputs = encrypted_generator_inputs(&root, dir);
    if inputs.is_empty() {
        return Ok(dir.to_path_buf());
    }
    let scratch_err = |file: &str| {
        let file = file.to_owned();
        move |source| DecryptionError::Scratch { file, source }
    };
    let copy = scratch.join("decrypted-tree");
    copy_tree(&root, &copy).map_err(scratch_err("."))?;
    for (file, format) in inputs {
        let rel = file.strip_prefix(&root).unwrap_or(&file);
        let shown = rel.display().to_string();
        if let Some(plain) = decrypted(&file, format, &shown, keys)? {
            write_private(&copy.join(rel), &plain).map_err(scratch_err(&shown))?;
        }
    }
    let rel = dir.strip_prefix(&root).unwrap_or(Path::new(""));
    Ok(copy.join(rel))
}

/// The generator inputs (`envs`, `env`, `files`) of the kustomizations the build reads that
/// are SOPS-encrypted, with the format sops wrote them in: dotenv for `envs`, by extension
/// for `files`.
fn encrypted_generator_inputs(root: &Path, dir: &Path) -> Vec<(PathBuf, Format)> {
    let mut out = Vec::new();
    for k in local_kustomizations(root, dir) {
        for generator in ["secretGenerator", "configMapGenerator"] {
            let entries = k.doc.get(generator).and_then(Value::as_array);
            for entry in entries.into_iter().flatten() {
                for (file, format) in generator_files(entry) {
                    let Ok(real) = std::fs::canonicalize(k.dir.join(&file)) else {
                        continue;
                    };
                    let bytes = std::fs::read(&real).unwrap_or_default();
                    if real.starts_with(root) && decrypt::looks_encrypted(format, &bytes) {
                        out.push((real, format));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The files one generator entry reads: `envs: [f]`, `env: f`, `files: [f | key=f]`.
fn generator_files(entry: &Value) -> Vec<(String, Format)> {
    let strings = |field: &str| -> Vec<String> {
        match entry.get(field) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let mut out: Vec<(String, Format)> = strings("envs")
        .into_iter()
        .chain(strings("env"))
        .map(|f| (f, Format::Dotenv))
        .collect();
    for f in strings("files") {
        let path = f.split_once('=').map_or(f.as_str(), |(_, p)| p).to_owned();
        let format = Format::of(Path::new(&path));
        out.push((path, format));
    }
    out
}

/// The plain bytes of `file` when it is SOPS-encrypted (`None`: it is not).
fn decrypted(
    file: &Path,
    format: Format,
    shown: &str,
    keys: Option<&Keys>,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, DecryptionError> {
    let bytes = std::fs::read(file).unwrap_or_default();
    if !decrypt::looks_encrypted(format, &bytes) {
        return Ok(None);
    }
    let Some(keys) = keys else {
        return Err(DecryptionError::NoKeysForFile {
            file: shown.to_owned(),
        });
    };
    decrypt::decrypt_file(format, &bytes, keys).map_err(|source| DecryptionError::File {
        file: shown.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Copies the repository at `from` to `to` (without `.git`); symbolic links are copied as
/// links, which kustomize's load restrictor still checks.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// `Secret shop/db`, leaving out what is itself encrypted.
fn describe(m: &Manifest) -> String {
    let plain = |s: Option<&str>| s.filter(|s| !s.starts_with("ENC[")).map(str::to_owned);
    let kind = plain(m.kind()).unwrap_or_else(|| "an object".into());
    match (plain(m.namespace()), plain(m.name())) {
        (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Source;
    use crate::render::{LoadOptions, parse_bytes};
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sops")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn a_multi_document_file_decrypts_as_one() {
        let manifests = parse_bytes(
            Path::new("multi.yaml"),
            &fixture("multi.enc.yaml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let keys = Keys::from_entries([("age.agekey", fixture("age.agekey").as_slice())]).unwrap();
        let plain = decrypt_manifests(manifests, Some(&keys)).unwrap();
        let passwords: Vec<&str> = plain
            .iter()
            .map(|m| m.object["stringData"]["password"].as_str().unwrap())
            .collect();
        assert_eq!(passwords, ["one", "two"]);
        assert!(
            plain
                .iter()
                .all(|m| m.object.get("sops").is_none() && m.ordered.is_none())
        );
    }

    #[test]
    fn plain_objects_pass_and_encrypted_ones_need_keys() {
        let plain = Manifest::new(
            Source::new(Path::new("a.yaml"), 0),
            serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
        );
        assert_eq!(
            decrypt_manifests(vec![plain.clone()], None).unwrap(),
            [plain]
        );
        let encrypted = Manifest::new(
            Source::new(Path::new("s.yaml"), 1),
            serde_json::json!({"kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                "sops": {"mac": "ENC[x]", "lastmodified": "t"}}),
        );
        let err = decrypt_manifests(vec![encrypted], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret shop/db in s.yaml (document 1) is SOPS-encrypted and no decryption keys are \
             configured (set spec.decryption, or pass --age-key, --pgp-key or --decryption-secret)"
        );
    }
}
