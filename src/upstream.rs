//! Upstream pools at run time: what the process learns about each address (health), which
//! address a request takes (round robin, healthy ones first), and the Pingora peer to reach it.
//! The config model says what the file says; a [`Pool`] owns the state around it.
//!
//! A reload builds new [`Pools`] from the previous ones: a pool whose settings did not change is
//! kept as it is (same health flags, same round-robin position, and health results in flight
//! land where requests look); a changed pool starts from the health of the addresses it keeps.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use pingora::prelude::ErrorType;
use pingora::upstreams::peer::HttpPeer;

use crate::config::Upstream;

/// One upstream pool: its settings and the state of its addresses.
#[derive(Debug)]
pub struct Pool {
    pub config: Arc<Upstream>,
    /// Per address (the order of `config.addrs`): false once health checks found it down.
    healthy: Box<[AtomicBool]>,
    next: AtomicUsize,
}

impl Pool {
    /// A pool for `config`, taking the health of the addresses `previous` shares with it.
    pub fn new(config: Arc<Upstream>, previous: Option<&Pool>) -> Pool {
        let healthy = config
            .addrs
            .iter()
            .map(|addr| {
                let was = previous.and_then(|p| p.index_of(*addr).map(|i| p.is_healthy(i)));
                AtomicBool::new(was.unwrap_or(true))
            })
            .collect();
        Pool { config, healthy, next: AtomicUsize::new(0) }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn len(&self) -> usize {
        self.config.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.config.addrs.is_empty()
    }

    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.config.addrs.iter().position(|a| *a == addr)
    }

