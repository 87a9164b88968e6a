use super::*;

fn ok(s: &str) -> RepoUrl {
    parse(s).unwrap_or_else(|e| panic!("{s} should parse: {e}"))
}

fn err(s: &str) -> UrlError {
    match parse(s) {
        Ok(url) => panic!("{s} should be rejected, got {url:?}"),
        Err(e) => e,
    }
}

#[test]
fn ssh_url_with_user_and_port() {
    let url = ok("ssh://git@example.com:2222/srv/repo.git");
    assert_eq!(url.transport(), Transport::Ssh);
    assert_eq!(url.user(), Some("git"));
    assert_eq!(url.host(), Some("example.com"));
    assert_eq!(url.port(), Some(2222));
    assert_eq!(url.path(), "/srv/repo.git");
    assert_eq!(url.to_git_url(), "ssh://git@example.com:2222/srv/repo.git");
    assert_eq!(url.to_string(), "ssh://git@example.com:2222/srv/repo.git");
}

#[test]
fn ssh_url_without_user_or_port() {
    let url = ok("ssh://example.com/repo");
    assert_eq!((url.user(), url.port()), (None, None));
    assert_eq!(url.to_git_url(), "ssh://example.com/repo");
}

#[test]
fn ssh_url_with_ipv6_host() {
    let url = ok("ssh://git@[::1]:22/repo");
    assert_eq!(url.host(), Some("[::1]"));
    assert_eq!(url.port(), Some(22));
}

#[test]
fn github_scp_form_is_ssh_and_displayed_as_written() {
    let url = ok("git@github.com:org/repo.git");
    assert_eq!(url.transport(), Transport::Ssh);
    assert_eq!(url.user(), Some("git"));
    assert_eq!(url.host(), Some("github.com"));
    assert_eq!(url.path(), "org/repo.git");
    assert_eq!(url.to_string(), "git@github.com:org/repo.git");
    assert_eq!(url.to_git_url(), "git@github.com:org/repo.git");
    assert!(!url.is_azure_devops());
}

#[test]
fn azure_devops_scp_form() {
    let url = ok("git@ssh.dev.azure.com:v3/org/project/repo");
    assert_eq!(url.host(), Some("ssh.dev.azure.com"));
    assert_eq!(url.path(), "v3/org/project/repo");
    assert!(url.is_azure_devops());
    assert!(ok("org@vs-ssh.visualstudio.com:v3/org/project/repo").is_azure_devops());
}

#[test]
fn azure_devops_https_forms() {
    let url = ok("https://dev.azure.com/org/project/_git/repo");
    assert_eq!(url.transport(), Transport::Https);
    assert_eq!(url.path(), "/org/project/_git/repo");
    assert!(url.is_azure_devops());

    let url = ok("https://org@dev.azure.com/org/project/_git/repo");
    assert_eq!(url.user(), Some("org"));
    assert!(url.is_azure_devops());
    assert_eq!(
        url.to_git_url(),
        "https://dev.azure.com/org/project/_git/repo"
    );
    assert!(ok("https://org.visualstudio.com/project/_git/repo").is_azure_devops());
    assert!(ok("https://ORG.VisualStudio.com/p/_git/r").is_azure_devops());
}

#[test]
fn scp_form_without_user_and_with_absolute_path() {
    let url = ok("example.com:/srv/repo.git");
    assert_eq!((url.user(), url.host()), (None, Some("example.com")));
    assert_eq!(url.path(), "/srv/repo.git");
}

#[test]
fn https_http_and_git_urls() {
    let url = ok("https://example.com:8443/org/repo.git");
    assert_eq!(
        (url.transport(), url.port()),
        (Transport::Https, Some(8443))
    );
    assert_eq!(ok("http://example.com/repo").transport(), Transport::Http);
    let url = ok("git://example.com:9418/repo");
    assert_eq!((url.transport(), url.port()), (Transport::Git, Some(9418)));
    assert_eq!(url.to_git_url(), "git://example.com:9418/repo");
}

#[test]
fn file_url_and_absolute_path() {
    let url = ok("file:///srv/git/repo");
    assert_eq!((url.transport(), url.host()), (Transport::File, None));
    assert_eq!(url.path(), "/srv/git/repo");
    assert_eq!(url.to_git_url(), "file:///srv/git/repo");
    let url = ok("/srv/git/repo");
    assert_eq!(url.transport(), Transport::File);
    assert_eq!(url.to_git_url(), "/srv/git/repo");
}

