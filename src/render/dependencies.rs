//! Chart dependencies that are declared in `Chart.yaml` but not vendored in `charts/`: built
//! with `helm dependency build`, as Flux and Argo CD do for charts kept in Git.
//!
//! The chart is never changed in place (the CLI renders a user's work tree; the agent's
//! snapshot may be shared): it is copied into the render's scratch directory at the same path
//! relative to the repository root, with every `file://` dependency it names, so that relative
//! `file://../common` references resolve as they do in the repository. A `file://` dependency
//! outside the repository is refused. `Chart.lock`, when present, pins the versions (helm
//! refuses a lock that does not match `Chart.yaml`, with its own message).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::exec::{Exec, ExecError, ExecLimits};
use super::helm::{HelmError, helm_env};

/// One dependency of `Chart.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dependency {
    name: String,
    repository: String,
}

/// The dependencies `Chart.yaml` in `chart` declares (none when it cannot be read: helm then
/// says what is wrong with it).
fn declared(chart: &Path) -> Vec<Dependency> {
    let Ok(text) = std::fs::read_to_string(chart.join("Chart.yaml")) else {
        return Vec::new();
    };
    let Ok(doc) = serde_saphyr::from_str::<Value>(&text) else {
        return Vec::new();
    };
    doc.get("dependencies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some(Dependency {
                name: d.get("name")?.as_str()?.to_string(),
                repository: d
                    .get("repository")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

/// `name (repository), ...` for messages.
fn listed(deps: &[Dependency]) -> String {
    deps.iter()
        .map(|d| format!("{} ({})", d.name, d.repository))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `charts/` holds the dependency, as a directory or a packaged `.tgz`.
fn vendored(chart: &Path, name: &str) -> bool {
    let charts = chart.join("charts");
    if charts.join(name).join("Chart.yaml").is_file() {
        return true;
    }
    let prefix = format!("{name}-");
    std::fs::read_dir(&charts).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let file = e.file_name();
            let file = file.to_string_lossy();
            file.starts_with(&prefix) && file.ends_with(".tgz")
        })
    })
}

/// Lexically resolves `rel` against `base`, without following links (`a/b/../c` → `a/c`);
/// `None` when it climbs above `base`'s root.
fn join_lexically(base: &Path, rel: &Path) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What a chart with missing dependencies needs to be built: where it is, relative to the
/// repository root, and its `file://` dependencies likewise.
pub struct Build<'a> {
    /// The repository root (real path).
    pub repo_root: &'a Path,
    /// The chart's directory (real path, inside `repo_root`).
    pub chart_dir: &'a Path,
    /// The helm binary.
    pub bin: &'a Path,
    /// Bounds of the helm run.
    pub limits: &'a ExecLimits,
    /// The render's private scratch directory.
    pub scratch: &'a Path,
}

