//! `driftless apply` end to end, the real binary against the dev cluster: a set applied and
//! re-applied unchanged (multi-document files and lists, a CRD and its custom resources, a
//! Namespace and its objects, sets larger than a LIST page), a changed field configured, a field
//! kubectl set removed, and a set that is invalid, of an unknown kind or defines an object twice
//! refused with nothing changed.
//!
//! Each test is a [`Case`](support::case::Case): its own namespace, manifest directory and
//! inventory. Prune and the inventory are `tests/apply_prune.rs`; immutable fields and `--force`
//! `tests/apply_force.rs`; drift, `diff`, the ignore annotations, `--dry-run` and `--wait`
//! `tests/apply_drift.rs`.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use support::DeleteOnDrop;
use support::case::Case;
use support::cli::driftless;
use support::manifests::{configmap, deployment, fixture, write_file};

// ---------------------------------------------------------------------------------------------
// Multi-document files and lists
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn multi_document_files_and_lists_apply_then_reapply_unchanged() {
    let case = Case::new("multidoc").await;
    case.write("all.yaml", &fixture("multidoc/all.yaml", &[]));
    case.write("list.yaml", &fixture("multidoc/list.yaml", &[]));

    let first = case.apply(&[]).await;
    first.expect_code(0);
    let ids = [
        case.id("ConfigMap", "first"),
        case.id("Secret", "second"),
        case.id("Service", "third"),
        case.id("ConfigMap", "listed-a"),
        case.id("ConfigMap", "listed-b"),
    ];
    assert_eq!(first.actions().len(), ids.len(), "{}", first.stdout);
    for id in &ids {
        assert_eq!(first.action_of(id), "created", "{id}");
    }
    // Each list item is its own document of its file.
    assert_eq!(
        first.change_of(&case.id("ConfigMap", "listed-b"))["source"],
        "list.yaml (document 1)"
    );
    assert_eq!(
        first.change_of(&case.id("Service", "third"))["source"],
        "all.yaml (document 2)"
    );

    let client = case.ns.client();
    let rv_before = case
        .configmap("first")
        .await
        .expect("first exists")
        .metadata
        .resource_version;
    assert!(case.configmap("listed-a").await.is_some());
    assert_eq!(
        case.configmap_value("listed-b", "k").await.as_deref(),
        Some("b")
    );
    let secret = Api::<Secret>::namespaced(client.clone(), case.name())
        .get("second")
        .await
        .expect("secret second exists");
    assert!(secret.data.is_some_and(|d| d.contains_key("password")));
    Api::<Service>::namespaced(client.clone(), case.name())
        .get("third")
        .await
        .expect("service third exists");

    // A second, separate process: everything unchanged, nothing written. Text output this time.
    let dir = case.dir.path().to_str().expect("utf-8");
    let second = driftless(&[
        "apply",
        dir,
        "--inventory",
        &case.inventory,
        "-n",
        case.name(),
    ])
    .await;
    second.expect_code(0);
    for id in &ids {
        assert!(
            second
                .stdout
                .lines()
                .any(|l| l == format!("{id} unchanged")),
            "{id} should be unchanged:\n{}",
            second.stdout
        );
    }
    assert!(
        second
            .stdout
            .contains("0 created, 0 configured, 5 unchanged, 0 pruned, 0 skipped, 0 failed in "),
        "summary line:\n{}",
        second.stdout
    );
    let rv_after = case
        .configmap("first")
        .await
        .expect("first exists")
        .metadata
        .resource_version;
    assert_eq!(rv_before, rv_after, "an unchanged apply must not write");
}

