//! Active health checks of every upstream address, with Pingora's checks (a TCP or TLS connect,
//! or an HTTP `GET` of `health.path` expecting a 2xx). An address that fails `fails` checks in a
//! row is skipped by the request path until it passes `passes` in a row; a route whose new pool
//! is entirely down sends everything to legacy, which shows in `strangler_new_pool_down` and in
//! the route's API answer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
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

use crate::config::rollout::Health;
use crate::config::Upstream;
use crate::metrics::METRICS;
use crate::snapshot::Shared;

/// How often due checks are looked for.
const SCAN: Duration = Duration::from_millis(50);

/// What a pool's check depends on; the check is rebuilt when it changes on reload.
#[derive(Clone, PartialEq, Eq)]
struct CheckKey {
    health: Health,
    tls: bool,
    sni: String,
    host: Option<String>,
}

type Check = Arc<dyn HealthCheck + Send + Sync>;

struct AddrState {
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

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, SocketAddr, Result<(), String>)>();
        let mut checks: HashMap<String, (CheckKey, Check)> = HashMap::new();
        let mut addrs: HashMap<(String, SocketAddr), AddrState> = HashMap::new();
        let mut pool_down: HashMap<String, bool> = HashMap::new();
        let mut scan = tokio::time::interval(SCAN);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = scan.tick() => {
                    let snap = self.shared.load();
                    let now = Instant::now();
                    let mut present = HashSet::new();
                    for (name, up) in &snap.config.upstreams {
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
                            present.insert((name.clone(), *addr));
                            let st = addrs.entry((name.clone(), *addr)).or_insert_with(|| {
                                let healthy = up.is_healthy(i);
                                METRICS.upstream_healthy.with_label_values(&[name, &addr.to_string()]).set(i64::from(healthy));
                                AddrState { due: now, in_flight: false, streak: 0, healthy }
                            });
                            if st.in_flight || st.due > now {
                                continue;
                            }
                            st.in_flight = true;
                            st.due = now + up.health.interval;
                            let (check, tx, name, addr, timeout) = (check.clone(), tx.clone(), name.clone(), *addr, up.health.timeout);
                            tokio::spawn(async move {
                                let backend = Backend { addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr), weight: 1, ext: Default::default() };
                                let result = match tokio::time::timeout(timeout, check.check(&backend)).await {
                                    Ok(Ok(())) => Ok(()),
                                    Ok(Err(e)) => Err(e.to_string()),
                                    Err(_) => Err(format!("no answer within {timeout:?}")),
                                };
                                let _ = tx.send((name, addr, result));
                            });
                        }
                    }
                    addrs.retain(|(name, addr), _| {
                        let keep = present.contains(&(name.clone(), *addr));
                        if !keep {
                            let _ = METRICS.upstream_healthy.remove_label_values(&[name, &addr.to_string()]);
                        }
                        keep
                    });
                    checks.retain(|name, _| snap.config.upstreams.contains_key(name));
                    report_pools(&snap, &mut pool_down);
                }
                Some((name, addr, result)) = rx.recv() => {
                    let Some(st) = addrs.get_mut(&(name.clone(), addr)) else { continue };
                    st.in_flight = false;
                    let snap = self.shared.load();
                    let Some(up) = snap.config.upstreams.get(&name) else { continue };
                    if result.is_ok() == st.healthy {
                        st.streak = 0;
                        continue;
                    }
                    st.streak += 1;
                    let needed = if st.healthy { up.health.fails } else { up.health.passes };
                    if st.streak < needed {
                        continue;
                    }
                    st.healthy = !st.healthy;
                    st.streak = 0;
                    if let Some(i) = up.addrs.iter().position(|a| *a == addr) {
                        up.healthy[i].store(st.healthy, Ordering::Relaxed);
                    }
                    METRICS.upstream_healthy.with_label_values(&[&name, &addr.to_string()]).set(i64::from(st.healthy));
                    match &result {
                        Ok(()) => tracing::info!(upstream = name, %addr, "address is healthy again"),
                        Err(why) => tracing::warn!(upstream = name, %addr, "address is down, skipped until it passes a check: {why}"),
                    }
                }
            }
        }
    }
}

/// Publish, and log on change, which routes have their whole new pool down. Run on every scan, so
/// a reload onto a pool already known to be down shows at once too.
fn report_pools(snap: &crate::snapshot::Snapshot, pool_down: &mut HashMap<String, bool>) {
    pool_down.retain(|name, _| {
        let keep = snap.config.route(name).is_some();
        if !keep {
            let _ = METRICS.new_pool_down.remove_label_values(&[name]);
        }
        keep
    });
    for route in &snap.config.routes {
        let down = route.new.all_down();
        let before = pool_down.insert(route.name.clone(), down);
        if before == Some(down) {
            continue;
        }
        METRICS.new_pool_down.with_label_values(&[&route.name]).set(i64::from(down));
        if down {
            tracing::warn!(
                route = route.name,
                upstream = route.new.name,
                "every address of the new pool is down: all of the route's traffic goes to legacy"
            );
        } else if before.is_some() {
            tracing::info!(
                route = route.name,
                upstream = route.new.name,
                "the new pool is back: the route's weight applies again"
            );
        }
    }
}
