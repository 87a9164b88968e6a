//! `driftless plan`: what a sync would do, checked against the live cluster, as text, JSON or
//! a pull-request comment in Markdown.
//!
//! Three ways to name what is planned: a directory and an inventory (as `diff`); a directory
//! and `--gitsync FILE` (the GitSync's inventory, options and ServiceAccount); or `--from NAME`
//! (a GitSync of the cluster, its repository fetched at `--ref` with its credentials and
//! rendered with its options, as the agent would). With a ServiceAccount, every read and
//! dry-run is made as it (impersonation), so what it may not write shows as `forbidden`.
//! Nothing is written: the engine's plan only reads and dry-runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use driftless::agent::crd::GitSync;
use driftless::agent::reconcile::{git_ref, sync_options};
use driftless::agent::rendering;
use driftless::apply::{Engine, Failure, FailureReason, Outcome, Plan, SyncOptions};
use driftless::cluster::{self, Connection};
use driftless::inputs;
use driftless::object::Manifest;
use driftless::preview::{self, Heading};
use driftless::render::RenderError;
use driftless::source::{Auth, FetchRequest, GitCache, GitRef, Snapshot, SourceError, url};
use kube::{Api, Client, ResourceExt};

use super::args::{PlanArgs, PlanOutput, RenderFlags, ToolFlags};
use super::render_input::{load_as, read_gitsync};

/// How long each Git operation of `--from` may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What is planned: the rendered set (or why it could not be rendered), the sync's options,
/// the heading, and the ServiceAccount the sync acts as.
struct Subject {
    manifests: Result<Vec<Manifest>, Failure>,
    opts: SyncOptions,
    heading: Heading,
    /// (namespace, name).
    service_account: Option<(String, String)>,
}

/// Prints the plan; exit code 0 with no changes, 1 with changes, 2 when the sync would fail.
///
/// # Errors
/// Reaching the cluster, reading the GitSync or its inventory, fetching (exit code 2).
pub async fn run(conn: &Connection<'_>, tools: &ToolFlags, args: PlanArgs) -> Result<ExitCode> {
    let client = cluster::client(conn).await?;
    let namespace = super::namespace_or_default(args.namespace.clone(), &client);
    let mut subject = match &args.from {
        Some(name) => from_cluster(conn, &client, tools, &args, name, &namespace).await?,
        None => from_dir(conn, tools, &args, &namespace).await?,
    };
    subject.opts.concurrency = args.concurrency;
    subject.heading.cluster.clone_from(&args.cluster_name);
    let engine = engine_as(conn, client, subject.service_account.as_ref()).await?;
    let plan = match subject.manifests {
        Ok(manifests) => engine.plan(manifests, &subject.opts).await?,
        Err(failure) => Plan::failed(vec![failure]),
    };
    print(&plan, &subject.heading, &args)?;
    Ok(match plan.outcome() {
        Outcome::NoChanges => ExitCode::SUCCESS,
        Outcome::Changes => ExitCode::from(1),
        Outcome::WouldFail => ExitCode::from(2),
    })
}

fn print(plan: &Plan, heading: &Heading, args: &PlanArgs) -> Result<()> {
    let out = match args.output {
        PlanOutput::Text => preview::text(plan, heading),
        PlanOutput::Json => {
            let mut json = serde_json::to_string_pretty(&preview::json(plan, heading))?;
            json.push('\n');
            json
        }
        PlanOutput::Markdown => preview::markdown(plan, heading, args.comment_limit),
    };
    print!("{out}");
    Ok(())
}

/// The engine, acting as `service_account` when there is one (its catalog and inventory reads
/// stay the user's, as the agent's stay its own).
async fn engine_as(
    conn: &Connection<'_>,
    client: Client,
    service_account: Option<&(String, String)>,
) -> Result<Engine> {
    let engine = Engine::new(client).await?;
    let Some((ns, name)) = service_account else {
        return Ok(engine);
    };
    let config = cluster::config(conn).await?;
    let as_sa = cluster::impersonating(&config, ns, name)
        .with_context(|| format!("cannot act as ServiceAccount {ns}/{name}"))?;
    Ok(engine.impersonating(as_sa))
}

