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