impl Build<'_> {
    /// The chart directory to render: `chart_dir` itself when every dependency is vendored,
    /// else a copy in the scratch directory with its dependencies built.
    ///
    /// # Errors
    /// A `file://` dependency outside the repository, a copy that fails, or helm's own message
    /// (an unreachable repository, a lock out of date).
    pub async fn prepare(&self) -> Result<PathBuf, HelmError> {
        let deps = declared(self.chart_dir);
        if deps.iter().all(|d| vendored(self.chart_dir, &d.name)) {
            return Ok(self.chart_dir.to_path_buf());
        }
        let copy = self.copy_with_local_dependencies(&deps)?;
        self.add_repositories(&deps).await?;
        self.helm(vec![
            "dependency".into(),
            "build".into(),
            copy.clone().into(),
        ])
        .await
        .map_err(|source| HelmError::Dependencies {
            declared: listed(&deps),
            source,
        })?;
        Ok(copy)
    }

    /// Adds each HTTP(S) repository the dependencies name, so that one that cannot be reached
    /// is named with helm's reason (`helm dependency build` only says "no cached repository").
    async fn add_repositories(&self, deps: &[Dependency]) -> Result<(), HelmError> {
        let mut added: Vec<&str> = Vec::new();
        for d in deps {
            let url = d.repository.as_str();
            let is_http = url.starts_with("https://") || url.starts_with("http://");
            if !is_http || added.contains(&url) {
                continue;
            }
            let name = format!("dependency-{}", added.len());
            self.helm(vec!["repo".into(), "add".into(), name.into(), url.into()])
                .await
                .map_err(|source| HelmError::Dependency {
                    name: d.name.clone(),
                    repository: url.to_string(),
                    source,
                })?;
            added.push(url);
        }
        Ok(())
    }

    async fn helm(&self, args: Vec<OsString>) -> Result<String, ExecError> {
        Exec {
            tool: "helm",
            bin: self.bin,
            args,
            cwd: self.scratch,
            scratch: self.scratch,
            env: helm_env(self.scratch),
            stdin: None,
            limits: self.limits,
        }
        .run()
        .await
    }

    /// Copies the chart and its `file://` dependencies under `scratch/deps`, keeping their
    /// paths relative to the repository root.
    fn copy_with_local_dependencies(&self, deps: &[Dependency]) -> Result<PathBuf, HelmError> {
        let base = self.scratch.join("deps");
        let rel_chart = self.relative(self.chart_dir)?;
        let mut dirs = vec![rel_chart.clone()];
        for d in deps {
            let Some(path) = d.repository.strip_prefix("file://") else {
                continue;
            };
            let outside = || {
                HelmError::Spec(format!(
                    "dependency {} ({}) is outside the repository",
                    d.name, d.repository
                ))
            };
            let target = join_lexically(self.chart_dir, Path::new(path)).ok_or_else(outside)?;
            let real = std::fs::canonicalize(&target).map_err(|e| {
                HelmError::Spec(format!(
                    "dependency {} ({}) cannot be read: {e}",
                    d.name, d.repository
                ))
            })?;
            if !real.starts_with(self.repo_root) {
                return Err(outside());
            }
            dirs.push(self.relative(&real)?);
        }
        for rel in &dirs {
            let from = self.repo_root.join(rel);
            copy_tree(&from, &base.join(rel)).map_err(|source| HelmError::Io {
                dir: base.clone(),
                source,
            })?;
        }
        Ok(base.join(rel_chart))
    }

    fn relative(&self, dir: &Path) -> Result<PathBuf, HelmError> {
        dir.strip_prefix(self.repo_root)
            .map(Path::to_path_buf)
            .map_err(|_| HelmError::Spec(format!("{} is outside the repository", dir.display())))
    }
}

/// Copies a directory tree (regular files and directories; links are followed, as helm would
/// read them; the chart was checked to be in the repository).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(dir: &Path, yaml: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("Chart.yaml"), yaml).expect("write");
    }

    #[test]
    fn vendored_dependencies_are_found_as_directories_or_archives() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let app = tmp.path().join("app");
        chart(
            &app,
            "name: app\ndependencies:\n- {name: db, repository: 'https://c.example'}\n- {name: common, repository: 'file://../common'}\n",
        );
        let deps = declared(&app);
        assert_eq!(
            deps.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["db", "common"]
        );
        assert!(!vendored(&app, "db"));
        std::fs::create_dir_all(app.join("charts")).expect("mkdir");
        std::fs::write(app.join("charts/db-1.2.3.tgz"), b"").expect("write");
        chart(&app.join("charts/common"), "name: common\n");
        assert!(vendored(&app, "db"));
        assert!(vendored(&app, "common"));
        assert!(!vendored(&app, "d"), "a prefix of another name is not it");
    }

    #[test]
    fn relative_paths_resolve_without_climbing_out() {
        let base = Path::new("/repo/charts/app");
        assert_eq!(
            join_lexically(base, Path::new("../common")),
            Some(PathBuf::from("/repo/charts/common"))
        );
        assert_eq!(join_lexically(Path::new("/"), Path::new("../x")), None);
    }

    #[test]
    fn a_file_dependency_outside_the_repository_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("repo");
        let app = root.join("app");
        chart(&tmp.path().join("elsewhere"), "name: elsewhere\n");
        chart(
            &app,
            "name: app\ndependencies:\n- {name: elsewhere, repository: 'file://../../elsewhere'}\n",
        );
        let scratch = tmp.path().join("scratch");
        let root = std::fs::canonicalize(&root).expect("real root");
        let app = std::fs::canonicalize(&app).expect("real app");
        let build = Build {
            repo_root: &root,
            chart_dir: &app,
            bin: Path::new("helm"),
            limits: &ExecLimits::default(),
            scratch: &scratch,
        };
        let err = build
            .copy_with_local_dependencies(&declared(&app))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("dependency elsewhere (file://../../elsewhere) is outside the repository")
        );
    }
}
