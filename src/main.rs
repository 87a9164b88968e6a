//! The `driftless` binary: a thin shell over the library. Parses arguments, calls the
//! pipeline, prints results, maps outcomes to exit codes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use driftless::apply::{Engine, Progress, SyncError, SyncOptions};
use driftless::change::ChangeSet;
use driftless::cluster::{self, Catalog, Connection};
use driftless::plan::{Plan, ValidationError, static_scope, validate};

mod cli_render;
use cli_render::{RenderFlags, ToolFlags};

/// driftless: make a Kubernetes cluster match a directory of manifests (and, as an agent, a
/// Git branch).
#[derive(Parser)]
#[command(name = "driftless", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, env = "KUBECONFIG", hide_env_values = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(flatten)]
    tools: ToolFlags,
}

#[derive(Subcommand)]
enum Command {
    /// Print the ordered, validated multi-document YAML that would be applied.
    Render(RenderArgs),
    /// Apply a directory of manifests: validate, dry-run, server-side apply, prune, wait.
    Apply(ApplyArgs),
    /// Show what `apply` would change as unified diffs (exit 0: none, 1: changes, 2: error).
    Diff(DiffArgs),
    /// Print the SSH deploy key, generating it into its Secret when there is none.
    Identity(IdentityArgs),
    /// Run the agent: keep every GitSync applied (in-cluster config or kubeconfig).
    Agent(AgentArgs),
    /// Print the GitSync CustomResourceDefinition (`driftless crd | kubectl apply -f -`).
    Crd,
    /// Table of GitSyncs; with a name, its revision, history and managed objects.
    Status(StatusArgs),
    /// Ask the agent to sync a GitSync now; with --wait, print the result.
    Sync(SyncArgs),
    /// Stop applying changes for a GitSync.
    Suspend(NameArgs),
    /// Apply changes again for a suspended GitSync.
    Resume(NameArgs),
}

#[derive(Args)]
struct NameArgs {
    /// The GitSync.
    name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
}

#[derive(Args)]
struct StatusArgs {
    /// One GitSync (default: all).
    name: Option<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// All namespaces.
    #[arg(long, short = 'A')]
    all_namespaces: bool,
}

#[derive(Args)]
struct SyncArgs {
    #[command(flatten)]
    target: NameArgs,
    /// Wait until the agent has synced and print the result.
    #[arg(long)]
    wait: bool,
    /// Bound of --wait.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
struct AgentArgs {
    /// Where Git repositories are cached.
    #[arg(
        long,
        default_value = "/tmp/driftless-cache",
        env = "DRIFTLESS_CACHE_DIR"
    )]
    cache_dir: PathBuf,
    /// GitSyncs reconciled at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Watch GitSyncs in this namespace only (default: all namespaces).
    #[arg(long)]
    watch_namespace: Option<String>,
    /// Secret holding the SSH deploy key: generated at start when empty, and its public key
    /// logged as `identity.pub="..."` (Weave Flux's behaviour).
    #[arg(long)]
    identity_secret: Option<String>,
    /// Namespace of --identity-secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "driftless-system")]
    identity_namespace: String,
    /// Repository URL the key is for (RSA for Azure DevOps, ed25519 otherwise).
    #[arg(long)]
    identity_url: Option<String>,
    /// Key type to generate instead: rsa, ecdsa or ed25519.
    #[arg(long)]
    ssh_key_type: Option<String>,
    /// Never push to Git (no sync tag, whatever the GitSyncs say): the applied revision is
    /// recorded in status only (Weave Flux's `--git-readonly`).
    #[arg(long)]
    git_readonly: bool,
    /// Trust an SSH host key seen for the first time for a host that has no known_hosts entry
    /// (trust on first use; a changed key is still refused). Off by default: strict checking.
    #[arg(long)]
    ssh_accept_new_host_keys: bool,
    /// Address for webhooks (`/hook/{generic,github,gitlab,azure-devops}`), `/metrics`,
    /// `/healthz` and `/readyz`. Webhook secrets come from the environment
    /// (DRIFTLESS_WEBHOOK_TOKEN, DRIFTLESS_GITHUB_SECRET, DRIFTLESS_GITLAB_TOKEN,
    /// DRIFTLESS_AZURE_DEVOPS_BASIC_AUTH).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Elect a leader on a coordination.k8s.io Lease: with several replicas only the leader
    /// reconciles; a standby takes over within the lease duration.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "driftless-leader")]
    leader_lease_name: String,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "driftless-system")]
    leader_lease_namespace: String,
    /// Lease duration.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_lease_duration: Duration,
}

