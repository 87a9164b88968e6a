//! Starting a server process on a free loopback port, waiting for it, and killing it.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports of the dev clusters (24400.. for the main one, 24500.. for the lifecycle test).
const RESERVED_PORTS: std::ops::RangeInclusive<u16> = 24400..=24899;
/// How long a server gets to accept its first connection.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a server that lost its port to a concurrent bind is started again.
const ATTEMPTS: u32 = 3;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), outside
/// the reserved range. Servers started on it retry with another port if they lose the race.
pub fn free_port() -> u16 {
    bind_free()
        .local_addr()
        .expect("bound listener has an address")
        .port()
}

/// A listener on 127.0.0.1 on a kernel-chosen port outside the reserved range.
pub(super) fn bind_free() -> TcpListener {
    // Hold the rejected listeners until a good one is found so the kernel moves on.
    let mut rejected = Vec::new();
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a port on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .expect("bound listener has an address")
            .port();
        if !RESERVED_PORTS.contains(&port) {
            return listener;
        }
        rejected.push(listener);
    }
}

/// A server process in its own process group, killed with the group on drop.
pub(crate) struct ServerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `command(port)` on a free port, with stdout and stderr appended to `log`, and
    /// waits until the port accepts connections. `command` is called again with a new port when
    /// the server dies before becoming ready (most likely it lost the port to someone else).
    ///
    /// # Panics
    /// When the server does not become ready in [`ATTEMPTS`] tries: the message has the reason
    /// and the log.
    pub fn start(name: &str, log: &Path, mut command: impl FnMut(u16) -> Command) -> Self {
        let mut reason = String::new();
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let mut cmd = command(port);
            let out = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
            let err = out
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", log.display()));
            cmd.stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    return ServerProcess {
                        child,
                        port,
                        log: log.to_path_buf(),
                    };
                }
                Err(why) => {
                    kill_group(&mut child);
                    reason = format!("attempt {attempt} on port {port}: {why}");
                }
            }
        }
        panic!(
            "{name} did not start ({reason})\n--- {} ---\n{}",
            log.display(),
            read_log(log)
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Reads a log file for a panic message; never panics itself.
pub(super) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read the log: {e})"))
}

fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited with {status} before accepting connections"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Someone else may hold the port: a server that lost the bind exits at once.
            std::thread::sleep(Duration::from_millis(50));
            return match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) => Err(format!("exited with {status} (port taken?)")),
                None => Ok(()),
            };
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(format!("not accepting connections after {READY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Kills the child's whole process group (the server and the children it forked per
/// connection: upload-pack, CGI, ssh sessions), then reaps the child.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let killed = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !killed {
        let _ = child.kill();
    }
    let _ = child.wait();
}
