//! Git faults seen by a real agent: the server down for several polls and back on the same
//! port, a force-push to an older history, the branch deleted on the server. Nothing may be
//! pruned while the source is unavailable; the agent must recover by itself.

mod support;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use support::agent::{Agent, create_gitsync, events, gitsync, ready};
use support::git_servers::{TestRepo, free_port, git_command, git_in, run};
use support::{TestNamespace, eventually};

/// `git daemon` on a fixed port, so that it can come back where it was.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(base: &std::path::Path, port: u16) -> Daemon {
        let child = git_command()
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--base-path={}", base.display()))
            .arg(format!("--port={port}"))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // `git daemon` runs git-daemon as a child: kill the whole group to stop it.
            .process_group(0)
            .spawn()
            .expect("start git daemon");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Its own process group (see `start`); the agent below is one process of its own.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cm(name: &str, v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: \"{v}\"\n")
}

async fn value(api: &Api<ConfigMap>, name: &str) -> Option<String> {
    api.get_opt(name).await.ok()??.data?.remove("v")
}

/// The Stalled condition's (status, reason), if any.
fn stalled(gs: &serde_json::Value) -> Option<(String, String)> {
    let c = gs["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Stalled")?;
    Some((c["status"].as_str()?.into(), c["reason"].as_str()?.into()))
}

fn short(sha: &str) -> &str {
    &sha[..7]
}

/// Ready condition as (status, reason, message) once it matches.
async fn wait_ready(ns: &TestNamespace, want: &str, reason: &str) -> String {
    eventually(
        &format!("GitSync Ready={want} {reason}"),
        Duration::from_secs(90),
        || async {
            let (s, r, m) = ready(&gitsync(ns, "gf").await)?;
            (s == want && r == reason).then_some(m)
        },
    )
    .await
}

