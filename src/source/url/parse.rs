//! Parsing and vetting a repository URL: the forms git accepts (URLs, scp-like addresses,
//! local paths), refusing what could inject options into `git` or `ssh` or reach a transport
//! helper.

use super::{Form, RepoUrl, Transport, UrlError, is_scheme_char, sanitize};

/// Parses and vets a repository URL.
///
/// # Errors
///
/// A [`UrlError`] naming the (redacted) URL and what is wrong with it.
pub fn parse(s: &str) -> Result<RepoUrl, UrlError> {
    if s.is_empty() {
        return Err(UrlError::Empty);
    }
    let url = || sanitize(s);
    if is_transport_helper(s) {
        return Err(UrlError::TransportHelper { url: url() });
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UrlError::InvalidCharacter { url: url() });
    }
    if s.starts_with('-') {
        return Err(UrlError::OptionLike {
            url: url(),
            part: "url",
        });
    }
    if let Some((scheme, rest)) = split_scheme(s) {
        return parse_url(s, scheme, rest);
    }
    if s.starts_with('/') {
        check_path(s, s)?;
        return Ok(RepoUrl::local(Form::LocalPath, s));
    }
    match scp_colon(s) {
        Some(colon) => parse_scp(s, colon),
        None => Err(UrlError::Unrecognised { url: url() }),
    }
}

fn parse_url(s: &str, scheme: &str, rest: &str) -> Result<RepoUrl, UrlError> {
    let transport = match scheme.to_ascii_lowercase().as_str() {
        "ssh" => Transport::Ssh,
        "https" => Transport::Https,
        "http" => Transport::Http,
        "git" => Transport::Git,
        "file" => Transport::File,
        _ => {
            let (url, scheme) = (sanitize(s), sanitize(scheme));
            return Err(UrlError::UnsupportedScheme { url, scheme });
        }
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if transport == Transport::File {
        if !authority.is_empty() {
            return Err(UrlError::FileHost { url: sanitize(s) });
        }
        check_path(s, path)?;
        return Ok(RepoUrl::local(Form::Url, path));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some("") => return Err(UrlError::EmptyUser { url: sanitize(s) }),
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => (Some(user), Some(password)),
            None => (Some(userinfo), None),
        },
        None => (None, None),
    };
    let user = user.filter(|u| !u.is_empty());
    check_user(s, user)?;
    let (host, port) = split_host_port(s, hostport)?;
    check_host(s, host)?;
    let port = parse_port(s, port)?;
    check_path(s, path)?;
    Ok(RepoUrl {
        form: Form::Url,
        transport,
        user: user.map(str::to_owned),
        password: password.map(str::to_owned),
        host: Some(host.to_owned()),
        port,
        path: path.to_owned(),
    })
}

fn parse_scp(s: &str, colon: usize) -> Result<RepoUrl, UrlError> {
    let (before, path) = (&s[..colon], &s[colon + 1..]);
    let (user, host) = match before.rsplit_once('@') {
        Some(("", _)) => return Err(UrlError::EmptyUser { url: sanitize(s) }),
        Some((user, host)) => (Some(user), host),
        None => (None, before),
    };
    check_user(s, user)?;
    check_host(s, host)?;
    check_path(s, path)?;
    Ok(RepoUrl {
        form: Form::ScpLike,
        transport: Transport::Ssh,
        user: user.map(str::to_owned),
        password: None,
        host: Some(host.to_owned()),
        port: None,
        path: path.to_owned(),
    })
}

/// Git's rule (`transport_get`): `[A-Za-z0-9+.-]*` followed by `::` selects a remote helper.
fn is_transport_helper(s: &str) -> bool {
    s.find("::")
        .is_some_and(|i| s[..i].chars().all(is_scheme_char))
}

fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let i = s.find("://")?;
    let scheme = &s[..i];
    let valid =
        scheme.starts_with(|c: char| c.is_ascii_alphabetic()) && scheme.chars().all(is_scheme_char);
    valid.then(|| (scheme, &s[i + 3..]))
}

/// The colon of an scp-like address: git's rule is the first colon (outside `[...]`) with no
/// slash before it; a single letter before it is a Windows drive, not a host.
fn scp_colon(s: &str) -> Option<usize> {
    let mut in_brackets = false;
    for (i, c) in s.char_indices() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            '/' | '\\' => return None,
            ':' if !in_brackets => {
                let drive = i == 1 && s.starts_with(|c: char| c.is_ascii_alphabetic());
                return (!drive).then_some(i);
            }
            _ => {}
        }
    }
    None
}

fn split_host_port<'a>(s: &str, hostport: &'a str) -> Result<(&'a str, Option<&'a str>), UrlError> {
    if hostport.starts_with('[') {
        let end = hostport
            .find(']')
            .ok_or_else(|| UrlError::InvalidHost { url: sanitize(s) })?;
        let (host, after) = hostport.split_at(end + 1);
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(UrlError::InvalidHost { url: sanitize(s) }),
        };
    }
    Ok(match hostport.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

fn parse_port(s: &str, port: Option<&str>) -> Result<Option<u16>, UrlError> {
    match port {
        None | Some("") => Ok(None),
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
            .map(Some)
            .ok_or_else(|| UrlError::InvalidPort {
                url: sanitize(s),
                port: sanitize(port),
            }),
    }
}

fn check_user(s: &str, user: Option<&str>) -> Result<(), UrlError> {
    if user.is_some_and(|u| u.starts_with('-')) {
        return Err(UrlError::OptionLike {
            url: sanitize(s),
            part: "user",
        });
    }
    Ok(())
}

fn check_host(s: &str, host: &str) -> Result<(), UrlError> {
    if host.is_empty() {
        return Err(UrlError::MissingHost { url: sanitize(s) });
    }
    if host.starts_with('-') {
        return Err(UrlError::OptionLike {
            url: sanitize(s),
            part: "host",
        });
    }
    let valid = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip) => {
            !ip.is_empty()
                && ip
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
        }
        None => host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
    };
    if valid {
        Ok(())
    } else {
        Err(UrlError::InvalidHost { url: sanitize(s) })
    }
}

fn check_path(s: &str, path: &str) -> Result<(), UrlError> {
    if path.trim_start_matches('/').is_empty() {
        return Err(UrlError::MissingPath { url: sanitize(s) });
    }
    if path.starts_with('-') || path.trim_start_matches('/').starts_with('-') {
        return Err(UrlError::OptionLike {
            url: sanitize(s),
            part: "path",
        });
    }
    Ok(())
}
