//! `driftless plan` against the dev cluster: what a sync would create, change and prune, and
//! why it would fail, as text, JSON and Markdown — and, through all of it, nothing written
//! (resourceVersions unchanged, no write but dry-runs in the API server's audit log).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::TestNamespace;
use support::agent::{create_gitsync, install_crd};
use support::audit::Mark;
use support::cli::{Cli, Run};
use support::git_servers::{GitDaemon, TestRepo, git_in, run};
use support::previews::{FRONT_V1, FRONT_V2, config_map, deployment, resource_versions, tenant};

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  \
         ports:\n  - port: 80\n"
    )
}

/// The azure-vote application, v1: front and back Deployments, the back Service, a ConfigMap.
fn write_v1(dir: &Path) {
    write(
        dir,
        "front.yaml",
        &deployment("azure-vote-front", FRONT_V1, 1),
    );
    write(
        dir,
        "back.yaml",
        &deployment("azure-vote-back", "redis:6", 1),
    );
    write(dir, "back-svc.yaml", &service("azure-vote-back"));
    write(dir, "settings.yaml", &config_map("settings", "1"));
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
}

async fn plan(dir: &Path, ns: &TestNamespace, extra: &[&str]) -> Run {
    let mut args = vec![
        "plan",
        dir.to_str().expect("utf-8"),
        "--inventory",
        &ns.name,
        "--inventory-namespace",
        &ns.name,
        "-n",
        &ns.name,
    ];
    args.extend_from_slice(extra);
    Cli::new().render_tools().args(&args).run_async().await
}

/// Nothing in `ns` changed since `before` and `mark`: the same resourceVersions, and no write
/// but dry-runs in the audit log.
fn assert_untouched(ns: &TestNamespace, before: &BTreeMap<String, String>, mark: &Mark) {
    assert_eq!(&resource_versions(ns), before, "a plan changes no object");
    assert_eq!(
        mark.writes(&ns.name),
        Vec::<Value>::new(),
        "no write but dry-runs"
    );
}

/// `driftless apply DIR --prune` under `inventory`, stored in `ns`, succeeding.
async fn apply(dir: &Path, inventory: &str, ns: &TestNamespace) {
    let dir = dir.to_str().expect("utf-8");
    let args = [
        "apply",
        dir,
        "--inventory",
        inventory,
        "--inventory-namespace",
        &ns.name,
    ];
    Cli::new()
        .args(args)
        .args(["-n", &ns.name, "--prune"])
        .run_async()
        .await
        .succeeded();
}