#[tokio::test]
async fn git_server_down_force_push_and_deleted_branch_at_the_agent() {
    let ns = TestNamespace::new("gitfaults").await;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    let repo = TestRepo::new();
    let v1 = repo.commit(
        &[
            ("app/gf.yaml", &cm("gf", "1")),
            ("app/other.yaml", &cm("other", "1")),
        ],
        "v1",
    );
    repo.push();
    let port = free_port();
    let daemon = Daemon::start(repo.base(), port);
    let url = format!("git://127.0.0.1:{port}/{}", repo.name());
    let agent = Agent::start(&ns);
    create_gitsync(
        &ns,
        "gf",
        json!({"url": url, "ref": {"branch": "main"}, "path": "app", "pollInterval": "1s",
               "interval": "1h", "timeout": "5s", "prune": true}),
    )
    .await;
    eventually("v1 applied", Duration::from_secs(60), || async {
        (value(&cms, "gf").await? == "1").then_some(())
    })
    .await;

    // Phase 1: The server goes down for several polls; meanwhile a commit removes `other`.
    drop(daemon);
    repo.remove("app/other.yaml");
    let v2 = repo.commit(&[("app/gf.yaml", &cm("gf", "2"))], "v2");
    repo.push();
    let message = wait_ready(&ns, "False", "FetchFailed").await;
    assert!(
        message.contains("127.0.0.1"),
        "the failure names the server: {message}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await; // more failed polls
    assert_eq!(
        value(&cms, "gf").await.as_deref(),
        Some("1"),
        "nothing applied while down"
    );
    assert_eq!(
        value(&cms, "other").await.as_deref(),
        Some("1"),
        "nothing pruned while down"
    );
    let log = agent.log();
    assert!(
        log.matches("FetchFailed").count() >= 2,
        "several failed polls:\n{log}"
    );
    // Back on the same port: the agent recovers by itself.
    let _daemon = Daemon::start(repo.base(), port);
    wait_ready(&ns, "True", "Succeeded").await;
    eventually(
        "v2 applied and other pruned",
        Duration::from_secs(60),
        || async {
            let gone = cms.get_opt("other").await.ok()?.is_none();
            (value(&cms, "gf").await? == "2" && gone).then_some(())
        },
    )
    .await;
    let gs = gitsync(&ns, "gf").await;
    assert!(gs.to_string().contains(&v2), "status names v2: {gs}");

    // Phase 2: Force-push to the older history: followed and applied, with a Warning event. The
    // fast-forward v1 → v2 above made none (the check runs right after the status is written: give
    // it a moment).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = events(&ns, "gf", "HistoryRewritten");
    assert!(
        before.is_empty(),
        "a fast-forward is no history rewrite: {before:?}"
    );
    repo.force_push_to(&v1);
    eventually(
        "v1 applied again after the force-push",
        Duration::from_secs(60),
        || async {
            let back = value(&cms, "other").await? == "1";
            (value(&cms, "gf").await? == "1" && back).then_some(())
        },
    )
    .await;
    let (kind, note) = eventually(
        "a HistoryRewritten warning",
        Duration::from_secs(30),
        || async { events(&ns, "gf", "HistoryRewritten").pop() },
    )
    .await;
    eprintln!("force-push: {note}");
    assert_eq!(kind, "Warning");
    for part in ["branch main", short(&v2), short(&v1), "force-push"] {
        assert!(note.contains(part), "the warning names {part}: {note}");
    }
    assert!(
        note.find(short(&v1)) < note.find(short(&v2)),
        "new ({}) does not descend from old ({}): {note}",
        short(&v1),
        short(&v2)
    );
    assert_eq!(
        ready(&gitsync(&ns, "gf").await).map(|r| r.0).as_deref(),
        Some("True"),
        "a warning, not a failure"
    );

    // Phase 3: The branch deleted on the server: stalled with a clear reason, nothing pruned.
    run(git_in(repo.bare_path()).args(["update-ref", "-d", "refs/heads/main"]));
    let message = wait_ready(&ns, "False", "RefNotFound").await;
    eprintln!("deleted branch: {message}");
    for part in [
        "branch main not found",
        "deleted or renamed",
        "Nothing was applied or pruned",
        &format!("main@sha1:{v1}"),
    ] {
        assert!(
            message.contains(part),
            "the message says {part:?}: {message}"
        );
    }
    assert_eq!(
        stalled(&gitsync(&ns, "gf").await),
        Some(("True".into(), "RefNotFound".into())),
        "Stalled"
    );
    let failures = agent.log().matches("RefNotFound").count();
    eventually(
        "the agent retries while the branch is gone",
        Duration::from_secs(30),
        || async { (agent.log().matches("RefNotFound").count() > failures).then_some(()) },
    )
    .await;
    assert_eq!(
        value(&cms, "gf").await.as_deref(),
        Some("1"),
        "nothing changed"
    );
    assert_eq!(
        value(&cms, "other").await.as_deref(),
        Some("1"),
        "nothing pruned"
    );

    // Phase 4: A truncated pack: the server has v4, but its pack is cut in half. A clear failure,
    // nothing applied; the intact repository back: v4 applied. The branch back: recovers by itself,
    // no longer Stalled.
    run(git_in(repo.bare_path()).args(["update-ref", "refs/heads/main", &v1]));
    wait_ready(&ns, "True", "Succeeded").await;
    assert_eq!(stalled(&gitsync(&ns, "gf").await), None, "Stalled removed");
    let v4 = repo.commit(&[("app/gf.yaml", &cm("gf", "4"))], "v4");
    let bare = repo.bare_path().to_path_buf();
    let broken = bare.with_extension("broken");
    run(Command::new("cp").arg("-a").arg(&bare).arg(&broken));
    run(git_in(repo.work_path())
        .args(["push", "-q"])
        .arg(&broken)
        .arg("HEAD:refs/heads/main"));
    run(git_in(&broken).args(["repack", "-a", "-d", "-q"]));
    for pack in std::fs::read_dir(broken.join("objects/pack")).expect("packs") {
        let pack = pack.expect("entry").path();
        if pack.extension().is_some_and(|e| e == "pack") {
            let len = std::fs::metadata(&pack).expect("pack").len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&pack)
                .and_then(|f| f.set_len(len / 2))
                .expect("truncate the pack");
        }
    }
    let good = bare.with_extension("good");
    std::fs::rename(&bare, &good).expect("swap");
    std::fs::rename(&broken, &bare).expect("swap");
    // git on the server hides a branch whose objects it cannot read: "not found".
    let message = eventually("GitSync Ready=False", Duration::from_secs(90), || async {
        let (s, r, m) = ready(&gitsync(&ns, "gf").await)?;
        (s == "False" && (r == "FetchFailed" || r == "RefNotFound")).then_some(m)
    })
    .await;
    eprintln!("truncated pack: {message}");
    assert_eq!(
        value(&cms, "gf").await.as_deref(),
        Some("1"),
        "nothing applied"
    );
    assert_eq!(
        value(&cms, "other").await.as_deref(),
        Some("1"),
        "nothing pruned"
    );
    std::fs::remove_dir_all(&bare).expect("remove the broken repository");
    std::fs::rename(&good, &bare).expect("swap back");
    repo.push();
    eventually(
        "v4 applied from the intact repository",
        Duration::from_secs(90),
        || async { (value(&cms, "gf").await? == "4").then_some(()) },
    )
    .await;
    let gs = gitsync(&ns, "gf").await;
    assert!(gs.to_string().contains(&v4), "status names v4: {gs}");
}

