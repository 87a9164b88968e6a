//! The Git source against real servers on loopback: `git daemon`, smart HTTP behind lighttpd
//! with basic auth, and OpenSSH `sshd` — refs, incremental fetches, force-pushes, snapshots,
//! credentials, host keys, timeouts, the sync tag, and signatures.

mod support;

use std::time::{Duration, Instant};

use driftless::source::keys::{self, KeyType};
use driftless::source::url::parse;
use driftless::source::{Auth, FetchRequest, GitCache, GitRef, Sensitive, SourceError};
use support::git_servers::{
    GitDaemon, HangingServer, HostKey, HttpGitServer, HttpsGitServer, SshGitServer, TestRepo,
    git_in, run,
};

fn request(url: &str, git_ref: Option<GitRef>) -> FetchRequest {
    FetchRequest {
        url: parse(url).expect("valid url"),
        git_ref,
        auth: Auth::default(),
        timeout: Duration::from_secs(20),
    }
}

fn cache() -> (tempfile::TempDir, GitCache) {
    let dir = tempfile::tempdir().expect("cache dir");
    let cache = GitCache::new(dir.path());
    (dir, cache)
}

/// Objects in the cached repository of `req` (loose and packed).
fn object_count(cache_root: &std::path::Path) -> u64 {
    let repos = std::fs::read_dir(cache_root.join("repos")).expect("repos dir");
    let mut total = 0;
    for repo in repos {
        let out = run(git_in(&repo.expect("entry").path()).args(["count-objects", "-v"]));
        for line in out.lines() {
            if let Some(n) = line
                .strip_prefix("count: ")
                .or_else(|| line.strip_prefix("in-pack: "))
            {
                total += n.trim().parse::<u64>().expect("number");
            }
        }
    }
    total
}

#[tokio::test]
async fn branch_tag_semver_and_commit_refs_over_git_daemon() {
    let repo = TestRepo::new();
    let c1 = repo.commit(&[("app.yaml", "v: 1\n")], "first");
    repo.tag("v1.0.0", true);
    let c2 = repo.commit(&[("app.yaml", "v: 2\n")], "second");
    repo.tag("v1.1.0", false);
    let c3 = repo.commit(&[("app.yaml", "v: 3\n")], "third: breaking");
    repo.tag("v2.0.0", true);
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let url = daemon.url(repo.name());
    let (_dir, cache) = cache();

    let head = cache
        .fetch(&request(&url, None))
        .await
        .expect("default branch");
    assert_eq!(head.revision.sha, c3);
    assert_eq!(head.revision.to_string(), format!("main@sha1:{c3}"));
    assert_eq!(head.subject, "third: breaking");
    assert!(
        head.author.contains('<'),
        "author with email: {}",
        head.author
    );

    let branch = cache
        .fetch(&request(&url, Some(GitRef::branch("main").expect("ref"))))
        .await
        .expect("branch");
    assert_eq!(branch.revision.sha, c3);
    let tag = cache
        .fetch(&request(&url, Some(GitRef::tag("v1.0.0").expect("ref"))))
        .await
        .expect("tag");
    assert_eq!(
        tag.revision.sha, c1,
        "an annotated tag resolves to its commit"
    );
    assert_eq!(tag.revision.git_ref, "v1.0.0");
    let semver = cache
        .fetch(&request(
            &url,
            Some(GitRef::semver(">=1.0.0, <2.0.0").expect("range")),
        ))
        .await
        .expect("semver");
    assert_eq!(semver.revision.sha, c2, "highest tag in range: v1.1.0");
    assert_eq!(semver.revision.git_ref, "v1.1.0");
    let none = cache
        .fetch(&request(&url, Some(GitRef::semver(">=3").expect("range"))))
        .await;
    assert!(
        matches!(none, Err(SourceError::NoMatchingTag { .. })),
        "{none:?}"
    );
    let commit = cache
        .fetch(&request(&url, Some(GitRef::commit(&c1).expect("sha"))))
        .await
        .expect("commit");
    assert_eq!(commit.revision.sha, c1);
}

