//! The command line: every subcommand's arguments and flags, with their defaults and help
//! texts. Parsing only; what a command does is in its own file next to this one.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use driftless::render::{ExecLimits, Tools};

/// driftless: make a Kubernetes cluster match a directory of manifests (and, as an agent, a
/// Git branch).
#[derive(Parser)]
#[command(name = "driftless", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, env = "KUBECONFIG", hide_env_values = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(flatten)]
    pub tools: ToolFlags,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the ordered, validated multi-document YAML that would be applied.
    Render(RenderArgs),
    /// Apply a directory of manifests: validate, dry-run, server-side apply, prune, wait.
    Apply(ApplyArgs),
    /// Show what `apply` would change as unified diffs (exit 0: none, 1: changes, 2: error).
    Diff(DiffArgs),
    /// What a sync would do, checked against the live cluster: objects to create, change (with
    /// diffs), prune and leave alone, and every reason it would fail; as text, JSON or Markdown
    /// for a pull request (exit 0: no changes, 1: changes, 2: would fail).
    Plan(PlanArgs),
    /// Print the SSH deploy key, generating it into its Secret when there is none.
    Identity(IdentityArgs),
    /// Run the agent: keep every GitSync applied (in-cluster config or kubeconfig).
    Agent(AgentArgs),
    /// Print the CustomResourceDefinitions: GitSync, Provider, Alert (`driftless crd | kubectl apply -f -`).
    Crd,
    /// Table of GitSyncs; with a name, its revision, history and managed objects.
    Status(StatusArgs),
    /// Ask the agent to sync a GitSync now; with --wait, print the result.
    Sync(SyncArgs),
    /// Stop applying changes for a GitSync.
    Suspend(NameArgs),
    /// Notifications: `notify test PROVIDER` sends a test message and prints the answer.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Apply changes again for a suspended GitSync.
    Resume(NameArgs),
}

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send a test notification through a Provider and print the receiver's answer. For a
    /// forge (commit status), --gitsync names the GitSync whose last applied commit gets its
    /// current state again.
    Test(NotifyTestArgs),
}

#[derive(Args)]
pub struct NotifyTestArgs {
    /// The Provider.
    pub provider: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The GitSync (same namespace) the test is about; required for commit status providers.
    #[arg(long)]
    pub gitsync: Option<String>,
    /// The cluster's name in the commit status context, as the agent's `--cluster-name`.
    #[arg(long, env = "DRIFTLESS_CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,
}

#[derive(Args)]
pub struct NameArgs {
    /// The GitSync.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

#[derive(Args)]
pub struct StatusArgs {
    /// One GitSync (default: all).
    pub name: Option<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
}

#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub target: NameArgs,
    /// Wait until the agent has synced and print the result.
    #[arg(long)]
    pub wait: bool,
    /// Bound of --wait.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args)]
pub struct AgentArgs {
    /// Where Git repositories are cached.
    #[arg(
        long,
        default_value = "/tmp/driftless-cache",
        env = "DRIFTLESS_CACHE_DIR"
    )]
    pub cache_dir: PathBuf,
    /// GitSyncs reconciled at once. 16: a small GitSync's sync is mostly waiting on the API
    /// server, so 1,000 of them finish in 0.6 of the time they take 4 at a time
    /// (docs/benchmarks.md, workload 4); one large sync holds one slot of 16.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
    /// Watch GitSyncs in this namespace only (default: all namespaces).
    #[arg(long)]
    pub watch_namespace: Option<String>,
    /// Secret holding the SSH deploy key: generated at start when empty, and its public key
    /// logged as `identity.pub="..."` (Weave Flux's behaviour).
    #[arg(long)]
    pub identity_secret: Option<String>,
    /// Namespace of --identity-secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "driftless-system")]
    pub identity_namespace: String,
    /// Repository URL the key is for (RSA for Azure DevOps, ed25519 otherwise).
    #[arg(long)]
    pub identity_url: Option<String>,
    /// Key type to generate instead: rsa, ecdsa or ed25519.
    #[arg(long)]
    pub ssh_key_type: Option<String>,
    /// Never push to Git (no sync tag, whatever the GitSyncs say): the applied revision is
    /// recorded in status only (Weave Flux's `--git-readonly`).
    #[arg(long)]
    pub git_readonly: bool,
    /// Trust an SSH host key seen for the first time for a host that has no known_hosts entry
    /// (trust on first use; a changed key is still refused). Off by default: strict checking.
    #[arg(long)]
    pub ssh_accept_new_host_keys: bool,
    /// A Secret, NAMESPACE/NAME, of SOPS keys (`*.agekey`, `*.asc`) that every GitSync with
    /// `spec.decryption` may use besides its own (Flux's global age keys); read with the
    /// agent's own identity at each sync that decrypts.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_secret_name)]
    pub decryption_secret: Option<(String, String)>,
    /// This cluster's name in commit status contexts (`driftless/<cluster>/<namespace>/<name>`),
    /// so that each cluster applying a commit has its own check on the pull request.
    #[arg(long, env = "DRIFTLESS_CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,
    /// Address for webhooks (`/hook/{generic,github,gitlab,azure-devops}`), `/metrics`,
    /// `/healthz` and `/readyz`. Webhook secrets come from the environment
    /// (DRIFTLESS_WEBHOOK_TOKEN, DRIFTLESS_GITHUB_SECRET, DRIFTLESS_GITLAB_TOKEN,
    /// DRIFTLESS_AZURE_DEVOPS_BASIC_AUTH).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// Address of the web UI (an overview of every GitSync, a page per GitSync with its resource
    /// tree and live diff, live updates); off unless set, e.g. `0.0.0.0:8090`. Reading needs no
    /// login: expose it only to those who may read GitSync status (a port-forward, or an
    /// Ingress with authentication). Sync now, suspend and resume need a Kubernetes bearer
    /// token whose user may `patch` the GitSync.
    #[arg(long, value_name = "ADDR")]
    pub ui_listen: Option<std::net::SocketAddr>,
    /// How often the web UI counts again the health of the objects of a GitSync with some
    /// object not healthy, for the overview (five times less often when all are; at once
    /// after a sync).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub ui_health_interval: Duration,
    /// Elect a leader on a coordination.k8s.io Lease: with several replicas only the leader
    /// reconciles; a standby takes over within the lease duration.
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "driftless-leader")]
    pub leader_lease_name: String,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "driftless-system")]
    pub leader_lease_namespace: String,
    /// Lease duration.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_lease_duration: Duration,
}