/// A diff line starting with `sign` that sets the image to `image`.
fn changed_line(diff: &str, sign: char, image: &str) -> bool {
    diff.lines()
        .any(|l| l.starts_with(sign) && l.ends_with(&format!("image: {image}")))
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["object"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

/// v1 applied; v2 bumps the front image, adds the front Service and deletes a file. The plan
/// lists the image change as a diff, the Service to create, the ConfigMap to prune — the same
/// in text, JSON and Markdown — and writes nothing.
#[tokio::test]
async fn a_plan_shows_the_image_bump_the_new_service_and_the_prune_and_writes_nothing() {
    let ns = TestNamespace::new("plan").await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_v1(dir.path());
    let applying = Mark::now();
    apply(dir.path(), &ns.name, &ns).await;
    assert!(
        applying.writes(&ns.name).len() >= 4,
        "the audit log sees an apply's writes"
    );
    plan(dir.path(), &ns, &[]).await.expect_code(0);

    write(
        dir.path(),
        "front.yaml",
        &deployment("azure-vote-front", FRONT_V2, 1),
    );
    write(dir.path(), "front-svc.yaml", &service("azure-vote-front"));
    std::fs::remove_file(dir.path().join("settings.yaml")).expect("rm");
    let before = resource_versions(&ns);
    let mark = Mark::now();

    let json_run = plan(dir.path(), &ns, &["-o", "json"]).await;
    json_run.expect_code(1);
    let p: Value = serde_json::from_str(&json_run.stdout).expect("plan JSON");
    let front = format!("Deployment/{}/azure-vote-front", ns.name);
    assert_eq!(p["outcome"], "changes", "{p:#}");
    assert_eq!(names(&p["change"]), std::slice::from_ref(&front), "{p:#}");
    assert_eq!(
        names(&p["create"]),
        [format!("Service/{}/azure-vote-front", ns.name)]
    );
    assert_eq!(
        names(&p["prune"]),
        [format!("ConfigMap/{}/settings", ns.name)]
    );
    assert_eq!(p["unchanged"], 2, "back Deployment and Service: {p:#}");
    assert_eq!(p["failures"], json!([]));
    let diff = p["change"][0]["diff"].as_str().unwrap_or_default();
    assert!(
        changed_line(diff, '-', FRONT_V1) && changed_line(diff, '+', FRONT_V2),
        "{diff}"
    );
    assert!(
        !diff.contains("resourceVersion") && !diff.contains("managedFields"),
        "noise removed: {diff}"
    );
    assert_eq!(p["change"][0]["file"], "front.yaml");

    let text = plan(dir.path(), &ns, &[]).await;
    text.expect_code(1);
    assert!(
        text.stdout.contains("1 to create, 1 to change, 1 to prune")
            && text
                .stdout
                .contains(&format!("change {front} (front.yaml)"))
            && changed_line(&text.stdout, '+', FRONT_V2),
        "{}",
        text.stdout
    );
    let md = plan(dir.path(), &ns, &["-o", "markdown"]).await;
    md.expect_code(1);
    println!("{}\n{}", text.stdout, md.stdout);
    assert!(
        md.stdout.starts_with("### ✅ driftless plan: applies cleanly")
            && md.stdout.contains(&format!(
                "<details><summary>change <code>{front}</code> from <code>front.yaml</code></summary>"
            ))
            && md
                .stdout
                .contains(&format!("- 🗑️ prune `ConfigMap/{}/settings`", ns.name)),
        "{}",
        md.stdout
    );

    assert_untouched(&ns, &before, &mark);
    assert!(
        mark.dry_runs(&ns.name) >= 3,
        "the audit log sees the plan's dry-runs"
    );
}

/// A GitSync's ServiceAccount may write in its namespace only: a ClusterRole in the set is
/// `forbidden`, a Deployment with negative replicas `invalid` with the API server's reason,
/// each naming its file; exit 2; nothing written.
#[tokio::test]
async fn an_invalid_manifest_and_a_forbidden_cluster_role_fail_the_plan_naming_file_and_reason() {
    let ns = TestNamespace::new("plan-fail").await;
    install_crd(&ns);
    tenant(&ns);

    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "settings.yaml", &config_map("settings", "1"));
    let bad = deployment("azure-vote-front", FRONT_V1, -1);
    write(dir.path(), "front.yaml", &bad);
    let role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {}-reader\n\
         rules:\n- apiGroups: ['']\n  resources: ['pods']\n  verbs: ['get']\n",
        ns.name
    );
    write(dir.path(), "role.yaml", &role);
    // No namespace: the one of `-n`.
    let gitsync = "apiVersion: driftless.dev/v1alpha1\nkind: GitSync\nmetadata:\n  name: app\n\
         spec:\n  url: https://example.invalid/repo.git\n  prune: true\n  serviceAccountName: tenant\n";
    let gs_file = dir.path().join("gitsync.yaml.txt");
    std::fs::write(&gs_file, gitsync).expect("write");
    let before = resource_versions(&ns);
    let mark = Mark::now();

    let dir_arg = dir.path().to_str().expect("utf-8");
    let gs_arg = gs_file.to_str().expect("utf-8");
    let plan_as_gitsync = |format: &'static str| {
        Cli::new()
            .args([
                "plan",
                dir_arg,
                "--gitsync",
                gs_arg,
                "-n",
                &ns.name,
                "-o",
                format,
            ])
            .run()
    };
    let run = plan_as_gitsync("json");
    run.expect_code(2);
    let p: Value = serde_json::from_str(&run.stdout).expect("plan JSON");
    assert_eq!(p["outcome"], "wouldFail", "{p:#}");
    assert_eq!(p["subject"], format!("GitSync {}/app", ns.name));
    let failure = |file: &str| {
        p["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["file"] == file)
            .cloned()
            .unwrap_or_else(|| panic!("no failure for {file}: {p:#}"))
    };
    let forbidden = failure("role.yaml");
    assert_eq!(forbidden["reason"], "forbidden", "{forbidden:#}");
    assert_eq!(
        forbidden["object"],
        format!("ClusterRole/{}-reader", ns.name)
    );
    let message = forbidden["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("forbidden") && message.contains("tenant"),
        "the API server's reason, naming the ServiceAccount: {message}"
    );
    let invalid = failure("front.yaml");
    assert_eq!(invalid["reason"], "invalid", "{invalid:#}");
    assert!(
        invalid["message"].as_str().is_some_and(
            |m| m.contains("spec.replicas") && m.contains("greater than or equal to 0")
        ),
        "{invalid:#}"
    );
    assert_eq!(
        names(&p["create"]),
        [format!("ConfigMap/{}/settings", ns.name)]
    );

    let md = plan_as_gitsync("markdown");
    md.expect_code(2);
    assert!(
        md.stdout.starts_with("### ❌ driftless plan: would fail")
            && md
                .stdout
                .contains("- **forbidden**: role.yaml: ClusterRole/")
            && md.stdout.contains("- **invalid**: front.yaml: Deployment/"),
        "{}",
        md.stdout
    );
    assert_untouched(&ns, &before, &mark);
}

