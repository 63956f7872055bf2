//! `strangler check --probe`: whether every address a config names answers a TCP connection
//! now, the upstreams' and etcd's. A valid file pointing at a wrong port passes validation and
//! then fails requests until health checks catch up; this finds it before the reload.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::Config;

/// The longest a probe waits for one address.
const MAX_WAIT: Duration = Duration::from_secs(3);

/// One address tried.
#[derive(Debug)]
pub struct Probe {
    /// What the address is, as the config names it: `upstream legacy`, `etcd`.
    pub what: String,
    pub address: String,
    /// How long it took to connect, or why it did not.
    pub result: Result<Duration, String>,
}

/// Try every upstream address of `cfg`'s routes (each pool once) and every etcd endpoint, in
/// parallel, each within its pool's connect timeout (at most 3 s).
pub fn probe(cfg: &Config) -> Vec<Probe> {
    let mut targets: Vec<(String, String, Duration)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in &cfg.routes {
        for pool in [&r.legacy, &r.new] {
            if seen.insert(pool.name.clone()) {
                for a in &pool.addrs {
                    let wait = pool.connect_timeout.min(MAX_WAIT);
                    targets.push((format!("upstream {}", pool.name), a.to_string(), wait));
                }
            }
        }
    }
    if let Some(c) = &cfg.cluster {
        for e in &c.endpoints {
            targets.push(("etcd".to_string(), e.clone(), MAX_WAIT));
        }
    }
    std::thread::scope(|s| {
        let running: Vec<_> = targets
            .into_iter()
            .map(|(what, address, wait)| {
                s.spawn(move || {
                    let result = connect(&address, wait);
                    Probe { what, address, result }
                })
            })
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Probe {
                    what: "probe".into(),
                    address: String::new(),
                    result: Err("panicked".into()),
                })
            })
            .collect()
    })
}

/// Connect to `address` (`host:port`, or an etcd URL) within `wait`.
fn connect(address: &str, wait: Duration) -> Result<Duration, String> {
    let host_port = address.split_once("://").map_or(address, |(_, rest)| rest).trim_end_matches('/');
    let addrs: Vec<SocketAddr> =
        host_port.to_socket_addrs().map_err(|e| format!("cannot resolve {host_port}: {e}"))?.collect();
    let mut last = format!("{host_port} resolves to no address");
    for a in addrs {
        let start = Instant::now();
        match TcpStream::connect_timeout(&a, wait) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => last = format!("no answer within {wait:?}"),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
