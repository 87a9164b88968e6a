//! Every request's exact method, URL, headers and body, per forge; paging.

use http::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::*;
use crate::notify::forge::Repository;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn forge(type_: ProviderType) -> Forge {
    let (api, path): (&str, &[&str]) = match type_ {
        ProviderType::Github => ("https://api.github.com", &["o", "r"]),
        ProviderType::Gitlab => ("https://gitlab.example.com/api/v4", &["g", "sub", "r"]),
        ProviderType::Azuredevops => ("https://dev.azure.com", &["org", "My Project", "r"]),
        _ => ("http://127.0.0.1:3000", &["o", "r"]),
    };
    let repo = Repository {
        api: api.into(),
        path: path.iter().map(|s| (*s).to_owned()).collect(),
    };
    Forge::new(type_, repo, Zeroizing::new("TOKEN".into())).unwrap()
}

fn header(out: &Outgoing, name: &str) -> String {
    out.headers[name].to_str().unwrap().to_owned()
}

fn body(out: &Outgoing) -> Value {
    serde_json::from_slice(&out.body).unwrap()
}

/// The credential every request of `type_` carries, marked sensitive, and nothing but the
/// documented headers.
fn assert_headers(out: &Outgoing, type_: ProviderType) {
    let (name, value) = match type_ {
        ProviderType::Github => ("authorization", "Bearer TOKEN"),
        ProviderType::Gitlab => ("private-token", "TOKEN"),
        // base64(":TOKEN")
        ProviderType::Azuredevops => ("authorization", "Basic OlRPS0VO"),
        _ => ("authorization", "token TOKEN"),
    };
    assert_eq!(header(out, name), value, "{type_:?}");
    assert!(out.headers[name].is_sensitive());
    let mut names: Vec<&str> = out.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    let mut expected = vec![name];
    if out.method != Method::GET {
        expected.push("content-type");
    }
    if type_ == ProviderType::Github {
        expected.extend(["accept", "user-agent", "x-github-api-version"]);
        assert_eq!(header(out, "accept"), "application/vnd.github+json");
        assert_eq!(header(out, "x-github-api-version"), "2022-11-28");
    }
    expected.sort_unstable();
    assert_eq!(names, expected, "{type_:?}");
    if out.method != Method::GET {
        assert_eq!(header(out, "content-type"), "application/json");
    } else {
        assert!(out.body.is_empty());
    }
}

const FORGES: [ProviderType; 4] = [
    ProviderType::Github,
    ProviderType::Gitlab,
    ProviderType::Gitea,
    ProviderType::Azuredevops,
];

#[test]
fn open_pull_requests_are_listed_by_target_branch() {
    let az = "https://dev.azure.com/org/My%20Project/_apis/git/repositories/r";
    #[rustfmt::skip]
    let cases = [
        (ProviderType::Github, 2,
         "https://api.github.com/repos/o/r/pulls?state=open&base=rel%2F1&per_page=100&page=2".to_owned()),
        (ProviderType::Gitlab, 2,
         "https://gitlab.example.com/api/v4/projects/g%2Fsub%2Fr/merge_requests?state=opened&target_branch=rel%2F1&per_page=100&page=2".to_owned()),
        (ProviderType::Gitea, 2,
         "http://127.0.0.1:3000/api/v1/repos/o/r/pulls?state=open&base_branch=rel%2F1&limit=50&page=2".to_owned()),
        (ProviderType::Azuredevops, 3,
         format!("{az}/pullrequests?searchCriteria.status=active&searchCriteria.targetRefName=refs%2Fheads%2Frel%2F1&$top=100&$skip=200&api-version=7.1")),
    ];
    for (type_, page, url) in cases {
        let out = list_pulls(&forge(type_), "rel/1", page).unwrap();
        assert_eq!(out.method, Method::GET);
        assert_eq!(out.url.as_str(), url);
        assert_headers(&out, type_);
    }
}