/// DIR with `--inventory`, or with `--gitsync FILE` and what it implies.
async fn from_dir(
    conn: &Connection<'_>,
    tools: &ToolFlags,
    args: &PlanArgs,
    namespace: &str,
) -> Result<Subject> {
    let dir = args
        .dir
        .as_deref()
        .context("a directory or --from is required")?;
    let gitsync = args
        .render
        .gitsync
        .as_deref()
        .map(read_gitsync)
        .transpose()?
        // A GitSync manifest without a namespace is the one it would be in `namespace`.
        .map(|mut gs| {
            gs.metadata
                .namespace
                .get_or_insert_with(|| namespace.to_string());
            gs
        });
    let (opts, subject) = match (&args.inventory, &gitsync) {
        (Some(inventory), _) => {
            let mut opts = match &gitsync {
                Some(gs) => sync_options(gs),
                None => SyncOptions {
                    prune: true,
                    default_namespace: namespace.to_string(),
                    ..SyncOptions::default()
                },
            };
            opts.inventory.clone_from(inventory);
            opts.inventory_namespace = args
                .inventory_namespace
                .clone()
                .unwrap_or_else(|| "driftless-system".into());
            (opts, format!("inventory {inventory}"))
        }
        (None, Some(gs)) => {
            let mut opts = sync_options(gs);
            if let Some(ns) = &args.inventory_namespace {
                opts.inventory_namespace.clone_from(ns);
            }
            (opts, described(gs))
        }
        (None, None) => bail!("--inventory or --gitsync is required with a directory"),
    };
    let service_account = gitsync.as_ref().and_then(service_account);
    let manifests = load_as(conn, tools, dir, &args.render, namespace, gitsync)
        .await
        .map_err(|e| render_failure(&e, None));
    Ok(Subject {
        manifests,
        opts,
        heading: Heading {
            subject,
            ..Heading::default()
        },
        service_account,
    })
}

/// The GitSync NAME of the cluster: fetched at `--ref` (else its own ref), rendered with its
/// options and inputs.
async fn from_cluster(
    conn: &Connection<'_>,
    client: &Client,
    tools: &ToolFlags,
    args: &PlanArgs,
    name: &str,
    namespace: &str,
) -> Result<Subject> {
    let gs = Api::<GitSync>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .with_context(|| format!("cannot read GitSync {namespace}/{name}"))?;
    let cache_dir = tempfile::tempdir().context("cannot make a scratch directory")?;
    let (snapshot, revision) =
        fetch(client, &gs, args.git_ref.as_deref(), cache_dir.path()).await?;
    let dir = snapshot.root.join(rendering::clean(
        gs.spec.path.as_deref().unwrap_or_default(),
    ));
    let flags = RenderFlags {
        repo_root: Some(snapshot.root.clone()),
        is_upgrade: gs
            .status
            .as_ref()
            .is_some_and(|s| s.last_applied_revision.is_some()),
        gitsync: None,
        ..args.render.clone()
    };
    let manifests = load_as(conn, tools, &dir, &flags, namespace, Some(gs.clone()))
        .await
        .map_err(|e| render_failure(&e, Some(&snapshot.root)));
    Ok(Subject {
        manifests,
        opts: sync_options(&gs),
        heading: Heading {
            subject: described(&gs),
            revision: Some(revision),
            cluster: None,
        },
        service_account: service_account(&gs),
    })
}

/// Fetches the GitSync's repository at `wanted` (a commit SHA, else a branch, else a tag; its
/// own ref when `None`) with its credentials, and checks the commit out.
async fn fetch(
    client: &Client,
    gs: &GitSync,
    wanted: Option<&str>,
    cache_dir: &Path,
) -> Result<(Snapshot, String)> {
    let ns = gs.namespace().unwrap_or_default();
    let auth = match &gs.spec.secret_ref {
        Some(secret) => inputs::git_credentials(client, &ns, &secret.name)
            .await
            .map_err(anyhow::Error::msg)?,
        None => Auth::default(),
    };
    let mut req = FetchRequest {
        url: url::parse(&gs.spec.url)?,
        git_ref: git_ref(gs.spec.git_ref.as_ref())?,
        auth,
        timeout: FETCH_TIMEOUT,
    };
    let cache = GitCache::new(cache_dir);
    let fetched = match wanted {
        None => cache.fetch(&req).await?,
        Some(r) if is_sha(r) => {
            req.git_ref = Some(GitRef::commit(r)?);
            cache.fetch(&req).await?
        }
        Some(r) => {
            req.git_ref = Some(GitRef::branch(r)?);
            match cache.fetch(&req).await {
                Err(SourceError::RefNotFound { .. }) => {
                    req.git_ref = Some(GitRef::tag(r)?);
                    cache.fetch(&req).await?
                }
                other => other?,
            }
        }
    };
    let snapshot = cache.snapshot(&req, &fetched.revision.sha, "").await?;
    Ok((snapshot, fetched.revision.to_string()))
}

fn is_sha(r: &str) -> bool {
    r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}

fn described(gs: &GitSync) -> String {
    format!(
        "GitSync {}/{}",
        gs.namespace().unwrap_or_default(),
        gs.name_any()
    )
}

fn service_account(gs: &GitSync) -> Option<(String, String)> {
    let sa = gs
        .spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())?;
    Some((gs.namespace().unwrap_or_default(), sa.to_string()))
}

/// A render that failed, as the plan's failure: decryption or render, its message with the
/// scratch checkout's path taken out (paths are the repository's).
fn render_failure(e: &anyhow::Error, root: Option<&PathBuf>) -> Failure {
    let decryption = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<RenderError>(),
            Some(RenderError::Decrypt(_))
        )
    });
    let reason = if decryption {
        FailureReason::Decryption
    } else {
        FailureReason::Render
    };
    let mut message = format!("{e:#}");
    if let Some(root) = root {
        let root = root.display().to_string();
        message = message.replace(&format!("{root}/"), "").replace(&root, ".");
    }
    Failure::of_set(reason, message)
}
