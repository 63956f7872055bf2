//! The process: version, signals, start-up refusals.

mod common;

use std::process::Command;
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

#[test]
fn version() {
    let out = Command::new(bin()).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("strangler {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish_then_exits_within_the_grace_period() {
    let slow = MockUpstream::builder("slow").delay(Duration::from_millis(700)).start().await;
    let body = format!(
        "[upstreams.slow]\naddresses = [\"{}\"]\n\n[[routes]]\nname = \"r\"\nlegacy = \"slow\"\nnew = \"slow\"\n",
        slow.address()
    );
    let mut s = Strangler::start(&body).await;
    let c = client();
    let in_flight = tokio::spawn(c.get(s.url("/")).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
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
    let body = format!(
        "[upstreams.up]\naddresses = [\"{}\"]\n\n[[routes]]\nname = \"r\"\nlegacy = \"up\"\nnew = \"up\"\n",
        up.address()
    );
    let mut s = Strangler::start(&body).await;
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

/// Pingora's promise, kept: during a binary upgrade every request is answered by the old process
/// or the new one, and no client sees a refused connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_under_load_hands_over_the_listeners_and_fails_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let up = MockUpstream::builder("up").no_record().start().await;
    let body = format!(
        "[upstreams.up]\naddresses = [\"{}\"]\n\n[[routes]]\nname = \"r\"\nlegacy = \"up\"\nnew = \"up\"\n",
        up.address()
    );
    let mut old = Strangler::start(&body).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), old.url("/u"));
        // A fresh client per worker, keep-alive on: connections of the old process are closed
        // by its drain and replaced, as real clients do.
        let c = client();
        workers.push(tokio::spawn(async move {
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
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = std::fs::OpenOptions::new().append(true).open(old.dir.path().join("strangler.log")).expect("log");
    let mut new = std::process::Command::new(bin())
        .args(["run", "--upgrade", "-c"])
        .arg(&old.config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the new binary");
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal("QUIT");
    let status = wait_exit(&mut old, Duration::from_secs(10)).expect("the old process never left");
    assert!(status.success(), "{status:?}");
    let served_before = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(matches!(new.try_wait(), Ok(None)), "the new process is running");
    assert!(ok > served_before, "the new process serves: {served_before} -> {ok}");
    let _ = new.kill();
    let _ = new.wait();
    assert_eq!(failed, 0, "{failed} of {} requests failed during the upgrade; log:\n{}", ok + failed, old.log());
}