#[derive(Args)]
struct IdentityArgs {
    /// The Secret holding the key (`identity`, `identity.pub`).
    #[arg(long, default_value = "driftless-git-deploy")]
    secret: String,
    /// Namespace of the Secret.
    #[arg(long, short = 'n', default_value = "driftless-system")]
    namespace: String,
    /// Print the key's SHA-256 fingerprint instead of the key.
    #[arg(long)]
    fingerprint: bool,
    /// Replace the key with a new one (the old one stops working once removed from the host).
    #[arg(long)]
    regenerate: bool,
    /// Key type to generate: rsa, ecdsa or ed25519 (default: rsa for Azure DevOps URLs, else ed25519).
    #[arg(long)]
    ssh_key_type: Option<String>,
    /// The repository URL, to pick the key type the host accepts.
    #[arg(long)]
    url: Option<String>,
    /// Comment of a generated key (shown by the Git host next to the key).
    #[arg(long, default_value = "driftless@cluster")]
    comment: String,
}

#[derive(Args)]
struct RenderArgs {
    /// The directory of manifests.
    dir: PathBuf,
    /// Namespace for namespaced objects that name none.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    #[command(flatten)]
    render: RenderFlags,
}

#[derive(Args)]
struct SetArgs {
    /// The directory of manifests.
    dir: PathBuf,
    /// The inventory name: the set of objects this directory owns in the cluster.
    #[arg(long)]
    inventory: String,
    /// Namespace where the inventory is stored.
    #[arg(long, default_value = "driftless-system")]
    inventory_namespace: String,
    /// Namespace for namespaced objects that name none.
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,
    /// Concurrent API requests.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[command(flatten)]
    render: RenderFlags,
}

#[derive(Args)]
struct ApplyArgs {
    #[command(flatten)]
    set: SetArgs,
    /// Delete objects of the inventory that left the directory.
    #[arg(long)]
    prune: bool,
    /// Allow an empty directory to prune every object of the inventory.
    #[arg(long)]
    allow_empty: bool,
    /// Validate against the server (dry-run) and report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait until every object is healthy (Deployments Available, Jobs complete, ...).
    #[arg(long)]
    wait: bool,
    /// Bound of --wait, e.g. 90s, 5m.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// Recreate objects whose immutable fields changed.
    #[arg(long)]
    force: bool,
    /// Fail instead of taking over fields owned by other field managers.
    #[arg(long)]
    no_force_conflicts: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Output,
}

#[derive(Args)]
struct DiffArgs {
    #[command(flatten)]
    set: SetArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    driftless::duration::parse(s)
}

