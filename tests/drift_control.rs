//! Drift control that fits clusters where other controllers write too (#21): ignore rules
//! (`spec.ignore`: paths with wildcards, field managers) and per-object apply policies
//! (`IfNotPresent`, `Merge`, `force`), against the dev cluster, with the other writers as the
//! API server records them (their field managers, through the same requests they send).

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::agent::{Agent, create_gitsync, gitsync, ready};
use support::cli::Cli;
use support::git_servers::{GitDaemon, TestRepo};
use support::{DeleteOnDrop, TestNamespace, eventually};

fn deployment(ns: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: app\n        image: web:1\n      - name: log\n        image: fluentbit:3\n"
    )
}

/// Writes as another controller does: an update (not an apply) under its field manager.
fn as_manager(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.into()),
        ..PatchParams::default()
    }
}

async fn replicas(api: &Api<Deployment>) -> Option<i32> {
    api.get_opt("web").await.ok()??.spec?.replicas
}

async fn images(api: &Api<Deployment>) -> Vec<String> {
    let Ok(Some(d)) = api.get_opt("web").await else {
        return Vec::new();
    };
    d.spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers.into_iter().filter_map(|c| c.image).collect())
        .unwrap_or_default()
}

/// The time of the GitSync's last successful sync, to wait for the next ones.
async fn last_sync(ns: &TestNamespace) -> Option<String> {
    gitsync(ns, "web").await["status"]["lastAppliedTime"]
        .as_str()
        .map(str::to_owned)
}

/// Waits until the GitSync has synced `n` more times (drift correction every interval).
async fn syncs_pass(ns: &TestNamespace, n: usize) {
    for _ in 0..n {
        let before = last_sync(ns).await;
        eventually("another sync", Duration::from_secs(30), || async {
            let now = last_sync(ns).await;
            (now.is_some() && now != before).then_some(())
        })
        .await;
    }
}

async fn scale_as_the_hpa(api: &Api<Deployment>, to: i32) {
    api.patch_scale(
        "web",
        &as_manager("kube-controller-manager"),
        &Patch::Merge(json!({"spec": {"replicas": to}})),
    )
    .await
    .expect("scale as kube-controller-manager");
}

#[tokio::test]
async fn replicas_an_hpa_scales_are_reverted_without_a_rule_and_left_alone_with_one() {
    let ns = TestNamespace::new("ignore-hpa").await;
    let repo = TestRepo::new();
    repo.commit(&[("app/web.yaml", &deployment(&ns.name, 2))], "web");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start(&ns);
    let spec = |ignore: Value| {
        json!({"url": daemon.url(repo.name()), "path": "app", "pollInterval": "1s",
               "interval": "2s", "ignore": ignore})
    };
    create_gitsync(&ns, "web", spec(json!([]))).await;
    let api: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    eventually("applied", Duration::from_secs(60), || async {
        (replicas(&api).await? == 2).then_some(())
    })
    .await;

    // Phase 1: without a rule, the next interval takes replicas back from the HPA.
    scale_as_the_hpa(&api, 5).await;
    eventually("reverted to Git's 2", Duration::from_secs(30), || async {
        (replicas(&api).await? == 2).then_some(())
    })
    .await;

    // Phase 2: with the rule, the HPA's count stays through several syncs.
    let rule =
        json!([{"paths": ["/spec/replicas"], "target": {"group": "apps", "kind": "Deployment"}}]);
    create_gitsync(&ns, "web", spec(rule.clone())).await;
    syncs_pass(&ns, 1).await;
    scale_as_the_hpa(&api, 5).await;
    syncs_pass(&ns, 3).await;
    assert_eq!(
        replicas(&api).await,
        Some(5),
        "the HPA's replicas are left alone"
    );
    let gs = gitsync(&ns, "web").await;
    let (status, _, message) = ready(&gs).expect("Ready");
    assert_eq!(status, "True", "{message}");
    let ignored = &gs["status"]["ignoredFields"][format!("Deployment/{}/web", ns.name)];
    assert_eq!(ignored, &json!(["/spec/replicas"]), "{gs:#}");
    // A change in Git of another field still applies, replicas still left alone.
    let changed = deployment(&ns.name, 2).replace("web:1", "web:2");
    repo.commit(&[("app/web.yaml", &changed)], "web:2");
    repo.push();
    eventually("web:2 applied", Duration::from_secs(30), || async {
        images(&api).await.first()?.eq("web:2").then_some(())
    })
    .await;
    assert_eq!(replicas(&api).await, Some(5));

    // Phase 3: `driftless diff --gitsync` leaves the ignored field out: no drift.
    let dir = tempfile::tempdir().expect("dir");
    let gs_file = dir.path().join("gitsync.yaml");
    let manifest = json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "web", "namespace": ns.name}, "spec": spec(rule)});
    std::fs::write(&gs_file, manifest.to_string()).expect("write the GitSync");
    let inventory = gs["metadata"]["name"].as_str().map(|_| inventory_of(&api));
    let inventory = inventory.expect("name").await;
    let diff = Cli::new()
        .args([
            "diff",
            repo.work_path().join("app").to_str().expect("utf-8"),
        ])
        .args([
            "--inventory",
            &inventory,
            "--inventory-namespace",
            &ns.name,
            "-n",
            &ns.name,
        ])
        .arg("--gitsync")
        .arg(&gs_file)
        .run();
    assert_eq!(
        diff.code,
        Some(0),
        "no drift:\n{}{}",
        diff.stdout,
        diff.stderr
    );
}

