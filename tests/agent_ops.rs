//! The agent in operation: `serviceAccountName` impersonation (a tenant's sync can do only
//! what its ServiceAccount may), `dependsOn` ordering with two GitSyncs on one repository, and
//! a graceful shutdown in the middle of an apply. Real agent process, dev cluster (RBAC on),
//! `git daemon`.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;
use serde_json::json;
use support::agent::{Agent, create_gitsync, gitsync, ready};
use support::git_servers::{GitDaemon, TestRepo};
use support::{TestNamespace, eventually};

fn config_map(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  value: {value:?}\n"
    )
}

async fn exists(api: &Api<ConfigMap>, name: &str) -> bool {
    matches!(api.get_opt(name).await, Ok(Some(_)))
}

/// A ServiceAccount `team` that may manage ConfigMaps in `ns` and nothing else.
fn team_account(ns: &TestNamespace) {
    let manifest = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: team\n  namespace: {n}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: team\n  namespace: {n}\n\
         rules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [\"*\"]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: team\n  namespace: {n}\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: team\n\
         subjects:\n- kind: ServiceAccount\n  name: team\n  namespace: {n}\n",
        n = ns.name
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("team.yaml");
    std::fs::write(&path, manifest).expect("write");
    let out = ns.kubectl(&["apply", "-f", path.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_service_account_bounds_what_a_gitsync_can_do() {
    let ns = TestNamespace::new("tenant").await;
    team_account(&ns);
    let role_name = format!("{}-escalate", ns.name);
    let repo = TestRepo::new();
    repo.commit(
        &[("cm.yaml", &config_map(&ns.name, "allowed", "1"))],
        "a ConfigMap the team may create",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start(&ns);
    let spec =
        json!({"url": daemon.url(repo.name()), "pollInterval": "1s", "serviceAccountName": "team"});
    create_gitsync(&ns, "team", spec).await;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    eventually(
        "applied as the ServiceAccount",
        Duration::from_secs(60),
        || async {
            let (status, _, _) = ready(&gitsync(&ns, "team").await)?;
            (status == "True" && exists(&cms, "allowed").await).then_some(())
        },
    )
    .await;
    let cm = cms.get("allowed").await.expect("allowed");
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "driftless"),
        "written by the driftless field manager: {managers:?}"
    );

    // Phase 1: The team tries to grant itself a ClusterRole and to write outside its rights.
    let cluster_role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role_name}\nrules:\n- apiGroups: [\"*\"]\n  resources: [\"*\"]\n  verbs: [\"*\"]\n"
    );
    repo.commit(
        &[
            ("cm.yaml", &config_map(&ns.name, "allowed", "2")),
            ("escalate.yaml", &cluster_role),
        ],
        "escalate",
    );
    repo.push();
    let escalate = repo.head();
    let (_, reason, message) = eventually(
        "the forbidden object refuses the sync",
        Duration::from_secs(60),
        || async {
            let r = ready(&gitsync(&ns, "team").await)?;
            (r.0 == "False" && r.2.contains(&escalate)).then_some(r)
        },
    )
    .await;
    assert!(
        message.contains(&role_name) && message.to_lowercase().contains("forbidden"),
        "names the object and the reason ({reason}): {message}"
    );
    assert!(
        message.contains("system:serviceaccount:") && message.contains(":team"),
        "the API server judged the ServiceAccount, not the agent: {message}"
    );
    let roles: Api<ClusterRole> = Api::all(ns.client());
    assert!(
        roles.get_opt(&role_name).await.expect("get").is_none(),
        "the ClusterRole was not created"
    );
    assert_eq!(
        cms.get("allowed")
            .await
            .expect("allowed")
            .data
            .unwrap_or_default()["value"],
        "1",
        "nothing of the refused commit was applied"
    );

    // Phase 2: Dropping the forbidden object recovers; the allowed change is applied.
    repo.remove("escalate.yaml");
    repo.commit(&[], "back to the team's rights");
    repo.push();
    eventually("recovers", Duration::from_secs(60), || async {
        let (status, _, _) = ready(&gitsync(&ns, "team").await)?;
        let v = cms.get("allowed").await.ok()?.data?.get("value")?.clone();
        (status == "True" && v == "2").then_some(())
    })
    .await;

    // Phase 3: Substitution reads as the ServiceAccount too: no copying a Secret it may not read.
    let out = ns.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        &ns.name,
        "--from-literal=PASSWORD=hunter2",
    ]);
    assert!(out.status.success());
    create_gitsync(
        &ns,
        "team-vars",
        json!({"url": daemon.url(repo.name()), "pollInterval": "1s", "serviceAccountName": "team",
               "postBuild": {"substituteFrom": [{"kind": "Secret", "name": "db"}]}}),
    )
    .await;
    let (_, reason, message) = eventually("refused", Duration::from_secs(60), || async {
        let r = ready(&gitsync(&ns, "team-vars").await)?;
        (r.0 == "False").then_some(r)
    })
    .await;
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(
        message.contains("db") && message.to_lowercase().contains("forbidden"),
        "{message}"
    );
}

