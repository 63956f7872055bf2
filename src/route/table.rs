//! Route matching: host first (exact beats wildcard beats any), then the longest path prefix.

use std::sync::Arc;

use crate::config::model::{HostPattern, Route};
use crate::core::{BySide, Side};
use crate::metrics::RouteStats;
use crate::shadow::state::ShadowState;
use crate::upstream::Pool;

/// A route as the request path holds it: the validated route, its metric handles, its two
/// upstream pools and, when it shadows, its shadow state (all but the route outlive reloads).
#[derive(Clone)]
pub struct Matched {
    pub route: Arc<Route>,
    pub stats: Arc<RouteStats>,
    pub shadow: Option<Arc<ShadowState>>,
    pub pools: BySide<Arc<Pool>>,
}

impl Matched {
    pub fn pool(&self, side: Side) -> &Arc<Pool> {
        &self.pools[side]
    }

    /// The route's live counters now, with its shadow results.
    pub fn reading(&self) -> crate::live::Reading {
        // The mismatch gate counts pairs that differed in a significant finding, not every pair
        // with an unexplained difference.
        let (compared, significant) = self.shadow.as_ref().map_or((0, 0), |s| s.gate_counts());
        self.stats.live.read(compared - significant, significant)
    }
}

/// Routes ordered for matching. Built once per config snapshot; lookups allocate nothing.
#[derive(Default)]
pub struct RouteTable {
    /// Sorted by path prefix length, longest first, so the first prefix match in a tier wins.
    /// Shared, so a request pins its route with one reference count, not one per part.
    routes: Vec<Arc<Matched>>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Matched>) -> Self {
        routes.sort_by_key(|m| std::cmp::Reverse(m.route.path_prefix.len()));
        RouteTable { routes: routes.into_iter().map(Arc::new).collect() }
    }

    /// Every route, in matching order.
    pub fn iter(&self) -> impl Iterator<Item = &Matched> {
        self.routes.iter().map(|m| &**m)
    }

    /// The route named `name`.
    pub fn get(&self, name: &str) -> Option<&Matched> {
        self.routes.iter().find(|m| m.route.name == name).map(|m| &**m)
    }

    /// The route for `host` (as sent by the client, any case, port allowed) and `path`.
    ///
    /// Among routes whose hosts and prefix both match, the most specific host wins (exact name,
    /// then the longest wildcard, then routes without hosts); ties go to the longest prefix.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Matched>> {
        // Stripped once, and only if a route names hosts: most tables route on paths alone.
        let mut stripped: Option<Option<&str>> = None;
        let mut host = || *stripped.get_or_insert_with(|| host.map(strip_port));
        let mut best: Option<(usize, &Arc<Matched>)> = None;
        for m in &self.routes {
            let route = &m.route;
            if !prefix_matches(&route.path_prefix, path) {
                continue;
            }
            let Some(rank) = host_rank(&route.hosts, &mut host) else { continue };
            // Routes are sorted by prefix length, so an equal rank seen later never beats an
            // earlier one: only a strictly more specific host can.
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, m));
            }
        }
        best.map(|(_, r)| r)
    }
}

/// Specificity of the best matching host pattern: 0 for a route without hosts, `None` when the
/// route has hosts and none match.
fn host_rank<'a>(patterns: &[HostPattern], host: &mut impl FnMut() -> Option<&'a str>) -> Option<usize> {
    if patterns.is_empty() {
        return Some(0);
    }
    let host = host()?;
    patterns.iter().filter(|p| p.matches(host)).map(|p| p.specificity().saturating_add(1)).max()
}

/// Prefixes match on path-segment boundaries: `/orders` matches `/orders`, `/orders/7` and
/// `/orders?x=1`, but not `/orders-admin`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?']),
    }
}

/// The host without port and trailing dot (IPv6 brackets removed). Case is left as sent:
/// patterns compare ignoring ASCII case, so no lowercase copy is made per request.
fn strip_port(host: &str) -> &str {
    let h = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    h.trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segments() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/orders", "/orders"));
        assert!(prefix_matches("/orders", "/orders/1"));
        assert!(prefix_matches("/orders", "/orders?page=2"));
        assert!(prefix_matches("/orders/", "/orders/1"));
        assert!(!prefix_matches("/orders", "/orders-admin"));
        assert!(!prefix_matches("/orders", "/order"));
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(strip_port("API.Example.com:8080"), "API.Example.com");
        assert_eq!(strip_port("example.com."), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert!(HostPattern::Exact("api.example.com".into()).matches("API.Example.com"));
        assert!(HostPattern::Suffix(".example.com".into()).matches("Shop.EXAMPLE.com"));
        assert!(!HostPattern::Suffix(".example.com".into()).matches("example.com"));
    }
}