/// The inventory the agent labelled `web` with.
async fn inventory_of(api: &Api<Deployment>) -> String {
    let d = api.get("web").await.expect("web");
    d.metadata
        .labels
        .and_then(|l| l.get("driftless.dev/inventory").cloned())
        .expect("the inventory label")
}

/// Applies `dir` with the CLI as inventory `inventory`, with the ignore rules of the GitSync
/// manifest `gitsync` when given.
fn apply(
    dir: &Path,
    ns: &TestNamespace,
    inventory: &str,
    gitsync: Option<&Path>,
) -> support::cli::Run {
    let mut cli = Cli::new()
        .arg("apply")
        .arg(dir)
        .args(["--inventory", inventory, "-n", &ns.name]);
    if let Some(file) = gitsync {
        cli = cli.arg("--gitsync").arg(file);
    }
    cli.run()
}

fn gitsync_file(dir: &Path, ns: &str, ignore: Value) -> std::path::PathBuf {
    let file = dir.join("gitsync.yaml");
    let manifest = json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "web", "namespace": ns}, "spec": {"url": "file:///unused", "ignore": ignore}});
    std::fs::write(&file, manifest.to_string()).expect("write");
    file
}

#[tokio::test]
async fn an_injected_image_is_left_alone_by_a_wildcard_path_or_its_field_manager() {
    let ns = TestNamespace::new("ignore-image").await;
    let inventory = format!("{}-img", ns.name);
    let _cleanup = DeleteOnDrop::inventory(&inventory);
    let dir = tempfile::tempdir().expect("dir");
    let app = dir.path().join("app");
    std::fs::create_dir(&app).expect("mkdir");
    std::fs::write(app.join("web.yaml"), deployment(&ns.name, 1)).expect("write");
    apply(&app, &ns, &inventory, None).succeeded();
    let api: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    let mutate = |image: &'static str| {
        let api = api.clone();
        async move {
            // A mutating controller pins the app's image to a digest.
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
            api.patch(
                "web",
                &as_manager("digest-pinner"),
                &Patch::Strategic(patch),
            )
            .await
            .expect("mutate");
        }
    };
    // Without a rule, apply takes the image back.
    mutate("web:1@sha256:aaaa").await;
    apply(&app, &ns, &inventory, None).succeeded();
    assert_eq!(images(&api).await, ["web:1", "fluentbit:3"]);
    // With a wildcard path, the pinned image stays and the other container is still applied.
    mutate("web:1@sha256:bbbb").await;
    let wildcard = gitsync_file(
        dir.path(),
        &ns.name,
        json!([{"paths": ["/spec/template/spec/containers/*/image"]}]),
    );
    let run = apply(&app, &ns, &inventory, Some(&wildcard));
    run.succeeded();
    assert_eq!(images(&api).await, ["web:1@sha256:bbbb", "fluentbit:3"]);
    assert!(
        run.stdout.contains("left to other managers"),
        "{}",
        run.stdout
    );
    // By field manager (Argo CD's spelling): the same, and only what that manager wrote.
    mutate("web:1@sha256:cccc").await;
    let by_manager = gitsync_file(
        dir.path(),
        &ns.name,
        json!([{"kind": "Deployment", "managedFieldsManagers": ["digest-pinner"]}]),
    );
    std::fs::write(app.join("web.yaml"), deployment(&ns.name, 3)).expect("write");
    apply(&app, &ns, &inventory, Some(&by_manager)).succeeded();
    assert_eq!(images(&api).await, ["web:1@sha256:cccc", "fluentbit:3"]);
    assert_eq!(replicas(&api).await, Some(3), "Git's other changes apply");
}

