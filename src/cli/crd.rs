//! `driftless crd`: the GitSync CustomResourceDefinition as YAML.

use std::process::ExitCode;

use anyhow::Result;
use driftless::agent::crd::GitSync;
use kube::CustomResourceExt;

/// Prints the CRD.
///
/// # Errors
/// Serialising it.
pub fn run() -> Result<ExitCode> {
    let crd = GitSync::crd();
    print!("{}", driftless::diff::to_yaml(&serde_json::to_value(&crd)?));
    Ok(ExitCode::SUCCESS)
}