#[derive(Args)]
pub struct IdentityArgs {
    /// The Secret holding the key (`identity`, `identity.pub`).
    #[arg(long, default_value = "driftless-git-deploy")]
    pub secret: String,
    /// Namespace of the Secret.
    #[arg(long, short = 'n', default_value = "driftless-system")]
    pub namespace: String,
    /// Print the key's SHA-256 fingerprint instead of the key.
    #[arg(long)]
    pub fingerprint: bool,
    /// Replace the key with a new one (the old one stops working once removed from the host).
    #[arg(long)]
    pub regenerate: bool,
    /// Key type to generate: rsa, ecdsa or ed25519 (default: rsa for Azure DevOps URLs, else ed25519).
    #[arg(long)]
    pub ssh_key_type: Option<String>,
    /// The repository URL, to pick the key type the host accepts.
    #[arg(long)]
    pub url: Option<String>,
    /// Comment of a generated key (shown by the Git host next to the key).
    #[arg(long, default_value = "driftless@cluster")]
    pub comment: String,
}

#[derive(Args)]
pub struct RenderArgs {
    /// The directory of manifests.
    pub dir: PathBuf,
    /// Namespace for namespaced objects that name none.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Print Secret values as they would be applied (decrypted ones included); by default
    /// they are masked, so the output can be pasted into a ticket or a PR.
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub render: RenderFlags,
}

#[derive(Args)]
pub struct SetArgs {
    /// The directory of manifests.
    pub dir: PathBuf,
    /// The inventory name: the set of objects this directory owns in the cluster.
    #[arg(long)]
    pub inventory: String,
    /// Namespace where the inventory is stored.
    #[arg(long, default_value = "driftless-system")]
    pub inventory_namespace: String,
    /// Namespace for namespaced objects that name none.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Concurrent API requests.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[command(flatten)]
    pub render: RenderFlags,
}

#[derive(Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Delete objects of the inventory that left the directory.
    #[arg(long)]
    pub prune: bool,
    /// Allow an empty directory to prune every object of the inventory.
    #[arg(long)]
    pub allow_empty: bool,
    /// Validate against the server (dry-run) and report; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until every object is healthy (Deployments Available, Jobs complete, ...).
    #[arg(long)]
    pub wait: bool,
    /// Bound of --wait, e.g. 90s, 5m.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Recreate objects whose immutable fields changed.
    #[arg(long)]
    pub force: bool,
    /// Fail instead of taking over fields owned by other field managers.
    #[arg(long)]
    pub no_force_conflicts: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub set: SetArgs,
}

