//! The Git server harness itself (`tests/support/git_servers.rs`), proven with the plain `git`
//! CLI and no driftless code: every transport serves, authenticates and refuses as a real server
//! would, so a failure in the Git source's tests is the source's and not the harness's.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::git_servers::{
    GitDaemon, HangingServer, HostKey, HttpGitServer, SshGitServer, TestRepo, UserKey,
    credential_env, git_command, git_in, run, ssh_command,
};

/// A repository with one pushed commit and a tag; returns it with the commit's sha.
fn served_repo() -> (TestRepo, String) {
    let repo = TestRepo::new();
    let sha = repo.commit(
        &[
            ("apps/web/deploy.yaml", "kind: Deployment\n"),
            ("README", "hi\n"),
        ],
        "first",
    );
    repo.tag("v1", true);
    repo.push();
    (repo, sha)
}

/// Runs `git` with `args` and extra environment, returning the raw output.
fn git(args: &[&str], env: &[(String, String)]) -> Output {
    git_command()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap_or_else(|e| panic!("cannot run git {args:?}: {e}"))
}

/// Clones `url` into `<repo scratch>/<dir>`, checks the clone, and returns how long it took.
fn clone_and_check(repo: &TestRepo, url: &str, dir: &str, env: &[(String, String)]) -> Duration {
    let dest = repo.scratch().join(dir);
    let start = Instant::now();
    let out = git(&["clone", "-q", url, &dest.to_string_lossy()], env);
    let took = start.elapsed();
    assert_success(&out, &format!("clone {url}"));
    assert_eq!(run(git_in(&dest).args(["rev-parse", "HEAD"])), repo.head());
    let manifest = std::fs::read_to_string(dest.join("apps/web/deploy.yaml"))
        .unwrap_or_else(|e| panic!("the clone has no apps/web/deploy.yaml: {e}"));
    assert_eq!(manifest, "kind: Deployment\n");
    assert_v2(url, env);
    eprintln!("clone {url}: {took:?}");
    took
}

/// The server spoke protocol v2 (the packet trace shows its `version 2` line).
fn assert_v2(url: &str, env: &[(String, String)]) {
    let mut env = env.to_vec();
    env.push(("GIT_TRACE_PACKET".into(), "1".into()));
    let out = git(&["ls-remote", url], &env);
    assert_success(&out, &format!("ls-remote {url}"));
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(
        trace.contains("< version 2"),
        "{url} did not speak protocol v2:\n{trace}"
    );
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "git {what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr_of_failure(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "git {what} should have failed");
    stderr
}

/// `GIT_SSH_COMMAND` for `key` trusting only the hosts in `known_hosts`.
fn ssh_env(key: &Path, known_hosts: &Path) -> Vec<(String, String)> {
    vec![("GIT_SSH_COMMAND".into(), ssh_command(key, known_hosts))]
}

#[test]
fn daemon_serves_clone_and_push() {
    let (repo, _) = served_repo();
    let daemon = GitDaemon::start(repo.base());
    let url = daemon.url(repo.name());
    clone_and_check(&repo, &url, "clone", &[]);

    let clone = repo.scratch().join("clone");
    std::fs::write(clone.join("README"), "changed\n").expect("write README");
    run(git_in(&clone).args(["commit", "-q", "-am", "over git://"]));
    run(git_in(&clone).args(["push", "-q", "origin", "main"]));
    let pushed = run(git_in(&clone).args(["rev-parse", "HEAD"]));
    let served = run(git_in(repo.bare_path()).args(["rev-parse", "main"]));
    assert_eq!(served, pushed, "daemon log:\n{}", daemon.log());
}

#[test]
fn http_clones_with_credential_helper() {
    let (repo, _) = served_repo();
    let http = HttpGitServer::start(repo.base(), "alice", "s3cret-pw");
    let url = http.url(repo.name());
    assert!(!url.contains("alice") && !url.contains('@'), "{url}");
    clone_and_check(&repo, &url, "clone", &http.credential_env());
}

