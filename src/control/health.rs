//! Active health checks of every upstream address, with Pingora's checks (a TCP or TLS connect,
//! or an HTTP `GET` of `health.path` expecting a 2xx). An address that fails `fails` checks in a
//! row is skipped by the request path until it passes `passes` in a row; a route whose new pool
//! is entirely down sends everything to legacy, which shows in `strangler_new_pool_down` and in
//! the route's API answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::connectors::http::Connector as HttpConnector;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::prelude::*;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use crate::config::Health;
use crate::config::{Side, Upstream};
use crate::metrics::METRICS;
use crate::snapshot::{Shared, Snapshot};

/// How often due checks are looked for (cheap: a snapshot pointer compare and a time compare per
/// address, unless a reload happened).
const SCAN: Duration = Duration::from_millis(100);

/// What a pool's check depends on; the check is rebuilt when it changes on reload.
#[derive(Clone, PartialEq, Eq)]
struct CheckKey {
    health: Health,
    tls: bool,
    sni: String,
    host: Option<String>,
}

type Check = Arc<dyn HealthCheck + Send + Sync>;

/// One address to check, with its state. Rebuilt when the snapshot changes (a reload); the state
/// of an address the pool keeps is carried over.
struct Target {
    upstream: String,
    addr: SocketAddr,
    check: Check,
    interval: Duration,
    timeout: Duration,
    due: Instant,
    in_flight: bool,
    /// Consecutive results against the current state: failures while up, passes while down.
    streak: u32,
    healthy: bool,
}

pub struct HealthService {
    shared: Arc<Shared>,
    options: Option<ConnectorOptions>,
}

impl HealthService {
    /// `options`: the same connector settings (CA file) as the proxy's own connections.
    pub fn new(shared: Arc<Shared>, options: Option<ConnectorOptions>) -> Self {
        HealthService { shared, options }
    }

    fn build(&self, up: &Upstream) -> Check {
        let h = &up.health;
        let host = up.host_header.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(up.sni.as_str()).to_string();
        match &h.path {
            None => {
                let mut check = TcpHealthCheck::default();
                check.set_connector(TransportConnector::new(self.options.clone()));
                check.peer_template.options.connection_timeout = Some(h.timeout);
                if up.tls {
                    check.peer_template.sni = up.sni.clone();
                }
                Arc::new(check)
            }
            Some(path) => {
                let mut check = HttpHealthCheck::new(&host, up.tls);
                check.set_connector(HttpConnector::new(self.options.clone()));
                check.peer_template.sni = if up.tls { up.sni.clone() } else { String::new() };
                check.peer_template.options.connection_timeout = Some(h.timeout);
                check.peer_template.options.read_timeout = Some(h.timeout);
                if let Ok(mut req) = RequestHeader::build("GET", path.as_bytes(), None) {
                    let _ = req.append_header("Host", host.as_str());
                    let _ = req.append_header("User-Agent", "strangler-health");
                    check.req = req;
                }
                check.validator = Some(Box::new(|resp| {
                    if resp.status.is_success() {
                        Ok(())
                    } else {
                        Error::e_explain(ErrorType::HTTPStatus(resp.status.as_u16()), "health check wants a 2xx")
                    }
                }));
                Arc::new(check)
            }
        }
    }
}

