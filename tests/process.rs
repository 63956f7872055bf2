//! The process: version, signals, start-up refusals.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn wait_exit(s: &mut Strangler, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = s.child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// One route, both sides on `up`.
fn one_route(up: &MockUpstream) -> String {
    format!(
        "[upstreams.up]\naddresses = [\"{}\"]\n\n[[routes]]\nname = \"r\"\nlegacy = \"up\"\nnew = \"up\"\n",
        up.address()
    )
}

#[test]
fn version() {
    let out = Command::new(bin()).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("strangler {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_within_the_grace_period() {
    let slow = MockUpstream::builder("slow").delay(Duration::from_millis(700)).start().await;
    let mut s = Strangler::start(&one_route(&slow)).await;
    let c = client();
    let in_flight = tokio::spawn(c.get(s.url("/")).send());
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.received().is_empty() {
        assert!(Instant::now() < deadline, "the request never reached the upstream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    s.signal("TERM");
    let resp = in_flight.await.expect("task").expect("the in-flight request must complete");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "slow");
    // grace_period is 1s in the test config; Pingora then gives runtimes 1s to stop.
    let status = wait_exit(&mut s, Duration::from_secs(5)).expect("strangler did not exit after SIGTERM");
    assert!(t.elapsed() >= Duration::from_millis(900), "exited before the grace period: {:?}", t.elapsed());
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_stops_at_once() {
    let up = MockUpstream::start("up").await;
    let mut s = Strangler::start(&one_route(&up)).await;
    let t = Instant::now();
    s.signal("INT");
    wait_exit(&mut s, Duration::from_secs(3)).expect("strangler did not exit after SIGINT");
    assert!(t.elapsed() < Duration::from_millis(900), "SIGINT took {:?}", t.elapsed());
}

#[test]
fn run_refuses_an_invalid_config_with_the_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[admin]\nlisten = \"0.0.0.0:9999\"\n").expect("write");
    let out =
        Command::new(bin()).args(["run", "-c"]).arg(&path).env_remove("STRANGLER_ADMIN_TOKEN").output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin.token"), "{err}");
}

#[test]
fn the_config_path_comes_from_strangler_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("env.toml");
    std::fs::write(&path, "").expect("write");
    let out = Command::new(bin()).arg("check").env("STRANGLER_CONFIG", &path).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("env.toml: ok, 0 route(s)"));
}

#[test]
fn run_refuses_a_listen_address_already_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("busy.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nupgrade_sock = \"{}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            dir.path().join("u.sock").display(),
            free_port()
        ),
    )
    .expect("write");
    let t = Instant::now();
    let out = Command::new(bin()).args(["run", "-c"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?} to give up", t.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("server.listen[0] = 127.0.0.1:{port}")) && err.contains("in use"), "{err}");
}

