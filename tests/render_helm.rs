//! Helm charts rendered without a cluster: the library's render of a chart (from the
//! repository and from a chart repository with credentials) compared with what the pinned
//! `helm template` (`target/dev-cluster/bin/helm`) prints, values files and inline values, CRDs,
//! hooks as Argo CD treats them, and the output limit and the timeout that stop a tool.
//!
//! Fixtures are under `tests/fixtures/helm/` (a chart with values, CRDs and hooks; a values
//! file outside it), copied into a temporary directory with `__NAMESPACE__` replaced. Charts
//! written for the cluster's capabilities are `tests/helm_charts.rs`; applying a chart is
//! `tests/render_apply.rs`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use driftless::render::helm::RepoCredentials;
use driftless::render::spec::HelmSpec;
use driftless::render::{RenderContext, RenderSpec, Tools, render};
use serde_json::{Value, json};
use support::git_servers::ChartRepoServer;
use support::render::{expect_ok, find, fixture_copy, objects, render_at, tool_objects, tools};
use support::{cluster_bin, eventually};

fn helm_template(chart: &str, release: &str, ns: &str, values: &[&Path]) -> Vec<Value> {
    let mut cmd = Command::new(cluster_bin("helm"));
    cmd.args([
        "template",
        release,
        chart,
        "--namespace",
        ns,
        "--include-crds",
    ]);
    for v in values {
        cmd.arg("--values").arg(v);
    }
    tool_objects(cmd)
}

fn is_test_hook(o: &Value) -> bool {
    o["metadata"]["annotations"]["helm.sh/hook"] == "test"
}

fn chart_spec(values: Value) -> RenderSpec {
    RenderSpec {
        helm: Some(HelmSpec {
            chart: Some("guestbook".into()),
            values_files: vec!["values/prod.yaml".into()],
            values: Some(values),
            ..HelmSpec::default()
        }),
        ..RenderSpec::default()
    }
}

#[tokio::test]
async fn a_chart_renders_as_helm_template_with_crds_values_and_hooks_as_argo_cd() {
    let repo = fixture_copy("helm", "render-ns");
    let ours = render_at(
        repo.path(),
        "",
        &chart_spec(json!({"greeting": "inline wins"})),
        vec![],
        None,
    )
    .await
    .expect("renders");
    let inline = repo.path().join("inline.yaml");
    std::fs::write(&inline, "greeting: inline wins\n").expect("write");
    let theirs = helm_template(
        repo.path().join("guestbook").to_str().expect("utf-8"),
        "gb",
        "render-ns",
        &[&repo.path().join("values/prod.yaml"), &inline],
    );
    assert!(theirs.iter().any(is_test_hook), "helm prints the test hook");
    let expected: Vec<Value> = theirs.into_iter().filter(|o| !is_test_hook(o)).collect();
    assert_eq!(objects(&ours), expected);
    let objs = objects(&ours);
    find(
        &objs,
        "CustomResourceDefinition",
        "widgets.render.driftless.test",
    );
    assert_eq!(find(&objs, "Widget", "gb-widget")["spec"]["size"], "small");
    let deploy = find(&objs, "Deployment", "gb");
    assert_eq!(
        deploy["spec"]["replicas"], 2,
        "values file from the repository"
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/guestbook:2.0.0"
    );
    assert_eq!(
        find(&objs, "ConfigMap", "gb-config")["data"]["greeting"],
        "inline wins"
    );
    assert_eq!(
        find(&objs, "Job", "gb-migrate")["metadata"]["annotations"]["helm.sh/hook"],
        "pre-install,pre-upgrade"
    );
    let sources: Vec<String> = ours.iter().map(|m| m.source.to_string()).collect();
    assert!(
        sources.contains(&"guestbook/templates/deployment.yaml".to_string()),
        "{sources:?}"
    );

    phase_a_path_with_chart_yaml_renders_as_a_chart(repo.path()).await;
    phase_a_values_file_outside_the_repository_is_refused(repo.path()).await;
}

/// A path holding Chart.yaml renders as a chart without a helm section (default values,
/// the release named by the context).
async fn phase_a_path_with_chart_yaml_renders_as_a_chart(repo: &Path) {
    let plain = render_at(repo, "guestbook", &RenderSpec::default(), vec![], None)
        .await
        .expect("renders");
    let expected: Vec<Value> = helm_template(
        repo.join("guestbook").to_str().expect("utf-8"),
        "gb",
        "render-ns",
        &[],
    )
    .into_iter()
    .filter(|o| !is_test_hook(o))
    .collect();
    assert_eq!(objects(&plain), expected);
}

