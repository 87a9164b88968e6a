//! `driftless apply --prune` and the inventory, the real binary against the dev cluster: removed
//! files pruned in reverse kind order and only with `--prune`, the empty-set guard, the
//! inventory stored in the cluster and read back by the next process (in a namespace created
//! for it if need be), and two inventories in one namespace never touching each other's
//! objects.
//!
//! Each test is a [`Case`](support::case::Case): its own namespace, manifest directory and
//! inventory.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use support::DeleteOnDrop;
use support::case::Case;
use support::manifests::{configmap, deployment, write_file};

// ---------------------------------------------------------------------------------------------
// Prune of deleted files, prune order, and no prune without --prune
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn removed_files_are_pruned_in_reverse_kind_order_only_with_prune() {
    let case = Case::new("prune").await;
    case.write("cm.yaml", &configmap("settings", &[("k", "v")]));
    case.write("deploy.yaml", &deployment("web", 1, "nginx:1.27"));
    case.write("keep.yaml", &configmap("keep", &[("k", "v")]));
    case.apply(&[]).await.expect_code(0);
    assert!(case.deployment("web").await.is_some());

    case.remove("cm.yaml");
    case.remove("deploy.yaml");

    // Without --prune nothing is deleted (and the inventory keeps them for a later prune).
    let no_prune = case.apply(&[]).await;
    no_prune.expect_code(0);
    assert_eq!(
        no_prune.actions(),
        vec![(case.id("ConfigMap", "keep"), "unchanged".to_string())]
    );
    assert!(case.configmap("settings").await.is_some());
    assert!(case.deployment("web").await.is_some());

    let prune = case.apply(&["--prune"]).await;
    prune.expect_code(0);
    let actions = prune.actions();
    let position = |id: &str| {
        actions
            .iter()
            .position(|(i, a)| i == id && a == "pruned")
            .unwrap_or_else(|| panic!("{id} should be pruned: {actions:?}"))
    };
    let deploy_at = position(&case.id("Deployment", "web"));
    let cm_at = position(&case.id("ConfigMap", "settings"));
    assert!(
        deploy_at < cm_at,
        "the Deployment is pruned before the ConfigMap it may use: {actions:?}"
    );
    assert_eq!(prune.action_of(&case.id("ConfigMap", "keep")), "unchanged");
    case.gone(&case.deployments(), "web").await;
    case.gone(&case.configmaps(), "settings").await;
    assert!(case.configmap("keep").await.is_some());

    // The inventory forgot them: nothing left to prune.
    let after = case.apply(&["--prune"]).await;
    after.expect_code(0);
    assert_eq!(
        after.actions(),
        vec![(case.id("ConfigMap", "keep"), "unchanged".to_string())]
    );
}

