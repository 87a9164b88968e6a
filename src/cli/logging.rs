//! Logging: tracing to stderr, quiet by default for commands and at info for the agent,
//! coloured only where colour can be read.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Sets up logging from the raw arguments (it starts before clap parses them) and
/// `DRIFTLESS_LOG`. Errors reach the user through our own messages; library logs only on
/// request.
pub fn init() {
    let json = std::env::args().any(|a| a == "--log-json");
    let agent = std::env::args().nth(1).as_deref() == Some("agent");
    let requested = std::env::var("DRIFTLESS_LOG").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&requested, agent))
        .with_ansi(log_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `DRIFTLESS_LOG` when it parses, else warnings (info for the agent).
fn filter(requested: &str, agent: bool) -> EnvFilter {
    let default = if agent {
        "driftless=info"
    } else {
        "driftless=warn"
    };
    let mut filter = Some(requested)
        .filter(|r| !r.is_empty())
        .and_then(|r| EnvFilter::try_new(r).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // NB: kube's client logs API error bodies at debug and response texts at trace, and those
    // can quote Secret values. A blanket `debug` must not leak them: kube stays at info unless
    // DRIFTLESS_LOG names it explicitly (docs/security.md).
    let mut clamps = Vec::new();
    if !requested.contains("kube") {
        clamps.extend(["kube_client=info", "kube=info"]);
    }
    // The OpenPGP and age crates trace the packets of the private keys and encrypted data keys
    // they parse while decrypting SOPS files: never logged below warn, whatever is asked.
    clamps.extend(["pgp=warn", "age=warn", "age_core=warn"]);
    for directive in clamps {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Whether log lines get ANSI colour: only on a terminal (a log file or a pipe to a log
/// collector would keep the escape codes as text), and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>).
fn log_colour(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use super::log_colour;
        assert!(log_colour(true, None));
        assert!(!log_colour(false, None), "a file or a pipe");
        assert!(!log_colour(true, Some("1".into())), "NO_COLOR=1");
        assert!(
            log_colour(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
    }
}
