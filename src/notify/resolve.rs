//! A Provider made usable: its Secret read, its address, CA bundle and proxy checked, into the
//! [`Target`] requests are built from and the [`ClientOptions`] they are sent with. The one
//! place the agent (for deliveries and the Ready condition) and `driftless notify test` read
//! Providers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use zeroize::Zeroizing;

use super::deliver::{self, ClientOptions};
use super::resources::{Provider, ProviderType};
use super::targets::Target;
use crate::duration;

/// How long a request may take unless the Provider says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The shortest `spec.timeout` accepted (`0s` would fail every delivery before it is sent).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Why a Provider cannot be used; its Ready condition and `notify test` say so.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("Provider {0} not found")]
    NotFound(String),
    #[error("Secret {0} not found")]
    SecretNotFound(String),
    #[error("Secret {secret} has no `{key}` key, which type {type_} needs")]
    MissingKey {
        secret: String,
        key: &'static str,
        type_: &'static str,
    },
    #[error("Secret {secret}: `{key}` is not UTF-8 text")]
    NotText { secret: String, key: String },
    #[error("no address: type {0} needs spec.address or the Secret's `address` key")]
    MissingAddress(&'static str),
    #[error("the address is not an http(s) URL")]
    BadAddress,
    #[error("spec.channel is required with a Slack bot token")]
    MissingChannel,
    #[error("spec.timeout: {0}")]
    Timeout(String),
    #[error("{0}")]
    Client(#[from] deliver::DeliveryError),
    #[error("cannot read {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// A Provider ready to send with.
pub struct Resolved {
    pub target: Target,
    pub options: ClientOptions,
    pub client: reqwest::Client,
}

/// Reads the Provider `name` in `namespace`.
///
/// # Errors
/// Not found, or the API refused.
pub async fn get(client: &Client, namespace: &str, name: &str) -> Result<Provider, ResolveError> {
    let api: Api<Provider> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|source| ResolveError::Api {
            what: format!("Provider {namespace}/{name}"),
            source,
        })?
        .ok_or_else(|| ResolveError::NotFound(format!("{namespace}/{name}")))
}

/// Reads `provider`'s Secrets and checks that it can send.
///
/// # Errors
/// The first thing missing or wrong, by field and key (never a value).
pub async fn resolve(client: &Client, provider: &Provider) -> Result<Resolved, ResolveError> {
    let ns = provider.namespace().unwrap_or_default();
    let spec = &provider.spec;
    let secret = match &spec.secret_ref {
        Some(r) => Some(read_secret(client, &ns, &r.name).await?),
        None => None,
    };
    let ca = match &spec.cert_secret_ref {
        Some(r) => {
            let data = read_secret(client, &ns, &r.name).await?;
            Some(
                required(&data, &r.name, "ca.crt", "any")?
                    .as_bytes()
                    .to_vec(),
            )
        }
        None => None,
    };
    let data = secret.as_ref().map(|(name, d)| (name.as_str(), d));
    let target = target(spec.type_, provider, data)?;
    let timeout = match spec.timeout.as_deref() {
        Some(t) => duration::parse(t).map_err(ResolveError::Timeout)?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout < MIN_TIMEOUT {
        return Err(ResolveError::Timeout(format!(
            "{timeout:?} is too short: no receiver answers in less than {MIN_TIMEOUT:?}"
        )));
    }
    let proxy = data
        .and_then(|(_, d)| d.get("proxy").cloned())
        .or_else(|| spec.proxy.clone().map(Zeroizing::new));
    let options = ClientOptions {
        ca_pem: ca,
        proxy,
        timeout,
    };
    let client = deliver::client(&options)?;
    Ok(Resolved {
        target,
        options,
        client,
    })
}

type SecretData = BTreeMap<String, Zeroizing<String>>;

/// The Target of a Provider of `type_` with `secret` (name, data).
fn target(
    type_: ProviderType,
    provider: &Provider,
    secret: Option<(&str, &SecretData)>,
) -> Result<Target, ResolveError> {
    let spec = &provider.spec;
    let get = |key: &str| secret.and_then(|(_, d)| d.get(key).cloned());
    let address = get("address").or_else(|| spec.address.clone().map(Zeroizing::new));
    if let Some(a) = &address
        && !(a.starts_with("https://") || a.starts_with("http://"))
    {
        return Err(ResolveError::BadAddress);
    }
    let token = get("token");
    let needs = |key: &'static str| -> Result<(), ResolveError> {
        match secret {
            Some((name, d)) if !d.contains_key(key) => Err(ResolveError::MissingKey {
                secret: name.to_string(),
                key,
                type_: type_.as_str(),
            }),
            None => Err(ResolveError::MissingKey {
                secret: "(spec.secretRef unset)".into(),
                key,
                type_: type_.as_str(),
            }),
            _ => Ok(()),
        }
    };
    match type_ {
        ProviderType::Slack if token.is_some() && spec.channel.is_none() => {
            return Err(ResolveError::MissingChannel);
        }
        ProviderType::Slack if token.is_some() => {}
        ProviderType::Slack
        | ProviderType::Msteams
        | ProviderType::Discord
        | ProviderType::Googlechat
        | ProviderType::Generic
            if address.is_none() =>
        {
            return Err(ResolveError::MissingAddress(type_.as_str()));
        }
        ProviderType::GenericHmac => {
            if address.is_none() {
                return Err(ResolveError::MissingAddress(type_.as_str()));
            }
            needs("token")?;
        }
        ProviderType::Bitbucket if token.is_none() => {
            needs("username")?;
            needs("password")?;
        }
        t if t.is_forge() => needs("token")?,
        _ => {}
    }
    let basic = match (get("username"), get("password")) {
        (Some(u), Some(p)) => Some((u.to_string(), p)),
        _ => None,
    };
    Ok(Target {
        type_,
        address,
        channel: spec.channel.clone(),
        username: spec.username.clone(),
        token,
        basic,
        summary: None,
    })
}

async fn read_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(String, SecretData), ResolveError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|source| ResolveError::Api {
            what: format!("Secret {namespace}/{name}"),
            source,
        })?
        .ok_or_else(|| ResolveError::SecretNotFound(format!("{namespace}/{name}")))?;
    let mut data = SecretData::new();
    for (k, v) in secret.data.unwrap_or_default() {
        let text = String::from_utf8(v.0).map_err(|_| ResolveError::NotText {
            secret: name.to_string(),
            key: k.clone(),
        })?;
        // A value pasted with a trailing newline (`echo … | kubectl create secret`) is the
        // value without it: URLs and tokens never end in one.
        data.insert(
            k,
            Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string()),
        );
    }
    for (k, v) in secret.string_data.unwrap_or_default() {
        data.insert(k, Zeroizing::new(v));
    }
    Ok((name.to_string(), data))
}

fn required(
    data: &(String, SecretData),
    secret: &str,
    key: &'static str,
    type_: &'static str,
) -> Result<Zeroizing<String>, ResolveError> {
    data.1.get(key).cloned().ok_or(ResolveError::MissingKey {
        secret: secret.to_string(),
        key,
        type_,
    })
}