// ---------------------------------------------------------------------------------------------
// The empty-set guard
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn empty_set_prunes_only_with_allow_empty() {
    let case = Case::new("empty").await;
    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    case.write("b.yaml", &configmap("cm-b", &[("k", "b")]));
    case.apply(&[]).await.expect_code(0);
    case.remove("a.yaml");
    case.remove("b.yaml");

    let refused = case.apply(&["--prune"]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["empty", "--allow-empty", "2 object(s)"]);
    assert!(case.configmap("cm-a").await.is_some());
    assert!(case.configmap("cm-b").await.is_some());

    let run = case.apply(&["--prune", "--allow-empty"]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-a")), "pruned");
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-b")), "pruned");
    case.gone(&case.configmaps(), "cm-a").await;
    case.gone(&case.configmaps(), "cm-b").await;
}

// ---------------------------------------------------------------------------------------------
// The inventory in the cluster, read back by a fresh process
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inventory_is_stored_in_the_cluster_and_read_by_the_next_process() {
    let case = Case::new("inv").await;
    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    case.write("b.yaml", &configmap("cm-b", &[("k", "b")]));
    case.apply(&[]).await.expect_code(0);

    let shards = case.shards(&case.inventory).await;
    assert_eq!(shards.len(), 1, "{shards:?}");
    let (name, text) = &shards[0];
    assert_eq!(name, &format!("driftless-inv-{}-0", case.inventory));
    let line_of = |text: &str, object: &str| -> Option<Vec<String>> {
        let prefix = format!("ConfigMap {}/{object} v1 ", case.name());
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .map(|l| l.split(' ').map(str::to_string).collect())
    };
    for object in ["cm-a", "cm-b"] {
        let fields =
            line_of(text, object).unwrap_or_else(|| panic!("{object} not in shard:\n{text}"));
        assert_eq!(fields.len(), 5, "{fields:?}");
        for hash in &fields[3..] {
            assert!(
                hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "hashes recorded after apply: {fields:?}"
            );
        }
    }
    assert_eq!(text.lines().filter(|l| !l.trim().is_empty()).count(), 2);

    // A separate process learns cm-b from the shard and prunes it.
    case.remove("b.yaml");
    let prune = case.apply(&["--prune"]).await;
    prune.expect_code(0);
    assert_eq!(prune.action_of(&case.id("ConfigMap", "cm-b")), "pruned");
    case.gone(&case.configmaps(), "cm-b").await;
    let shards = case.shards(&case.inventory).await;
    assert_eq!(shards.len(), 1);
    assert!(line_of(&shards[0].1, "cm-a").is_some(), "{shards:?}");
    assert!(line_of(&shards[0].1, "cm-b").is_none(), "{shards:?}");
}

#[tokio::test]
async fn a_missing_inventory_namespace_is_created() {
    let case = Case::new("inv-ns").await;
    let inv_ns = format!("{}-inv", case.name());
    let _inv_ns = DeleteOnDrop::new(&["namespace", &inv_ns]);
    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    case.apply(&["--inventory-namespace", &inv_ns])
        .await
        .expect_code(0);
    let shards: Api<ConfigMap> = Api::namespaced(case.ns.client(), &inv_ns);
    let shard = shards
        .get(&format!("driftless-inv-{}-0", case.inventory))
        .await
        .unwrap_or_else(|e| panic!("no inventory shard in the new namespace {inv_ns}: {e}"));
    let text = shard
        .data
        .and_then(|d| d.get("objects").cloned())
        .unwrap_or_default();
    assert!(
        text.starts_with(&format!("ConfigMap {}/cm-a v1 ", case.name())),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two inventories in one namespace
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn two_inventories_never_touch_each_others_objects() {
    let case = Case::new("twoinv").await;
    let inv_a = case.inventory.clone();
    let inv_b = format!("{}-b", case.inventory);
    let _shards_b = DeleteOnDrop::inventory(&inv_b);
    let dir_b = tempfile::tempdir().expect("temp dir");

    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    write_file(dir_b.path(), "b.yaml", &configmap("cm-b", &[("k", "b")]));
    case.apply(&[]).await.expect_code(0);
    case.apply_from(dir_b.path(), &inv_b, &[])
        .await
        .expect_code(0);

    // A replaces its object and prunes: B's object is not A's to prune.
    case.remove("a.yaml");
    case.write("a2.yaml", &configmap("cm-a2", &[("k", "a2")]));
    let run = case.apply(&["--prune"]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-a")), "pruned");
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-a2")), "created");
    assert!(
        !run.stdout.contains("cm-b"),
        "B's object is not reported by A:\n{}",
        run.stdout
    );
    case.gone(&case.configmaps(), "cm-a").await;
    let cm_b = case.configmap("cm-b").await.expect("cm-b untouched");
    assert_eq!(
        cm_b.metadata.labels.unwrap_or_default()["driftless.dev/inventory"],
        inv_b
    );

    // B claims A's object (and changes its own): refused, nothing changed.
    write_file(dir_b.path(), "b.yaml", &configmap("cm-b", &[("k", "b2")]));
    write_file(
        dir_b.path(),
        "steal.yaml",
        &configmap("cm-a2", &[("k", "b")]),
    );
    let steal = case.apply_from(dir_b.path(), &inv_b, &[]).await;
    steal.expect_code(1);
    steal.expect_stderr(&[
        "steal.yaml",
        &case.id("ConfigMap", "cm-a2"),
        "belongs to inventory",
        &inv_a,
    ]);
    let cm_a2 = case.configmap("cm-a2").await.expect("cm-a2 exists");
    assert_eq!(
        cm_a2.metadata.labels.unwrap_or_default()["driftless.dev/inventory"],
        inv_a
    );
    assert_eq!(cm_a2.data.unwrap_or_default()["k"], "a2");
    assert_eq!(
        case.configmap_value("cm-b", "k").await.as_deref(),
        Some("b")
    );

    // A empties its set: only its own object goes.
    case.remove("a2.yaml");
    let empty = case.apply(&["--prune", "--allow-empty"]).await;
    empty.expect_code(0);
    assert_eq!(
        empty.actions(),
        vec![(case.id("ConfigMap", "cm-a2"), "pruned".to_string())]
    );
    case.gone(&case.configmaps(), "cm-a2").await;
    assert!(case.configmap("cm-b").await.is_some());
}
