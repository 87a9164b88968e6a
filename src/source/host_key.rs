//! What a refused SSH host key says: the key the server presents, scanned again with
//! `ssh-keyscan` and shown by fingerprint, so the user can check it and pin it.

use std::time::Duration;

/// The fingerprints of the keys `host:port` presents (asked again with `ssh-keyscan`, since
/// ssh in batch mode does not print them for an unknown host), for the host key error.
pub(super) async fn presented(host: &str, port: &str) -> String {
    let scan = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("ssh-keyscan")
            .args(["-T", "5", "-p", port, "--", host])
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
    if seen.is_empty() {
        "a key that could not be read again".to_string()
    } else {
        seen.join(", ")
    }
}
