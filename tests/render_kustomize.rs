//! Kustomize rendering without a cluster: overlays rendered by the library exactly as the
//! pinned `kustomize build` (`target/dev-cluster/bin/kustomize`) prints them, its errors, remote
//! bases, Flux-style overrides on top of a build, and Flux-style variable substitution (the
//! library and `driftless render --set-var`).
//!
//! Fixtures are under `tests/fixtures/kustomize/` (a base, a component, three overlays), copied
//! into a temporary directory with `__NAMESPACE__` replaced. Applying rendered sets to the
//! cluster is `tests/render_apply.rs`.

mod support;

use std::path::Path;
use std::time::Duration;

use driftless::render::spec::{ImageOverride, KustomizeSpec, PatchSpec, PostBuildSpec};
use driftless::render::{RenderContext, RenderSpec, Tools, render};
use serde_json::json;
use support::cli::Cli;
use support::render::{expect_ok, find, fixture_copy, kustomize_build, objects, render_at, tools};

#[tokio::test]
async fn kustomize_overlays_render_exactly_as_kustomize_build() {
    let repo = fixture_copy("kustomize", "render-ns");
    for overlay in ["overlays/staging", "overlays/prod"] {
        let ours = render_at(repo.path(), overlay, &RenderSpec::default(), vec![], None)
            .await
            .unwrap_or_else(|e| panic!("{overlay}: {e}"));
        let theirs = kustomize_build(&repo.path().join(overlay));
        assert_eq!(objects(&ours), theirs, "{overlay}");
        assert!(ours.iter().all(|m| m.source.file == Path::new(overlay)));
    }
    let prod = objects(
        &render_at(
            repo.path(),
            "overlays/prod",
            &RenderSpec::default(),
            vec![],
            None,
        )
        .await
        .expect("prod"),
    );
    let cm = find(&prod, "ConfigMap", "guestbook-config-");
    let cm_name = cm["metadata"]["name"].as_str().expect("name");
    assert_ne!(
        cm_name, "guestbook-config",
        "configMapGenerator hash suffix"
    );
    assert_eq!(cm["data"]["COLOR"], "green", "overlay merge");
    assert_eq!(cm["data"]["METRICS"], "on", "component merge");
    let deploy = find(&prod, "Deployment", "guestbook");
    assert_eq!(deploy["metadata"]["namespace"], "render-ns");
    assert_eq!(deploy["spec"]["replicas"], 3, "strategic merge patch");
    let pod = &deploy["spec"]["template"];
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.example/guestbook-prod:2.0.0"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
        cm_name
    );
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"], "true",
        "component"
    );
    assert_eq!(
        find(&prod, "Service", "guestbook")["spec"]["ports"][0]["port"],
        8080,
        "JSON 6902 patch"
    );
    let staging = objects(
        &render_at(
            repo.path(),
            "overlays/staging",
            &RenderSpec::default(),
            vec![],
            None,
        )
        .await
        .expect("staging"),
    );
    assert_eq!(
        find(&staging, "Deployment", "guestbook")["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/guestbook:1.1.0-rc.1"
    );
    assert_eq!(
        find(&staging, "Service", "guestbook")["metadata"]["name"],
        "guestbook-staging"
    );
}

#[tokio::test]
async fn a_failing_kustomize_build_names_the_path_and_the_tool_message() {
    let repo = fixture_copy("kustomize", "render-ns");
    let err = render_at(
        repo.path(),
        "overlays/broken",
        &RenderSpec::default(),
        vec![],
        None,
    )
    .await
    .expect_err("a patch without a target fails");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot render overlays/broken: kustomize failed: "),
        "{msg}"
    );
    assert!(
        msg.contains("no matches for Id Deployment.v1.apps/no-such-deployment"),
        "{msg}"
    );
}

#[tokio::test]
async fn remote_bases_are_refused_unless_allowed() {
    let repo = tempfile::tempdir().expect("tempdir");
    let dir = repo.path().join("app");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n  - https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n",
    )
    .expect("write");
    let err = render_at(repo.path(), "app", &RenderSpec::default(), vec![], None)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("app/kustomization.yaml: resource \"https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\" is not in the repository: remote bases are off"),
        "{err}"
    );
    // Allowed, the network is still needed: no network here, so kustomize itself fails (and
    // says so), which proves the check was passed and the tool was asked.
    let spec = RenderSpec {
        kustomize: Some(KustomizeSpec {
            allow_remote_bases: true,
            ..KustomizeSpec::default()
        }),
        ..RenderSpec::default()
    };
    let tools = Tools {
        limits: driftless::render::ExecLimits {
            timeout: Duration::from_secs(20),
            ..Default::default()
        },
        ..tools()
    };
    let ctx = RenderContext {
        repo_root: repo.path(),
        path: Path::new("app"),
        release_name: "x",
        namespace: "x",
        vars_from: vec![],
        helm_credentials: None,
        tools: &tools,
        capabilities: None,
        is_upgrade: false,
        lookup: None,
        decryption: None,
    };
    let err = render(&spec, &ctx).await.expect_err("offline").to_string();
    assert!(!err.contains("remote bases are off"), "{err}");
}