#[test]
fn comments_are_listed_created_and_edited() {
    let az = "https://dev.azure.com/org/My%20Project/_apis/git/repositories/r/pullRequests/7";
    let gl = "https://gitlab.example.com/api/v4/projects/g%2Fsub%2Fr/merge_requests/7/notes";
    #[rustfmt::skip]
    let cases = [
        (ProviderType::Github,
         "https://api.github.com/repos/o/r/issues/7/comments?per_page=100&page=1".to_owned(),
         "https://api.github.com/repos/o/r/issues/7/comments".to_owned(),
         (Method::PATCH, "https://api.github.com/repos/o/r/issues/comments/9".to_owned())),
        (ProviderType::Gitlab,
         format!("{gl}?sort=asc&order_by=created_at&per_page=100&page=1"),
         gl.to_owned(),
         (Method::PUT, format!("{gl}/9"))),
        (ProviderType::Gitea,
         "http://127.0.0.1:3000/api/v1/repos/o/r/issues/7/comments".to_owned(),
         "http://127.0.0.1:3000/api/v1/repos/o/r/issues/7/comments".to_owned(),
         (Method::PATCH, "http://127.0.0.1:3000/api/v1/repos/o/r/issues/comments/9".to_owned())),
        (ProviderType::Azuredevops,
         format!("{az}/threads?api-version=7.1"),
         format!("{az}/threads?api-version=7.1"),
         (Method::PATCH, format!("{az}/threads/9/comments/1?api-version=7.1"))),
    ];
    for (type_, list, create, (method, edit)) in cases {
        let f = forge(type_);
        let out = list_comments(&f, 7, 1).unwrap();
        assert_eq!(
            (&out.method, out.url.as_str()),
            (&Method::GET, list.as_str())
        );
        assert_headers(&out, type_);

        let out = create_comment(&f, 7, "plan").unwrap();
        assert_eq!(
            (&out.method, out.url.as_str()),
            (&Method::POST, create.as_str())
        );
        assert_headers(&out, type_);
        let expected = match type_ {
            ProviderType::Azuredevops => json!({
                "comments": [{"parentCommentId": 0, "content": "plan", "commentType": 1}],
                "status": 1,
            }),
            _ => json!({"body": "plan"}),
        };
        assert_eq!(body(&out), expected, "{type_:?}");

        let id = match type_ {
            ProviderType::Azuredevops => CommentId::Thread {
                thread: 9,
                comment: 1,
            },
            _ => CommentId::Number(9),
        };
        let out = edit_comment(&f, 7, &id, "plan 2").unwrap();
        assert_eq!((&out.method, out.url.as_str()), (&method, edit.as_str()));
        assert_headers(&out, type_);
        let expected = match type_ {
            ProviderType::Azuredevops => json!({"content": "plan 2"}),
            _ => json!({"body": "plan 2"}),
        };
        assert_eq!(body(&out), expected, "{type_:?}");
    }
}

#[test]
fn a_comment_id_of_another_forge_is_refused() {
    let thread = CommentId::Thread {
        thread: 1,
        comment: 1,
    };
    let err = edit_comment(&forge(ProviderType::Github), 7, &thread, "x").err();
    assert!(matches!(err, Some(PullsError::ForeignComment("github", _))));
    let number = CommentId::Number(1);
    let err = edit_comment(&forge(ProviderType::Azuredevops), 7, &number, "x").err();
    assert!(matches!(err, Some(PullsError::ForeignComment(..))));
}

