//! The process's life under a service manager: readiness and the main-process hand-over told to
//! systemd (`sd_notify`), and SIGUSR2, the one-signal binary upgrade: the running process starts
//! the binary now installed at its path as its successor, which takes the listeners over through
//! Pingora's upgrade socket. Being its child, the successor stays in the service (its cgroup), and
//! it tells systemd it is the main process, so `Type=notify` follows the hand-over.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

/// How long a successor may take to be ready for the listeners before the upgrade is abandoned.
const SUCCESSOR_DEADLINE: Duration = Duration::from_secs(30);

/// Send a state to the service manager, when there is one (`NOTIFY_SOCKET`, a path or an
/// abstract name starting with `@`). Best effort: without a manager this does nothing.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let bytes = target.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => abstract_addr(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a)),
        None => sock.send_to(state.as_bytes(), Path::new(&target)),
    };
    if let Err(e) = sent {
        tracing::warn!("telling the service manager {state:?} failed: {e}");
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract socket names are Linux only"))
}

/// Started once the proxy and admin listeners are up: tells the service manager this process is
/// the main one and ready (for a successor, that it has taken over).
pub struct Ready;

#[async_trait]
impl BackgroundService for Ready {
    async fn start(&self, _shutdown: ShutdownWatch) {
        notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
        tracing::info!(pid = std::process::id(), "ready");
    }
}

/// Pingora's signals (SIGQUIT: hand the listeners to a process started with `run --upgrade`;
/// SIGTERM: drain; SIGINT: stop now) and SIGUSR2: start that process ourselves, then hand over.
pub struct Signals {
    pub config: PathBuf,
    pub upgrade_sock: PathBuf,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut usr2 = signal(SignalKind::user_defined2()).expect("SIGUSR2 handler");
        loop {
            tokio::select! {
                _ = quit.recv() => return ShutdownSignal::GracefulUpgrade,
                _ = term.recv() => {
                    notify("STOPPING=1");
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = int.recv() => {
                    notify("STOPPING=1");
                    return ShutdownSignal::FastShutdown;
                }
                _ = usr2.recv() => match self.start_successor().await {
                    Ok(pid) => {
                        tracing::info!(successor = pid, "upgrade: handing the listeners to the successor");
                        return ShutdownSignal::GracefulUpgrade;
                    }
                    Err(e) => tracing::error!("upgrade abandoned, still serving: {e}"),
                },
            }
        }
    }
}

impl Signals {
    /// Start `BINARY run --upgrade -c CONFIG` and wait until it waits for the listeners on the
    /// upgrade socket. A successor that exits first (a config the new binary refuses, a binary
    /// that does not start) abandons the upgrade and this process keeps serving.
    async fn start_successor(&self) -> io::Result<u32> {
        let binary = installed_binary()?;
        // The successor binds the upgrade socket afresh: once a stale one is gone, a file there
        // is the successor waiting for the listeners.
        match std::fs::remove_file(&self.upgrade_sock) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut child = std::process::Command::new(&binary)
            .args(["run", "--upgrade", "-c"])
            .arg(&self.config)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", binary.display())))?;
        let pid = child.id();
        tracing::info!(successor = pid, binary = %binary.display(), "upgrade: successor started");
        let deadline = Instant::now() + SUCCESSOR_DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "the successor {} exited ({status}) before taking over",
                    binary.display()
                )));
            }
            if self.upgrade_sock.exists() {
                // Reaped by whoever adopts it once this process is gone.
                drop(child);
                return Ok(pid);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "the successor was not ready for the listeners within {}s; stopped it",
                    SUCCESSOR_DEADLINE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The binary at this process's path now: after a package upgrade replaced the file, Linux names
/// the running one "PATH (deleted)", and PATH is the new binary.
fn installed_binary() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.as_os_str().as_encoded_bytes();
    Ok(match text.strip_suffix(b" (deleted)") {
        Some(path) => PathBuf::from(String::from_utf8_lossy(path).into_owned()),
        None => exe,
    })
}
