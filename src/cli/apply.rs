//! `driftless apply`: render, then the engine's whole write path, and the change set printed.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use driftless::apply::SyncOptions;
use driftless::cluster::Connection;

use super::args::{ApplyArgs, ToolFlags};
use super::output::{ProgressLine, print_changes, print_warnings};
use super::render_input;

/// Applies the directory; exit code 1 when the sync fails (with what it did printed first).
///
/// # Errors
/// Rendering or reaching the cluster, before anything is applied.
pub async fn run(conn: &Connection<'_>, tools: &ToolFlags, args: ApplyArgs) -> Result<ExitCode> {
    let set = &args.set;
    let manifests = render_input::load(conn, tools, &set.dir, &set.render, &set.namespace).await?;
    let mut opts = SyncOptions {
        prune: args.prune,
        allow_empty: args.allow_empty,
        dry_run: args.dry_run,
        wait: args.wait,
        timeout: args.timeout,
        force: args.force,
        force_conflicts: !args.no_force_conflicts,
        ..super::sync_options(&args.set)?
    };
    let engine = super::engine(conn).await?;
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| ProgressLine::start(&mut opts));
    let result = engine.sync(manifests, &opts).await;
    if let Some(p) = progress {
        p.clear();
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