/// `plan --from NAME --ref BRANCH` fetches the GitSync's repository at the branch and plans it
/// against what the GitSync's inventory holds: the change and the prune; its own ref plans
/// nothing to do.
#[tokio::test]
async fn plan_from_a_gitsync_fetches_the_ref_and_plans_against_its_inventory() {
    let ns = TestNamespace::new("plan-from").await;
    install_crd(&ns);
    let repo = TestRepo::new();
    repo.commit(
        &[
            ("app/a.yaml", &config_map("a", "1")),
            ("app/b.yaml", &config_map("b", "1")),
        ],
        "v1",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let spec =
        json!({"url": daemon.url(repo.name()), "path": "app", "prune": true, "suspend": true});
    create_gitsync(&ns, "app", spec).await;
    // What the agent would have applied, under the inventory it would use.
    let inventory = driftless::agent::reconcile::inventory_name(&ns.name, "app");
    let checkout = repo.work_path().join("app");
    apply(&checkout, &inventory, &ns).await;

    run(git_in(repo.work_path()).args(["checkout", "-q", "-b", "change"]));
    repo.remove("app/b.yaml");
    let head = repo.commit(&[("app/a.yaml", &config_map("a", "2"))], "v2");
    run(git_in(repo.work_path()).args(["push", "-q", "origin", "change"]));
    let mark = Mark::now();

    let from = |extra: &[&str]| {
        let mut args = vec!["plan", "--from", "app", "-n", &ns.name, "-o", "json"];
        args.extend_from_slice(extra);
        Cli::new().render_tools().args(args).run()
    };
    let changed = from(&["--ref", "change"]);
    changed.expect_code(1);
    let p: Value = serde_json::from_str(&changed.stdout).expect("plan JSON");
    assert!(
        p["revision"].as_str().is_some_and(|r| r.ends_with(&head)),
        "the branch's head is planned: {p:#}"
    );
    assert_eq!(
        names(&p["change"]),
        [format!("ConfigMap/{}/a", ns.name)],
        "{p:#}"
    );
    assert_eq!(
        names(&p["prune"]),
        [format!("ConfigMap/{}/b", ns.name)],
        "{p:#}"
    );
    assert_eq!(p["change"][0]["file"], "app/a.yaml");

    let by_sha = from(&["--ref", &head]);
    by_sha.expect_code(1);
    let again: Value = serde_json::from_str(&by_sha.stdout).expect("plan JSON");
    assert_eq!(again["change"], p["change"], "a SHA plans as its branch");

    from(&[]).expect_code(0);
    assert_eq!(
        mark.writes(&ns.name),
        Vec::<Value>::new(),
        "no write but dry-runs"
    );
}

/// An admission policy (a `ValidatingAdmissionPolicy`, the API server's own CEL admission)
/// refusing a ConfigMap shows as `refused by admission` with the policy's message, and an
/// immutable field (a Deployment's selector) as `immutable field`, each naming its file.
#[tokio::test]
async fn admission_refusals_and_immutable_fields_are_named_in_the_plan() {
    let ns = TestNamespace::new("plan-admit").await;
    let policy = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n\
         metadata:\n  name: {ns}-names\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n    \
         resourceRules:\n    - apiGroups: ['']\n      apiVersions: ['v1']\n      operations: [CREATE, UPDATE]\n      \
         resources: [configmaps]\n  validations:\n  - expression: \"object.metadata.name != 'denied'\"\n    \
         message: configmaps may not be named denied\n---\n\
         apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n\
         metadata:\n  name: {ns}-names\nspec:\n  policyName: {ns}-names\n  validationActions: [Deny]\n  \
         matchResources:\n    namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: {ns}\n",
        ns = ns.name
    );
    let _cleanup = support::DeleteOnDrop::new(&[
        "validatingadmissionpolicy,validatingadmissionpolicybinding",
        &format!("{}-names", ns.name),
    ]);
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(file.path(), policy).expect("write");
    let out = ns.kubectl(&["apply", "-f", file.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "front.yaml",
        &deployment("azure-vote-front", FRONT_V1, 1),
    );
    apply(dir.path(), &ns.name, &ns).await;
    let moved = deployment("azure-vote-front", FRONT_V1, 1).replace(
        "matchLabels:\n      app: azure-vote-front",
        "matchLabels:\n      app: azure-vote-front\n      tier: web",
    );
    let moved = moved.replace(
        "labels:\n        app: azure-vote-front",
        "labels:\n        app: azure-vote-front\n        tier: web",
    );
    write(dir.path(), "front.yaml", &moved);
    write(dir.path(), "denied.yaml", &config_map("denied", "1"));

    // The API server loads a new policy within a second or two.
    let p = support::eventually("the policy in force", Duration::from_secs(30), || async {
        let run = plan(dir.path(), &ns, &["-o", "json"]).await;
        let p: Value = serde_json::from_str(&run.stdout).ok()?;
        let admission = p["failures"]
            .as_array()?
            .iter()
            .any(|f| f["reason"] == "admission");
        (run.code == Some(2) && admission).then_some(p)
    })
    .await;
    let failure = |reason: &str| {
        p["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["reason"] == reason)
            .cloned()
            .unwrap_or_else(|| panic!("no {reason} failure: {p:#}"))
    };
    let admission = failure("admission");
    assert_eq!(admission["file"], "denied.yaml", "{admission:#}");
    assert!(
        admission["message"]
            .as_str()
            .is_some_and(|m| m.contains("configmaps may not be named denied")),
        "{admission:#}"
    );
    let immutable = failure("immutable");
    assert_eq!(immutable["file"], "front.yaml", "{immutable:#}");
    assert!(
        immutable["message"]
            .as_str()
            .is_some_and(|m| m.contains("immutable") && m.contains("driftless.dev/force")),
        "{immutable:#}"
    );
}