#[test]
fn statuses_are_the_commit_status_providers() {
    let az = "https://dev.azure.com/org/My%20Project/_apis/git/repositories/r";
    #[rustfmt::skip]
    let cases = [
        (ProviderType::Github, format!("https://api.github.com/repos/o/r/statuses/{SHA}"),
         json!({"state": "failure", "context": "driftless/c/ns/web", "description": "plan: 1 to change"})),
        (ProviderType::Gitlab, format!("https://gitlab.example.com/api/v4/projects/g%2Fsub%2Fr/statuses/{SHA}"),
         json!({"state": "failed", "name": "driftless/c/ns/web", "description": "plan: 1 to change"})),
        (ProviderType::Gitea, format!("http://127.0.0.1:3000/api/v1/repos/o/r/statuses/{SHA}"),
         json!({"state": "failure", "context": "driftless/c/ns/web", "description": "plan: 1 to change"})),
        (ProviderType::Azuredevops, format!("{az}/commits/{SHA}/statuses?api-version=7.1"),
         json!({"state": "failed", "description": "plan: 1 to change",
                "context": {"genre": "driftless", "name": "c/ns/web"}})),
    ];
    for (type_, url, expected) in cases {
        let f = forge(type_);
        let out = status(
            &f,
            SHA,
            CommitState::Failure,
            "driftless/c/ns/web",
            "plan: 1 to change",
        )
        .unwrap();
        assert_eq!(
            (&out.method, out.url.as_str()),
            (&Method::POST, url.as_str())
        );
        assert_headers(&out, type_);
        assert_eq!(body(&out), expected, "{type_:?}");
    }
    let long = "d".repeat(300);
    let out = status(
        &forge(ProviderType::Github),
        SHA,
        CommitState::Pending,
        "c",
        &long,
    )
    .unwrap();
    let sent = body(&out);
    assert_eq!(sent["state"], "pending");
    let description = sent["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 140, "GitHub's limit");
}

/// `n` GitHub-shaped pull requests, the first `other` of them targeting `other`.
fn github_pulls(n: usize, other: usize) -> Vec<u8> {
    let pulls: Vec<Value> = (0..n)
        .map(|i| {
            let base = if i < other { "other" } else { "main" };
            json!({"number": i, "title": "t", "html_url": "u", "user": {"login": "a"},
                   "head": {"ref": "h", "sha": "s", "repo": {"full_name": "o/r"}},
                   "base": {"ref": base, "sha": "b", "repo": {"full_name": "o/r"}}})
        })
        .collect();
    serde_json::to_vec(&pulls).unwrap()
}

#[test]
fn paging_ends_on_a_short_page_or_gitea_on_an_empty_one() {
    let github = forge(ProviderType::Github);
    let page = parse_pulls(&github, "main", &github_pulls(100, 10)).unwrap();
    assert_eq!(page.items.len(), 90, "other branches filtered out");
    assert!(
        page.more,
        "a full page, filtered or not, may have a successor"
    );
    assert!(
        !parse_pulls(&github, "main", &github_pulls(99, 0))
            .unwrap()
            .more
    );
    let gitea = forge(ProviderType::Gitea);
    assert!(
        parse_pulls(&gitea, "main", &github_pulls(3, 0))
            .unwrap()
            .more
    );
    assert!(!parse_pulls(&gitea, "main", b"[]").unwrap().more);
    let comments = parse_comments(&gitea, br#"[{"id": 1, "body": "x"}]"#).unwrap();
    assert!(!comments.more, "Gitea lists every comment at once");
    let gitlab = forge(ProviderType::Gitlab);
    let notes: Vec<Value> = (0..100).map(|i| json!({"id": i, "body": "x"})).collect();
    let page = parse_comments(&gitlab, &serde_json::to_vec(&notes).unwrap()).unwrap();
    assert!(page.more);
    let azure = forge(ProviderType::Azuredevops);
    let page = parse_comments(&azure, br#"{"value": [], "count": 0}"#).unwrap();
    assert_eq!(
        page,
        Page {
            items: vec![],
            more: false
        }
    );
}

#[test]
fn a_pull_request_without_a_head_commit_is_left_out() {
    let body = br#"[{"iid": 1, "sha": null, "source_branch": "x", "target_branch": "main",
                     "source_project_id": 1, "target_project_id": 1}]"#;
    let page = parse_pulls(&forge(ProviderType::Gitlab), "main", body).unwrap();
    assert!(page.items.is_empty());
}

#[test]
fn created_comments_are_read_per_forge() {
    for type_ in FORGES {
        let body: &[u8] = match type_ {
            ProviderType::Azuredevops => br#"{"id": 5, "comments": [{"id": 1}]}"#,
            _ => br#"{"id": 5, "body": "plan"}"#,
        };
        let id = parse_created(&forge(type_), body).unwrap();
        let expected = match type_ {
            ProviderType::Azuredevops => CommentId::Thread {
                thread: 5,
                comment: 1,
            },
            _ => CommentId::Number(5),
        };
        assert_eq!(id, expected, "{type_:?}");
        assert!(parse_created(&forge(type_), b"<html>").is_err());
    }
}

#[test]
fn an_azure_repository_needs_its_three_coordinates() {
    let repo = Repository {
        api: "https://dev.azure.com".into(),
        path: vec!["org".into(), "r".into()],
    };
    let f = Forge::new(ProviderType::Azuredevops, repo, Zeroizing::new("T".into())).unwrap();
    let err = list_pulls(&f, "main", 1).err();
    assert!(matches!(err, Some(PullsError::UnknownRepository { .. })));
}

#[test]
fn debug_never_shows_the_token() {
    let f = forge(ProviderType::Github);
    assert!(!format!("{f:?}").contains("TOKEN"));
    let out = list_pulls(&f, "main", 1).unwrap();
    assert!(!format!("{:?}", out.headers).contains("TOKEN"));
}