#[tokio::test]
async fn if_not_present_merge_and_force_annotations() {
    let ns = TestNamespace::new("policies").await;
    let inventory = format!("{}-pol", ns.name);
    let _cleanup = DeleteOnDrop::inventory(&inventory);
    let dir = tempfile::tempdir().expect("dir");
    let n = &ns.name;
    let write =
        |file: &str, text: String| std::fs::write(dir.path().join(file), text).expect("write");
    write(
        "secret.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: filled\n  namespace: {n}\n  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\nstringData:\n  token: placeholder\n"
        ),
    );
    let cm = |name: &str, annotation: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {n}\n  annotations: {{{annotation}}}\ndata:\n  shared: ours\n  own: ours\n"
        )
    };
    write("merged.yaml", cm("merged", "driftless.dev/ssa: Merge"));
    write("overridden.yaml", cm("overridden", ""));
    let job = |image: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: {n}\n  annotations:\n    driftless.dev/force: enabled\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: m\n        image: {image}\n"
        )
    };
    write("job.yaml", job("migrate:1"));
    apply(dir.path(), &ns, &inventory, None).succeeded();

    // Other writers: a controller fills the Secret, another takes a ConfigMap key.
    let secrets: Api<Secret> = Api::namespaced(ns.client(), n);
    let filled = json!({"stringData": {"token": "filled-by-controller"}});
    secrets
        .patch(
            "filled",
            &as_manager("token-controller"),
            &Patch::Merge(filled),
        )
        .await
        .expect("fill");
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), n);
    for name in ["merged", "overridden"] {
        let theirs = json!({"data": {"shared": "theirs"}});
        cms.patch(name, &as_manager("other-team"), &Patch::Merge(theirs))
            .await
            .expect("take");
    }
    let jobs: Api<Job> = Api::namespaced(ns.client(), n);
    let uid = jobs.get("migrate").await.expect("job").metadata.uid;
    write("job.yaml", job("migrate:2"));

    let run = apply(dir.path(), &ns, &inventory, None);
    run.succeeded();
    let token = secrets
        .get("filled")
        .await
        .expect("secret")
        .data
        .unwrap_or_default();
    assert_eq!(
        token.get("token").map(|v| v.0.as_slice()),
        Some(b"filled-by-controller".as_slice()),
        "IfNotPresent: kept"
    );
    let data = |cm: ConfigMap| cm.data.unwrap_or_default();
    let merged = data(cms.get("merged").await.expect("merged"));
    assert_eq!(
        merged.get("shared").map(String::as_str),
        Some("theirs"),
        "Merge does not take their field"
    );
    assert_eq!(merged.get("own").map(String::as_str), Some("ours"));
    let overridden = data(cms.get("overridden").await.expect("overridden"));
    assert_eq!(
        overridden.get("shared").map(String::as_str),
        Some("ours"),
        "the default takes it back"
    );
    let job = jobs.get("migrate").await.expect("job");
    assert_ne!(
        job.metadata.uid, uid,
        "force: recreated on the immutable template change"
    );
    let image = job
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.first().and_then(|c| c.image.clone()));
    assert_eq!(image.as_deref(), Some("migrate:2"));
    // A typo in a policy is refused before anything is written.
    write("typo.yaml", cm("typo", "driftless.dev/ssa: Merj"));
    apply(dir.path(), &ns, &inventory, None).failed_with(&[
        "typo.yaml",
        "driftless.dev/ssa",
        "Merj",
    ]);
}