// ---------------------------------------------------------------------------------------------
// A CRD and its custom resources in one set
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn crd_and_its_custom_resources_in_one_set() {
    let case = Case::new("crd").await;
    let group = format!("{}.driftless.test", case.name());
    let crd_name = format!("widgets.{group}");
    let _crd = DeleteOnDrop::new(&["customresourcedefinition", &crd_name]);
    case.write(
        "crd.yaml",
        &fixture("crd-widgets.yaml", &[("GROUP", &group)]),
    );
    // Custom resources sort before the CRD by file name: order must come from the kinds.
    case.write(
        "a-widgets.yaml",
        &fixture("widgets.yaml", &[("GROUP", &group)]),
    );

    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(
        run.action_of(&format!("CustomResourceDefinition/{crd_name}")),
        "created"
    );
    assert_eq!(run.action_of(&case.id("Widget", "small")), "created");
    assert_eq!(run.action_of(&case.id("Widget", "large")), "created");

    let ar = ApiResource {
        group: group.clone(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(case.ns.client(), case.name(), &ar);
    let large = widgets.get("large").await.expect("widget large exists");
    assert_eq!(large.data["spec"]["size"], 9);
    assert_eq!(
        large.metadata.labels.unwrap_or_default()["driftless.dev/inventory"],
        case.inventory
    );

    // Now the kind is served from the start: a second process finds all unchanged.
    let again = case.apply(&[]).await;
    again.expect_code(0);
    assert!(
        again.actions().iter().all(|(_, a)| a == "unchanged"),
        "{}",
        again.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// A Namespace and objects in it in one set
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn namespace_and_its_objects_in_one_set() {
    let case = Case::new("nsset").await;
    let app_ns = format!("{}-app", case.name());
    let _app_ns = DeleteOnDrop::new(&["namespace", &app_ns]);
    let vars = [("NAMESPACE", app_ns.as_str())];
    case.write("namespace.yaml", &fixture("namespace.yaml", &vars));
    case.write("app.yaml", &fixture("namespaced-app.yaml", &vars));

    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(
        run.actions(),
        vec![
            (format!("Namespace/{app_ns}"), "created".to_string()),
            (
                format!("ServiceAccount/{app_ns}/runner"),
                "created".to_string()
            ),
            (
                format!("ConfigMap/{app_ns}/settings"),
                "created".to_string()
            ),
        ],
        "Namespace first, then in kind order"
    );
    let cm = Api::<ConfigMap>::namespaced(case.ns.client(), &app_ns)
        .get("settings")
        .await
        .expect("settings exists in the new namespace");
    assert_eq!(cm.data.unwrap_or_default()["mode"], "fast");

    // Prune it all: the Namespace goes last.
    case.remove("namespace.yaml");
    case.remove("app.yaml");
    let pruned = case.apply(&["--prune", "--allow-empty"]).await;
    pruned.expect_code(0);
    let actions = pruned.actions();
    assert_eq!(actions.len(), 3, "{}", pruned.stdout);
    assert!(actions.iter().all(|(_, a)| a == "pruned"), "{actions:?}");
    assert_eq!(actions[2].0, format!("Namespace/{app_ns}"), "{actions:?}");
    let ns = Api::<Namespace>::all(case.ns.client())
        .get_opt(&app_ns)
        .await
        .expect("get namespace");
    assert!(
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "namespace {app_ns} should be deleted or terminating"
    );
}

/// A kind with more objects in the set than one LIST page holds is read page by page; a
/// small set beside it (a few objects of a kind) is read object by object. Either way every
/// live object is found: a re-apply of the unchanged set writes nothing.
#[tokio::test]
async fn sets_larger_than_a_list_page_are_read_across_pages() {
    let case = Case::new("pages").await;
    let many: String = (0..600)
        .map(|i| {
            format!(
                "---\n{}",
                configmap(&format!("cm-{i:03}"), &[("i", &i.to_string())])
            )
        })
        .collect();
    case.write("many.yaml", &many);
    case.write("few.yaml", &deployment("web", 1, "nginx:1.27"));
    let first = case.apply(&[]).await;
    first.expect_code(0);
    assert_eq!(first.actions().len(), 601, "{}", first.stdout);

    let again = case.apply(&[]).await;
    again.expect_code(0);
    let actions = again.actions();
    assert_eq!(actions.len(), 601);
    let written: Vec<&(String, String)> =
        actions.iter().filter(|(_, a)| a != "unchanged").collect();
    assert!(written.is_empty(), "re-apply wrote: {written:?}");
    assert_eq!(
        again.json()["requests"].as_u64().map(|n| n < 20),
        Some(true),
        "an unchanged re-apply reads by LIST pages, not per object: {}",
        again.json()["requests"]
    );
}

// ---------------------------------------------------------------------------------------------
// Update of a field
// ---------------------------------------------------------------------------------------------

/// Objects new to the inventory are not read before their first sync: their dry-run tells
/// whether they exist. One that does (made by kubectl, or another inventory's) is then read
/// like any other, so that it is configured, not "created", and a conflict is still refused.
#[tokio::test]
async fn new_objects_are_read_only_when_their_dry_run_finds_them() {
    let case = Case::new("firstread").await;
    case.write("a.yaml", &configmap("a", &[("k", "1")]));
    case.write("b.yaml", &configmap("b", &[("k", "1")]));
    let first = case.apply(&[]).await;
    first.expect_code(0);
    // The inventory's LIST, two dry-runs, one inventory write (with the hashes the dry-runs
    // foretold: none after the applies), two applies. No GET.
    assert_eq!(
        first.json()["requests"].as_u64(),
        Some(6),
        "{}",
        first.stdout
    );

    let client = case.ns.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), case.name());
    let made = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c"}, "data": {"k": "by-hand"}
    }))
    .expect("a ConfigMap");
    cms.create(&Default::default(), &made)
        .await
        .expect("create c");
    case.write("c.yaml", &configmap("c", &[("k", "from-git")]));
    let second = case.apply(&[]).await;
    second.expect_code(0);
    assert_eq!(second.action_of(&case.id("ConfigMap", "c")), "configured");
    assert_eq!(
        case.configmap_value("c", "k").await.as_deref(),
        Some("from-git")
    );

    // Another inventory's object, new to this one: refused, not taken over.
    let other = Case::new("firstread-other").await;
    other.write("d.yaml", &configmap("d", &[("k", "mine")]));
    other.apply(&[]).await.expect_code(0);
    let dir = other.dir.path().to_str().expect("utf-8");
    let taken = driftless(&[
        "apply",
        dir,
        "--inventory",
        &case.inventory,
        "-n",
        other.name(),
    ])
    .await;
    assert_ne!(taken.code, Some(0), "{}", taken.stdout);
    assert!(
        taken.stderr.contains(&other.inventory),
        "names the inventory that owns it: {}",
        taken.stderr
    );
    assert_eq!(
        other.configmap_value("d", "k").await.as_deref(),
        Some("mine")
    );
}