#[tokio::test]
async fn depends_on_orders_two_gitsyncs_of_one_repository() {
    let ns = TestNamespace::new("depends").await;
    let repo = TestRepo::new();
    repo.commit(
        &[
            ("infra/base.yaml", &config_map(&ns.name, "infra", "1")),
            ("apps/app.yaml", &config_map(&ns.name, "app", "1")),
            ("apps/extra.yaml", &config_map(&ns.name, "extra", "1")),
        ],
        "infra and apps",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start(&ns);
    let url = daemon.url(repo.name());
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);

    // Phase 1: The app first: its dependency does not exist yet, so it waits and applies nothing.
    create_gitsync(
        &ns,
        "apps",
        json!({"url": url, "path": "apps", "pollInterval": "1s", "dependsOn": [{"name": "infra"}]}),
    )
    .await;
    let (_, reason, message) = eventually("waiting", Duration::from_secs(60), || async {
        let r = ready(&gitsync(&ns, "apps").await)?;
        (r.0 == "False").then_some(r)
    })
    .await;
    assert_eq!(reason, "DependencyNotReady", "{message}");
    assert!(
        message.contains(&format!("{}/infra", ns.name)),
        "names the dependency: {message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !exists(&cms, "app").await,
        "nothing applied before the dependency is Ready"
    );

    create_gitsync(
        &ns,
        "infra",
        json!({"url": url, "path": "infra", "pollInterval": "1s"}),
    )
    .await;
    eventually("both Ready", Duration::from_secs(60), || async {
        let a = ready(&gitsync(&ns, "apps").await)?;
        let i = ready(&gitsync(&ns, "infra").await)?;
        (a.0 == "True" && i.0 == "True").then_some(())
    })
    .await;
    assert!(exists(&cms, "infra").await && exists(&cms, "app").await);
    let apps = gitsync(&ns, "apps").await;
    let infra = gitsync(&ns, "infra").await;
    assert_eq!(
        apps["status"]["lastAppliedRevision"], infra["status"]["lastAppliedRevision"],
        "one repository, one revision"
    );
    assert_eq!(apps["status"]["managed"]["ConfigMap"], 2, "{apps:#}");
    assert_eq!(infra["status"]["managed"]["ConfigMap"], 1, "{infra:#}");

    // Phase 2: Each GitSync prunes only its own path's objects.
    repo.remove("apps/extra.yaml");
    repo.commit(&[], "drop extra");
    repo.push();
    eventually("extra pruned", Duration::from_secs(60), || async {
        (!exists(&cms, "extra").await).then_some(())
    })
    .await;
    eventually(
        "infra at the new revision too",
        Duration::from_secs(60),
        || async {
            let i = gitsync(&ns, "infra").await;
            let a = gitsync(&ns, "apps").await;
            (i["status"]["lastAppliedRevision"] == a["status"]["lastAppliedRevision"]).then_some(())
        },
    )
    .await;
    assert!(
        exists(&cms, "infra").await && exists(&cms, "app").await,
        "the other objects stay"
    );
}

#[tokio::test]
async fn sigterm_mid_apply_finishes_the_apply_and_releases_the_lease() {
    let ns = TestNamespace::new("shutdown").await;
    let repo = TestRepo::new();
    let files: Vec<(String, String)> = (0..300)
        .map(|i| {
            let name = format!("cm-{i:03}");
            (format!("{name}.yaml"), config_map(&ns.name, &name, "1"))
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    repo.commit(&refs, "300 ConfigMaps");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let mut agent = Agent::start_with(
        &ns,
        &["--leader-elect", "--leader-lease-namespace", &ns.name],
    );
    eventually("leads", Duration::from_secs(30), || async {
        agent.log().contains("became the leader").then_some(())
    })
    .await;
    create_gitsync(
        &ns,
        "big",
        json!({"url": daemon.url(repo.name()), "pollInterval": "1h"}),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    eventually("the apply has begun", Duration::from_secs(60), || async {
        exists(&cms, "cm-000").await.then_some(())
    })
    .await;
    let pid = agent.child.id().to_string();
    let out = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .output()
        .expect("kill");
    assert!(out.status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = agent.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not exit within 60 s of SIGTERM:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = agent.log();
    assert!(status.success(), "a clean exit ({status}):\n{log}");
    let applied = log.find("applied revision");
    let stopped = log.find("agent stopped");
    assert!(
        matches!((applied, stopped), (Some(a), Some(s)) if a < s),
        "the sync in flight finished before the agent stopped:\n{log}"
    );
    let list = cms.list(&Default::default()).await.expect("list");
    let ours = list
        .items
        .iter()
        .filter(|c| {
            c.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("cm-"))
        })
        .count();
    assert_eq!(ours, 300, "every object of the commit is there");
    let gs = gitsync(&ns, "big").await;
    assert_eq!(ready(&gs).map(|r| r.0).as_deref(), Some("True"), "{gs:#}");
    let lease = ns.kubectl(&[
        "get",
        "lease",
        "driftless-leader",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(
        lease.status.success() && String::from_utf8_lossy(&lease.stdout).trim().is_empty(),
        "the lease is released for the standby: {}{}",
        String::from_utf8_lossy(&lease.stdout),
        String::from_utf8_lossy(&lease.stderr)
    );
}

#[tokio::test]
async fn a_read_only_agent_never_pushes_the_sync_tag() {
    let ns = TestNamespace::new("readonly").await;
    let repo = TestRepo::new();
    repo.commit(
        &[("cm.yaml", &config_map(&ns.name, "ro", "1"))],
        "one ConfigMap",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start_with(&ns, &["--git-readonly"]);
    create_gitsync(
        &ns,
        "ro",
        json!({"url": daemon.url(repo.name()), "pollInterval": "1s", "syncTag": "driftless-sync"}),
    )
    .await;
    let gs = eventually("applied", Duration::from_secs(60), || async {
        let gs = gitsync(&ns, "ro").await;
        (ready(&gs)?.0 == "True").then_some(gs)
    })
    .await;
    assert!(
        gs["status"]["lastAppliedRevision"]
            .as_str()
            .is_some_and(|r| r.contains(&repo.head())),
        "the applied revision is recorded in status: {gs:#}"
    );
    let tags = support::git_servers::run(
        support::git_servers::git_in(repo.bare_path()).args(["tag", "--list"]),
    );
    assert!(tags.trim().is_empty(), "no tag pushed: {tags}");
}
