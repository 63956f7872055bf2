//! The fleet's figures (run by `examples/benchmark/fleet.sh`, part of `make bench`): three
//! instances of the release binary on one etcd (Debian's, loopback, temporary data).
//! - propagation: from a `PUT .../weight` on one instance until all three serve the new weight,
//!   p50 and p99 over 100 changes (target: p99 < 500 ms on loopback);
//! - etcd traffic per idle instance: bytes per second etcd receives from it (registration,
//!   lease keep-alives, the liveness check, the election), from etcd's own gRPC counters;
//! - etcd traffic per busy instance: the same while every instance serves requests, so its
//!   counters change and are published every 2 s; the size of one route's published counters,
//!   and from it what 100 instances x 50 routes would cost etcd;
//! - CPU per request of an instance in the fleet against one running on its file with the same
//!   routes, each serving the same requests (the request path reads the same snapshot either way).
//!
//! Usage: fleet_bench STRANGLER_BINARY

#[path = "../../tests/common/etcd.rs"]
mod etcd;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHANGES: usize = 100;
const REQUESTS: usize = 20_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

/// A keep-alive HTTP/1.1 upstream answering "ok" to everything, on a thread.
fn upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                let mut pending = Vec::new();
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                    }
                }
            });
        }
    });
    addr
}

struct Instance {
    child: Child,
    port: u16,
    admin: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &str, body: &str) -> Instance {
    let dir = tempfile::tempdir().expect("dir");
    let (port, admin) = (free_port(), free_port());
    let config = dir.path().join("strangler.toml");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 1\nupgrade_sock = \"{}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [log]\nlevel = \"warn\"\naccess_log = false\n{body}",
        dir.path().join("u.sock").display()
    );
    std::fs::write(&config, text).expect("config");
    let child = Command::new(bin)
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start strangler");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(admin, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "instance on {port} never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    Instance { child, port, admin, _dir: dir }
}

/// One HTTP/1.1 exchange on a new connection: status and body.
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(req.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string()))
}

fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, "")
}

