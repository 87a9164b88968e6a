//! Reading a cached repository's objects through one long-lived `git cat-file --batch` per
//! repository, and writing a tree out of them: what a snapshot costs without a process of its
//! own. A thousand GitSyncs of one repository spawn one reader between them, where each
//! snapshot used to spawn two processes (`read-tree`, `checkout-index`).
//!
//! The reader is local (no credentials, no network). A reader that fails (killed, a broken
//! pipe, an answer out of step) is dropped and the next request starts another. Objects
//! fetched after the reader started are found: git looks for new packs when an object is
//! missing from those it knows.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// What reading or writing out objects can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object (or `commit:path`) does not exist, or is not of the kind asked for.
    #[error("{0} is not in the repository")]
    Missing(String),
    /// A tree entry with a name git would not check out (`..`, a slash, `.git`).
    #[error("refusing the tree entry {0:?}")]
    BadEntry(String),
    /// The reader process or the snapshot directory failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The reader answered something else than the batch format.
    #[error("git cat-file answered out of step: {0}")]
    Protocol(String),
}

/// One `git cat-file --batch` process on one repository.
pub struct Reader {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// One object as read: its type, content, and the byte width of the repository's object ids
/// (20 for SHA-1, 32 for SHA-256: half its id's length in hex).
struct Object {
    kind: String,
    data: Vec<u8>,
    width: usize,
}

impl Reader {
    /// Starts a reader on the bare repository `dir`.
    ///
    /// # Errors
    /// When git cannot be started.
    pub fn start(dir: &Path) -> Result<Reader, ObjectError> {
        let mut child = Command::new("git")
            .args(["cat-file", "--batch"])
            .current_dir(dir)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ObjectError::Protocol("no pipes to git cat-file".into()));
        };
        Ok(Reader {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Reads `name` (an object id or `commit:path`).
    async fn read(&mut self, name: &str) -> Result<Object, ObjectError> {
        if name.contains('\n') {
            return Err(ObjectError::Missing(name.escape_debug().to_string()));
        }
        self.stdin.write_all(format!("{name}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let mut header = String::new();
        if self.stdout.read_line(&mut header).await? == 0 {
            return Err(ObjectError::Protocol("git cat-file exited".into()));
        }
        let header = header.trim_end();
        let fields: Vec<&str> = header.split(' ').collect();
        let (id, kind, size) = match fields.as_slice() {
            [_, "missing"] | [_, "ambiguous"] => return Err(ObjectError::Missing(name.into())),
            [id, kind, size] => (*id, *kind, size.parse::<usize>()),
            _ => return Err(ObjectError::Protocol(header.to_string())),
        };
        let size = size.map_err(|_| ObjectError::Protocol(header.to_string()))?;
        let mut data = vec![0; size + 1];
        self.stdout.read_exact(&mut data).await?;
        data.pop(); // the newline after the content
        Ok(Object {
            kind: kind.to_string(),
            data,
            width: id.len() / 2,
        })
    }

    /// Writes the tree `name` (`commit:path`, or a commit for its whole tree) into `out`, an
    /// existing empty directory: files with their executable bit, symbolic links, directories.
    /// Submodules are left out, as `checkout-index` leaves them.
    ///
    /// # Errors
    /// [`ObjectError::Missing`] when `name` is not a tree; a bad entry; I/O.
    pub async fn write_tree(&mut self, name: &str, out: &Path) -> Result<(), ObjectError> {
        let first = self.read(name).await?;
        let first = match first.kind.as_str() {
            "tree" => first,
            "commit" => {
                let tree = commit_tree(&first.data)
                    .ok_or_else(|| ObjectError::Protocol("a commit without a tree".into()))?;
                self.read(&tree).await?
            }
            _ => return Err(ObjectError::Missing(name.into())),
        };
        let width = first.width;
        let mut trees = vec![(first.data, out.to_path_buf())];
        while let Some((data, dir)) = trees.pop() {
            for entry in entries(&data, width)? {
                let path = dir.join(&entry.name);
                match entry.mode {
                    Mode::Tree => {
                        std::fs::create_dir(&path)?;
                        trees.push((self.expect(&entry.id, "tree").await?, path));
                    }
                    Mode::File { executable } => {
                        let content = self.expect(&entry.id, "blob").await?;
                        write_file(&path, &content, executable)?;
                    }
                    Mode::Link => {
                        let target = self.expect(&entry.id, "blob").await?;
                        let target = PathBuf::from(String::from_utf8_lossy(&target).as_ref());
                        std::os::unix::fs::symlink(target, &path)?;
                    }
                    Mode::Submodule => {}
                }
            }
        }
        Ok(())
    }

    async fn expect(&mut self, id: &str, kind: &str) -> Result<Vec<u8>, ObjectError> {
        let object = self.read(id).await?;
        if object.kind != kind {
            return Err(ObjectError::Protocol(format!(
                "{id} is a {}, not a {kind}",
                object.kind
            )));
        }
        Ok(object.data)
    }
}

fn write_file(path: &Path, content: &[u8], executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content)?;
    if executable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The tree id of a commit object.
fn commit_tree(commit: &[u8]) -> Option<String> {
    let first = commit.split(|b| *b == b'\n').next()?;
    let id = first.strip_prefix(b"tree ")?;
    Some(String::from_utf8_lossy(id).into_owned())
}

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tree,
    File { executable: bool },
    Link,
    Submodule,
}

/// One entry of a tree object.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: Mode,
    name: String,
    /// The object id, in hex.
    id: String,
}

/// The entries of a tree object: `<octal mode> <name>\0<raw id>` each, the id `width`
/// bytes long. Names git would refuse to check out are refused; `.git` entries are left out.
fn entries(tree: &[u8], width: usize) -> Result<Vec<Entry>, ObjectError> {
    let mut rest = tree;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let bad = || ObjectError::Protocol("a malformed tree object".into());
        let space = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let nul = rest.iter().position(|b| *b == 0).ok_or_else(bad)?;
        if nul < space || rest.len() < nul + 1 + width {
            return Err(bad());
        }
        let mode = match &rest[..space] {
            b"40000" => Mode::Tree,
            b"100644" | b"100664" => Mode::File { executable: false },
            b"100755" => Mode::File { executable: true },
            b"120000" => Mode::Link,
            b"160000" => Mode::Submodule,
            _ => return Err(bad()),
        };
        let name = String::from_utf8_lossy(&rest[space + 1..nul]).into_owned();
        let id = hex(&rest[nul + 1..nul + 1 + width]);
        rest = &rest[nul + 1 + width..];
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(ObjectError::BadEntry(name));
        }
        if name.eq_ignore_ascii_case(".git") {
            continue;
        }
        out.push(Entry { mode, name, id });
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(entries: &[(&str, &str, u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, name, fill) in entries {
            out.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            out.extend_from_slice(&[*fill; 20]);
        }
        out
    }

    #[test]
    fn tree_entries_are_read_with_their_modes() {
        let tree = raw(&[
            ("100644", "a.yaml", 1),
            ("100755", "run.sh", 2),
            ("40000", "sub", 3),
            ("120000", "link", 4),
            ("160000", "module", 5),
            ("40000", ".git", 6),
        ]);
        let got = entries(&tree, 20).expect("a valid tree");
        let modes: Vec<(Mode, &str)> = got.iter().map(|e| (e.mode, e.name.as_str())).collect();
        assert_eq!(
            modes,
            [
                (Mode::File { executable: false }, "a.yaml"),
                (Mode::File { executable: true }, "run.sh"),
                (Mode::Tree, "sub"),
                (Mode::Link, "link"),
                (Mode::Submodule, "module"),
            ]
        );
        assert_eq!(got[0].id, "01".repeat(20));
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for name in ["..", ".", ""] {
            let tree = raw(&[("100644", name, 1)]);
            assert!(
                matches!(entries(&tree, 20), Err(ObjectError::BadEntry(_))),
                "{name:?}"
            );
        }
        assert!(matches!(
            entries(b"100644 cut\0short", 20),
            Err(ObjectError::Protocol(_))
        ));
    }

    #[test]
    fn a_commit_names_its_tree_on_its_first_line() {
        let commit = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor x\n\nmsg";
        assert_eq!(
            commit_tree(commit).as_deref(),
            Some("4b825dc642cb6eb9a060e54bf8d69288fbee4904")
        );
        assert_eq!(commit_tree(b"author x"), None);
    }
}
