//! What a signed-in user may do from a GitSync's page: sync now, suspend, resume. Each is a POST
//! to `/gitsyncs/{namespace}/{name}/{sync|suspend|resume}` ([`handlers`]), allowed by the API
//! server (see `ui::auth`), then done by the agent with its own client through the same
//! `agent::control` functions as `driftless sync`, `suspend` and `resume`. After it the
//! browser is sent back to the page with `?done=<action>`, which says what was done.

pub mod handlers;

/// One action of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set the `driftless.dev/requested-at` annotation: the agent syncs at once.
    Sync,
    /// Set `spec.suspend`.
    Suspend,
    /// Clear `spec.suspend`.
    Resume,
}

impl Action {
    /// The last segment of its path, and the value of `?done=`.
    pub fn slug(self) -> &'static str {
        match self {
            Action::Sync => "sync",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
        }
    }

    /// Its button's words.
    pub fn label(self) -> &'static str {
        match self {
            Action::Sync => "Sync now",
            Action::Suspend => "Suspend",
            Action::Resume => "Resume",
        }
    }

    /// What the page says once it is done.
    pub fn done(self) -> &'static str {
        match self {
            Action::Sync => "Sync requested: the agent syncs this GitSync now.",
            Action::Suspend => "Suspended: the agent applies nothing until it is resumed.",
            Action::Resume => "Resumed: the agent syncs this GitSync again.",
        }
    }

    /// The action named `slug`, if any.
    pub fn parse(slug: &str) -> Option<Action> {
        [Action::Sync, Action::Suspend, Action::Resume]
            .into_iter()
            .find(|a| a.slug() == slug)
    }

    /// The action done, from a page's query string (`?done=sync`).
    pub fn from_query(raw: Option<&str>) -> Option<Action> {
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "done")
            .and_then(|(_, v)| Action::parse(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_in_paths_and_queries() {
        for a in [Action::Sync, Action::Suspend, Action::Resume] {
            assert_eq!(Action::parse(a.slug()), Some(a));
        }
        assert_eq!(Action::parse("delete"), None);
        assert_eq!(
            Action::from_query(Some("fragment=1&done=suspend")),
            Some(Action::Suspend)
        );
        assert_eq!(Action::from_query(Some("done=<b>")), None);
        assert_eq!(Action::from_query(None), None);
    }
}