#[tokio::test]
async fn changed_value_is_configured() {
    let case = Case::new("update").await;
    case.write("colour.yaml", &configmap("colour", &[("value", "blue")]));
    case.write("other.yaml", &configmap("other", &[("k", "v")]));
    case.apply(&[]).await.expect_code(0);
    assert_eq!(
        case.configmap_value("colour", "value").await.as_deref(),
        Some("blue")
    );

    let unchanged = case.apply(&[]).await;
    unchanged.expect_code(0);
    let base = unchanged.json()["requests"].as_u64().expect("requests");

    case.write(
        "colour.yaml",
        &configmap("colour", &[("value", "red"), ("extra", "1")]),
    );
    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("ConfigMap", "colour")), "configured");
    // What one change costs beyond an unchanged run: its dry-run, its apply and one write of
    // the inventory shard holding its new hash. Nothing is dry-run or written twice.
    assert_eq!(
        run.json()["requests"].as_u64(),
        Some(base + 3),
        "{}",
        run.stdout
    );
    assert_eq!(run.action_of(&case.id("ConfigMap", "other")), "unchanged");
    assert_eq!(
        case.configmap_value("colour", "value").await.as_deref(),
        Some("red")
    );
    assert_eq!(
        case.configmap_value("colour", "extra").await.as_deref(),
        Some("1")
    );
}

