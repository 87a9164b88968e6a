//! `driftless status`: a table of GitSyncs, or one GitSync in detail (revision, commit,
//! objects and their health, history).

use std::process::ExitCode;

use anyhow::Result;
use driftless::agent::control;
use driftless::agent::crd::GitSync;
use driftless::agent::source_status::CREDENTIALS_IN_URL;
use driftless::cluster::{self, Connection};
use kube::Client;

use super::args::StatusArgs;
use super::output::print_table;

/// Prints the table, or the one GitSync named.
///
/// # Errors
/// The cluster's.
pub async fn run(conn: &Connection<'_>, args: StatusArgs) -> Result<ExitCode> {
    let client = cluster::client(conn).await?;
    let ns = super::namespace_or_default(args.namespace, &client);
    if let Some(name) = args.name {
        let gs = control::get(&client, &ns, &name).await?;
        print_one(&client, &gs).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let list = control::list(&client, (!args.all_namespaces).then_some(ns.as_str())).await?;
    let rows: Vec<[String; 5]> = list.iter().map(control::row).collect();
    print_table(["NAME", "READY", "REVISION", "REASON", "MESSAGE"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// One GitSync: its summary, its objects' health and its history.
async fn print_one(client: &Client, gs: &GitSync) -> Result<()> {
    let [id, ready, revision, reason, message] = control::row(gs);
    let status = gs.status.clone().unwrap_or_default();
    // Never the credential a user may have written into spec.url (#18).
    let url = driftless::source::url::parse(&gs.spec.url).map_or_else(
        |_| driftless::source::redact_all(&gs.spec.url),
        |u| u.masked(),
    );
    println!(
        "GitSync:   {id}\nURL:       {url}\nReady:     {ready} ({reason})\nMessage:   {message}"
    );
    if let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.type_ == CREDENTIALS_IN_URL)
    {
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
    let objects = control::objects(client, gs).await?;
    let width = objects.iter().map(|o| o.id.len()).max().unwrap_or(0);
    for o in &objects {
        println!("  {:width$}  {:<10} {}", o.id, o.health, o.message);
    }
    if !status.phases.is_empty() {
        println!("Phases:    {}", status.phases.join("; "));
    }
    if !status.ignored_fields.is_empty() {
        println!("Ignored (left to other field managers):");
        for (object, fields) in &status.ignored_fields {
            println!("  {object}  {}", fields.join(", "));
        }
    }
    println!("History:");
    for h in &status.history {
        println!(
            "  {}  {:<10} {:>7.2}s  {} created, {} configured, {} pruned  {}",
            h.started, h.result, h.duration_seconds, h.created, h.configured, h.pruned, h.revision
        );
    }
    Ok(())
}