/// A values file outside the repository is refused.
async fn phase_a_values_file_outside_the_repository_is_refused(repo: &Path) {
    let outside = RenderSpec {
        helm: Some(HelmSpec {
            chart: Some("guestbook".into()),
            values_files: vec!["../../etc/passwd".into()],
            ..HelmSpec::default()
        }),
        ..RenderSpec::default()
    };
    let err = render_at(repo, "", &outside, vec![], None)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("resolves outside the repository"),
        "{err}"
    );
}

#[tokio::test]
async fn a_chart_from_a_chart_repository_with_credentials() {
    let repo = fixture_copy("helm", "render-ns");
    let www = tempfile::tempdir().expect("tempdir");
    let helm = |args: &[&str]| {
        let out = Command::new(cluster_bin("helm"))
            .args(args)
            .output()
            .expect("helm");
        expect_ok(&format!("helm {args:?}"), &out);
    };
    let www_dir = www.path().to_str().expect("utf-8");
    helm(&[
        "package",
        repo.path().join("guestbook").to_str().expect("utf-8"),
        "-d",
        www_dir,
    ]);
    helm(&["repo", "index", www_dir]);
    let server = ChartRepoServer::start(www.path(), "charts", "s3cret-pw");
    let spec = RenderSpec {
        helm: Some(HelmSpec {
            chart: Some("guestbook".into()),
            repository: Some(server.url()),
            version: Some("0.3.0".into()),
            values: Some(json!({"greeting": "from the repository"})),
            ..HelmSpec::default()
        }),
        ..RenderSpec::default()
    };
    let creds = |password: &str| {
        Some(RepoCredentials {
            username: "charts".into(),
            password: password.into(),
        })
    };
    let ours = render_at(repo.path(), "", &spec, vec![], creds("s3cret-pw"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let inline = repo.path().join("inline.yaml");
    std::fs::write(&inline, "greeting: from the repository\n").expect("write");
    let expected: Vec<Value> = helm_template(
        repo.path().join("guestbook").to_str().expect("utf-8"),
        "gb",
        "render-ns",
        &[&inline],
    )
    .into_iter()
    .filter(|o| !is_test_hook(o))
    .collect();
    assert_eq!(objects(&ours), expected);
    // lighttpd flushes its access log about once a second.
    eventually(
        "the chart download in the server's access log",
        Duration::from_secs(10),
        || async {
            server
                .log()
                .contains("GET /guestbook-0.3.0.tgz")
                .then_some(())
        },
    )
    .await;

    let err = render_at(repo.path(), "", &spec, vec![], creds("wrong"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password is not in the message: {err}"
    );
    let err = render_at(repo.path(), "", &spec, vec![], None)
        .await
        .expect_err("no creds")
        .to_string();
    assert!(err.contains("helm failed"), "{err}");
}

#[tokio::test]
async fn the_output_limit_and_the_timeout_stop_a_tool() {
    let repo = fixture_copy("helm", "render-ns");
    let spec = chart_spec(json!({}));
    let limited = |limits: driftless::render::ExecLimits| Tools { limits, ..tools() };
    let run = |tools: Tools| {
        let spec = spec.clone();
        let root = repo.path().to_path_buf();
        async move {
            let ctx = RenderContext {
                repo_root: &root,
                path: Path::new(""),
                release_name: "gb",
                namespace: "render-ns",
                vars_from: vec![],
                helm_credentials: None,
                tools: &tools,
                capabilities: None,
                is_upgrade: false,
                lookup: None,
                decryption: None,
            };
            render(&spec, &ctx)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let err = run(limited(driftless::render::ExecLimits {
        max_output_bytes: 1000,
        ..Default::default()
    }))
    .await
    .expect_err("too much output");
    assert_eq!(
        err,
        "cannot render the chart guestbook: helm printed more than the output limit of 1000 \
         bytes and was stopped"
    );
    let err = run(limited(driftless::render::ExecLimits {
        timeout: Duration::from_millis(1),
        ..Default::default()
    }))
    .await
    .expect_err("too slow");
    assert!(
        err.contains("helm did not finish within 1ms and was stopped"),
        "{err}"
    );
    run(tools()).await.expect("the defaults are enough");
}