#[test]
fn http_refuses_missing_and_wrong_credentials() {
    let (repo, _) = served_repo();
    let http = HttpGitServer::start(repo.base(), "alice", "s3cret-pw");
    let url = http.url(repo.name());

    // Raw request: the server itself answers 401 without credentials.
    let status = http_status_line(http.port(), &format!("/git/{}/info/refs", repo.name()));
    assert!(status.contains(" 401 "), "{status}");

    let out = git(&["ls-remote", &url], &[]);
    let stderr = stderr_of_failure(&out, "ls-remote without credentials");
    assert!(
        stderr.contains("could not read Username"),
        "unexpected error without credentials: {stderr}"
    );

    let out = git(&["ls-remote", &url], &credential_env("alice", "wrong"));
    let stderr = stderr_of_failure(&out, "ls-remote with a wrong password");
    assert!(
        stderr.contains("Authentication failed"),
        "unexpected error with a wrong password: {stderr}"
    );
    let log = http.log();
    assert!(log.contains("\" 401 "), "no 401 in the access log:\n{log}");
}

/// The status line of `GET <path>` to 127.0.0.1:`port`, without credentials.
fn http_status_line(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        conn,
        "GET {path}?service=git-upload-pack HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .expect("read the response");
    response.lines().next().unwrap_or_default().to_string()
}

#[test]
fn http_push_with_credentials() {
    let (repo, _) = served_repo();
    let http = HttpGitServer::start(repo.base(), "alice", "s3cret-pw");
    let env = http.credential_env();
    clone_and_check(&repo, &http.url(repo.name()), "clone", &env);

    let clone = repo.scratch().join("clone");
    std::fs::write(clone.join("new.yaml"), "kind: ConfigMap\n").expect("write new.yaml");
    run(git_in(&clone).args(["add", "new.yaml"]));
    run(git_in(&clone).args(["commit", "-q", "-m", "over http"]));
    let out = git(
        &["-C", &clone.to_string_lossy(), "push", "origin", "main"],
        &env,
    );
    assert_success(&out, "push over http");
    let pushed = run(git_in(&clone).args(["rev-parse", "HEAD"]));
    let served = run(git_in(repo.bare_path()).args(["rev-parse", "main"]));
    assert_eq!(served, pushed, "{}", http.log());
}

#[test]
fn ssh_clones_with_ed25519_key() {
    let (repo, _) = served_repo();
    let key = UserKey::ed25519();
    let ssh = SshGitServer::start(key.public(), HostKey::Ed25519);
    let env = ssh_env(key.path(), &ssh.known_hosts_file());
    clone_and_check(&repo, &ssh.url(repo.bare_path()), "clone", &env);
    assert!(ssh.host_key_line().contains(" ssh-ed25519 "));
    assert!(ssh.host_key_fingerprint().starts_with("SHA256:"));
}