/// A small tmpfs of the test's own, unmounted when dropped: a cache directory that can be
/// filled up or made read-only for real (root ignores mode bits, not a full or read-only
/// filesystem).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().expect("dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for the cache (this test needs root and mount rights): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Remounts with `mode`, waiting while the agent's git has a file open for writing
    /// ("mount point is busy": it polls every second).
    fn remount(&self, mode: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("mount")
                .args(["-o", &format!("remount,{mode}")])
                .arg(self.dir.path())
                .output()
                .expect("run mount");
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return;
            }
            assert!(
                stderr.contains("busy") && std::time::Instant::now() < deadline,
                "remount {mode}: {stderr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes a filler file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).expect("remove filler");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_or_read_only_cache_is_a_clear_error_and_recovers() {
    let ns = TestNamespace::new("cachefull").await;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    let repo = TestRepo::new();
    repo.commit(&[("app/gf.yaml", &cm("gf", "1"))], "v1");
    repo.push();
    let port = free_port();
    let _daemon = Daemon::start(repo.base(), port);
    let url = format!("git://127.0.0.1:{port}/{}", repo.name());
    let fs = SmallFs::mount("8m");
    // Its cache on the small file system; killed when dropped, like the daemon.
    let _agent = Agent::for_namespace(&ns)
        .cache_dir(&fs.path().join("cache"))
        .start();
    create_gitsync(
        &ns,
        "gf",
        json!({"url": url, "ref": {"branch": "main"}, "path": "app", "pollInterval": "1s",
               "interval": "1h", "timeout": "10s", "prune": true}),
    )
    .await;
    eventually("v1 applied", Duration::from_secs(60), || async {
        (value(&cms, "gf").await? == "1").then_some(())
    })
    .await;

    // Full: the next fetch cannot write; a clear error, nothing changed; space back: recovers.
    fs.fill();
    repo.commit(&[("app/gf.yaml", &cm("gf", "2"))], "v2");
    repo.push();
    let message = wait_ready(&ns, "False", "FetchFailed").await;
    assert!(
        message.contains("No space left on device"),
        "the failure says the disk is full: {message}"
    );
    assert_eq!(
        value(&cms, "gf").await.as_deref(),
        Some("1"),
        "nothing applied"
    );
    fs.free();
    eventually(
        "v2 applied once space returned",
        Duration::from_secs(90),
        || async { (value(&cms, "gf").await? == "2").then_some(()) },
    )
    .await;

    // Read-only: the same, with the filesystem's own reason.
    fs.remount("ro");
    repo.commit(&[("app/gf.yaml", &cm("gf", "3"))], "v3");
    repo.push();
    let message = wait_ready(&ns, "False", "FetchFailed").await;
    assert!(
        message.contains("Read-only file system"),
        "the failure says the cache is read-only: {message}"
    );
    assert_eq!(
        value(&cms, "gf").await.as_deref(),
        Some("2"),
        "nothing applied"
    );
    fs.remount("rw");
    eventually(
        "v3 applied once writable again",
        Duration::from_secs(90),
        || async { (value(&cms, "gf").await? == "3").then_some(()) },
    )
    .await;
}
