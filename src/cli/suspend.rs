//! `driftless suspend` and `driftless resume`: set or clear a GitSync's `spec.suspend`.

use std::process::ExitCode;

use anyhow::Result;
use driftless::agent::control;
use driftless::cluster::{self, Connection};

use super::args::NameArgs;

/// Suspends the GitSync (`on`) or resumes it.
///
/// # Errors
/// The cluster's.
pub async fn run(conn: &Connection<'_>, args: NameArgs, on: bool) -> Result<ExitCode> {
    let client = cluster::client(conn).await?;
    let ns = super::namespace_or_default(args.namespace, &client);
    control::set_suspend(&client, &ns, &args.name, on).await?;
    println!(
        "{ns}/{} {}",
        args.name,
        if on { "suspended" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}
