//! `driftless agent`: the deploy key when asked for, then the agent loop until it stops.

use std::process::ExitCode;

use anyhow::Result;
use driftless::agent::AgentOptions;
use driftless::agent::http::WebhookSecrets;
use driftless::agent::leader::LeaseConfig;
use driftless::cluster::{self, Connection};
use driftless::source::keys::{self, KeyType};
use driftless::ui::DeployKey;
use kube::Client;

use super::args::{AgentArgs, ToolFlags};

/// Runs the agent.
///
/// # Errors
/// The cluster's, the deploy key's, or the agent's when it stops on one.
pub async fn run(conn: &Connection<'_>, tools: &ToolFlags, args: AgentArgs) -> Result<ExitCode> {
    let config = cluster::config(conn).await?;
    let client = cluster::build(config.clone())?;
    let deploy_key = match &args.identity_secret {
        Some(secret) => Some(log_identity(&client, &args, secret).await?),
        None => None,
    };
    driftless::agent::run(config, options(tools, args, deploy_key)).await?;
    Ok(ExitCode::SUCCESS)
}

/// Ensures the deploy key in `secret` and logs its public key (Weave Flux's behaviour); returns
/// the public key for the web UI.
async fn log_identity(client: &Client, args: &AgentArgs, secret: &str) -> Result<DeployKey> {
    let kind = KeyType::choose(args.ssh_key_type.as_deref(), args.identity_url.as_deref())
        .map_err(anyhow::Error::msg)?;
    let pair = keys::ensure_identity(
        client,
        &args.identity_namespace,
        secret,
        kind,
        "driftless@cluster",
        false,
    )
    .await?;
    tracing::info!("{}", keys::identity_line(&pair.public));
    Ok(DeployKey {
        namespace: args.identity_namespace.clone(),
        secret: secret.to_string(),
        public: pair.public,
    })
}

fn options(tools: &ToolFlags, args: AgentArgs, deploy_key: Option<DeployKey>) -> AgentOptions {
    AgentOptions {
        cache_dir: args.cache_dir,
        concurrency: args.concurrency,
        namespace: args.watch_namespace,
        listen: Some(args.listen),
        webhooks: WebhookSecrets::from_env(),
        readonly: args.git_readonly,
        accept_new_host_keys: args.ssh_accept_new_host_keys,
        decryption_secret: args.decryption_secret.clone(),
        cluster_name: args.cluster_name.clone(),
        ui_listen: args.ui_listen,
        ui_health_interval: args.ui_health_interval,
        deploy_key,
        leader: args.leader_elect.then(|| LeaseConfig {
            namespace: args.leader_lease_namespace.clone(),
            name: args.leader_lease_name.clone(),
            identity: std::env::var("POD_NAME")
                .unwrap_or_else(|_| format!("driftless-{}", std::process::id())),
            duration: args.leader_lease_duration,
        }),
        render_tools: tools.tools(),
    }
}