#[test]
fn password_is_redacted_in_display_and_dropped_for_git() {
    let url = ok("https://user:s3cret@host/r");
    assert!(url.has_credentials());
    assert_eq!(url.to_string(), "https://user:***@host/r");
    assert_eq!(url.redacted(), "https://user:***@host/r");
    assert_eq!(url.to_git_url(), "https://host/r");
    assert!(!format!("{url:?}").contains("s3cret"));
}

#[test]
fn lone_https_userinfo_is_redacted_as_a_token() {
    let url = ok("https://ghp_TOKEN@github.com/org/repo");
    assert_eq!(url.to_string(), "https://***@github.com/org/repo");
    assert_eq!(url.to_git_url(), "https://github.com/org/repo");
    assert_eq!(ok("https://:tok@h/r").to_string(), "https://:***@h/r");
}

#[test]
fn ssh_keeps_user_but_not_password() {
    let url = ok("ssh://git:pw@host/r");
    assert_eq!(url.to_string(), "ssh://git:***@host/r");
    assert_eq!(url.to_git_url(), "ssh://git@host/r");
}

#[test]
fn rejects_empty() {
    assert_eq!(err(""), UrlError::Empty);
}

#[test]
fn rejects_transport_helpers() {
    for s in [
        "ext::sh -c touch% /tmp/pwned",
        "ext::sh",
        "fd::3",
        "::foo",
        "https::x",
    ] {
        assert!(matches!(err(s), UrlError::TransportHelper { .. }), "{s}");
    }
    let message = err("ext::sh -c touch% /tmp/pwned").to_string();
    assert!(
        message.contains("ext::sh -c touch% /tmp/pwned"),
        "{message}"
    );
}

#[test]
fn rejects_other_schemes() {
    for s in [
        "ftp://host/repo",
        "ext://host/repo",
        "fd://3",
        "git+ssh://host/r",
    ] {
        assert!(matches!(err(s), UrlError::UnsupportedScheme { .. }), "{s}");
    }
}

#[test]
fn rejects_option_injection() {
    let cases = [
        ("-oProxyCommand=evil", "url"),
        ("ssh://-oProxyCommand=x/y", "host"),
        ("-oProxyCommand=x:y", "url"),
        ("ssh://-oProxyCommand=x@host/y", "user"),
        ("git@-oProxyCommand=x:repo", "host"),
        ("host:-upload-pack=x", "path"),
        ("https://host/-x", "path"),
    ];
    for (s, part) in cases {
        assert_eq!(
            err(s),
            UrlError::OptionLike {
                url: s.to_owned(),
                part
            },
            "{s}"
        );
    }
}

#[test]
fn rejects_whitespace_and_control_characters() {
    for s in [
        "https://host/re po",
        "https://host/repo\n",
        "git@host:repo\t",
        "https://host/\x1b[31m",
    ] {
        assert!(matches!(err(s), UrlError::InvalidCharacter { .. }), "{s:?}");
    }
    let message = err("https://u:pw@host/a\nb").to_string();
    assert!(
        !message.contains('\n') && !message.contains("pw@"),
        "{message}"
    );
}

#[test]
fn rejects_missing_host_or_path() {
    for s in ["https:///repo", "ssh://git@/repo", ":repo", "git@:repo"] {
        assert!(matches!(err(s), UrlError::MissingHost { .. }), "{s}");
    }
    for s in [
        "https://host",
        "https://host/",
        "git@host:",
        "file:///",
        "/",
        "ssh://h:22",
    ] {
        assert!(matches!(err(s), UrlError::MissingPath { .. }), "{s}");
    }
}

#[test]
fn rejects_bad_ports() {
    for s in [
        "ssh://host:65536/r",
        "ssh://host:0/r",
        "https://host:+443/r",
        "ssh://host:x/r",
    ] {
        assert!(matches!(err(s), UrlError::InvalidPort { .. }), "{s}");
    }
}

#[test]
fn rejects_relative_paths_and_windows_drives() {
    for s in ["repo", "./a:b", "dir/x:y", "C:/repo", "C:\\repo", "c:repo"] {
        assert!(matches!(err(s), UrlError::Unrecognised { .. }), "{s}");
    }
}

#[test]
fn rejects_odd_hosts_users_and_file_hosts() {
    assert!(matches!(
        err("https://ho%st/r"),
        UrlError::InvalidHost { .. }
    ));
    assert!(matches!(err("ssh://[::1/r"), UrlError::InvalidHost { .. }));
    assert!(matches!(err("https://@host/r"), UrlError::EmptyUser { .. }));
    assert!(matches!(err("@host:r"), UrlError::EmptyUser { .. }));
    assert!(matches!(err("file://host/r"), UrlError::FileHost { .. }));
}

