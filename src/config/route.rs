//! `[[routes]]` with their sections, validated: names, hosts, prefixes (and overlaps between
//! routes), pools, weight, sticky key, override, and the shadow and rollout sections through
//! their own builders.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use http::HeaderName;

use super::file::{RouteSection, UpstreamSection};
use super::model::{HostPattern, Override, Route, Sticky, Upstream};
use super::problems::{quote, valid_name, Problems};
use super::rollout::build_rollout;

/// Every route, in file order; the ones with problems are left out (their problems are in `p`).
pub(super) fn build_all(
    p: &mut Problems,
    routes: &[RouteSection],
    declared: &BTreeMap<String, UpstreamSection>,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
) -> Vec<Arc<Route>> {
    let mut names = HashSet::new();
    for (i, r) in routes.iter().enumerate() {
        if !names.insert(r.name.as_str()) {
            p.add(
                format!("routes[{i}].name"),
                quote(&r.name),
                "is used by an earlier route; route names must be unique",
            );
        }
    }
    check_overlaps(p, routes);
    let mut built: Vec<Route> = routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| build_route(p, &format!("routes[{i}]"), r, declared, upstreams))
        .collect();
    // Every route's override header (and its token) is removed on every route: a request routed
    // elsewhere must not carry another route's token to that route's upstream.
    let mut strip: Vec<HeaderName> =
        built.iter().filter_map(|r| r.override_.as_ref().map(|o| o.header.clone())).collect();
    strip.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    strip.dedup();
    for r in &mut built {
        r.strip_headers = strip.clone();
    }
    built.into_iter().map(Arc::new).collect()
}

/// Names an override header may not take: strangler's own marks, the headers it sets for the
/// upstream, and hop-by-hop headers (never forwarded, or owned by the connection).
const NOT_AN_OVERRIDE: [&str; 17] = [
    "x-strangler-shadow",
    "x-strangler-side",
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authorization",
];

fn check_overlaps(p: &mut Problems, routes: &[RouteSection]) {
    let mut claimed: HashMap<(Option<String>, &str), &str> = HashMap::new();
    for (i, r) in routes.iter().enumerate() {
        let hosts: Vec<Option<String>> = match &r.hosts {
            Some(h) if !h.is_empty() => h.iter().map(|h| Some(h.to_ascii_lowercase())).collect(),
            _ => vec![None],
        };
        for h in hosts {
            let label = h.as_ref().map_or("any host".to_string(), |h| format!("host {h}"));
            match claimed.get(&(h.clone(), r.path_prefix.as_str())) {
                Some(other) => p.add(
                    format!("routes[{i}].path_prefix"),
                    quote(&r.path_prefix),
                    format!("route {other:?} already serves {label} with this prefix; give one of them another prefix or hosts"),
                ),
                None => {
                    claimed.insert((h, r.path_prefix.as_str()), r.name.as_str());
                }
            }
        }
    }
}

