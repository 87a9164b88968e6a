//! Hostile and broken input: every case is refused with an error naming the file (and the
//! object, when there is one) and the reason, and changes nothing in the cluster.
//!
//! Each test first applies a good set (`keep-a`, `keep-b`) with `--prune`, then breaks the
//! directory: removes `keep-b` (a successful run would prune it), adds `new-c` (a successful run
//! would create it) and adds the hostile file. The second `driftless apply --prune` must fail,
//! and afterwards `keep-a` and `keep-b` must be there with their resourceVersions unchanged and
//! `new-c` must not exist: nothing applied, nothing pruned. Every `driftless` run is the real
//! binary against the dev cluster.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use support::cli::{Cli, Run};
use support::{DeleteOnDrop, TestNamespace};
use tempfile::TempDir;

/// Runs the `driftless` binary against the dev cluster, with extra environment variables.
fn driftless(args: &[&str], env: &[(&str, &str)]) -> Run {
    Cli::new()
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .args(args)
        .envs(env)
        .run()
}

fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: {value:?}\n")
}

/// One test's namespace, manifest directory and inventory, with the good set applied.
struct Case {
    ns: TestNamespace,
    dir: TempDir,
    /// resourceVersions of keep-a and keep-b after the good apply.
    versions: Vec<String>,
    _inventory: DeleteOnDrop,
}

impl Case {
    async fn new(prefix: &str) -> Case {
        let ns = TestNamespace::new(prefix).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut case = Case {
            _inventory: DeleteOnDrop::inventory(&ns.name),
            ns,
            dir,
            versions: Vec::new(),
        };
        case.write("keep-a.yaml", &configmap("keep-a", "1"));
        case.write("keep-b.yaml", &configmap("keep-b", "1"));
        case.apply(&[]).succeeded();
        case.versions = vec![case.version("keep-a").await, case.version("keep-b").await];
        case
    }

    fn write(&self, file: &str, text: &str) {
        self.write_bytes(file, text.as_bytes());
    }