#[test]
fn errors_never_show_the_password() {
    for s in [
        "https://user:s3cret@host",
        "ftp://user:s3cret@host/r",
        "https://u:s3cret@ho%st/r",
    ] {
        let message = err(s).to_string();
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            message.contains("user:***@") || message.contains("u:***@"),
            "{message}"
        );
    }
}

#[test]
fn cache_key_ignores_credentials_suffix_and_host_case() {
    let key = ok("https://github.com/org/repo").cache_key();
    assert_eq!(key, "https://github.com/org/repo");
    for s in [
        "https://user:tok@GitHub.com/org/repo.git",
        "https://tok@github.com/org/repo/",
        "https://github.com:443/org/repo.git/",
    ] {
        assert_eq!(ok(s).cache_key(), key, "{s}");
    }
    assert_ne!(ok("https://github.com:8443/org/repo").cache_key(), key);
    assert_ne!(ok("http://github.com/org/repo").cache_key(), key);
}

#[test]
fn cache_key_treats_scp_paths_as_home_relative() {
    let scp = ok("git@github.com:org/repo.git").cache_key();
    assert_eq!(scp, "ssh://github.com/~/org/repo");
    assert_eq!(ok("ssh://other@GITHUB.com/~/org/repo").cache_key(), scp);
    assert_eq!(ok("github.com:~/org/repo").cache_key(), scp);
    assert_ne!(ok("ssh://git@github.com/org/repo").cache_key(), scp);
    assert_eq!(ok("/srv/repo.git").cache_key(), "file:///srv/repo");
}

#[test]
fn redact_all_redacts_every_url_in_text() {
    let text =
        "fatal: unable to access 'https://u:s3cret@h/r/': The requested URL returned error: 403";
    assert_eq!(
        redact_all(text),
        "fatal: unable to access 'https://u:***@h/r/': The requested URL returned error: 403"
    );
    assert_eq!(
        redact_all("a https://TOKEN@h/r and http://x:y@h2/r, ssh://git@h3/r"),
        "a https://***@h/r and http://x:***@h2/r, ssh://git@h3/r"
    );
}

#[test]
fn redact_all_catches_tokens_with_slashes_and_leaves_plain_urls() {
    assert_eq!(redact_all("https://u:ab/cd@h/r"), "https://u:***@h/r");
    assert_eq!(
        redact_all("see https://h:8443/a@b"),
        "see https://h:8443/a@b"
    );
    assert_eq!(redact_all("https://host/org/repo"), "https://host/org/repo");
    assert_eq!(redact_all("no urls here"), "no urls here");
}

/// Regression (fuzz target `git_url`): a multi-byte character right before `://` made
/// `redact_all` slice inside it and panic.
#[test]
fn redact_all_survives_a_multi_byte_character_before_the_scheme() {
    let text = "https\u{290}://0itmo/r";
    assert_eq!(redact_all(text), text);
    assert_eq!(
        redact_all("é://u:secret@h/r and ssh\u{290}://git@h/r"),
        // `sshʐ` is not `ssh`: its lone userinfo is redacted too (errs towards redacting).
        "é://u:***@h/r and ssh\u{290}://***@h/r"
    );
    let _ = parse(text);
}

#[test]
fn credentials_in_a_url_are_detected_and_masked_whole() {
    for (url, masked) in [
        ("https://user:s3cret@host/r", "https://***@host/r"),
        (
            "https://s3cret:x-oauth-basic@github.com/o/r",
            "https://***@github.com/o/r",
        ),
        (
            "https://s3cret@github.com/o/r",
            "https://***@github.com/o/r",
        ),
        ("http://u:s3cret@h:8080/r.git", "http://***@h:8080/r.git"),
        ("ssh://git:s3cret@host/r", "ssh://***@host/r"),
    ] {
        let parsed = ok(url);
        assert!(parsed.has_credentials(), "{url}");
        assert_eq!(parsed.masked(), masked);
        assert!(!parsed.masked().contains("s3cret"));
    }
    for url in [
        "https://github.com/o/r",
        "ssh://git@host/r",
        "git@github.com:o/r.git",
        "file:///srv/r",
        "/srv/r",
    ] {
        let parsed = ok(url);
        assert!(!parsed.has_credentials(), "{url}: a login name or none");
        assert_eq!(parsed.masked(), parsed.redacted());
    }
}
