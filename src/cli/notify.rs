//! `driftless notify test PROVIDER`: one notification through a Provider, sent at once (no
//! queue, no retry), and the receiver's answer printed: the quickest way to check a webhook
//! URL, a token's scope or a CA bundle.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use driftless::agent::crd::GitSync;
use driftless::cluster::{self, Connection};
use driftless::notify::{Commit, Kind, Notification, Source, deliver, resolve, targets};
use kube::api::Api;

use super::args::{NotifyCommand, NotifyTestArgs};

/// Runs a `notify` subcommand.
///
/// # Errors
/// The cluster's, or a Provider that cannot send.
pub async fn run(conn: &Connection<'_>, command: NotifyCommand) -> Result<ExitCode> {
    match command {
        NotifyCommand::Test(args) => test(conn, args).await,
    }
}

async fn test(conn: &Connection<'_>, args: NotifyTestArgs) -> Result<ExitCode> {
    let client = cluster::client(conn).await?;
    let ns = super::namespace_or_default(args.namespace, &client);
    let provider = resolve::get(&client, &ns, &args.provider).await?;
    let resolved = resolve::resolve(&client, &provider).await?;
    let n = match &args.gitsync {
        Some(name) => {
            let gs = Api::<GitSync>::namespaced(client.clone(), &ns)
                .get(name)
                .await
                .with_context(|| format!("GitSync {ns}/{name}"))?;
            about(&gs, &args.cluster_name)
        }
        None if provider.spec.type_.is_forge() => {
            bail!("a commit status needs a commit: name the GitSync with --gitsync")
        }
        None => {
            let source = Source {
                namespace: ns.clone(),
                name: "test".into(),
                url: String::new(),
                cluster: args.cluster_name.clone(),
            };
            Notification::new(Kind::Test, source, "Test", TEST_MESSAGE)
        }
    };
    let Some(out) = targets::request(&resolved.target, &n)? else {
        bail!("the Provider has nothing to send for this test (no applied commit?)");
    };
    println!("{}", out.describe());
    let (type_, timeout) = (provider.spec.type_, resolved.options.timeout);
    match deliver::send_once(&resolved.client, &out, type_, timeout).await {
        Ok(answer) => {
            println!("{} {}", answer.status, answer.body);
            Ok(ExitCode::SUCCESS)
        }
        Err((e, _)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The GitSync's current state, as a test: `success` on its last applied commit when it is
/// Ready, else `failure` on the commit it last tried — re-posting it to a forge changes nothing
/// a sync would not.
fn about(gs: &GitSync, cluster: &str) -> Notification {
    let status = gs.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let ready_now = ready.is_some_and(|c| c.status == "True");
    let revision = if ready_now {
        status.last_applied_revision.as_deref()
    } else {
        status.last_attempted_revision.as_deref()
    };
    let (kind, reason, message) = match ready {
        Some(c) if ready_now => (
            Kind::Applied,
            c.reason.as_str(),
            format!("test: {}", c.message),
        ),
        Some(c) => (
            Kind::Failed,
            c.reason.as_str(),
            format!("test: {}", c.message),
        ),
        None => (Kind::Test, "Test", TEST_MESSAGE.to_string()),
    };
    let mut n = Notification::new(kind, Source::of(gs, cluster), reason, &message);
    n.commit = revision.map(Commit::of_revision);
    n
}

const TEST_MESSAGE: &str = "a test notification from `driftless notify test`";