/// `driftless plan DIR --inventory NAME`, `driftless plan DIR --gitsync FILE` (its inventory,
/// options and ServiceAccount), or `driftless plan --from NAME [--ref REF]` (a GitSync in the
/// cluster, fetched and rendered as the agent would).
#[derive(Args)]
pub struct PlanArgs {
    /// The directory of manifests (not with --from).
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    pub dir: Option<PathBuf>,
    /// The inventory name (default with --gitsync: the GitSync's, as the agent names it).
    #[arg(long, conflicts_with = "from")]
    pub inventory: Option<String>,
    /// Namespace where the inventory is stored (default with --gitsync: the GitSync's).
    #[arg(long)]
    pub inventory_namespace: Option<String>,
    /// Plan the GitSync NAME of the cluster (in --namespace): its repository fetched at --ref
    /// with its credentials, rendered with its options.
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// With --from: the branch, tag or commit to plan (default: the GitSync's own ref).
    #[arg(long = "ref", value_name = "REF", requires = "from")]
    pub git_ref: Option<String>,
    /// Namespace of --from's GitSync, and for namespaced objects that name none (default: the
    /// kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Concurrent API requests.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Output format; `markdown` is a pull-request comment.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: PlanOutput,
    /// The largest Markdown comment, in bytes (GitHub's limit is 65,536 characters).
    #[arg(long, default_value_t = 65_536)]
    pub comment_limit: usize,
    /// The cluster's name shown in the plan's heading.
    #[arg(long, env = "DRIFTLESS_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    #[command(flatten)]
    pub render: RenderFlags,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PlanOutput {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    driftless::duration::parse(s)
}

/// Where the rendering tools are, for every command that renders (and the agent).
#[derive(Args, Clone, Debug)]
pub struct ToolFlags {
    /// The kustomize binary (pinned in the image).
    #[arg(
        long,
        global = true,
        env = "DRIFTLESS_KUSTOMIZE_BIN",
        default_value = "kustomize"
    )]
    pub kustomize_bin: PathBuf,
    /// The helm binary (pinned in the image).
    #[arg(
        long,
        global = true,
        env = "DRIFTLESS_HELM_BIN",
        default_value = "helm"
    )]
    pub helm_bin: PathBuf,
    /// Bound of each kustomize/helm run.
    #[arg(long, global = true, default_value = "2m", value_parser = driftless::duration::parse)]
    pub render_timeout: Duration,
    /// Largest output accepted from kustomize/helm, in MiB.
    #[arg(long, global = true, default_value_t = 64)]
    pub render_max_output_mib: usize,
}

impl ToolFlags {
    /// The library's tool settings.
    pub fn tools(&self) -> Tools {
        Tools {
            kustomize: self.kustomize_bin.clone(),
            helm: self.helm_bin.clone(),
            limits: ExecLimits {
                timeout: self.render_timeout,
                max_output_bytes: self.render_max_output_mib.saturating_mul(1024 * 1024),
            },
            ..Tools::default()
        }
    }
}

/// How DIR is rendered: as the agent would for a GitSync.
#[derive(Args, Clone, Debug, Default)]
pub struct RenderFlags {
    /// A GitSync manifest: its `kustomize`, `helm` and `postBuild` sections, name, namespace
    /// and targetNamespace render DIR as the agent renders that GitSync (substituteFrom and
    /// helm.secretRef are read from the cluster).
    #[arg(long, value_name = "FILE")]
    pub gitsync: Option<PathBuf>,
    /// A substitution variable, NAME=VALUE (repeatable); turns postBuild substitution on and
    /// wins over the GitSync's.
    #[arg(long = "set-var", value_name = "NAME=VALUE")]
    pub set_var: Vec<String>,
    /// The repository root, the limit of what rendering may read (default: the nearest
    /// ancestor of DIR holding `.git` when DIR is a kustomization or chart — `/` outside a
    /// Git work tree — else DIR).
    #[arg(long, value_name = "DIR")]
    pub repo_root: Option<PathBuf>,
    /// Render charts for this Kubernetes version (`.Capabilities.KubeVersion`; default: the
    /// cluster's, else v1.36.0).
    #[arg(long, value_name = "VERSION")]
    pub kube_version: Option<String>,
    /// Also serve these APIs to charts (`.Capabilities.APIVersions`), `group/version` or
    /// `group/version/Kind`, comma-separated or repeated; with this flag or --kube-version the
    /// cluster is not asked and the built-in APIs of Kubernetes 1.36 are assumed besides.
    #[arg(long, value_name = "API", value_delimiter = ',')]
    pub api_versions: Vec<String>,
    /// Render charts as an upgrade of an installed release (`.Release.IsUpgrade`), as the agent
    /// does once a GitSync has applied; default: as a first install.
    #[arg(long)]
    pub is_upgrade: bool,
    /// Decrypt SOPS-encrypted objects with the keys of this Secret, NAMESPACE/NAME (`*.agekey`
    /// and `*.asc` entries, as Flux's), read from the cluster; the GitSync's
    /// `decryption.secretRef` is used when this and the key files are not given.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_secret_name)]
    pub decryption_secret: Option<(String, String)>,
    /// Decrypt with the age identities in FILE (`age-keygen` output; repeatable).
    #[arg(long, value_name = "FILE")]
    pub age_key: Vec<PathBuf>,
    /// Decrypt with the ASCII-armored OpenPGP private key in FILE (repeatable).
    #[arg(long, value_name = "FILE")]
    pub pgp_key: Vec<PathBuf>,
}

/// `namespace/name`.
fn parse_secret_name(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}
