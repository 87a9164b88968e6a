//! What the auth handlers read from a request and write in a response, as pure functions:
//! the session cookie, whether the browser came over HTTPS, whether a POST came from this
//! origin, a bearer token, and where to go after signing in.

use axum::http::{HeaderMap, header};

use super::Refusal;
use super::sessions::LIFETIME;

/// The session cookie's name.
pub const COOKIE: &str = "driftless-session";

/// The session id in the request's `Cookie` headers, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that keeps session `id`: not readable by scripts, sent to this site's
/// own requests only, for every path, for [`LIFETIME`]; `Secure` when the browser is on HTTPS.
pub fn set_session(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_session(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// Whether the browser reached us over HTTPS: the agent serves plain HTTP, so only a proxy in
/// front (an Ingress) can say so, with `X-Forwarded-Proto` or `Forwarded: proto=https`. (A
/// client lying about it only makes its own cookie `Secure`.)
pub fn is_https(headers: &HeaderMap) -> bool {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if first("x-forwarded-proto").is_some_and(|p| p == "https") {
        return true;
    }
    first("forwarded").is_some_and(|f| {
        f.split(';')
            .any(|kv| kv.trim().trim_matches('"') == "proto=https")
    })
}

/// Refuses a cookie-authenticated POST that a browser says came from another site: by
/// `Sec-Fetch-Site` when the browser sends it (every current one does, and it decides alone),
/// else by `Origin` against the `Host` (or the proxy's `X-Forwarded-Host`). A request with
/// neither (curl, an old browser) passes here and still needs the CSRF token, and so does
/// `Origin: null`.
///
/// NB: our `Referrer-Policy: no-referrer` makes browsers send `Origin: null` even on a
/// same-origin form POST (the Fetch standard serialises the origin as `null` under that
/// policy), which is why `Sec-Fetch-Site` comes first and `null` is left to the CSRF token.
///
/// # Errors
/// [`Refusal::CrossOrigin`] naming what the browser said.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(Refusal::CrossOrigin(format!("Sec-Fetch-Site: {site}"))),
        };
    }
    let Some(origin) = text(header::ORIGIN.as_str()).filter(|o| *o != "null") else {
        return Ok(());
    };
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    let hosts = [text(header::HOST.as_str()), text("x-forwarded-host")];
    match authority {
        Some(a) if hosts.iter().flatten().any(|h| h.eq_ignore_ascii_case(a)) => Ok(()),
        _ => Err(Refusal::CrossOrigin(format!("Origin: {origin}"))),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Where to go after signing in: `next` when it is a path of this site, else `/`. Refuses
/// `//host` and `/\host` (which browsers read as another host) and anything not a plain path,
/// so the sign-in page cannot be made to send anyone elsewhere.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The fields of an `application/x-www-form-urlencoded` body: the value of `name`, if any.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; driftless-session=abc_-9 ; b=2")]);
        assert_eq!(session_id(&h).as_deref(), Some("abc_-9"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "driftless-session=x")]);
        assert_eq!(session_id(&h).as_deref(), Some("x"));
        assert_eq!(
            session_id(&headers(&[("cookie", "driftless-session=")])),
            None
        );
        assert_eq!(
            session_id(&headers(&[("cookie", "xdriftless-session=1")])),
            None
        );
        assert_eq!(session_id(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let plain = set_session("id", false);
        assert_eq!(
            plain,
            "driftless-session=id; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"
        );
        assert!(set_session("id", true).ends_with("; Secure"));
        assert!(clear_session(false).contains("Max-Age=0"));
        assert!(is_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(is_https(&headers(&[("x-forwarded-proto", "HTTPS, http")])));
        assert!(is_https(&headers(&[(
            "forwarded",
            "for=1.2.3.4;proto=https"
        )])));
        assert!(!is_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!is_https(&HeaderMap::new()));
    }

    #[test]
    fn posts_from_other_sites_are_refused() {
        let ok = |pairs: &[(&'static str, &str)]| same_origin(&headers(pairs)).is_ok();
        assert!(ok(&[]), "curl: the CSRF token decides");
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]));
        assert!(ok(&[
            ("origin", "http://127.0.0.1:8090"),
            ("host", "127.0.0.1:8090")
        ]));
        assert!(ok(&[
            ("origin", "https://ui.example.com"),
            ("host", "driftless-ui:8090"),
            ("x-forwarded-host", "ui.example.com")
        ]));
        assert!(!ok(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8090")
        ]));
        assert!(
            ok(&[("origin", "null"), ("host", "127.0.0.1:8090")]),
            "left to the CSRF token"
        );
        assert!(
            ok(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "null"),
                ("host", "127.0.0.1:8090")
            ]),
            "what Chromium sends under Referrer-Policy: no-referrer"
        );
        assert!(!ok(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:8090"),
            ("host", "127.0.0.1:8090")
        ]));
        let refused = same_origin(&headers(&[("sec-fetch-site", "cross-site")]));
        assert_eq!(
            refused,
            Err(Refusal::CrossOrigin("Sec-Fetch-Site: cross-site".into()))
        );
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let h = headers(&[("authorization", "Bearer abc.def")]);
        assert_eq!(bearer(&h), Some("abc.def"));
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer  x ")])),
            Some("x")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic eDp5")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
    }

    #[test]
    fn sign_in_sends_back_to_this_site_only() {
        assert_eq!(safe_next(Some("/gitsyncs/a/b")), "/gitsyncs/a/b");
        assert_eq!(safe_next(Some("/?q=x")), "/?q=x");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "/a\nb",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn form_fields_are_decoded() {
        let body = b"csrf=a%2Bb&next=%2Fgitsyncs%2Fx%2Fy&token=t+1";
        assert_eq!(form_field(body, "csrf").as_deref(), Some("a+b"));
        assert_eq!(form_field(body, "next").as_deref(), Some("/gitsyncs/x/y"));
        assert_eq!(form_field(body, "token").as_deref(), Some("t 1"));
        assert_eq!(form_field(body, "nope"), None);
    }
}