/// Whether log lines get ANSI colour: only on a terminal (a log file or a pipe to a log
/// collector would keep the escape codes as text), and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>).
fn log_colour(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    driftless::memory::limit_arenas();
    let json = std::env::args().any(|a| a == "--log-json");
    let agent = std::env::args().nth(1).as_deref() == Some("agent");
    let default = if agent {
        "driftless=info"
    } else {
        "driftless=warn"
    };
    let requested = std::env::var("DRIFTLESS_LOG").unwrap_or_default();
    let mut filter = Some(requested.as_str())
        .filter(|r| !r.is_empty())
        .and_then(|r| tracing_subscriber::EnvFilter::try_new(r).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    // NB: kube's client logs API error bodies at debug and response texts at trace, and those
    // can quote Secret values. A blanket `debug` must not leak them: kube stays at info unless
    // DRIFTLESS_LOG names it explicitly (docs/security.md).
    if !requested.contains("kube") {
        for directive in ["kube_client=info", "kube=info"] {
            if let Ok(d) = directive.parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(log_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    // Errors reach the user through our own messages; library logs only on request.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: many of our messages already quote
/// their cause (`cannot render the chart x: helm failed: ...`), and anyhow's `{:#}` would print
/// it again after them.
fn report(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let conn = Connection {
        kubeconfig: cli.kubeconfig.as_deref(),
        context: cli.context.as_deref(),
    };
    match cli.command {
        Command::Render(args) => render(&conn, &cli.tools, args).await,
        Command::Apply(args) => apply(&conn, &cli.tools, args).await,
        Command::Diff(args) => diff(&conn, &cli.tools, args).await,
        Command::Identity(args) => identity(&conn, args).await,
        Command::Agent(args) => agent(&conn, &cli.tools, args).await,
        Command::Status(args) => status(&conn, args).await,
        Command::Sync(args) => sync_now(&conn, args).await,
        Command::Suspend(args) => suspend(&conn, args, true).await,
        Command::Resume(args) => suspend(&conn, args, false).await,
        Command::Crd => {
            use kube::CustomResourceExt;
            let crd = driftless::agent::crd::GitSync::crd();
            print!("{}", driftless::diff::to_yaml(&serde_json::to_value(&crd)?));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn render(conn: &Connection<'_>, tools: &ToolFlags, args: RenderArgs) -> Result<ExitCode> {
    let manifests = cli_render::load(conn, tools, &args.dir, &args.render, &args.namespace).await?;
    let valid = match validate(manifests.clone(), &static_scope(), &args.namespace) {
        Ok(valid) => valid,
        // A version Kubernetes 1.36 no longer serves may still be served by an older cluster:
        // its answer counts, and without one the error names what 1.36 serves.
        Err(errors)
            if errors
                .iter()
                .all(|e| matches!(e, ValidationError::VersionNotServed { .. })) =>
        {
            let client = cluster::client(conn).await.ok();
            let catalog = match client {
                Some(c) => Catalog::discover(&c).await.ok(),
                None => None,
            };
            let Some(catalog) = catalog else {
                return Err(SyncError::Invalid(errors).into());
            };
            validate(manifests, &catalog, &args.namespace).map_err(SyncError::Invalid)?
        }
        Err(errors)
            if errors.iter().all(|e| {
                matches!(
                    e,
                    ValidationError::UnknownKind { .. } | ValidationError::VersionNotServed { .. }
                )
            }) =>
        {
            // Kinds that are not built in: ask the cluster.
            let client = cluster::client(conn).await.context(
                "the set has kinds that are not built into Kubernetes; resolving them needs API \
                 discovery, and no cluster could be reached",
            )?;
            let catalog = Catalog::discover(&client).await?;
            validate(manifests, &catalog, &args.namespace).map_err(SyncError::Invalid)?
        }
        Err(errors) => return Err(SyncError::Invalid(errors).into()),
    };
    let mut out = std::io::stdout().lock();
    for m in Plan::new(valid).manifests() {
        writeln!(out, "---\n# Source: {}", m.source)?;
        write!(out, "{}", driftless::diff::to_yaml(&m.object))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn sync_options(set: &SetArgs) -> SyncOptions {
    SyncOptions {
        inventory: set.inventory.clone(),
        inventory_namespace: set.inventory_namespace.clone(),
        default_namespace: set.namespace.clone(),
        concurrency: set.concurrency,
        ..SyncOptions::default()
    }
}

async fn engine(conn: &Connection<'_>) -> Result<Engine> {
    let client = cluster::client(conn).await?;
    Ok(Engine::new(client).await?)
}

async fn apply(conn: &Connection<'_>, tools: &ToolFlags, args: ApplyArgs) -> Result<ExitCode> {
    let set = &args.set;
    let manifests = cli_render::load(conn, tools, &set.dir, &set.render, &set.namespace).await?;
    let mut opts = SyncOptions {
        prune: args.prune,
        allow_empty: args.allow_empty,
        dry_run: args.dry_run,
        wait: args.wait,
        timeout: args.timeout,
        force: args.force,
        force_conflicts: !args.no_force_conflicts,
        ..sync_options(&args.set)
    };
    let engine = engine(conn).await?;
    let ticker = std::io::stderr()
        .is_terminal()
        .then(|| show_progress(&mut opts));
    let result = engine.sync(manifests, &opts).await;
    if let Some(t) = ticker {
        t.abort();
        eprint!("\r\x1b[2K");
    }
    match result {
        Ok(changes) => {
            print_warnings(&changes.warnings);
            print_changes(&changes, args.output)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if let Some(changes) = e.changes() {
                print_warnings(&changes.warnings);
                print_changes(changes, args.output)?;
            }
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// On a terminal: a progress line on stderr, refreshed while the sync runs.
fn show_progress(opts: &mut SyncOptions) -> tokio::task::JoinHandle<()> {
    let progress = std::sync::Arc::new(Progress::default());
    opts.progress = Some(progress.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (phase, done, total) = progress.snapshot();
            if total > 0 {
                eprint!("\r\x1b[2K{phase}: {done}/{total}");
            }
        }
    })
}

/// The API server's warnings (deprecated versions), on stderr as kubectl prints them, whatever
/// the output format: `warning: <file>: <object>: <message>`.
fn print_warnings(warnings: &[driftless::change::ApiWarning]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn print_changes(changes: &ChangeSet, output: Output) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(changes)?)?,
        Output::Text => {
            for c in &changes.changes {
                writeln!(out, "{c}")?;
            }
            writeln!(out, "{}", changes.summary())?;
        }
    }
    Ok(())
}

async fn diff(conn: &Connection<'_>, tools: &ToolFlags, args: DiffArgs) -> Result<ExitCode> {
    let set = &args.set;
    let manifests = cli_render::load(conn, tools, &set.dir, &set.render, &set.namespace).await?;
    let opts = SyncOptions {
        prune: true,
        ..sync_options(&args.set)
    };
    let engine = engine(conn).await?;
    let preview = engine.preview(manifests, &opts).await?;
    print_warnings(&preview.warnings);
    let mut out = std::io::stdout().lock();
    for (_, d) in &preview.diffs {
        write!(out, "{d}")?;
    }
    for p in &preview.prunes {
        writeln!(out, "{p} would be pruned")?;
    }
    Ok(if preview.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn identity(conn: &Connection<'_>, args: IdentityArgs) -> Result<ExitCode> {
    use driftless::source::keys::{self, KeyType};
    let kind = KeyType::choose(args.ssh_key_type.as_deref(), args.url.as_deref())
        .map_err(anyhow::Error::msg)?;
    let client = cluster::client(conn).await?;
    let pair = keys::ensure_identity(
        &client,
        &args.namespace,
        &args.secret,
        kind,
        &args.comment,
        args.regenerate,
    )
    .await?;
    if args.fingerprint {
        println!(
            "{}",
            keys::fingerprint(&pair.public).map_err(anyhow::Error::msg)?
        );
    } else {
        println!("{}", pair.public);
    }
    Ok(ExitCode::SUCCESS)
}

async fn agent(conn: &Connection<'_>, tools: &ToolFlags, args: AgentArgs) -> Result<ExitCode> {
    use driftless::source::keys::{self, KeyType};
    let config = cluster::config(conn).await?;
    let client = cluster::build(config.clone())?;
    if let Some(secret) = &args.identity_secret {
        let kind = KeyType::choose(args.ssh_key_type.as_deref(), args.identity_url.as_deref())
            .map_err(anyhow::Error::msg)?;
        let pair = keys::ensure_identity(
            &client,
            &args.identity_namespace,
            secret,
            kind,
            "driftless@cluster",
            false,
        )
        .await?;
        tracing::info!("{}", keys::identity_line(&pair.public));
    }
    let opts = driftless::agent::AgentOptions {
        cache_dir: args.cache_dir,
        concurrency: args.concurrency,
        namespace: args.watch_namespace,
        listen: Some(args.listen),
        webhooks: driftless::agent::http::WebhookSecrets::from_env(),
        readonly: args.git_readonly,
        accept_new_host_keys: args.ssh_accept_new_host_keys,
        leader: args
            .leader_elect
            .then(|| driftless::agent::leader::LeaseConfig {
                namespace: args.leader_lease_namespace.clone(),
                name: args.leader_lease_name.clone(),
                identity: std::env::var("POD_NAME")
                    .unwrap_or_else(|_| format!("driftless-{}", std::process::id())),
                duration: args.leader_lease_duration,
            }),
        render_tools: tools.tools(),
    };
    driftless::agent::run(config, opts).await?;
    Ok(ExitCode::SUCCESS)
}

async fn status(conn: &Connection<'_>, args: StatusArgs) -> Result<ExitCode> {
    use driftless::agent::control;
    let client = cluster::client(conn).await?;
    let ns = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    if let Some(name) = args.name {
        let gs = control::get(&client, &ns, &name).await?;
        let [id, ready, revision, reason, message] = control::row(&gs);
        let status = gs.status.clone().unwrap_or_default();
        // Never the credential a user may have written into spec.url (#18).
        let url = driftless::source::url::parse(&gs.spec.url).map_or_else(
            |_| driftless::source::redact_all(&gs.spec.url),
            |u| u.masked(),
        );
        println!(
            "GitSync:   {id}\nURL:       {url}\nReady:     {ready} ({reason})\nMessage:   {message}"
        );
        let credentials = driftless::agent::source_status::CREDENTIALS_IN_URL;
        if let Some(c) = status.conditions.iter().find(|c| c.type_ == credentials) {
            println!("Warning:   {}", c.message);
        }
        println!("Applied:   {revision}");
        if let Some(c) = &status.last_applied_commit {
            println!("Commit:    {} ({})", c.subject, c.author);
        }
        println!(
            "Fetched:   {}",
            status.last_fetched_revision.unwrap_or_default()
        );
        let managed: Vec<String> = status
            .managed
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        println!("Objects:   {}", managed.join(", "));
        let objects = control::objects(&client, &gs).await?;
        let width = objects.iter().map(|o| o.id.len()).max().unwrap_or(0);
        for o in &objects {
            println!("  {:width$}  {:<10} {}", o.id, o.health, o.message);
        }
        println!("History:");
        for h in &status.history {
            println!(
                "  {}  {:<10} {:>7.2}s  {} created, {} configured, {} pruned  {}",
                h.started,
                h.result,
                h.duration_seconds,
                h.created,
                h.configured,
                h.pruned,
                h.revision
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let list = control::list(&client, (!args.all_namespaces).then_some(ns.as_str())).await?;
    let rows: Vec<[String; 5]> = list.iter().map(control::row).collect();
    let header = ["NAME", "READY", "REVISION", "REASON", "MESSAGE"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in std::iter::once(&header).chain(rows.iter()) {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync_now(conn: &Connection<'_>, args: SyncArgs) -> Result<ExitCode> {
    use driftless::agent::control;
    let client = cluster::client(conn).await?;
    let ns = args
        .target
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let since = control::request_sync(&client, &ns, &args.target.name).await?;
    if !args.wait {
        println!("sync requested for {ns}/{}", args.target.name);
        return Ok(ExitCode::SUCCESS);
    }
    match control::wait_synced(&client, &ns, &args.target.name, &since, args.timeout).await {
        Ok(gs) => {
            let [id, _, revision, _, message] = control::row(&gs);
            println!("{id} synced {revision}: {message}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {ns}/{}: {e}", args.target.name);
            Ok(ExitCode::from(1))
        }
    }
}

async fn suspend(conn: &Connection<'_>, args: NameArgs, on: bool) -> Result<ExitCode> {
    let client = cluster::client(conn).await?;
    let ns = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    driftless::agent::control::set_suspend(&client, &ns, &args.name, on).await?;
    println!(
        "{ns}/{} {}",
        args.name,
        if on { "suspended" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot render the chart x: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn a_cause_its_error_quotes_is_printed_once() {
        let e = anyhow::Error::new(Quoting(std::io::Error::other("helm failed: boom")))
            .context("cannot load manifests from app");
        assert_eq!(
            super::report(&e),
            "cannot load manifests from app: cannot render the chart x: helm failed: boom"
        );
        let plain = anyhow::Error::new(std::io::Error::other("denied")).context("cannot read f");
        assert_eq!(super::report(&plain), "cannot read f: denied");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use super::log_colour;
        assert!(log_colour(true, None));
        assert!(!log_colour(false, None), "a file or a pipe");
        assert!(!log_colour(true, Some("1".into())), "NO_COLOR=1");
        assert!(
            log_colour(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
    }
}
