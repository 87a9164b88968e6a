//! `driftless diff`: what `apply --prune` would change, as unified diffs.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use driftless::apply::SyncOptions;
use driftless::cluster::Connection;

use super::args::{DiffArgs, ToolFlags};
use super::output::print_warnings;
use super::render_input;

/// Prints the diffs and the objects that would be pruned; exit code 0 with none, 1 with some.
///
/// # Errors
/// Rendering, reaching the cluster or the dry-run (exit code 2).
pub async fn run(conn: &Connection<'_>, tools: &ToolFlags, args: DiffArgs) -> Result<ExitCode> {
    let set = &args.set;
    let manifests = render_input::load(conn, tools, &set.dir, &set.render, &set.namespace).await?;
    let opts = SyncOptions {
        prune: true,
        ..super::sync_options(&args.set)?
    };
    let engine = super::engine(conn).await?;
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
