//! [`Client`]: sends what [`super::api`] builds, one request at a time, each bounded by a
//! timeout, and reads the answers (at most [`MAX_ANSWER`] bytes each).

use std::time::Duration;

use crate::notify::deliver::{ClientOptions, client, network_error};
use crate::notify::event::CommitState;
use crate::notify::targets::Outgoing;

use super::api::{self, MAX_PAGES};
use super::error::request_line;
use super::{CommentId, Forge, PullRequest, PullsError, compose, find_marked};

/// The timeout of a request when the options give none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read: a page of 100 pull requests on GitHub is about 2-3 MB (each
/// holds both repositories in full); more is refused rather than held.
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Pull requests of one repository on one forge.
pub struct Client {
    forge: Forge,
    http: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client of `forge` with `options`' CA bundle, proxy and timeout (zero: 15 s).
    ///
    /// # Errors
    /// [`PullsError::Client`] when the HTTP client cannot be built.
    pub fn new(forge: Forge, options: &ClientOptions) -> Result<Client, PullsError> {
        let timeout = match options.timeout {
            Duration::ZERO => DEFAULT_TIMEOUT,
            t => t,
        };
        let options = ClientOptions {
            timeout,
            ..options.clone()
        };
        let http = client(&options).map_err(|source| PullsError::Client {
            forge: forge.name(),
            source,
        })?;
        Ok(Client {
            forge,
            http,
            timeout,
        })
    }

    /// The forge and repository this client speaks to.
    pub fn forge(&self) -> &Forge {
        &self.forge
    }

    /// The open pull requests targeting `base_branch`, at most [`MAX_PAGES`] pages.
    ///
    /// # Errors
    /// The first request that fails (see [`PullsError`]).
    pub async fn open(&self, base_branch: &str) -> Result<Vec<PullRequest>, PullsError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let out = api::list_pulls(&self.forge, base_branch, page)?;
            let body = self.send(&out).await?;
            let page = api::parse_pulls(&self.forge, base_branch, &body)
                .map_err(|reason| self.unexpected(&out, reason))?;
            all.extend(page.items);
            if !page.more {
                return Ok(all);
            }
        }
        tracing::warn!(
            forge = self.forge.name(),
            pages = MAX_PAGES,
            "more open pull requests than read; the rest are left out"
        );
        Ok(all)
    }

    /// Pull request `pr`'s comment for `context` made to say `body` (with the marker on top,
    /// cut to the forge's limit: [`compose`]): edited when it exists, else created. Returns its
    /// id. Comments are read oldest first, at most [`MAX_PAGES`] pages: a pull request with
    /// more comments than that before ours (1,000 on GitHub) would get a second one.
    ///
    /// # Errors
    /// The first request that fails.
    pub async fn upsert_comment(
        &self,
        pr: &PullRequest,
        context: &str,
        body: &str,
    ) -> Result<CommentId, PullsError> {
        let text = compose(self.forge.type_(), context, body);
        if let Some(id) = self.find_comment(pr.number, context).await? {
            let out = api::edit_comment(&self.forge, pr.number, &id, &text)?;
            self.send(&out).await?;
            return Ok(id);
        }
        let out = api::create_comment(&self.forge, pr.number, &text)?;
        let answer = self.send(&out).await?;
        api::parse_created(&self.forge, &answer).map_err(|reason| self.unexpected(&out, reason))
    }

    /// The id of pull request `number`'s comment for `context`, if it has one.
    async fn find_comment(
        &self,
        number: u64,
        context: &str,
    ) -> Result<Option<CommentId>, PullsError> {
        for page in 1..=MAX_PAGES {
            let out = api::list_comments(&self.forge, number, page)?;
            let body = self.send(&out).await?;
            let page = api::parse_comments(&self.forge, &body)
                .map_err(|reason| self.unexpected(&out, reason))?;
            if let Some(found) = find_marked(&page.items, context) {
                return Ok(Some(found.id.clone()));
            }
            if !page.more {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Sets the commit status `state` on `sha` under `context`.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn status(
        &self,
        sha: &str,
        state: CommitState,
        context: &str,
        description: &str,
    ) -> Result<(), PullsError> {
        let out = api::status(&self.forge, sha, state, context, description)?;
        self.send(&out).await.map(drop)
    }

    /// Sends `out` and returns the body of a 2xx answer.
    async fn send(&self, out: &Outgoing) -> Result<Vec<u8>, PullsError> {
        let request = || request_line(&out.method, &out.url);
        let network = |e: &reqwest::Error| PullsError::Network {
            forge: self.forge.name(),
            request: request(),
            source: network_error(e, self.timeout),
        };
        let mut response = self
            .http
            .request(out.method.clone(), out.url.as_str())
            .headers(out.headers.clone())
            .body(out.body.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| network(&e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| network(&e))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                let reason = format!("the answer is over {MAX_ANSWER} bytes");
                return Err(self.unexpected(out, reason));
            }
            body.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(PullsError::status(
                self.forge.name(),
                request(),
                status,
                &body,
            ))
        }
    }

    fn unexpected(&self, out: &Outgoing, reason: String) -> PullsError {
        PullsError::Answer {
            forge: self.forge.name(),
            request: request_line(&out.method, &out.url),
            reason,
        }
    }
}
