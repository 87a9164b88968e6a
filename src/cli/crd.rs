//! `driftless crd`: the CustomResourceDefinitions (GitSync, Provider, Alert) as YAML.

use std::process::ExitCode;

use anyhow::Result;
use driftless::agent::crd::GitSync;
use driftless::notify::{Alert, Provider};
use kube::CustomResourceExt;

/// Prints the CRDs, one YAML document each.
///
/// # Errors
/// Serialising it.
pub fn run() -> Result<ExitCode> {
    let crds = [GitSync::crd(), Provider::crd(), Alert::crd()];
    for (i, crd) in crds.iter().enumerate() {
        if i > 0 {
            println!("---");
        }
        print!("{}", driftless::diff::to_yaml(&serde_json::to_value(crd)?));
    }
    Ok(ExitCode::SUCCESS)
}