#[tokio::test]
async fn flux_style_overrides_apply_on_top_of_the_build() {
    let repo = fixture_copy("kustomize", "render-ns");
    let spec = RenderSpec {
        kustomize: Some(KustomizeSpec {
            name_prefix: Some("team-".into()),
            images: vec![ImageOverride {
                name: "registry.example/guestbook-prod".into(),
                new_tag: Some("2.0.1".into()),
                ..ImageOverride::default()
            }],
            patches: vec![PatchSpec {
                patch: "- op: replace\n  path: /spec/replicas\n  value: 5\n".into(),
                target: Some(json!({"kind": "Deployment"})),
            }],
            common_metadata: Some(driftless::render::spec::CommonMetadata {
                labels: [("team".to_string(), "payments".to_string())].into(),
                annotations: [("owner".to_string(), "payments@example".to_string())].into(),
            }),
            ..KustomizeSpec::default()
        }),
        ..RenderSpec::default()
    };
    let out = render_at(repo.path(), "overlays/prod", &spec, vec![], None)
        .await
        .expect("renders");
    let objs = objects(&out);
    let deploy = find(&objs, "Deployment", "team-guestbook");
    assert_eq!(deploy["spec"]["replicas"], 5);
    assert_eq!(deploy["metadata"]["labels"]["team"], "payments");
    assert_eq!(
        deploy["metadata"]["annotations"]["owner"],
        "payments@example"
    );
    assert!(
        deploy["spec"]["selector"]["matchLabels"]
            .get("team")
            .is_none(),
        "selectors untouched"
    );
    let template = &deploy["spec"]["template"]["metadata"];
    assert!(
        template["labels"].get("team").is_none(),
        "pod template untouched (Flux's commonMetadata)"
    );
    assert!(
        template["annotations"].get("owner").is_none(),
        "pod template untouched"
    );
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/guestbook-prod:2.0.1");
    let cm = find(&objs, "ConfigMap", "team-guestbook-config-");
    assert_eq!(
        c["envFrom"][0]["configMapRef"]["name"], cm["metadata"]["name"],
        "reference renamed"
    );
    assert!(
        out.iter().all(|m| m.object["metadata"]["annotations"]
            .get("render.driftless.dev/source")
            .is_none()),
        "the temporary source annotation is gone"
    );
    assert!(
        out.iter()
            .all(|m| m.source.file == Path::new("overlays/prod"))
    );

    phase_the_overrides_on_plain_manifests_keep_each_file(&spec).await;
    phase_a_patch_that_does_not_apply(repo.path()).await;
}

/// The same overrides on plain manifests keep each object's file.
async fn phase_the_overrides_on_plain_manifests_keep_each_file(spec: &RenderSpec) {
    let plain = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(plain.path().join("app")).expect("mkdir");
    std::fs::write(
        plain.path().join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
    )
    .expect("write");
    let out = render_at(plain.path(), "app", spec, vec![], None)
        .await
        .expect("renders");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].object["metadata"]["name"], "team-settings");
    assert_eq!(out[0].source.to_string(), "app/cm.yaml");
}

/// A patch that does not apply: kustomize's message, the path named.
async fn phase_a_patch_that_does_not_apply(repo: &Path) {
    let bad = RenderSpec {
        kustomize: Some(KustomizeSpec {
            patches: vec![PatchSpec {
                patch: "- op: replace\n  path: /spec/nope/0\n  value: 1\n".into(),
                target: Some(json!({"kind": "Deployment"})),
            }],
            ..KustomizeSpec::default()
        }),
        ..RenderSpec::default()
    };
    let err = render_at(repo, "overlays/prod", &bad, vec![], None)
        .await
        .expect_err("bad patch")
        .to_string();
    assert!(
        err.starts_with(
            "cannot apply the kustomize overrides to overlays/prod: kustomize failed: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn substitution_from_variables_with_defaults_and_opt_out() {
    let repo = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(repo.path().join("app")).expect("mkdir");
    std::fs::write(
        repo.path().join("app/objects.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-${ENV}\nspec:\n  replicas: ${REPLICAS:=1}\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: \"nginx:${TAG:=1.27}\"}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations: {kustomize.toolkit.fluxcd.io/substitute: disabled}\ndata: {run.sh: 'echo ${HOME}'}\n",
    )
    .expect("write");
    let spec = RenderSpec {
        post_build: Some(PostBuildSpec {
            substitute: [("ENV".to_string(), "prod".to_string())].into(),
            ..PostBuildSpec::default()
        }),
        ..RenderSpec::default()
    };
    let from_cm = [
        ("REPLICAS".to_string(), "4\n".to_string()),
        ("ENV".to_string(), "lost".to_string()),
    ]
    .into();
    let out = objects(
        &render_at(repo.path(), "app", &spec, vec![from_cm], None)
            .await
            .expect("renders"),
    );
    let d = find(&out, "Deployment", "web-");
    assert_eq!(
        d["metadata"]["name"], "web-prod",
        "inline wins over substituteFrom"
    );
    assert_eq!(d["spec"]["replicas"], 4, "a number again, newline removed");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        find(&out, "ConfigMap", "script")["data"]["run.sh"],
        "echo ${HOME}"
    );

    // The CLI: --set-var turns substitution on.
    let out = Cli::new()
        .render_tools()
        .arg("render")
        .arg(repo.path().join("app"))
        .args(["--set-var", "ENV=dev", "--set-var", "REPLICAS=2"])
        .output();
    let yaml = expect_ok("render --set-var", &out);
    assert!(
        yaml.contains("name: web-dev") && yaml.contains("replicas: 2"),
        "{yaml}"
    );

    let bad = RenderSpec {
        post_build: Some(PostBuildSpec {
            substitute: [("BAD-NAME".to_string(), "x".to_string())].into(),
            ..PostBuildSpec::default()
        }),
        ..RenderSpec::default()
    };
    let err = render_at(repo.path(), "app", &bad, vec![], None)
        .await
        .expect_err("bad name");
    assert!(
        err.to_string().contains("'BAD-NAME' var name is invalid"),
        "{err}"
    );
}
