//! The running configuration as the request path sees it: replaced whole on reload through one
//! `ArcSwap::store`, never mutated. A request pins the route it matched (an `Arc`), so it finishes
//! on the configuration it started with whatever reloads happen meanwhile.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::tls::CertResolver;
use crate::config::Config;
use crate::core::BySide;
use crate::metrics::{RouteStats, METRICS};
use crate::route::{Matched, RouteTable};
use crate::shadow::state::ShadowState;
use crate::telemetry::Tracing;
use crate::upstream::Pools;

pub struct Snapshot {
    pub config: Arc<Config>,
    /// The upstream pools with their run-time state, by upstream name.
    pub pools: Pools,
    pub table: RouteTable,
    /// `[telemetry]`'s traces: kept across reloads that leave the section as it is.
    pub tracing: Option<Arc<Tracing>>,
}

impl Snapshot {
    /// Metric handles, shadow state (learned noise, recent diffs) and live figures of routes are
    /// carried over from `previous` by route name; pools by upstream name (see [`Pools::build`]).
    fn new(config: Config, previous: Option<&Snapshot>) -> Self {
        let pools = Pools::build(&config.upstreams, previous.map(|p| &p.pools));
        let entries = config
            .routes
            .iter()
            .map(|route| {
                let kept = previous.and_then(|p| p.table.get(&route.name));
                let stats = kept.map(|m| m.stats.clone()).unwrap_or_else(|| Arc::new(RouteStats::new(&route.name)));
                let shadow = route.shadow.as_ref().map(|cfg| {
                    let state =
                        kept.and_then(|m| m.shadow.clone()).unwrap_or_else(|| Arc::new(ShadowState::new(&route.name)));
                    state.configure(cfg);
                    state
                });
                let pools = BySide::from_fn(|s| pools.of(route.upstream(s)));
                Matched { route: route.clone(), stats, shadow, pools }
            })
            .collect();
        let tracing = config.telemetry.as_ref().map(|t| {
            match previous.and_then(|p| p.tracing.as_ref()).filter(|kept| kept.settings() == t) {
                Some(kept) => kept.clone(),
                None => Tracing::start(t),
            }
        });
        Snapshot { table: RouteTable::new(entries), pools, config: Arc::new(config), tracing }
    }
}

/// The current snapshot, shared by the proxy, the admin API and the reloader.
pub struct Shared {
    current: ArcSwap<Snapshot>,
    /// The TLS listeners' certificate, re-read on every reload; `None` without TLS listeners.
    certs: Option<Arc<CertResolver>>,
}

impl Shared {
    pub fn new(config: Config) -> Arc<Self> {
        let certs = config.tls.as_ref().map(|t| CertResolver::new(t.certified.clone()));
        publish_secrets(&config);
        let snap = Snapshot::new(config, None);
        publish_weights(None, &snap);
        Arc::new(Shared { current: ArcSwap::from_pointee(snap), certs })
    }

    /// What TLS listeners resolve their certificate through.
    pub fn certs(&self) -> Option<Arc<CertResolver>> {
        self.certs.clone()
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`, for holders that keep it across awaits.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Swap in a complete, validated configuration. Returns the previous snapshot.
    pub fn replace(&self, config: Config) -> Arc<Snapshot> {
        if let (Some(certs), Some(tls)) = (&self.certs, &config.tls) {
            certs.store(tls.certified.clone());
        }
        publish_secrets(&config);
        let snap = Snapshot::new(config, Some(&self.current.load()));
        let old = self.current.swap(Arc::new(snap));
        publish_weights(Some(&old), &self.current.load());
        old
    }
}

/// Tell the log what this config holds secret: every route's override header and token, the
/// headers routes redact, the admin token.
fn publish_secrets(config: &Config) {
    let mut headers = Vec::new();
    let mut values: Vec<String> = config.admin.token.iter().cloned().collect();
    for r in &config.routes {
        if let Some(ov) = &r.override_ {
            headers.push(ov.header.as_str().to_string());
            values.extend(ov.token.iter().cloned());
        }
        if let Some(s) = &r.shadow {
            headers.extend(s.compare.redaction.headers.iter().map(|h| h.as_str().to_string()));
        }
    }
    headers.sort();
    headers.dedup();
    crate::logging::set_secrets(headers, values);
}

fn publish_weights(old: Option<&Snapshot>, new: &Snapshot) {
    if let Some(old) = old {
        for r in &old.config.routes {
            if new.config.route(&r.name).is_none() {
                let _ = METRICS.route_weight.remove_label_values(&[&r.name]);
            }
        }
    }
    for r in &new.config.routes {
        METRICS.route_weight.with_label_values(&[&r.name]).set(r.weight_percent());
    }
}
