//! The dev cluster is a real control plane: the pinned version answers, workloads become
//! Ready on kwok nodes, CRDs work, and RBAC is enforced. Everything else is tested on it.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;
use support::{TestNamespace, eventually, kubectl};

/// The version the wrapper module pins, read from its go.mod.
fn pinned_kubernetes_version() -> String {
    let gomod = support::repo_root().join("tools/cluster/kubernetes/go.mod");
    let text = std::fs::read_to_string(&gomod).expect("read tools/cluster/kubernetes/go.mod");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("require k8s.io/kubernetes "))
        .map(|v| v.trim().to_string())
        .expect("go.mod pins k8s.io/kubernetes")
}

#[tokio::test]
async fn version_is_the_pinned_one() {
    let cluster = support::cluster().await;
    let info = cluster
        .client
        .apiserver_version()
        .await
        .expect("GET /version");
    assert_eq!(info.git_version, pinned_kubernetes_version());
    assert_eq!(info.major, "1");
}

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid test fixture")
}

#[tokio::test]
async fn deployment_becomes_available_on_kwok_nodes() {
    let ns = TestNamespace::new("deploy").await;
    let api: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    let deploy: Deployment = from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
            }
        }
    }));
    api.create(&PostParams::default(), &deploy)
        .await
        .expect("create deployment");
    let available = eventually(
        "deployment web to become Available",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                let d = api.get("web").await.ok()?;
                let status = d.status?;
                (status.available_replicas == Some(2)).then_some(status)
            }
        },
    )
    .await;
    assert_eq!(available.ready_replicas, Some(2));

    let out = ns.kubectl(&[
        "get",
        "pods",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let nodes = String::from_utf8_lossy(&out.stdout);
    assert!(
        nodes.split_whitespace().count() == 2
            && nodes
                .split_whitespace()
                .all(|n| n.starts_with("kwok-node-")),
        "pods should run on kwok nodes, got {nodes:?}"
    );
}

#[tokio::test]
async fn job_completes() {
    let ns = TestNamespace::new("job").await;
    let api: Api<Job> = Api::namespaced(ns.client(), &ns.name);
    let job: Job = from_json(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "once", "image": "busybox:1.36", "command": ["true"]}]
        }}}
    }));
    api.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    eventually("job once to complete", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            let j = api.get("once").await.ok()?;
            let conds = j.status?.conditions?;
            conds
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn crd_becomes_established_and_serves_custom_resources() {
    let ns = TestNamespace::new("crd").await;
    let client = ns.client();
    let group = format!("{}.driftless.test", ns.name);
    let crd: CustomResourceDefinition = from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]
        }
    }));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    let name = format!("widgets.{group}");
    eventually("CRD to become Established", Duration::from_secs(30), || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let c = crds.get(&name).await.ok()?;
            let conds = c.status?.conditions?;
            conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;

    let ar = ApiResource {
        group: group.clone(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let widget: DynamicObject = from_json(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}
    }));
    // Discovery of a new CRD can lag its Established condition by a moment.
    let created = eventually(
        "custom resource to be created",
        Duration::from_secs(30),
        || {
            let widgets = widgets.clone();
            let widget = widget.clone();
            async move { widgets.create(&PostParams::default(), &widget).await.ok() }
        },
    )
    .await;
    assert_eq!(created.data["spec"]["size"], 3);
    crds.delete(&name, &Default::default())
        .await
        .expect("delete CRD");
}

#[tokio::test]
async fn user_without_rbac_rights_is_denied() {
    let ns = TestNamespace::new("rbac").await;
    // The admin impersonates a user that no binding grants anything.
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&ns.cluster.kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    config.auth_info.impersonate = Some("alice@example.com".into());
    let alice = Client::try_from(config).expect("client");
    let api: Api<ConfigMap> = Api::namespaced(alice, &ns.name);
    let err = api
        .list(&Default::default())
        .await
        .expect_err("alice must be denied");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other}"),
    }
    // The same request as admin succeeds: the denial is RBAC, not a broken client.
    let admin: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    admin
        .list(&Default::default())
        .await
        .expect("admin may list");
    let out = kubectl(
        &ns.cluster.kubeconfig,
        &[
            "auth",
            "can-i",
            "list",
            "configmaps",
            "-n",
            &ns.name,
            "--as",
            "alice@example.com",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
}