// ---------------------------------------------------------------------------------------------
// Removal of a field kubectl apply (client-side) set
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn field_set_by_kubectl_client_side_apply_is_removed() {
    let case = Case::new("csa").await;
    let kubectl_dir = tempfile::tempdir().expect("temp dir");
    write_file(
        kubectl_dir.path(),
        "cm.yaml",
        &configmap("handmade", &[("a", "1"), ("b", "2")]),
    );
    let path = kubectl_dir.path().join("cm.yaml");
    let out = case.ns.kubectl(&[
        "apply",
        "-n",
        case.name(),
        "-f",
        path.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        case.configmap_value("handmade", "b").await.as_deref(),
        Some("2")
    );

    case.write("cm.yaml", &configmap("handmade", &[("a", "1")]));
    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(
        run.action_of(&case.id("ConfigMap", "handmade")),
        "configured"
    );
    let cm = case.configmap("handmade").await.expect("handmade exists");
    let data = cm.data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert!(
        !data.contains_key("b"),
        "key b, set by kubectl apply and removed from the manifest, must go: {data:?}"
    );
    let annotations = cm.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"),
        "kubectl's last-applied annotation should be dropped: {annotations:?}"
    );

    // And it stays that way: the next run has nothing to do.
    let again = case.apply(&[]).await;
    again.expect_code(0);
    assert_eq!(
        again.action_of(&case.id("ConfigMap", "handmade")),
        "unchanged"
    );
}

// ---------------------------------------------------------------------------------------------
// One invalid object among 50 valid ones
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_objects_among_fifty_valid_ones_change_nothing() {
    let case = Case::new("invalid").await;
    let valid: Vec<String> = (0..50)
        .map(|i| configmap(&format!("good-{i:02}"), &[("i", &i.to_string())]))
        .collect();
    case.write("good.yaml", &valid.join("---\n"));
    case.write(
        "broken-deploy.yaml",
        &fixture("invalid-deployment.yaml", &[]),
    );
    case.write("broken-cm.yaml", &fixture("invalid-configmap.yaml", &[]));

    let run = case.apply(&["--prune"]).await;
    run.expect_code(1);
    run.expect_stderr(&[
        "broken-deploy.yaml",
        &case.id("Deployment", "no-selector"),
        "broken-cm.yaml",
        &case.id("ConfigMap", "nested"),
        "nothing was changed",
    ]);
    assert!(
        !run.stderr.contains("good-"),
        "only the invalid objects are named:\n{}",
        run.stderr
    );
    assert_eq!(case.labelled_configmaps().await, Vec::<String>::new());
    assert!(case.configmap("good-00").await.is_none());
    assert!(case.configmap("good-49").await.is_none());
    assert!(case.deployment("no-selector").await.is_none());
    assert_eq!(
        case.shards(&case.inventory).await,
        vec![],
        "not even the inventory is written"
    );
}

// ---------------------------------------------------------------------------------------------
// Unknown kind
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_kind_changes_nothing() {
    let case = Case::new("unknown").await;
    case.write("ok.yaml", &configmap("fine", &[("k", "v")]));
    case.write(
        "sub/nope.yaml",
        "apiVersion: example.com/v1\nkind: Nope\nmetadata:\n  name: thing\n",
    );
    let run = case.apply(&[]).await;
    run.expect_code(1);
    run.expect_stderr(&["sub/nope.yaml", "Nope", "example.com/v1", "unknown kind"]);
    assert!(case.configmap("fine").await.is_none());
    assert_eq!(case.shards(&case.inventory).await, vec![]);
}

// ---------------------------------------------------------------------------------------------
// Duplicate objects in two files
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_object_in_two_files_changes_nothing() {
    let case = Case::new("dup").await;
    case.write("a.yaml", &configmap("twice", &[("from", "a")]));
    // The same object once the default namespace is filled in.
    case.write(
        "b.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\n  namespace: {}\ndata:\n  from: b\n",
            case.name()
        ),
    );
    case.write("c.yaml", &configmap("single", &[("k", "v")]));
    let run = case.apply(&[]).await;
    run.expect_code(1);
    run.expect_stderr(&[
        "a.yaml",
        "b.yaml",
        "defined twice",
        &case.id("ConfigMap", "twice"),
    ]);
    assert!(case.configmap("twice").await.is_none());
    assert!(case.configmap("single").await.is_none());
}
