//! Object name rules, as the API server applies them, checked before anything is sent.
//!
//! Most kinds need a DNS-1123 subdomain; a few are stricter (Namespace: DNS-1123 label;
//! Service: DNS-1035 label) and RBAC kinds are looser (any path segment, so names such as
//! `system:aggregate-to-view` pass). Being stricter than the server would reject valid
//! manifests, so where in doubt the looser rule wins. Each check returns the reason, lower-case.

const SUBDOMAIN_MAX: usize = 253;
const LABEL_MAX: usize = 63;

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A DNS label part: lower-case alphanumerics and '-', starting and ending alphanumeric.
fn is_label_part(s: &str) -> bool {
    let starts = s.chars().next().is_some_and(is_alnum);
    let ends = s.chars().next_back().is_some_and(is_alnum);
    starts && ends && s.chars().all(|c| is_alnum(c) || c == '-')
}

/// DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > SUBDOMAIN_MAX {
        return Err(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    if !s.split('.').all(is_label_part) {
        return Err(
            "must be a lower-case RFC 1123 subdomain: lower-case alphanumerics, '-' or \
                    '.', starting and ending with an alphanumeric"
                .to_owned(),
        );
    }
    Ok(())
}

/// DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > LABEL_MAX {
        return Err(format!("must be no more than {LABEL_MAX} characters"));
    }
    if !is_label_part(s) {
        return Err(
            "must be a lower-case RFC 1123 label: lower-case alphanumerics or '-', \
                    starting and ending with an alphanumeric"
                .to_owned(),
        );
    }
    Ok(())
}

/// DNS-1035 label: a DNS-1123 label that starts with a letter.
pub fn dns1035_label(s: &str) -> Result<(), String> {
    dns1123_label(s)?;
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lower-case letter (RFC 1035 label)".to_owned());
    }
    Ok(())
}

/// Path segment: not empty, `.` or `..`, and without `/` or `%`.
pub fn path_segment(s: &str) -> Result<(), String> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(format!("may not be {s:?}"));
    }
    if s.contains(['/', '%']) {
        return Err("may not contain '/' or '%'".to_owned());
    }
    Ok(())
}

/// The `metadata.name` rule for a kind.
pub fn check_name(group: &str, kind: &str, name: &str) -> Result<(), String> {
    match (group, kind) {
        ("", "Namespace") => dns1123_label(name),
        ("", "Service") => dns1035_label(name),
        ("rbac.authorization.k8s.io", _) => path_segment(name),
        _ => dns1123_subdomain(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for ok in ["a", "web", "web-1", "a.b.c", "1abc", &"a".repeat(253)] {
            assert!(dns1123_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "-a",
            "a-",
            "a..b",
            "a.-b",
            "a_b",
            "a/b",
            &"a".repeat(254),
        ] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert!(dns1123_label("prod-1").is_ok());
        assert!(dns1123_label("a.b").is_err());
        assert!(dns1123_label(&"a".repeat(63)).is_ok());
        let err = dns1123_label(&"a".repeat(64)).unwrap_err();
        assert_eq!(err, "must be no more than 63 characters");
        assert!(dns1035_label("web").is_ok());
        assert!(dns1035_label("1web").is_err());
    }

    #[test]
    fn kind_specific_rules() {
        assert!(check_name("rbac.authorization.k8s.io", "ClusterRole", "system:view").is_ok());
        assert!(check_name("rbac.authorization.k8s.io", "Role", "a/b").is_err());
        assert!(check_name("", "ConfigMap", "system:view").is_err());
        assert!(check_name("", "Namespace", "a.b").is_err());
        assert!(check_name("", "ConfigMap", "a.b").is_ok());
        assert!(check_name("", "Service", "1web").is_err());
    }
}
