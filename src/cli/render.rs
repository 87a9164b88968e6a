//! `driftless render`: the ordered, validated YAML that `apply` would send, offline when it
//! can be.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use driftless::apply::SyncError;
use driftless::cluster::{self, Catalog, Connection};
use driftless::object::Manifest;
use driftless::plan::{Plan, ValidationError, static_scope, validate};

use super::args::{RenderArgs, ToolFlags};
use super::render_input;

/// Prints the set as multi-document YAML, each document headed by the file it came from.
///
/// # Errors
/// Rendering or validation, naming the file and object.
pub async fn run(conn: &Connection<'_>, tools: &ToolFlags, args: RenderArgs) -> Result<ExitCode> {
    let manifests =
        render_input::load(conn, tools, &args.dir, &args.render, &args.namespace).await?;
    let valid = validated(conn, manifests, &args.namespace).await?;
    let mut out = std::io::stdout().lock();
    for m in Plan::new(valid).manifests() {
        writeln!(out, "---\n# Source: {}", m.source)?;
        let mut object = m.object.clone();
        if !args.show_secrets {
            driftless::diff::mask_secret_data(&mut object);
        }
        write!(out, "{}", driftless::diff::to_yaml(&object))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Validates against the built-in kinds of Kubernetes 1.36, and asks the cluster only about
/// what those do not answer.
async fn validated(
    conn: &Connection<'_>,
    manifests: Vec<Manifest>,
    namespace: &str,
) -> Result<Vec<Manifest>> {
    match validate(manifests.clone(), &static_scope(), namespace) {
        Ok(valid) => Ok(valid),
        // A version Kubernetes 1.36 no longer serves may still be served by an older cluster:
        // its answer counts, and without one the error names what 1.36 serves.
        Err(errors)
            if errors
                .iter()
                .all(|e| matches!(e, ValidationError::VersionNotServed { .. })) =>
        {
            let client = cluster::client(conn).await.ok();
            let catalog = match client {
                Some(c) => Catalog::discover(&c).await.ok(),
                None => None,
            };
            let Some(catalog) = catalog else {
                return Err(SyncError::Invalid(errors).into());
            };
            Ok(validate(manifests, &catalog, namespace).map_err(SyncError::Invalid)?)
        }
        Err(errors)
            if errors.iter().all(|e| {
                matches!(
                    e,
                    ValidationError::UnknownKind { .. } | ValidationError::VersionNotServed { .. }
                )
            }) =>
        {
            // Kinds that are not built in: ask the cluster.
            let client = cluster::client(conn).await.context(
                "the set has kinds that are not built into Kubernetes; resolving them needs API \
                 discovery, and no cluster could be reached",
            )?;
            let catalog = Catalog::discover(&client).await?;
            Ok(validate(manifests, &catalog, namespace).map_err(SyncError::Invalid)?)
        }
        Err(errors) => Err(SyncError::Invalid(errors).into()),
    }
}
