//! `driftless sync`: ask the agent to sync a GitSync now, and with `--wait` print the result.

use std::process::ExitCode;

use anyhow::Result;
use driftless::agent::control;
use driftless::cluster::{self, Connection};

use super::args::SyncArgs;

/// Requests the sync; with `--wait`, exit code 1 when it does not succeed in time.
///
/// # Errors
/// The cluster's, before the request is made.
pub async fn run(conn: &Connection<'_>, args: SyncArgs) -> Result<ExitCode> {
    let client = cluster::client(conn).await?;
    let ns = super::namespace_or_default(args.target.namespace, &client);
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