#[test]
fn ssh_clones_with_rsa_4096_key_over_rsa_sha2_only() {
    let (repo, _) = served_repo();
    let key = UserKey::rsa(4096);
    let ssh = SshGitServer::start(key.public(), HostKey::Rsa);
    let env = ssh_env(key.path(), &ssh.known_hosts_file());
    clone_and_check(&repo, &ssh.url(repo.bare_path()), "clone", &env);
    assert!(ssh.host_key_line().contains(" ssh-rsa "));
    let log = ssh.log();
    assert!(
        log.contains("Accepted publickey") && log.contains("pkalg rsa-sha2-"),
        "the RSA login did not use rsa-sha2-256/512:\n{log}"
    );

    // SHA-1 RSA signatures (`ssh-rsa`) are refused.
    let sha1 = format!(
        "{} -o PubkeyAcceptedAlgorithms=ssh-rsa",
        ssh_command(key.path(), &ssh.known_hosts_file())
    );
    let out = git(
        &["ls-remote", &ssh.url(repo.bare_path())],
        &[("GIT_SSH_COMMAND".into(), sha1)],
    );
    let stderr = stderr_of_failure(&out, "ls-remote signing with ssh-rsa (SHA-1)");
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

#[test]
fn ssh_refuses_a_different_host_key() {
    let (repo, _) = served_repo();
    let key = UserKey::ed25519();
    let ssh = SshGitServer::start(key.public(), HostKey::Ed25519);
    let impostor = UserKey::ed25519();
    let known_hosts = repo.scratch().join("known_hosts");
    let line = format!("[127.0.0.1]:{} {}\n", ssh.port(), impostor.public());
    std::fs::write(&known_hosts, line).expect("write known_hosts");

    let out = git(
        &["ls-remote", &ssh.url(repo.bare_path())],
        &ssh_env(key.path(), &known_hosts),
    );
    let stderr = stderr_of_failure(&out, "ls-remote with the wrong host key");
    assert!(
        stderr.contains("Host key verification failed"),
        "unexpected error: {stderr}"
    );
}

#[test]
fn ssh_authorized_keys_change_at_run_time() {
    let (repo, _) = served_repo();
    let key = UserKey::ed25519();
    let other = UserKey::ed25519();
    let ssh = SshGitServer::start(other.public(), HostKey::Ed25519);
    let env = ssh_env(key.path(), &ssh.known_hosts_file());
    let url = ssh.url(repo.bare_path());

    let stderr = stderr_of_failure(&git(&["ls-remote", &url], &env), "ls-remote unauthorized");
    assert!(stderr.contains("Permission denied"), "{stderr}");

    ssh.set_authorized_keys(&format!("{}\n", key.public()));
    assert_success(&git(&["ls-remote", &url], &env), "ls-remote authorized");
}

#[test]
fn hanging_server_times_out() {
    let hang = HangingServer::start();
    for url in [hang.git_url("repo.git"), hang.http_url("repo.git")] {
        let start = Instant::now();
        let out = Command::new("timeout")
            .args(["3", "git", "ls-remote", &url])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("run timeout git ls-remote");
        let took = start.elapsed();
        eprintln!("ls-remote {url}: {} after {took:?}", out.status);
        assert!(!out.status.success(), "ls-remote {url} succeeded");
        assert!(took < Duration::from_secs(6), "{url}: {took:?}");
    }
}

#[test]
fn test_repo_history_helpers() {
    let repo = TestRepo::new();
    let first = repo.commit(&[("a/b/c.yaml", "one\n"), ("keep", "k\n")], "first");
    repo.tag("light", false);
    let second = repo.commit(&[("a/b/c.yaml", "two\n")], "second");
    repo.tag("v2", true);
    repo.remove("a");
    let third = repo.commit(&[], "remove a");
    repo.push();
    let bare = repo.bare_path();
    assert_eq!(run(git_in(bare).args(["rev-parse", "main"])), third);
    assert_eq!(run(git_in(bare).args(["rev-parse", "light"])), first);
    assert_eq!(run(git_in(bare).args(["rev-parse", "v2^{commit}"])), second);
    assert_eq!(run(git_in(bare).args(["cat-file", "-t", "v2"])), "tag");
    assert_eq!(
        run(git_in(bare).args(["ls-tree", "--name-only", "main"])),
        "keep"
    );
    assert_eq!(
        run(git_in(bare).args(["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"])),
        "Driftless Test <test@driftless.invalid>|Driftless Test <test@driftless.invalid>"
    );

    repo.force_push_to(&first);
    assert_eq!(run(git_in(bare).args(["rev-parse", "main"])), first);
    assert_eq!(repo.head(), first);

    // The orphaned commit can be fetched by sha once allowAnySHA1InWant is on.
    repo.enable_sha1_in_want();
    let daemon = GitDaemon::start(repo.base());
    let dest = repo.scratch().join("by-sha");
    run(git_command().args(["init", "-q"]).arg(&dest));
    run(git_in(&dest).args(["fetch", "-q", &daemon.url(repo.name()), &third]));
    assert_eq!(run(git_in(&dest).args(["rev-parse", "FETCH_HEAD"])), third);
}

#[test]
fn large_repository_builds_and_clones() {
    let repo = TestRepo::new();
    let start = Instant::now();
    let head = repo.large(10_000, 1_000);
    let built = start.elapsed();
    eprintln!("TestRepo::large(10_000 files, 1_000 commits): {built:?}");
    assert_eq!(repo.head(), head);
    let bare = repo.bare_path();
    assert_eq!(
        run(git_in(bare).args(["rev-list", "--count", "main"])),
        "1000"
    );
    let files = run(git_in(bare).args(["ls-tree", "-r", "--name-only", "main"]));
    assert_eq!(files.lines().count(), 10_000);

    let daemon = GitDaemon::start(repo.base());
    let dest = repo.scratch().join("clone");
    let start = Instant::now();
    run(git_command()
        .args(["clone", "-q", "--depth=1", &daemon.url(repo.name())])
        .arg(&dest));
    eprintln!(
        "shallow clone of the large repository over git://: {:?}",
        start.elapsed()
    );
    assert_eq!(run(git_in(&dest).args(["rev-parse", "HEAD"])), head);
}
