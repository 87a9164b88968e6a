//! Pull-request previews on a real Gitea (`tests/previews.rs`, `tests/no_leaks.rs`): the
//! azure-vote application applied by an agent whose GitSync previews pull requests through a
//! Gitea Provider, as a ServiceAccount confined to its namespace; branches pushed, comments and
//! statuses read back.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::agent::{Agent, GITHUB_SECRET, create_gitsync, ready};
use super::git_servers::{TestRepo, git_in, run};
use super::gitea::{Gitea, USER};
use super::notify::{provider, secret};
use super::{TestNamespace, eventually};

pub const REPO: &str = "vote";
pub const FRONT_V1: &str = "mcr.microsoft.com/azuredocs/azure-vote-front:v1";
pub const FRONT_V2: &str = "mcr.microsoft.com/azuredocs/azure-vote-front:v2";

pub fn deployment(name: &str, image: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        \
         app: {name}\n    spec:\n      containers:\n      - name: {name}\n        image: {image}\n"
    )
}

pub fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// A ServiceAccount that may do anything in its namespace and nothing cluster-wide.
pub fn tenant(ns: &TestNamespace) {
    let rbac = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: tenant\n  namespace: {ns}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: tenant\n  namespace: {ns}\n\
         rules:\n- apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: tenant\n  namespace: {ns}\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: tenant\n\
         subjects:\n- kind: ServiceAccount\n  name: tenant\n  namespace: {ns}\n",
        ns = ns.name
    );
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(file.path(), rbac).expect("write");
    let out = ns.kubectl(&["apply", "-f", file.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
}

/// Commits on `branch` (made from `main` when new): `files` written, `removed` deleted; pushes
/// it and goes back to `main`. Returns the commit.
pub fn push_to(repo: &TestRepo, branch: &str, files: &[(&str, &str)], removed: &[&str]) -> String {
    let work = repo.work_path();
    let exists = git_in(work)
        .args([
            "rev-parse",
            "-q",
            "--verify",
            &format!("refs/heads/{branch}"),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    let checkout: &[&str] = if exists {
        &["checkout", "-q", branch]
    } else {
        &["checkout", "-q", "-b", branch]
    };
    run(git_in(work).args(checkout));
    for path in removed {
        repo.remove(path);
    }
    let sha = repo.commit(files, &format!("change on {branch}"));
    run(git_in(work).args(["push", "-q", "origin", branch]));
    run(git_in(work).args(["checkout", "-q", "main"]));
    sha
}

/// Every object's resourceVersion in the namespace but the GitSync (whose status the agent
/// writes).
pub fn resource_versions(ns: &TestNamespace) -> BTreeMap<String, String> {
    let out = ns.kubectl(&[
        "get",
        "deployments,services,configmaps,serviceaccounts,roles,rolebindings,secrets",
        "-n",
        &ns.name,
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let key = format!("{}/{}", o["kind"], o["metadata"]["name"]);
            (key, o["metadata"]["resourceVersion"].to_string())
        })
        .collect()
}

pub struct Previewed {
    pub gitea: Gitea,
    pub repo: TestRepo,
    pub ns: TestNamespace,
    /// The comment marker's and the statuses' context.
    pub context: String,
}

impl Previewed {
    /// The bodies of pull request `number`'s comments.
    pub fn comments(&self, number: u64) -> Vec<(i64, String)> {
        self.gitea
            .comments(USER, REPO, number)
            .iter()
            .map(|c| {
                let body = c["body"].as_str().unwrap_or_default().to_string();
                (c["id"].as_i64().unwrap_or_default(), body)
            })
            .collect()
    }

    /// Waits for pull request `number`'s one plan comment to contain every one of `needles`;
    /// returns its id and body.
    pub async fn wait_comment(&self, number: u64, needles: &[&str]) -> (i64, String) {
        eventually(
            &format!("a comment on #{number} with {needles:?}"),
            Duration::from_secs(60),
            || async {
                let comments = self.comments(number);
                let plan = comments.iter().find(|(_, b)| b.contains(&self.context))?;
                needles
                    .iter()
                    .all(|n| plan.1.contains(n))
                    .then(|| plan.clone())
            },
        )
        .await
    }

    /// Waits for the newest status of `sha` in the preview's context to be `state`; returns
    /// its description.
    pub async fn wait_status(&self, sha: &str, state: &str) -> String {
        eventually(
            &format!("status {state} on {sha}"),
            Duration::from_secs(60),
            || async {
                let mut all = self.gitea.statuses(USER, REPO, sha);
                all.retain(|s| s["context"] == self.context.as_str());
                all.sort_by_key(|s| std::cmp::Reverse(s["id"].as_i64().unwrap_or_default()));
                let newest = all.first()?;
                (newest["status"] == state).then(|| {
                    newest["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
            },
        )
        .await
    }
}

/// The azure-vote application on `main` (v1 applied by the agent), a GitSync that previews
/// pull requests through a Gitea Provider, as a ServiceAccount confined to its namespace.
pub async fn previewed(prefix: &str) -> (Previewed, Agent) {
    previewed_with(prefix, &Setup::default()).await
}

/// What [`previewed_with`] adds to the default setup.
#[derive(Default)]
pub struct Setup<'a> {
    /// The agent's environment (`DRIFTLESS_LOG`, say).
    pub env: &'a [(&'a str, &'a str)],
    /// Merged into the GitSync's spec (`decryption`, `postBuild`).
    pub spec: Value,
    /// Secrets (name, string data) created before the GitSync.
    pub secrets: Vec<(&'a str, Vec<(&'a str, String)>)>,
}

/// [`previewed`] with `setup`.
pub async fn previewed_with(prefix: &str, setup: &Setup<'_>) -> (Previewed, Agent) {
    let env = setup.env;
    let ns = TestNamespace::new(prefix).await;
    let gitea = Gitea::start();
    let repo = gitea.create_repo(REPO);
    repo.commit(
        &[
            (
                "app/front.yaml",
                &deployment("azure-vote-front", FRONT_V1, 1),
            ),
            (
                "app/back.yaml",
                &deployment("azure-vote-back", "redis:6", 1),
            ),
            ("app/settings.yaml", &config_map("settings", "1")),
        ],
        "v1",
    );
    repo.push();
    tenant(&ns);
    secret(&ns, "gitea-token", &[("token", gitea.token())]);
    provider(
        &ns,
        "gitea",
        json!({"type": "gitea", "secretRef": {"name": "gitea-token"}}),
    );
    let agent = Agent::for_namespace(&ns)
        .args(&["--cluster-name", "ci"])
        .envs(env)
        .start();
    for (name, data) in &setup.secrets {
        let data: Vec<(&str, &str)> = data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        secret(&ns, name, &data);
    }
    let mut spec = json!({
        "url": gitea.clone_url(USER, REPO), "ref": {"branch": "main"}, "path": "app",
        "prune": true, "serviceAccountName": "tenant", "pollInterval": "1h", "interval": "1h",
        "preview": {"providerRef": {"name": "gitea"}, "interval": "3s"},
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), setup.spec.clone()) {
        spec.extend(extra);
    }
    create_gitsync(&ns, "app", spec).await;
    eventually("v1 applied", Duration::from_secs(60), || async {
        let gs = super::agent::gitsync(&ns, "app").await;
        ready(&gs).filter(|r| r.0 == "True").map(|_| ())
    })
    .await;
    let hook = format!("http://127.0.0.1:{}/hook/github", agent.port);
    gitea.add_webhook(
        USER,
        REPO,
        &hook,
        GITHUB_SECRET,
        &["pull_request", "pull_request_sync"],
    );
    let context = format!("driftless-plan/ci/{}/app", ns.name);
    let previewed = Previewed {
        gitea,
        repo,
        ns,
        context,
    };
    (previewed, agent)
}