/// Clients looping on keep-alive connections, counting what was served and what failed.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let workers = (0..8)
            .map(|_| {
                let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
                // A fresh client per worker, keep-alive on: connections of the old process are
                // closed by its drain and replaced, as real clients do.
                let c = client();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let good = match c.get(&url).send().await {
                            Ok(r) if r.status() != 200 => {
                                eprintln!("status {}", r.status());
                                false
                            }
                            Ok(r) => r.bytes().await.map_err(|e| eprintln!("body: {e:?}")).is_ok(),
                            Err(e) => {
                                eprintln!("send: {e:?}");
                                false
                            }
                        };
                        let tally = if good { &ok } else { &failed };
                        tally.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load { stop, ok, failed, workers }
    }

    fn served(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Wait until more than `n` requests were served.
    async fn served_over(&self, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.served() <= n {
            assert!(Instant::now() < deadline, "{what}: {} served, not over {n}", self.served());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop the clients: (served, failed).
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.expect("worker");
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

/// Pingora's promise, kept: during a binary upgrade every request is answered by the old process
/// or the new one, and no client sees a refused connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_under_load_hands_over_the_listeners_and_fails_no_request() {
    let up = MockUpstream::builder("up").no_record().start().await;
    let mut old = Strangler::start(&one_route(&up)).await;
    let load = Load::start(old.url("/u"));
    load.served_over(100, "load before the upgrade").await;

    let log = std::fs::OpenOptions::new().append(true).open(old.dir.path().join("strangler.log")).expect("log");
    let mut new = Command::new(bin())
        .args(["run", "--upgrade", "-c"])
        .arg(&old.config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the new binary");
    // The successor waits for the listeners on the upgrade socket: once it is there, the old
    // process can hand them over.
    let sock = old.dir.path().join("upgrade.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "the successor never opened {}", sock.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    old.signal("QUIT");
    let status = wait_exit(&mut old, Duration::from_secs(10)).expect("the old process never left");
    assert!(status.success(), "{status:?}");
    let served_before = load.served();
    load.served_over(served_before + 100, "the successor serves").await;
    let (ok, failed) = load.finish().await;
    assert!(matches!(new.try_wait(), Ok(None)), "the new process is running");
    assert!(ok > served_before, "the new process serves: {served_before} -> {ok}");
    let _ = new.kill();
    let _ = new.wait();
    assert_eq!(failed, 0, "{failed} of {} requests failed during the upgrade; log:\n{}", ok + failed, old.log());
}

/// A service manager's notification socket (systemd's NOTIFY_SOCKET), in the test's directory.
struct Notify {
    sock: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Notify {
    fn new() -> Notify {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the notify socket");
        Notify { sock, path, _dir: dir }
    }

    fn options(&self) -> Options {
        Options { env: vec![("NOTIFY_SOCKET".into(), self.path.display().to_string())], ..Options::default() }
    }

    /// The next message, if one comes within `within`.
    fn next(&self, within: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(within)).expect("timeout");
        let mut buf = [0u8; 512];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// `kill -USR2`: the process starts the binary at its path as its successor, hands it the
/// listeners, and the successor tells systemd (Type=notify) it is now the main process. Under load,
/// no request fails, and the old process says nothing more once it has handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigusr2_starts_the_successor_which_tells_systemd_it_is_the_main_process() {
    let up = MockUpstream::builder("up").no_record().start().await;
    let notify = Notify::new();
    let mut old = Strangler::start_with(notify.options(), &one_route(&up)).await;
    let first = notify.next(Duration::from_secs(5)).expect("a readiness message");
    assert_eq!(first, format!("MAINPID={}\nREADY=1", old.child.id()));
    let load = Load::start(old.url("/u"));
    load.served_over(100, "load before the upgrade").await;

    old.signal("USR2");
    let second = notify.next(Duration::from_secs(10)).expect("the successor's readiness");
    let pid: u32 = second
        .strip_prefix("MAINPID=")
        .and_then(|rest| rest.strip_suffix("\nREADY=1"))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("MAINPID=N READY=1, got {second:?}"));
    assert_ne!(pid, old.child.id(), "a new main process");
    let alive = |pid: u32| Command::new("kill").args(["-0", &pid.to_string()]).status().is_ok_and(|s| s.success());
    let status = wait_exit(&mut old, Duration::from_secs(15)).expect("the old process never left");
    assert!(status.success(), "{status:?}");
    let served_before = load.served();
    load.served_over(served_before + 100, "the successor serves").await;
    let (ok, failed) = load.finish().await;
    let successor_alive = alive(pid);
    let after = notify.next(Duration::from_millis(200));
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    assert!(successor_alive, "the successor is running; log:\n{}", old.log());
    assert!(ok > served_before, "the successor serves: {served_before} -> {ok}");
    assert_eq!(after, None, "nothing more once handed over (a STOPPING=1 would stop the service)");
    assert_eq!(failed, 0, "{failed} of {} requests failed during the upgrade; log:\n{}", ok + failed, old.log());
}

/// A successor that cannot start (here: the config on disk no longer validates) abandons the
/// upgrade: the running process keeps its listeners and goes on serving.
#[tokio::test]
async fn sigusr2_with_a_successor_that_fails_keeps_the_running_process_serving() {
    let up = MockUpstream::builder("up").no_record().start().await;
    let notify = Notify::new();
    let mut s = Strangler::start_with(notify.options(), &one_route(&up)).await;
    notify.next(Duration::from_secs(5)).expect("a readiness message");
    let good = std::fs::read_to_string(&s.config).expect("config");
    std::fs::write(&s.config, good.replace("legacy = \"up\"", "legacy = \"nowhere\"")).expect("break the config");
    s.signal("USR2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("upgrade abandoned") {
        assert!(Instant::now() < deadline, "no word of the abandoned upgrade; log:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.log().contains("exited (exit status: 1) before taking over"), "{}", s.log());
    assert!(wait_exit(&mut s, Duration::from_millis(500)).is_none(), "still running");
    let r = client().get(s.url("/u")).send().await.expect("still serving");
    assert_eq!(r.status(), 200);
    assert_eq!(notify.next(Duration::from_millis(200)), None, "no other process claimed to be the main one");
}

/// Transparent huge pages are off for the process unless `server.huge_pages`: with them, memory a
/// burst of connections took stays resident after the burst (see `make soak`).
#[tokio::test]
async fn transparent_huge_pages_are_off_unless_asked_for() {
    let up = MockUpstream::builder("up").no_record().start().await;
    let thp = |s: &Strangler| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).expect("status");
        status.lines().find_map(|l| l.strip_prefix("THP_enabled:").map(|v| v.trim().to_string()))
    };
    let plain = Strangler::start(&one_route(&up)).await;
    assert_eq!(thp(&plain).as_deref(), Some("0"));
    let opts = Options { server: "huge_pages = true".to_string(), ..Options::default() };
    let huge = Strangler::start_with(opts, &one_route(&up)).await;
    assert_eq!(thp(&huge).as_deref(), Some("1"));
}
