//! What the commands print: change sets, the API server's warnings, the progress line, tables,
//! and errors on one line.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use driftless::apply::{Progress, SyncOptions};
use driftless::change::{ApiWarning, ChangeSet};

use super::args::Output;

/// The error and its causes on one line, each cause once: many of our messages already quote
/// their cause (`cannot render the chart x: helm failed: ...`), and anyhow's `{:#}` would print
/// it again after them.
pub fn report(e: &anyhow::Error) -> String {
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

/// The API server's warnings (deprecated versions), on stderr as kubectl prints them, whatever
/// the output format: `warning: <file>: <object>: <message>`.
pub fn print_warnings(warnings: &[ApiWarning]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// A change set on stdout: a line per object and the summary, or JSON.
///
/// # Errors
/// Writing to stdout.
pub fn print_changes(changes: &ChangeSet, output: Output) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(changes)?)?,
        Output::Text => {
            for c in &changes.changes {
                writeln!(out, "{c}")?;
            }
            for phase in &changes.phases {
                writeln!(out, "phase {phase}")?;
            }
            for (object, fields) in &changes.ignored {
                writeln!(
                    out,
                    "{object} left to other managers: {}",
                    fields.join(", ")
                )?;
            }
            writeln!(out, "{}", changes.summary())?;
        }
    }
    Ok(())
}

/// A progress line on stderr, refreshed while the sync runs; [`ProgressLine::clear`] removes
/// it.
pub struct ProgressLine(tokio::task::JoinHandle<()>);

impl ProgressLine {
    /// Starts the line for the sync that runs with `opts`.
    pub fn start(opts: &mut SyncOptions) -> Self {
        let progress = Arc::new(Progress::default());
        opts.progress = Some(progress.clone());
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let (phase, done, total) = progress.snapshot();
                if total > 0 {
                    eprint!("\r\x1b[2K{phase}: {done}/{total}");
                }
            }
        }))
    }

    /// Stops refreshing and erases the line.
    pub fn clear(self) {
        self.0.abort();
        eprint!("\r\x1b[2K");
    }
}

/// Rows under a header, columns padded to their widest cell but the last, two spaces apart.
pub fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    for line in table(header, rows) {
        println!("{line}");
    }
}

fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Vec<String> {
    let header = header.map(String::from);
    let all: Vec<&[String; N]> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..N)
        .map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    all.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:w$}  ", w = widths[i]));
                }
            }
            line
        })
        .collect()
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
    fn table_columns_fit_their_widest_cell_and_the_last_is_not_padded() {
        let rows = [["team/app".to_string(), "True".into(), "x".into()]];
        assert_eq!(
            super::table(["NAME", "READY", "MESSAGE"], &rows),
            ["NAME      READY  MESSAGE", "team/app  True   x"]
        );
    }
}