    fn write_bytes(&self, file: &str, bytes: &[u8]) {
        let path = self.dir.path().join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// `driftless apply DIR --inventory NS -n NS --prune EXTRA...`.
    fn apply(&self, extra: &[&str]) -> Run {
        let dir = self.dir.path().to_str().expect("utf-8");
        let ns = self.ns.name.as_str();
        let mut args = vec!["apply", dir, "--inventory", ns, "-n", ns, "--prune"];
        args.extend(extra);
        driftless(&args, &[])
    }

    /// Removes keep-b and adds new-c: what a successful run would prune and create.
    fn change_the_good_set(&self) {
        std::fs::remove_file(self.dir.path().join("keep-b.yaml")).expect("remove keep-b");
        self.write("new-c.yaml", &configmap("new-c", "1"));
    }

    async fn version(&self, name: &str) -> String {
        let api: Api<ConfigMap> = Api::namespaced(self.ns.client(), &self.ns.name);
        let cm = api
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get configmap {name}: {e}"))
            .unwrap_or_else(|| panic!("configmap {name} should exist"));
        cm.metadata.resource_version.expect("resourceVersion")
    }

    /// Nothing applied, nothing pruned: keep-a and keep-b untouched, new-c absent.
    async fn assert_nothing_changed(&self) {
        let now = vec![self.version("keep-a").await, self.version("keep-b").await];
        assert_eq!(now, self.versions, "keep-a/keep-b were modified");
        let api: Api<ConfigMap> = Api::namespaced(self.ns.client(), &self.ns.name);
        assert!(
            api.get_opt("new-c").await.expect("get new-c").is_none(),
            "new-c was applied although the set was refused"
        );
    }

    /// Adds `file` with `bytes` to the changed set, applies, and checks the refusal.
    async fn refuses(&self, file: &str, bytes: &[u8], needles: &[&str]) -> Run {
        self.change_the_good_set();
        self.write_bytes(file, bytes);
        let run = self.apply(&[]);
        run.failed_with(needles);
        self.assert_nothing_changed().await;
        run
    }
}

#[tokio::test]
async fn malformed_yaml_is_refused_naming_file_and_line() {
    let case = Case::new("hostile-yaml").await;
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n data: [\n";
    case.refuses("broken.yaml", bad.as_bytes(), &["broken.yaml", "line 5"])
        .await;
}

#[tokio::test]
async fn yaml_alias_bomb_is_refused_by_the_parser_budget() {
    let case = Case::new("hostile-bomb").await;
    // "Billion laughs": 9 levels of 9 aliases each expand to 9^9 (387 million) strings.
    let mut yaml = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..10u8 {
        let (prev, this) = (char::from(b'a' + level - 1), char::from(b'a' + level));
        let refs = vec![format!("*{prev}"); 9].join(",");
        yaml.push_str(&format!("  {this}: &{this} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    case.refuses(
        "bomb.yaml",
        yaml.as_bytes(),
        &["bomb.yaml", "YAML parser limit"],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the alias bomb took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn deeply_nested_documents_are_refused_at_the_depth_limit() {
    let case = Case::new("hostile-deep").await;
    let flow = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\nx: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    case.refuses(
        "deep.yaml",
        flow.as_bytes(),
        &["deep.yaml", "max depth of 128"],
    )
    .await;
    // Block style, as deep as a real but absurd document, in JSON too.
    let json = format!(
        "{}{}",
        "{\"a\":".repeat(500),
        "1".to_string() + &"}".repeat(500)
    );
    std::fs::remove_file(case.dir.path().join("deep.yaml")).expect("rm");
    case.write("deep.json", &json);
    case.apply(&[])
        .failed_with(&["deep.json", "max depth of 128"]);
    case.assert_nothing_changed().await;
}

#[tokio::test]
async fn a_100_mib_manifest_is_refused_by_size_before_it_is_read() {
    let case = Case::new("hostile-big").await;
    case.change_the_good_set();
    // Sparse: 100 MiB on paper, no disk used; driftless must refuse it from its size alone.
    let path = case.dir.path().join("huge.yaml");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(100 * 1024 * 1024))
        .expect("create a 100 MiB file");
    let (run, peak_kib) = measured(&case);
    run.failed_with(&[
        "huge.yaml",
        "larger than the max file size of 33554432 bytes",
    ]);
    case.assert_nothing_changed().await;
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
}

/// Runs the case's apply under `/usr/bin/time` and returns the run and its peak RSS in KiB.
fn measured(case: &Case) -> (Run, u64) {
    let report = case
        .dir
        .path()
        .join("..")
        .join(format!("{}.time", case.ns.name));
    let dir = case.dir.path().to_str().expect("utf-8");
    let ns = case.ns.name.as_str();
    let report_arg = report.to_str().expect("utf-8").to_string();
    assert!(
        std::path::Path::new("/usr/bin/time").exists(),
        "cannot run /usr/bin/time driftless (apt-get install time)"
    );
    let run = Cli::under("/usr/bin/time", &["-f", "%M", "-o", &report_arg])
        .args(["apply", dir, "--inventory", ns, "-n", ns, "--prune"])
        .run();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    let peak = text
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no peak RSS in /usr/bin/time's report: {text:?}"));
    (run, peak)
}

#[tokio::test]
async fn a_render_of_100_000_objects_stops_at_the_object_limit_in_bounded_memory() {
    let case = Case::new("hostile-many").await;
    case.change_the_good_set();
    // 100,000 ConfigMaps in 10 files of 10,000 (each file under the size limit).
    for f in 0..10 {
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many-{f}-{i}\ndata:\n  v: \"{i}\"\n"
            ));
        }
        case.write(&format!("many-{f}.yaml"), &text);
    }
    let started = std::time::Instant::now();
    let (run, peak_kib) = measured(&case);
    let elapsed = started.elapsed();
    run.failed_with(&["many-", "exceeds the max of 50000 objects"]);
    case.assert_nothing_changed().await;
    eprintln!(
        "100,000 objects: refused in {elapsed:?}, peak RSS {} MiB",
        peak_kib / 1024
    );
    assert!(
        peak_kib < 1024 * 1024,
        "peak RSS {peak_kib} KiB (over 1 GiB)"
    );
}

#[tokio::test]
async fn non_utf8_bytes_are_refused_naming_the_file_and_offset() {
    let case = Case::new("hostile-utf8").await;
    let bytes =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: latin1\ndata:\n  k: \"caf\xe9\"\n";
    case.refuses(
        "latin1.yaml",
        bytes,
        &["latin1.yaml", "not valid UTF-8", "offset 71"],
    )
    .await;
}

#[tokio::test]
async fn a_symlink_pointing_outside_the_repository_is_refused() {
    let case = Case::new("hostile-link").await;
    let outside = tempfile::tempdir().expect("outside dir");
    std::fs::write(outside.path().join("secret.yaml"), configmap("stolen", "x")).expect("w");
    case.change_the_good_set();
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        case.dir.path().join("link.yaml"),
    )
    .expect("symlink");
    case.apply(&[])
        .failed_with(&["link.yaml", "points outside the root directory"]);
    case.assert_nothing_changed().await;
    // A symlinked directory leaving the root is refused the same way.
    std::fs::remove_file(case.dir.path().join("link.yaml")).expect("rm link");
    std::os::unix::fs::symlink(outside.path(), case.dir.path().join("linked-dir")).expect("ln");
    case.apply(&[])
        .failed_with(&["linked-dir", "points outside the root directory"]);
    case.assert_nothing_changed().await;
}

#[tokio::test]
async fn invalid_object_names_are_refused_naming_file_and_object() {
    let case = Case::new("hostile-names").await;
    let bad = format!(
        "{}---\n{}",
        configmap("Bad_Name!", "x"),
        configmap(&"x".repeat(300), "x")
    );
    let run = case
        .refuses(
            "names.yaml",
            bad.as_bytes(),
            &["names.yaml", "ConfigMap/Bad_Name!", "invalid metadata.name"],
        )
        .await;
    assert!(
        run.stderr.contains("2 invalid object(s)"),
        "both names reported: {}",
        run.stderr
    );
}

#[tokio::test]
async fn duplicates_across_files_are_refused_naming_both_files() {
    let case = Case::new("hostile-dup").await;
    let id = format!("ConfigMap/{}/keep-a is defined twice", case.ns.name);
    case.refuses(
        "other/keep-a-again.yaml",
        configmap("keep-a", "2").as_bytes(),
        &[&id, "keep-a.yaml", "other/keep-a-again.yaml"],
    )
    .await;
}

#[tokio::test]
async fn secret_data_in_a_refusal_is_masked() {
    let case = Case::new("hostile-secret").await;
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leaky\nstringData:\n  password: {nested: hunter2-PLANTED-SECRET}\n";
    let run = case
        .refuses(
            "secret.yaml",
            secret.as_bytes(),
            &["secret.yaml", "Secret/", "leaky", "***"],
        )
        .await;
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        !all.contains("hunter2-PLANTED-SECRET"),
        "the Secret's value leaked into the output:\n{all}"
    );
    let api: Api<Secret> = Api::namespaced(case.ns.client(), &case.ns.name);
    assert!(api.get_opt("leaky").await.expect("get").is_none());
}

