//! `driftless identity`: the SSH deploy key, generated into its Secret when there is none.

use std::process::ExitCode;

use anyhow::Result;
use driftless::cluster::{self, Connection};
use driftless::source::keys::{self, KeyType};

use super::args::IdentityArgs;

/// Prints the public key (or its fingerprint).
///
/// # Errors
/// An unknown key type, the cluster's, or a key that does not parse.
pub async fn run(conn: &Connection<'_>, args: IdentityArgs) -> Result<ExitCode> {
    let kind = KeyType::choose(args.ssh_key_type.as_deref(), args.url.as_deref())
        .map_err(anyhow::Error::msg)?;
    let client = cluster::client(conn).await?;
    let pair = keys::ensure_identity(
        &client,
        &args.namespace,
        &args.secret,
        kind,
        &args.comment,
        args.regenerate,
    )
    .await?;
    if args.fingerprint {
        println!(
            "{}",
            keys::fingerprint(&pair.public).map_err(anyhow::Error::msg)?
        );
    } else {
        println!("{}", pair.public);
    }
    Ok(ExitCode::SUCCESS)
}
