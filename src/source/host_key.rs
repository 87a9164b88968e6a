//! What a refused SSH host key says: the key the server presents, scanned again with
//! `ssh-keyscan` and shown by fingerprint, so the user can check it and pin it.

use std::time::Duration;

use super::fetch::{FetchRequest, SourceError};

/// Builds [`SourceError::HostKey`], naming the fingerprints the server presents (asked again
/// with `ssh-keyscan`, since ssh in batch mode does not print them for an unknown host).
pub(super) async fn host_key_error(req: &FetchRequest, stderr: &str) -> SourceError {
    let host = req.url.host().unwrap_or("").to_string();
    let port = req.url.port().unwrap_or(22).to_string();
    let scan = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("ssh-keyscan")
            .args(["-T", "5", "-p", &port, "--", &host])
            .output(),
    )
    .await;
    let keys = match scan {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    };
    let seen: Vec<String> = keys
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            let line = format!("{} {}", parts.next()?, parts.next()?);
            let fp = super::keys::fingerprint(&line).ok()?;
            Some(format!("{fp} ({})", line.split(' ').next().unwrap_or("")))
        })
        .collect();
    let seen = if seen.is_empty() {
        "a key that could not be read again".to_string()
    } else {
        seen.join(", ")
    };
    let detail = stderr.lines().last().unwrap_or("").trim().to_string();
    SourceError::HostKey {
        host: format!("{host}:{port}"),
        seen,
        detail,
    }
}