/// The environment of an agent pod in the test's namespace, its Deployment named `agent`.
fn agent_env(ns: &str) -> Vec<(String, String)> {
    vec![
        ("POD_NAMESPACE".into(), ns.into()),
        ("POD_NAME".into(), "agent-5d8f7c9b6-x2x9q".into()),
    ]
}

fn agent_deployment(ns: &str, track: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: agent\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: agent, track: {track}}}\n  template:\n    metadata:\n      labels: {{app: agent, track: {track}}}\n    spec:\n      containers:\n      - name: agent\n        image: registry.invalid/driftless:1\n"
    )
}

#[tokio::test]
async fn the_agents_own_namespace_and_deployment_are_never_pruned_or_recreated() {
    let ns_probe = TestNamespace::new("hostile-self").await;
    let ns = ns_probe.name.clone();
    // The agent lives in `ns` (its own test namespace); the set adopts that Namespace and the
    // agent's Deployment, as a GitSync that manages the agent itself would.
    let dir = tempfile::tempdir().expect("dir");
    let write = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).expect("write");
    write(
        "ns.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
    );
    write("agent.yaml", &agent_deployment(&ns, "stable"));
    write("keep-a.yaml", &configmap("keep-a", "1"));
    let env = agent_env(&ns);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let d = dir.path().to_str().expect("utf-8");
    let inventory = format!("{ns}-self");
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", d, "--inventory", &inventory, "-n", &ns, "--prune"];
        args.extend(extra);
        driftless(&args, &env)
    };
    let _cleanup = DeleteOnDrop::inventory(&inventory);
    apply(&[]).succeeded();
    let deployments: Api<Deployment> = Api::namespaced(ns_probe.client(), &ns);
    let uid = deployments.get("agent").await.expect("agent").metadata.uid;

    // Phase 1: A commit that drops the Namespace and the Deployment (and adds new-c): refused
    // whole.
    std::fs::remove_file(dir.path().join("ns.yaml")).expect("rm");
    std::fs::remove_file(dir.path().join("agent.yaml")).expect("rm");
    write("new-c.yaml", &configmap("new-c", "1"));
    apply(&[]).failed_with(&[
        &format!("Namespace/{ns}: refusing to prune it"),
        &format!("Deployment/{ns}/agent: refusing to prune it"),
        "driftless's own",
        "nothing was changed",
    ]);
    let cms: Api<ConfigMap> = Api::namespaced(ns_probe.client(), &ns);
    assert!(
        cms.get_opt("new-c").await.expect("get").is_none(),
        "new-c applied"
    );
    assert_eq!(
        deployments.get("agent").await.expect("agent").metadata.uid,
        uid
    );

    // Phase 2: `--force` on an immutable change of the agent's Deployment would delete it: refused.
    std::fs::remove_file(dir.path().join("new-c.yaml")).expect("rm");
    write(
        "ns.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
    );
    write("agent.yaml", &agent_deployment(&ns, "canary"));
    apply(&["--force"]).failed_with(&[
        "agent.yaml",
        &format!("Deployment/{ns}/agent: refusing to delete and recreate (--force) it"),
    ]);
    assert_eq!(
        deployments.get("agent").await.expect("agent").metadata.uid,
        uid
    );

    // Phase 3: The same Deployment outside the agent's namespace is an ordinary object: recreated.
    let other = TestNamespace::new("hostile-other").await;
    let odir = tempfile::tempdir().expect("dir");
    std::fs::write(
        odir.path().join("d.yaml"),
        agent_deployment(&other.name, "stable"),
    )
    .expect("w");
    let od = odir.path().to_str().expect("utf-8");
    let oinv = other.name.clone();
    let _ocleanup = DeleteOnDrop::inventory(&oinv);
    let oapply = || driftless(&["apply", od, "--inventory", &oinv, "--force"], &env);
    oapply().succeeded();
    std::fs::write(
        odir.path().join("d.yaml"),
        agent_deployment(&other.name, "canary"),
    )
    .expect("w");
    oapply().succeeded();
}