fn build_route(
    p: &mut Problems,
    key: &str,
    r: &RouteSection,
    declared: &BTreeMap<String, UpstreamSection>,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
) -> Option<Route> {
    let before = p.len();
    if !valid_name(&r.name, &[]) {
        p.add(
            format!("{key}.name"),
            quote(&r.name),
            "route names use only lowercase letters, digits and '-' ([a-z0-9-]+)",
        );
    }

    let hosts = match &r.hosts {
        None => Vec::new(),
        Some(list) if list.is_empty() => {
            p.add(format!("{key}.hosts"), "[]", "list at least one host, or remove the key to match any host");
            Vec::new()
        }
        Some(list) => {
            list.iter().enumerate().filter_map(|(i, h)| parse_host(p, &format!("{key}.hosts[{i}]"), h)).collect()
        }
    };

    if !r.path_prefix.starts_with('/') {
        p.add(
            format!("{key}.path_prefix"),
            quote(&r.path_prefix),
            "must start with '/', e.g. \"/orders\" (\"/\" matches everything)",
        );
    }

    let mut pool = |field: &str, name: &str| -> Option<Arc<Upstream>> {
        if let Some(u) = upstreams.get(name) {
            return Some(u.clone());
        }
        if !declared.contains_key(name) {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            p.add(
                format!("{key}.{field}"),
                quote(name),
                format!(
                    "no such upstream; declare [upstreams.{name}] or use one of: {}",
                    if known.is_empty() { "(none declared)".to_string() } else { known.join(", ") }
                ),
            );
        }
        // Declared but invalid: its own problems are already reported.
        None
    };
    let legacy = pool("legacy", &r.legacy);
    let new = pool("new", &r.new);

    let weight = p.percent(&format!("{key}.weight"), r.weight, "weights");
    let sticky = r.sticky.as_ref().and_then(|v| parse_sticky(p, &format!("{key}.sticky"), v));
    let override_ = r.override_.as_ref().and_then(|o| {
        let okey = format!("{key}.override");
        let header = match HeaderName::from_bytes(o.header.as_bytes()) {
            Ok(h) if NOT_AN_OVERRIDE.contains(&h.as_str()) => {
                p.add(
                    format!("{okey}.header"),
                    quote(&o.header),
                    "is a header strangler sets or the connection owns; name one of your own, e.g. \"x-strangler-target\"",
                );
                None
            }
            Ok(h) => Some(h),
            Err(_) => {
                p.add(
                    format!("{okey}.header"),
                    quote(&o.header),
                    "must be a valid header name such as \"x-strangler-target\"",
                );
                None
            }
        };
        if o.token.as_deref() == Some("") {
            p.add(format!("{okey}.token"), "\"\"", "must not be empty; remove it to accept the header without a token");
        }
        header.map(|header| Override { header, token: o.token.clone() })
    });

    let shadow = super::shadow::build(p, key, r.shadow.as_ref(), r.compare.as_ref());
    let max_request_body = p.size(&format!("{key}.max_request_body"), &r.max_request_body, "64MiB");

    let rollout = r.rollout.as_ref().map(|ro| build_rollout(p, key, ro, shadow.is_some()));

    if p.len() > before {
        return None;
    }
    Some(Route {
        name: r.name.clone(),
        hosts,
        path_prefix: r.path_prefix.clone(),
        legacy: legacy?,
        new: new?,
        weight,
        sticky,
        override_,
        expose_side: r.expose_side,
        max_request_body,
        shadow,
        rollout,
        failover: r.failover,
        strip_headers: Vec::new(),
    })
}

/// A weight in percent -> hundredths of a percent. Rejects anything that would be rounded.
fn parse_host(p: &mut Problems, key: &str, h: &str) -> Option<HostPattern> {
    let lower = h.to_ascii_lowercase();
    let (pattern, name) = match lower.strip_prefix("*.") {
        Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest),
        None => (HostPattern::Exact(lower.clone()), lower.as_str()),
    };
    let ok = !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok {
        Some(pattern)
    } else {
        p.add(key, quote(h), "must be a host name such as \"api.example.com\" or a wildcard such as \"*.example.com\" (no port, no path)");
        None
    }
}

fn parse_sticky(p: &mut Problems, key: &str, v: &toml::Value) -> Option<Sticky> {
    const HINT: &str = "must be { cookie = \"NAME\" }, { header = \"NAME\" } or \"client_ip\"";
    match v {
        toml::Value::String(s) if s == "client_ip" => Some(Sticky::ClientIp),
        toml::Value::Table(t) if t.len() == 1 => {
            let (kind, name) = t.iter().next()?;
            let Some(name) = name.as_str().filter(|n| !n.is_empty()) else {
                p.add(format!("{key}.{kind}"), name, "must be a non-empty string");
                return None;
            };
            match kind.as_str() {
                "cookie" if name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)) => {
                    Some(Sticky::Cookie(name.to_string()))
                }
                "cookie" => {
                    p.add(format!("{key}.cookie"), quote(name), "is not a valid cookie name");
                    None
                }
                "header" => match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(h) => Some(Sticky::Header(h)),
                    Err(_) => {
                        p.add(format!("{key}.header"), quote(name), "is not a valid header name");
                        None
                    }
                },
                _ => {
                    p.add(key, v, HINT);
                    None
                }
            }
        }
        _ => {
            p.add(key, v, HINT);
            None
        }
    }
}
