//! `[upstreams.NAME]` and its `[upstreams.NAME.health]`, validated. Names are resolved here, once
//! per load, never per request.

use std::net::ToSocketAddrs;

use http::HeaderValue;

use super::file::{HealthSection, UpstreamSection};
use super::model::{Health, Upstream};
use super::problems::{quote, valid_name, Problems};

pub(super) fn build(p: &mut Problems, name: &str, u: &UpstreamSection) -> Option<Upstream> {
    let key = format!("upstreams.{name}");
    let before = p.len();
    if !valid_name(name, &['_', '.']) {
        p.add(&key, quote(name), "upstream names use lowercase letters, digits, '-', '_' and '.'");
    }
    if u.addresses.is_empty() {
        p.add(format!("{key}.addresses"), "[]", "needs at least one \"host:port\" address");
    }
    let mut addrs = Vec::new();
    let mut first_host = None;
    for (i, a) in u.addresses.iter().enumerate() {
        let akey = format!("{key}.addresses[{i}]");
        let Some((host, port)) = a.rsplit_once(':') else {
            p.add(akey, quote(a), "must be \"host:port\", e.g. \"127.0.0.1:3000\"");
            continue;
        };
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            p.add(akey, quote(a), "the port must be a number from 1 to 65535");
            continue;
        }
        // Names are resolved once per load (and again on every reload), never per request.
        match a.to_socket_addrs() {
            Ok(resolved) => {
                let before = addrs.len();
                addrs.extend(resolved);
                if addrs.len() == before {
                    p.add(akey, quote(a), "resolves to no address");
                }
            }
            Err(e) => {
                p.add(akey, quote(a), format!("cannot be resolved ({e}); use an IP address or a resolvable host name"))
            }
        }
        if first_host.is_none() {
            first_host = Some(host.trim_start_matches('[').trim_end_matches(']').to_string());
        }
    }
    let host_header = match &u.host_header {
        Some(h) => match HeaderValue::from_str(h) {
            Ok(v) if !h.is_empty() => Some(v),
            _ => {
                p.add(
                    format!("{key}.host_header"),
                    quote(h),
                    "must be a non-empty host name such as \"orders.internal\"",
                );
                None
            }
        },
        None => None,
    };
    let connect_timeout = p.duration(&format!("{key}.connect_timeout"), &u.connect_timeout);
    let read_timeout = p.duration(&format!("{key}.read_timeout"), &u.read_timeout);
    let health = build_health(p, &key, &u.health);
    if p.len() > before {
        return None;
    }
    Some(Upstream {
        name: name.to_string(),
        addrs,
        tls: u.tls,
        sni: u.sni.clone().or(first_host).unwrap_or_default(),
        host_header,
        connect_timeout,
        read_timeout,
        http2: u.http2,
        health,
    })
}

fn build_health(p: &mut Problems, key: &str, h: &HealthSection) -> Health {
    let key = format!("{key}.health");
    if let Some(path) = &h.path {
        if !path.starts_with('/') || path.parse::<http::Uri>().is_err() {
            p.add(format!("{key}.path"), quote(path), "must be a request path such as \"/healthz\"");
        }
    }
    for (field, v) in [("fails", h.fails), ("passes", h.passes)] {
        if v == 0 {
            p.add(format!("{key}.{field}"), 0, "must be at least 1 consecutive check");
        }
    }
    Health {
        enabled: h.enabled,
        interval: p.duration(&format!("{key}.interval"), &h.interval),
        timeout: p.duration(&format!("{key}.timeout"), &h.timeout),
        path: h.path.clone(),
        fails: h.fails,
        passes: h.passes,
    }
}
