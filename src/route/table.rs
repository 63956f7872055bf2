//! Route matching: host first (exact beats wildcard beats any), then the longest path prefix.

use std::sync::Arc;

use crate::config::model::{HostPattern, Route};

/// Routes ordered for matching. Built once per config snapshot; lookups allocate nothing.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Sorted by path prefix length, longest first, so the first prefix match in a tier wins.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(routes: &[Arc<Route>]) -> Self {
        let mut routes = routes.to_vec();
        routes.sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        RouteTable { routes }
    }

    /// The route for `host` (as sent by the client, any case, port allowed) and `path`.
    ///
    /// Among routes whose hosts and prefix both match, the most specific host wins (exact name,
    /// then the longest wildcard, then routes without hosts); ties go to the longest prefix.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(normalize_host);
        let host = host.as_deref();
        let mut best: Option<(usize, &Arc<Route>)> = None;
        for route in &self.routes {
            if !prefix_matches(&route.path_prefix, path) {
                continue;
            }
            let Some(rank) = host_rank(&route.hosts, host) else { continue };
            // Routes are sorted by prefix length, so an equal rank seen later never beats an
            // earlier one: only a strictly more specific host can.
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, route));
            }
        }
        best.map(|(_, r)| r)
    }
}

/// Specificity of the best matching host pattern: 0 for a route without hosts, `None` when the
/// route has hosts and none match.
fn host_rank(patterns: &[HostPattern], host: Option<&str>) -> Option<usize> {
    if patterns.is_empty() {
        return Some(0);
    }
    let host = host?;
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

/// Lowercase and strip the port (keeps IPv6 brackets' content intact).
fn normalize_host(host: &str) -> String {
    let h = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    h.trim_end_matches('.').to_ascii_lowercase()
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
        assert_eq!(normalize_host("API.Example.com:8080"), "api.example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
    }
}