    /// Where a request starts in the pool: round robin across requests.
    pub fn start_index(&self) -> usize {
        // One address: no rotation, and no write to a counter every worker thread shares.
        if self.config.addrs.len() == 1 {
            return 0;
        }
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The address for attempt `attempt` of a request that started at `start`. Addresses are
    /// taken in round-robin order from `start`, healthy ones first: each retry after a failed
    /// connect moves to the next, and addresses found down are tried only when nothing else is
    /// left (a pool that is entirely down is still tried rather than refused).
    pub fn addr(&self, start: usize, attempt: usize) -> SocketAddr {
        let addrs = &self.config.addrs;
        let n = addrs.len();
        let at = |k: usize| start.wrapping_add(k) % n;
        // Without health checks every address is up: plain rotation.
        if n == 1 || !self.config.health.enabled {
            return addrs[at(attempt % n)];
        }
        let healthy = (0..n).filter(|k| self.is_healthy(at(*k))).count();
        let nth = attempt % n;
        let (want_healthy, skip) = if nth < healthy { (true, nth) } else { (false, nth - healthy) };
        let k = (0..n).filter(|k| self.is_healthy(at(*k)) == want_healthy).nth(skip).unwrap_or(nth);
        addrs[at(k)]
    }

    /// Whether the `i`th address is in use: health checks off, or its last verdict was up.
    pub fn is_healthy(&self, i: usize) -> bool {
        !self.config.health.enabled || self.healthy.get(i).is_none_or(|h| h.load(Ordering::Relaxed))
    }

    /// Addresses not found down.
    pub fn healthy_count(&self) -> usize {
        (0..self.len()).filter(|i| self.is_healthy(*i)).count()
    }

    /// Every address found down by health checks.
    pub fn all_down(&self) -> bool {
        self.healthy_count() == 0
    }

    /// A health check's verdict on `addr`; false when the pool has no such address.
    pub fn set_healthy(&self, addr: SocketAddr, healthy: bool) -> bool {
        match self.index_of(addr) {
            Some(i) => {
                self.healthy[i].store(healthy, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The peer for one address of this pool, with the pool's TLS, HTTP version and timeouts.
    pub fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let up = &self.config;
        let sni = if up.tls { up.sni.clone() } else { String::new() };
        let mut peer = HttpPeer::new(addr, up.tls, sni);
        peer.options.connection_timeout = Some(up.connect_timeout);
        // Connect and read timeouts only: a write timeout would register a timer on every write
        // of every request, and an upstream that stops reading also stops answering, which the
        // read timeout already catches.
        peer.options.read_timeout = Some(up.read_timeout);
        if up.http2 {
            // TLS: offer h2 (and h1) by ALPN; plain text: h2c by prior knowledge, as gRPC servers take.
            let min = if up.tls { 1 } else { 2 };
            peer.options.set_http_version(2, min);
        }
        peer
    }

    /// The peer a one-off request (a shadow copy) takes: the next address in round-robin order.
    pub fn next_peer(&self) -> HttpPeer {
        self.peer(self.addr(self.start_index(), 0))
    }
}

/// Every pool of a config snapshot, by upstream name.
#[derive(Debug, Default)]
pub struct Pools {
    by_name: BTreeMap<String, Arc<Pool>>,
}

impl Pools {
    /// Pools for `upstreams`, keeping from `previous` every pool whose settings are unchanged and
    /// the health of every address a changed pool keeps.
    pub fn build(upstreams: &BTreeMap<String, Arc<Upstream>>, previous: Option<&Pools>) -> Pools {
        let by_name = upstreams
            .iter()
            .map(|(name, config)| {
                let old = previous.and_then(|p| p.get(name));
                let pool = match old {
                    Some(old) if *old.config == **config => old.clone(),
                    _ => Arc::new(Pool::new(config.clone(), old.map(Arc::as_ref))),
                };
                (name.clone(), pool)
            })
            .collect();
        Pools { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Pool>> {
        self.by_name.get(name)
    }

    /// The pool of `config`, or a fresh one when this snapshot has none by that name.
    pub fn of(&self, config: &Arc<Upstream>) -> Arc<Pool> {
        self.get(&config.name).cloned().unwrap_or_else(|| Arc::new(Pool::new(config.clone(), None)))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.by_name.values()
    }
}

/// How talking to an upstream failed, as counted in `strangler_upstream_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    ConnectTimeout,
    /// Refused, unreachable, or the socket could not be set up.
    Connect,
    Tls,
    /// No answer within `read_timeout`.
    Timeout,
    /// The connection broke mid-exchange.
    Reset,
    /// The answer was not valid HTTP.
    Protocol,
    /// New answered 502/503/504 and the request failed over to legacy.
    Status,
    Other,
}

impl Failure {
    pub fn of(e: &ErrorType) -> Failure {
        use ErrorType::*;
        match e {
            ConnectTimedout => Failure::ConnectTimeout,
            ConnectRefused | ConnectNoRoute | ConnectError | SocketError | BindError => Failure::Connect,
            TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError => Failure::Tls,
            ReadTimedout | WriteTimedout => Failure::Timeout,
            ConnectionClosed | ReadError | WriteError => Failure::Reset,
            InvalidHTTPHeader => Failure::Protocol,
            _ => Failure::Other,
        }
    }

    /// Failed before a connection was up: the request never reached the upstream.
    pub fn is_connect(self) -> bool {
        matches!(self, Failure::ConnectTimeout | Failure::Connect | Failure::Tls)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Connect => "connect",
            Failure::Tls => "tls",
            Failure::Timeout => "timeout",
            Failure::Reset => "reset",
            Failure::Protocol => "protocol",
            Failure::Status => "status",
            Failure::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Health;

    fn upstream(name: &str, ports: &[u16], health: bool) -> Arc<Upstream> {
        Arc::new(Upstream {
            name: name.into(),
            addrs: ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect(),
            tls: false,
            sni: String::new(),
            host_header: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            http2: false,
            health: Health {
                enabled: health,
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                path: None,
                fails: 1,
                passes: 1,
            },
        })
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn healthy_addresses_first_then_the_ones_found_down() {
        let pool = Pool::new(upstream("p", &[1, 2, 3], true), None);
        assert!(pool.set_healthy(addr(2), false));
        assert!(!pool.set_healthy(addr(9), false), "not an address of this pool");
        let order: Vec<u16> = (0..3).map(|a| pool.addr(1, a).port()).collect();
        assert_eq!(order, [3, 1, 2], "from start 1: 2 is down, so 3 and 1, then 2");
        assert_eq!(pool.healthy_count(), 2);
        pool.set_healthy(addr(1), false);
        pool.set_healthy(addr(3), false);
        assert!(pool.all_down());
        assert_eq!(pool.addr(0, 0).port(), 1, "a pool entirely down is still tried");
    }

    #[test]
    fn without_health_checks_every_address_is_up() {
        let pool = Pool::new(upstream("p", &[1], false), None);
        pool.set_healthy(addr(1), false);
        assert!(!pool.all_down());
        assert_eq!((pool.start_index(), pool.start_index()), (0, 0), "one address: nothing to rotate");
        assert_eq!(pool.addr(0, 1).port(), 1, "a retry on a one-address pool takes that address again");
        let pool = Pool::new(upstream("p", &[1, 2, 3], false), None);
        pool.set_healthy(addr(2), false);
        assert_eq!((pool.start_index(), pool.start_index()), (0, 1), "round robin across requests");
        let order: Vec<u16> = (0..4).map(|a| pool.addr(1, a).port()).collect();
        assert_eq!(order, [2, 3, 1, 2], "from start 1, a verdict ignored, retries wrap around");
    }

    #[test]
    fn a_reload_keeps_unchanged_pools_and_the_health_of_kept_addresses() {
        let first = BTreeMap::from([
            ("same".to_string(), upstream("same", &[1, 2], true)),
            ("grown".to_string(), upstream("grown", &[3, 4], true)),
        ]);
        let before = Pools::build(&first, None);
        before.get("same").unwrap().set_healthy(addr(2), false);
        before.get("grown").unwrap().set_healthy(addr(4), false);
        let second = BTreeMap::from([
            ("same".to_string(), upstream("same", &[1, 2], true)),
            ("grown".to_string(), upstream("grown", &[4, 5], true)),
        ]);
        let after = Pools::build(&second, Some(&before));
        assert!(Arc::ptr_eq(before.get("same").unwrap(), after.get("same").unwrap()), "unchanged: the same pool");
        let grown = after.get("grown").unwrap();
        assert!(!Arc::ptr_eq(before.get("grown").unwrap(), grown));
        assert_eq!((grown.is_healthy(0), grown.is_healthy(1)), (false, true), "4 stays down, 5 starts up");
    }
}