impl HealthService {
    /// The addresses to check in `snap`, keeping the state (and checks) of those already known.
    fn targets(
        &self,
        snap: &Snapshot,
        old: Vec<Target>,
        checks: &mut HashMap<String, (CheckKey, Check)>,
    ) -> Vec<Target> {
        let now = Instant::now();
        let mut old: HashMap<(String, SocketAddr), Target> =
            old.into_iter().map(|t| ((t.upstream.clone(), t.addr), t)).collect();
        let mut targets = Vec::new();
        for pool in snap.pools.iter() {
            let (name, up) = (&pool.config.name, &pool.config);
            if !up.health.enabled {
                continue;
            }
            let key = CheckKey {
                health: up.health.clone(),
                tls: up.tls,
                sni: up.sni.clone(),
                host: up.host_header.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string),
            };
            if checks.get(name).is_none_or(|(k, _)| *k != key) {
                checks.insert(name.clone(), (key, self.build(up)));
            }
            let Some((_, check)) = checks.get(name) else { continue };
            for (i, addr) in up.addrs.iter().enumerate() {
                let mut t = old.remove(&(name.clone(), *addr)).unwrap_or_else(|| {
                    let healthy = pool.is_healthy(i);
                    METRICS.upstream_healthy.with_label_values(&[name, &addr.to_string()]).set(i64::from(healthy));
                    Target {
                        upstream: name.clone(),
                        addr: *addr,
                        check: check.clone(),
                        interval: up.health.interval,
                        timeout: up.health.timeout,
                        due: now,
                        in_flight: false,
                        streak: 0,
                        healthy,
                    }
                });
                // A result that landed in the previous snapshot's pool while this one was built
                // is restated here: the pool requests now use agrees with the checker.
                pool.set_healthy(*addr, t.healthy);
                t.check = check.clone();
                // A result in flight was sent for the old list's index: it may be dropped.
                t.in_flight = false;
                t.interval = up.health.interval;
                t.timeout = up.health.timeout;
                targets.push(t);
            }
        }
        for ((name, addr), _) in old {
            let _ = METRICS.upstream_healthy.remove_label_values(&[&name, &addr.to_string()]);
        }
        checks.retain(|name, _| snap.pools.get(name).is_some());
        targets
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, SocketAddr, Result<(), String>)>();
        let mut checks: HashMap<String, (CheckKey, Check)> = HashMap::new();
        let mut targets: Vec<Target> = Vec::new();
        let mut seen: Option<Arc<Snapshot>> = None;
        let mut pool_down: HashMap<String, bool> = HashMap::new();
        let mut scan = tokio::time::interval(SCAN);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = scan.tick() => {
                    let snap = self.shared.load_full();
                    if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &snap)) {
                        targets = self.targets(&snap, std::mem::take(&mut targets), &mut checks);
                        report_pools(&snap, &mut pool_down);
                        seen = Some(snap);
                    }
                    let now = Instant::now();
                    for (i, t) in targets.iter_mut().enumerate() {
                        if t.in_flight || t.due > now {
                            continue;
                        }
                        t.in_flight = true;
                        t.due = now + t.interval;
                        let (check, tx, addr, timeout) = (t.check.clone(), tx.clone(), t.addr, t.timeout);
                        tokio::spawn(async move {
                            let backend = Backend { addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr), weight: 1, ext: Default::default() };
                            let result = match tokio::time::timeout(timeout, check.check(&backend)).await {
                                Ok(Ok(())) => Ok(()),
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(_) => Err(format!("no answer within {timeout:?}")),
                            };
                            let _ = tx.send((i, addr, result));
                        });
                    }
                }
                Some((i, addr, result)) = rx.recv() => {
                    // A result for a target list since rebuilt is matched by address, or dropped.
                    let Some(t) = targets.get_mut(i).filter(|t| t.addr == addr) else { continue };
                    t.in_flight = false;
                    if result.is_ok() == t.healthy {
                        t.streak = 0;
                        continue;
                    }
                    let snap = self.shared.load();
                    let Some(pool) = snap.pools.get(&t.upstream) else { continue };
                    t.streak += 1;
                    let health = &pool.config.health;
                    let needed = if t.healthy { health.fails } else { health.passes };
                    if t.streak < needed {
                        continue;
                    }
                    t.healthy = !t.healthy;
                    t.streak = 0;
                    pool.set_healthy(addr, t.healthy);
                    METRICS.upstream_healthy.with_label_values(&[&t.upstream, &addr.to_string()]).set(i64::from(t.healthy));
                    match &result {
                        Ok(()) => tracing::info!(upstream = t.upstream, %addr, "address is healthy again"),
                        Err(why) => tracing::warn!(upstream = t.upstream, %addr, "address is down, skipped until it passes a check: {why}"),
                    }
                    report_pools(&snap, &mut pool_down);
                }
            }
        }
    }
}

/// Publish, and log on change, which routes have their whole new pool down. Run after every health
/// change and every reload, so a reload onto a pool already known to be down shows at once too.
fn report_pools(snap: &Snapshot, pool_down: &mut HashMap<String, bool>) {
    pool_down.retain(|name, _| {
        let keep = snap.config.route(name).is_some();
        if !keep {
            let _ = METRICS.new_pool_down.remove_label_values(&[name]);
        }
        keep
    });
    for m in snap.table.iter() {
        let (route, new) = (&m.route, m.pool(Side::New));
        let down = new.all_down();
        let before = pool_down.insert(route.name.clone(), down);
        if before == Some(down) {
            continue;
        }
        METRICS.new_pool_down.with_label_values(&[&route.name]).set(i64::from(down));
        if down {
            tracing::warn!(
                route = route.name,
                upstream = new.name(),
                "every address of the new pool is down: all of the route's traffic goes to legacy"
            );
        } else if before.is_some() {
            tracing::info!(
                route = route.name,
                upstream = new.name(),
                "the new pool is back: the route's weight applies again"
            );
        }
    }
}