fn weight(admin: u16) -> f64 {
    let (_, body) = get(admin, "/api/v1/routes/orders");
    serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["weight"].as_f64()).unwrap_or(-1.0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU microseconds per request of `i`, serving REQUESTS requests on keep-alive connections.
fn cpu_per_request(i: &Instance) -> f64 {
    let ticks = 1_000_000.0 / 100.0; // USER_HZ = 100 on Linux: 10 ms per tick
    let before = cpu_ticks(i.child.id());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let port = i.port;
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                let mut buf = [0u8; 4096];
                for _ in 0..REQUESTS / 4 {
                    s.write_all(b"GET /orders/1 HTTP/1.1\r\nHost: bench\r\n\r\n").expect("write");
                    let mut got = Vec::new();
                    while !(got.ends_with(b"ok") && got.windows(4).any(|w| w == b"\r\n\r\n")) {
                        let n = s.read(&mut buf).expect("read");
                        assert!(n > 0, "connection closed");
                        got.extend_from_slice(&buf[..n]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("load thread");
    }
    (cpu_ticks(i.child.id()) - before) as f64 * ticks / REQUESTS as f64
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// etcd's count of bytes received from gRPC clients.
fn etcd_received(etcd: &etcd::Etcd) -> f64 {
    let port: u16 = etcd.endpoints()[0].rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let (_, metrics) = get(port, "/metrics");
    metrics
        .lines()
        .filter(|l| l.starts_with("etcd_network_client_grpc_received_bytes_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Bytes etcd's client port has received on its open connections, by the kernel's count (`ss`).
fn wire_received(etcd: &etcd::Etcd) -> f64 {
    let port = etcd.endpoints()[0].rsplit(':').next().unwrap_or_default().to_string();
    let out = Command::new("ss")
        .args(["-tinH", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    out.split_whitespace().filter_map(|w| w.strip_prefix("bytes_received:")).filter_map(|n| n.parse::<f64>().ok()).sum()
}

fn main() {
    let bin = std::env::args().nth(1).expect("usage: fleet_bench STRANGLER_BINARY");
    let etcd = etcd::Etcd::start();
    let (legacy, new) = (upstream(), upstream());
    let routes = format!(
        "[upstreams.legacy]\naddresses = [\"{legacy}\"]\n[upstreams.new]\naddresses = [\"{new}\"]\n\
         [[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n"
    );
    let pusher = start(&bin, &etcd.section("pusher"));
    let (status, body) = {
        let dir = tempfile::tempdir().expect("dir");
        let (cfg, file) = (dir.path().join("c.toml"), dir.path().join("r.toml"));
        std::fs::write(&cfg, etcd.section("pusher")).expect("c");
        std::fs::write(&file, &routes).expect("r");
        let out = Command::new(&bin).args(["cluster", "push"]).arg(&file).arg("-c").arg(&cfg).output().expect("push");
        (out.status.code().unwrap_or(1), String::from_utf8_lossy(&out.stderr).to_string())
    };
    assert_eq!(status, 0, "push: {body}");
    drop(pusher);
    let fleet: Vec<Instance> = ["a", "b", "c"].iter().map(|n| start(&bin, &etcd.section(n))).collect();

    // Propagation.
    let mut took = Vec::new();
    for k in 0..CHANGES {
        let target = if k % 2 == 0 { 50.0 } else { 10.0 } + (k % 7) as f64;
        let start = Instant::now();
        let (status, body) =
            request(fleet[k % 3].admin, "PUT", "/api/v1/routes/orders/weight", &format!("{{\"percent\": {target}}}"));
        assert_eq!(status, 200, "{body}");
        while fleet.iter().any(|i| weight(i.admin) != target) {
            assert!(start.elapsed() < Duration::from_secs(10), "change {k} never reached every instance");
        }
        took.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    println!("fleet of 3 instances on one etcd {} (loopback):", etcd_version());
    println!(
        "  propagation, PUT on one instance until all three serve it, {CHANGES} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quantile(&took, 0.50),
        quantile(&took, 0.99),
        took[took.len() - 1]
    );

    // etcd traffic of idle instances: gRPC payload (etcd's own counter) and TCP bytes on the wire
    // (the kernel's count for etcd's client connections, HTTP/2 framing and headers included).
    let window = Duration::from_secs(20);
    let (payload0, wire0) = (etcd_received(&etcd), wire_received(&etcd));
    std::thread::sleep(window);
    let per = |d: f64| d / window.as_secs_f64() / fleet.len() as f64;
    println!(
        "  etcd traffic per idle instance: {:.0} B/s on the wire to etcd ({:.0} B/s of gRPC payload): a liveness check every 1 s, a lease keep-alive every lease_ttl/3, an election every 10 s",
        per(wire_received(&etcd) - wire0),
        per(etcd_received(&etcd) - payload0)
    );

    // etcd traffic of busy instances: each serves requests all along, so its counters are
    // published every 2 s.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = fleet
        .iter()
        .map(|i| {
            let (port, stop) = (i.port, stop.clone());
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                let mut buf = [0u8; 4096];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = s.write_all(b"GET /orders/1 HTTP/1.1\r\nHost: bench\r\n\r\n");
                    let _ = s.read(&mut buf);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let (payload0, wire0) = (etcd_received(&etcd), wire_received(&etcd));
    std::thread::sleep(window);
    let (wire, payload) = (per(wire_received(&etcd) - wire0), per(etcd_received(&etcd) - payload0));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    let (ok, value) = etcd.ctl(&["get", "/strangler/figures/a", "--print-value-only"]);
    assert!(ok, "{value}");
    let per_route = value.trim().len();
    println!(
        "  etcd traffic per busy instance: {wire:.0} B/s on the wire ({payload:.0} B/s of gRPC payload); its counters of one route (both sides' latency buckets in use) are {per_route} B"
    );
    // On paper: 100 instances x 50 routes, every instance's counters changing all the time.
    let doc = per_route * 50;
    println!(
        "  on paper, 100 instances x 50 routes: each publishes {:.0} KB every 2 s: {:.1} MB/s written to etcd in all (50 puts/s); while a rollout runs the leader reads as much (all of them every 2 s); etcd's history grows by {:.1} GB an hour until compacted",
        doc as f64 / 1000.0,
        doc as f64 * 100.0 / 2.0 / 1e6,
        doc as f64 * 100.0 / 2.0 * 3600.0 / 1e9
    );

    // CPU per request, fleet against file.
    let alone = start(&bin, &routes.replace("weight = 0", "weight = 10"));
    let (status, body) = request(fleet[0].admin, "PUT", "/api/v1/routes/orders/weight", "{\"percent\": 10}");
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let _ = cpu_per_request(&alone); // warm-up
    let _ = cpu_per_request(&fleet[0]);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        off.push(cpu_per_request(&alone));
        on.push(cpu_per_request(&fleet[0]));
    }
    on.sort_by(f64::total_cmp);
    off.sort_by(f64::total_cmp);
    println!(
        "  CPU per request ({REQUESTS} keep-alive requests, median of 3): in the fleet {:.1} us, on its file {:.1} us, ratio {:.2}",
        on[1],
        off[1],
        on[1] / off[1]
    );
}

fn etcd_version() -> String {
    Command::new(etcd::ETCD)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_default()
}
