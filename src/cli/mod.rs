//! The `driftless` command line: arguments (`args`), logging, what is printed (`output`), how
//! a directory is rendered as the agent would (`render_input`), and one file per command. Each
//! command calls the library and prints its result; it decides nothing the agent decides
//! differently.
//!
//! Exit codes: 0 success, 1 the command ran but found changes (`diff`) or failed to apply or
//! sync, 2 an error before any of that (arguments, cluster, rendering).

mod agent;
mod apply;
pub mod args;
mod crd;
mod diff;
mod identity;
pub mod logging;
mod notify;
pub mod output;
mod plan;
mod render;
mod render_input;
mod status;
mod suspend;
mod sync;

use std::process::ExitCode;

use anyhow::Result;
use driftless::apply::{Engine, SyncOptions};
use driftless::cluster::{self, Connection};
use kube::Client;

use args::{Cli, Command, SetArgs};

/// Runs the parsed command.
///
/// # Errors
/// Whatever stops the command before it has a result to print (exit code 2).
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let conn = Connection {
        kubeconfig: cli.kubeconfig.as_deref(),
        context: cli.context.as_deref(),
    };
    match cli.command {
        Command::Render(args) => render::run(&conn, &cli.tools, args).await,
        Command::Apply(args) => apply::run(&conn, &cli.tools, args).await,
        Command::Diff(args) => diff::run(&conn, &cli.tools, args).await,
        Command::Plan(args) => plan::run(&conn, &cli.tools, args).await,
        Command::Identity(args) => identity::run(&conn, args).await,
        Command::Agent(args) => agent::run(&conn, &cli.tools, args).await,
        Command::Status(args) => status::run(&conn, args).await,
        Command::Sync(args) => sync::run(&conn, args).await,
        Command::Suspend(args) => suspend::run(&conn, args, true).await,
        Command::Resume(args) => suspend::run(&conn, args, false).await,
        Command::Notify(command) => notify::run(&conn, command).await,
        Command::Crd => crd::run(),
    }
}

/// The options `apply` and `diff` share.
fn sync_options(set: &SetArgs) -> Result<SyncOptions> {
    let (ignore, checks) = render_input::sync_policies(&set.render)?;
    Ok(SyncOptions {
        inventory: set.inventory.clone(),
        inventory_namespace: set.inventory_namespace.clone(),
        default_namespace: set.namespace.clone(),
        concurrency: set.concurrency,
        ignore,
        health_checks: std::sync::Arc::new(checks),
        ..SyncOptions::default()
    })
}

async fn engine(conn: &Connection<'_>) -> Result<Engine> {
    let client = cluster::client(conn).await?;
    Ok(Engine::new(client).await?)
}

/// `--namespace`, else the kubeconfig context's.
fn namespace_or_default(namespace: Option<String>, client: &Client) -> String {
    namespace.unwrap_or_else(|| client.default_namespace().to_string())
}