#[tokio::test]
async fn new_commits_fetch_only_new_objects_and_force_pushes_are_followed() {
    let repo = TestRepo::new();
    let files: Vec<(String, String)> = (0..200)
        .map(|i| (format!("dir/f{i}.yaml"), format!("i: {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let c1 = repo.commit(&refs, "many files");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (dir, cache) = cache();
    let req = request(
        &daemon.url(repo.name()),
        Some(GitRef::branch("main").expect("ref")),
    );
    assert_eq!(
        cache.fetch(&req).await.expect("first fetch").revision.sha,
        c1
    );
    let before = object_count(dir.path());
    assert!(
        before >= 200,
        "the first fetch brings the tree: {before} objects"
    );

    let c2 = repo.commit(&[("dir/f7.yaml", "i: changed\n")], "one change");
    repo.push();
    assert_eq!(
        cache.fetch(&req).await.expect("second fetch").revision.sha,
        c2
    );
    let added = object_count(dir.path()) - before;
    assert!(
        added <= 5,
        "an incremental fetch brings only the new commit, trees and blob: {added} objects"
    );

    repo.force_push_to(&c1);
    let back = cache.fetch(&req).await.expect("fetch after force-push");
    assert_eq!(
        back.revision.sha, c1,
        "a force-push to older history is followed"
    );
}

#[tokio::test]
async fn a_deleted_branch_is_reported_not_found() {
    let repo = TestRepo::new();
    repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    run(git_in(repo.work_path()).args(["push", "-q", "origin", "main:feature"]));
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let req = request(
        &daemon.url(repo.name()),
        Some(GitRef::branch("feature").expect("ref")),
    );
    cache.fetch(&req).await.expect("feature exists");
    run(git_in(repo.work_path()).args(["push", "-q", "origin", ":feature"]));
    let err = cache.fetch(&req).await.expect_err("feature is gone");
    assert!(matches!(err, SourceError::RefNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("feature"), "{err}");
}

#[tokio::test]
async fn snapshots_keep_executable_bits_and_symbolic_links_and_leave_out_submodules() {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    repo.commit(
        &[
            ("app/a.yaml", "a: 1\n"),
            ("app/run.sh", "#!/bin/sh\n"),
            ("app/deep/b.yaml", "b: 1\n"),
        ],
        "init",
    );
    let work = repo.work_path();
    std::fs::set_permissions(
        work.join("app/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("a.yaml", work.join("app/link.yaml")).expect("symlink");
    repo.commit(&[], "modes");
    // A gitlink (a submodule's commit) in the tree: nothing to write out for it.
    run(git_in(work).args([
        "update-index",
        "--add",
        "--cacheinfo",
        "160000,4b825dc642cb6eb9a060e54bf8d69288fbee4904,app/module",
    ]));
    run(git_in(work).args(["commit", "-q", "-m", "a submodule"]));
    let head = run(git_in(work).args(["rev-parse", "HEAD"]))
        .trim()
        .to_string();
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let req = request(&daemon.url(repo.name()), None);
    cache.fetch(&req).await.expect("fetch");
    let snap = cache.snapshot(&req, &head, "app").await.expect("snapshot");
    let mode = |p: &str| {
        std::fs::metadata(snap.root.join(p))
            .expect("written")
            .permissions()
            .mode()
    };
    assert_ne!(mode("run.sh") & 0o100, 0, "run.sh keeps its executable bit");
    assert_eq!(mode("a.yaml") & 0o111, 0);
    let link = std::fs::read_link(snap.root.join("link.yaml")).expect("a symbolic link");
    assert_eq!(link, std::path::Path::new("a.yaml"));
    assert_eq!(
        std::fs::read_to_string(snap.root.join("deep/b.yaml")).expect("nested"),
        "b: 1\n"
    );
    assert!(!snap.root.join("module").exists(), "no submodule content");
}

#[tokio::test]
async fn snapshots_hold_only_the_path_and_never_change() {
    let repo = TestRepo::new();
    let c1 = repo.commit(
        &[("apps/web/a.yaml", "a: 1\n"), ("other/b.yaml", "b: 1\n")],
        "init",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let req = request(&daemon.url(repo.name()), None);
    cache.fetch(&req).await.expect("fetch");
    let snap = cache.snapshot(&req, &c1, "apps").await.expect("snapshot");
    assert!(snap.root.join("web/a.yaml").is_file());
    assert!(!snap.root.join("../other").exists() && !snap.root.join("other").exists());

    repo.commit(&[("apps/web/a.yaml", "a: 2\n")], "change");
    repo.push();
    cache.fetch(&req).await.expect("fetch again");
    let text = std::fs::read_to_string(snap.root.join("web/a.yaml")).expect("read");
    assert_eq!(text, "a: 1\n", "a snapshot is immutable");
    // The repository's object reader, started by the first snapshot, finds what a later
    // fetch brought.
    let c2 = cache.fetch(&req).await.expect("fetch").revision.sha;
    let snap2 = cache
        .snapshot(&req, &c2, "apps/web")
        .await
        .expect("snapshot 2");
    let text = std::fs::read_to_string(snap2.root.join("a.yaml")).expect("read 2");
    assert_eq!(text, "a: 2\n");
    assert!(
        matches!(
            cache.snapshot(&req, &c1, "apps/web/a.yaml").await,
            Err(SourceError::PathNotFound { .. })
        ),
        "a file is not a directory to render"
    );

    assert!(matches!(
        cache.snapshot(&req, &c1, "../etc").await,
        Err(SourceError::InvalidPath { .. })
    ));
    assert!(matches!(
        cache.snapshot(&req, &c1, "missing").await,
        Err(SourceError::PathNotFound { .. })
    ));
    let root = snap.root.clone();
    drop(snap);
    assert!(!root.exists(), "a dropped snapshot is removed");
}

#[tokio::test]
async fn https_with_basic_auth_and_no_credential_leaks() {
    let repo = TestRepo::new();
    let sha = repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    let password = "pl4nted-S3cret-9f2c";
    let server = HttpGitServer::start(repo.base(), "deploy", password);
    let (_dir, cache) = cache();
    let mut req = request(&server.url(repo.name()), None);

    let denied = cache.fetch(&req).await.expect_err("no credentials");
    assert!(
        denied.to_string().contains("requires HTTPS credentials"),
        "{denied}"
    );

    req.auth = Auth {
        username: Some("deploy".into()),
        password: Some(Sensitive("wrong".into())),
        ..Auth::default()
    };
    let wrong = cache.fetch(&req).await.expect_err("wrong password");
    assert!(!wrong.to_string().contains("wrong"), "{wrong}");

    req.auth.password = Some(Sensitive(password.into()));
    let ok = cache.fetch(&req).await.expect("with credentials");
    assert_eq!(ok.revision.sha, sha);
    assert!(!format!("{req:?} {ok:?}").contains(password));

    // A URL with the password in it: redacted in every error.
    let with_userinfo = format!(
        "http://deploy:{password}@127.0.0.1:{}/git/missing.git",
        server.port()
    );
    let err = cache
        .fetch(&request(&with_userinfo, None))
        .await
        .expect_err("missing repo");
    assert!(!err.to_string().contains(password), "{err}");
    assert!(!format!("{err:?}").contains(password), "{err:?}");
}

#[tokio::test]
async fn https_with_a_private_ca_and_a_bearer_token() {
    let repo = TestRepo::new();
    let sha = repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    let token = "tok-Planted-5e1d";
    let server = HttpsGitServer::start(repo.base(), token);
    let (_dir, cache) = cache();
    let mut req = request(&server.url(repo.name()), None);
    req.auth.bearer_token = Some(Sensitive(token.into()));

    let untrusted = cache.fetch(&req).await.expect_err("unknown CA");
    let text = untrusted.to_string();
    assert!(
        text.to_lowercase().contains("certificate") && text.contains("caFile"),
        "says the certificate is not trusted: {text}\n{}",
        server.log()
    );

    req.auth.ca_bundle = Some(server.ca_pem());
    req.auth.bearer_token = None;
    let refused = cache.fetch(&req).await.expect_err("no token");
    assert!(refused.to_string().contains("403"), "{refused}");

    req.auth.bearer_token = Some(Sensitive(token.into()));
    let ok = cache
        .fetch(&req)
        .await
        .unwrap_or_else(|e| panic!("with the CA and the token: {e}\n{}", server.log()));
    assert_eq!(ok.revision.sha, sha);
    for text in [
        format!("{untrusted} {untrusted:?}"),
        format!("{refused} {ok:?} {req:?}"),
    ] {
        assert!(!text.contains(token), "the token leaked: {text}");
    }
}

#[tokio::test]
async fn credentials_never_appear_in_the_process_listing() {
    let hanging = HangingServer::start();
    let password = "ps-Visible-Never-7731";
    let token = "bearer-Visible-Never-1234";
    let (_dir, cache) = cache();
    let mut req = request(&hanging.http_url("r.git"), None);
    req.timeout = Duration::from_secs(4);
    req.auth = Auth {
        username: Some("u".into()),
        password: Some(Sensitive(password.into())),
        bearer_token: Some(Sensitive(token.into())),
        ..Auth::default()
    };
    let fetch = tokio::spawn(async move { cache.fetch(&req).await });
    let mut saw_git = false;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ps = run(std::process::Command::new("ps").args(["-eo", "args", "ww"]));
        saw_git |= ps.contains("ls-remote");
        assert!(
            !ps.contains(password) && !ps.contains(token),
            "a credential is visible in ps:\n{ps}"
        );
    }
    assert!(saw_git, "the listing was taken while git ran");
    let result = fetch.await.expect("join");
    assert!(result.is_err());
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let hanging = HangingServer::start();
    let (_dir, cache) = cache();
    let mut req = request(
        &hanging.git_url("r.git"),
        Some(GitRef::branch("main").expect("ref")),
    );
    req.timeout = Duration::from_secs(2);
    let start = Instant::now();
    let err = cache.fetch(&req).await.expect_err("must time out");
    assert!(err.to_string().contains("timed out after 2s"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the timeout is honoured: {:?}",
        start.elapsed()
    );
}

async fn fetch_over_ssh(kind: KeyType, host_key: HostKey) {
    let repo = TestRepo::new();
    let sha = repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    let pair = keys::generate(kind, "driftless@test").expect("key");
    let server = SshGitServer::start(&pair.public, host_key);
    let (_dir, cache) = cache();
    let mut req = request(&server.url(repo.bare_path()), None);
    req.auth = Auth {
        ssh_private_key: Some(pair.private.clone()),
        known_hosts: Some(server.host_key_line()),
        ..Auth::default()
    };
    let fetched = cache
        .fetch(&req)
        .await
        .unwrap_or_else(|e| panic!("ssh fetch: {e}\nsshd log:\n{}", server.log()));
    assert_eq!(fetched.revision.sha, sha);
}

#[tokio::test]
async fn ssh_with_a_generated_ed25519_key() {
    fetch_over_ssh(KeyType::Ed25519, HostKey::Ed25519).await;
}

#[tokio::test]
async fn ssh_with_a_generated_rsa_4096_key() {
    // The Azure DevOps case: RSA user key, rsa-sha2 signatures (OpenSSH refuses SHA-1 ssh-rsa).
    fetch_over_ssh(KeyType::Rsa, HostKey::Rsa).await;
}

#[tokio::test]
async fn ssh_refuses_an_unknown_or_changed_host_key() {
    let repo = TestRepo::new();
    repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    let pair = keys::generate(KeyType::Ed25519, "driftless@test").expect("key");
    let server = SshGitServer::start(&pair.public, HostKey::Ed25519);
    let impostor = SshGitServer::start(&pair.public, HostKey::Ed25519);
    let (_dir, cache) = cache();
    let mut req = request(&server.url(repo.bare_path()), None);
    // known_hosts pins another server's key for this host and port.
    let other_key = impostor
        .host_key_line()
        .split_once(' ')
        .map(|(_, k)| k.to_string())
        .expect("key");
    let pinned = format!("[127.0.0.1]:{} {other_key}", server.port());
    req.auth = Auth {
        ssh_private_key: Some(pair.private.clone()),
        known_hosts: Some(pinned),
        ..Auth::default()
    };
    let err = cache.fetch(&req).await.expect_err("changed host key");
    let msg = err.to_string();
    assert!(matches!(err, SourceError::HostKey { .. }), "{err:?}");
    assert!(
        msg.contains(&format!("127.0.0.1:{}", server.port())),
        "names the host: {msg}"
    );
    assert!(
        msg.contains(&server.host_key_fingerprint()),
        "names the fingerprint seen: {msg}"
    );

    req.auth.known_hosts = None;
    let err = cache.fetch(&req).await.expect_err("unknown host key");
    assert!(
        err.to_string().contains(&server.host_key_fingerprint()),
        "{err}"
    );

    req.auth.accept_new_host_keys = true; // explicit trust-on-first-use
    cache.fetch(&req).await.expect("TOFU accepts a new host");
}

#[tokio::test]
async fn the_sync_tag_is_moved_and_pushed_and_a_refused_push_is_an_error() {
    let repo = TestRepo::new();
    let c1 = repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let req = request(&daemon.url(repo.name()), None);
    cache.fetch(&req).await.expect("fetch");
    cache
        .push_tag(&req, "driftless-sync", &c1, "synced by driftless")
        .await
        .expect("push tag");
    let peeled = |repo: &TestRepo| {
        run(git_in(repo.bare_path()).args(["rev-parse", "driftless-sync^{commit}"]))
    };
    assert_eq!(peeled(&repo), c1);
    let kind = run(git_in(repo.bare_path()).args(["cat-file", "-t", "driftless-sync"]));
    assert_eq!(kind, "tag", "an annotated tag");

    let c2 = repo.commit(&[("a.yaml", "a: 2\n")], "next");
    repo.push();
    cache.fetch(&req).await.expect("fetch");
    cache
        .push_tag(&req, "driftless-sync", &c2, "synced by driftless")
        .await
        .expect("move tag");
    assert_eq!(peeled(&repo), c2, "the tag moved");

    // A server that refuses pushes (a read-only key would look the same to git).
    let hook = repo.bare_path().join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho read-only >&2\nexit 1\n").expect("hook");
    run(std::process::Command::new("chmod").args(["+x"]).arg(&hook));
    let err = cache
        .push_tag(&req, "driftless-sync", &c1, "x")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("push"), "{err}");
    assert_eq!(peeled(&repo), c2, "a refused push changes nothing");
}

#[tokio::test]
async fn large_repository_first_and_incremental_fetch() {
    let repo = TestRepo::new();
    let head = repo.large(10_000, 1_000);
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let req = request(
        &daemon.url(repo.name()),
        Some(GitRef::branch("main").expect("ref")),
    );
    let t = Instant::now();
    assert_eq!(
        cache.fetch(&req).await.expect("first fetch").revision.sha,
        head
    );
    let first = t.elapsed();
    let next = repo.commit(
        &[("large/000/cm-00001.yaml", "changed: true\n")],
        "one more",
    );
    repo.push();
    let t = Instant::now();
    assert_eq!(
        cache
            .fetch(&req)
            .await
            .expect("incremental fetch")
            .revision
            .sha,
        next
    );
    let incremental = t.elapsed();
    let t = Instant::now();
    let snap = cache.snapshot(&req, &next, "").await.expect("snapshot");
    let snapshot = t.elapsed();
    assert!(snap.root.join("large/000/cm-00001.yaml").is_file());
    println!(
        "10,000 files / 1,000 commits: first fetch {first:?}, incremental {incremental:?}, snapshot {snapshot:?}"
    );
}

#[tokio::test]
async fn fetched_commits_are_verified_against_trusted_keys() {
    use driftless::source::verify::{TrustedKeys, VerifyError, verify_commit};
    let repo = TestRepo::new();
    let signer = keys::generate(KeyType::Ed25519, "release@example.com").expect("key");
    let key_dir = tempfile::tempdir().expect("tempdir");
    let key_path = key_dir.path().join("signing");
    std::fs::write(&key_path, &signer.private.0).expect("write key");
    run(std::process::Command::new("chmod")
        .arg("600")
        .arg(&key_path));
    std::fs::write(
        key_path.with_extension("pub"),
        format!("{}\n", signer.public),
    )
    .expect("write pub");
    let unsigned = repo.commit(&[("a.yaml", "a: 1\n")], "unsigned");
    std::fs::write(repo.work_path().join("b.yaml"), "b: 1\n").expect("write");
    run(git_in(repo.work_path()).args(["add", "-A"]));
    run(git_in(repo.work_path())
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("user.signingkey={}", key_path.display()))
        .args(["commit", "-q", "-S", "-m", "signed"]));
    let signed = repo.head();
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let req = request(&daemon.url(repo.name()), None);
    assert_eq!(cache.fetch(&req).await.expect("fetch").revision.sha, signed);

    let trusted = TrustedKeys::parse(
        Some(&format!("release@example.com {}", signer.public)),
        None,
    )
    .expect("allowed signers");
    let raw = cache
        .raw_object(&req, "commit", &signed)
        .await
        .expect("raw commit");
    let who = verify_commit(&raw, &trusted).expect("signed by the trusted key");
    assert!(
        who.to_string()
            .contains(&keys::fingerprint(&signer.public).expect("fp")),
        "{who}"
    );

    let stranger = keys::generate(KeyType::Ed25519, "x").expect("key");
    let other = TrustedKeys::parse(Some(&stranger.public), None).expect("keys");
    assert!(matches!(
        verify_commit(&raw, &other),
        Err(VerifyError::UnknownKey { .. })
    ));

    let old = request(
        &daemon.url(repo.name()),
        Some(GitRef::commit(&unsigned).expect("sha")),
    );
    cache.fetch(&old).await.expect("fetch the unsigned commit");
    let raw = cache
        .raw_object(&old, "commit", &unsigned)
        .await
        .expect("raw");
    assert!(matches!(
        verify_commit(&raw, &trusted),
        Err(VerifyError::Unsigned { .. })
    ));
}

#[tokio::test]
async fn concurrent_fetches_of_one_repository_share_one_fetch() {
    let repo = TestRepo::new();
    let sha = repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let req = request(
        &daemon.url(repo.name()),
        Some(GitRef::branch("main").expect("ref")),
    );
    let uploads = |log: &str| log.matches("upload-pack").count();
    let before = uploads(&daemon.log());
    let results = futures::future::join_all((0..20).map(|_| cache.fetch(&req))).await;
    for r in &results {
        assert_eq!(r.as_ref().expect("fetch").revision.sha, sha);
    }
    // Give the daemon a moment to flush its log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served = uploads(&daemon.log()) - before;
    assert!(
        (1..=2).contains(&served),
        "20 concurrent syncs cost {served} fetches:\n{}",
        daemon.log()
    );
}

#[tokio::test]
async fn a_hanging_server_does_not_block_other_repositories() {
    let hanging = HangingServer::start();
    let repo = TestRepo::new();
    let sha = repo.commit(&[("a.yaml", "a: 1\n")], "init");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (_dir, cache) = cache();
    let mut stuck = request(
        &hanging.git_url("r.git"),
        Some(GitRef::branch("main").expect("ref")),
    );
    stuck.timeout = Duration::from_secs(15);
    let good = request(&daemon.url(repo.name()), None);
    let start = Instant::now();
    let (s, g) = tokio::join!(cache.fetch(&stuck), async {
        let r = cache.fetch(&good).await;
        (r, start.elapsed())
    });
    assert!(s.is_err());
    let (g, took) = g;
    assert_eq!(g.expect("the good repository").revision.sha, sha);
    assert!(
        took < Duration::from_secs(10),
        "the good fetch waited for the hung one: {took:?}"
    );
}

#[tokio::test]
async fn descends_from_tells_a_fast_forward_from_a_rewritten_history() {
    let repo = TestRepo::new();
    repo.commit(&[("a.yaml", "a: 0\n")], "c0");
    let c1 = repo.commit(&[("a.yaml", "a: 1\n")], "c1");
    repo.tag("v1", false);
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let url = daemon.url(repo.name());
    let (_fresh_dir, fresh) = cache();
    let (dir, cache) = cache();
    let req = request(&url, Some(GitRef::branch("main").expect("ref")));
    cache.fetch(&req).await.expect("c1");

    // Phase 1: Fast-forward by two commits (the one between is never fetched).
    let c2 = repo.commit(&[("a.yaml", "a: 2\n")], "c2");
    let c3 = repo.commit(&[("a.yaml", "a: 3\n")], "c3");
    repo.push();
    let at_c3 = cache.fetch(&req).await.expect("c3").revision;
    assert_eq!(at_c3.sha, c3);
    let cached = |name: &str| {
        let repos = std::fs::read_dir(dir.path().join("repos")).expect("repos");
        let repo = repos.into_iter().next().expect("one repo").expect("entry");
        std::fs::read_to_string(repo.path().join(name)).unwrap_or_default()
    };
    let shallow = cached("shallow");
    assert_eq!(
        cache.descends_from(&req, &c1, &at_c3).await,
        Some(true),
        "fast-forward"
    );
    assert_eq!(
        cached("shallow"),
        shallow,
        "the cached repository is not written"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("snapshots")
        .collect();
    assert!(
        left.is_empty(),
        "the scratch repository is removed: {left:?}"
    );

    // Phase 2: Reset to an older commit: the new one is an ancestor of the old, not a descendant.
    repo.force_push_to(&c2);
    let at_c2 = cache.fetch(&req).await.expect("c2").revision;
    assert_eq!(at_c2.sha, c2);
    assert_eq!(
        cache.descends_from(&req, &c3, &at_c2).await,
        Some(false),
        "reset to older"
    );

    // Phase 3: A diverged rewrite: c4 on c2, replacing c3.
    let c4 = repo.commit(&[("a.yaml", "a: 4\n")], "c4 instead of c3");
    repo.push();
    let at_c4 = cache.fetch(&req).await.expect("c4").revision;
    assert_eq!(at_c4.sha, c4);
    assert_eq!(
        cache.descends_from(&req, &c3, &at_c4).await,
        Some(false),
        "diverged rewrite"
    );
    assert_eq!(cache.descends_from(&req, &c2, &at_c4).await, Some(true));

    // Phase 4: The cache keeps working as before: the next commit is fetched as usual.
    let c5 = repo.commit(&[("a.yaml", "a: 5\n")], "c5");
    repo.push();
    let at_c5 = cache.fetch(&req).await.expect("c5").revision;
    assert_eq!(at_c5.sha, c5);
    assert_eq!(cache.descends_from(&req, &c4, &at_c5).await, Some(true));

    // Phase 5: A fresh cache (a restarted agent) that never saw the old commit fetches it by id.
    let at_c5 = fresh.fetch(&req).await.expect("c5").revision;
    assert_eq!(fresh.descends_from(&req, &c1, &at_c5).await, Some(true));
    assert_eq!(fresh.descends_from(&req, &c3, &at_c5).await, Some(false));

    // Phase 6: Only branches: a tag is not asked about, nor is a status that is not a commit id.
    let tag = request(&url, Some(GitRef::tag("v1").expect("ref")));
    let at_v1 = cache.fetch(&tag).await.expect("v1").revision;
    assert_eq!(cache.descends_from(&tag, &c4, &at_v1).await, None);
    assert_eq!(
        cache.descends_from(&req, "--upload-pack=x", &at_c5).await,
        None
    );
}

/// A git process killed mid-fetch (timeout, full or read-only disk) leaves lock files behind;
/// git would refuse every later fetch ("Unable to create '.../shallow.lock': File exists").
#[tokio::test]
async fn lock_files_left_by_a_killed_git_do_not_block_later_fetches() {
    let repo = TestRepo::new();
    repo.commit(&[("a.yaml", "a: 1\n")], "one");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let (dir, cache) = cache();
    let req = request(&daemon.url(repo.name()), None);
    cache.fetch(&req).await.expect("first fetch");
    let cached = std::fs::read_dir(dir.path().join("repos"))
        .expect("repos dir")
        .next()
        .expect("one cached repository")
        .expect("entry")
        .path();
    let locks = [
        cached.join("shallow.lock"),
        cached.join("packed-refs.lock"),
        cached.join("refs/heads/main.lock"),
    ];
    for lock in &locks {
        std::fs::write(lock, "").expect("plant a stale lock");
    }
    repo.commit(&[("a.yaml", "a: 2\n")], "two");
    repo.push();
    let second = cache.fetch(&req).await.expect("fetch despite stale locks");
    assert_eq!(second.subject, "two");
    for lock in &locks {
        assert!(!lock.exists(), "{} removed", lock.display());
    }
}
