//! The admin listener: `/livez`, `/readyz`, `/metrics` and the JSON API. Loopback by default; the
//! config refuses a non-loopback address without a token.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::compare::store::DiffRecord;
use crate::config::model::Upstream;
use crate::config::shadow::Shadow;
use crate::metrics::METRICS;
use crate::route::Matched;
use crate::shadow::ShadowState;
use crate::snapshot::Shared;

pub struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminApp { shared }
    }

    fn route_json(m: &Matched) -> Value {
        let route = &m.route;
        let hosts: Vec<String> = route.hosts.iter().map(|h| h.to_string()).collect();
        json!({
            "name": route.name,
            "hosts": hosts,
            "path_prefix": route.path_prefix,
            "weight": route.weight_percent(),
            "sticky": route.sticky.as_ref().map(|s| s.describe()),
            "override": route.override_.as_ref().map(|o| json!({"header": o.header.as_str(), "token": o.token.is_some()})),
            "expose_side": route.expose_side,
            "sides": {
                "legacy": Self::upstream_json(&route.legacy),
                "new": Self::upstream_json(&route.new),
            },
            "shadow": route.shadow.as_ref().zip(m.shadow.as_ref()).map(|(s, state)| Self::shadow_json(s, state)),
        })
    }

    fn shadow_json(s: &Shadow, state: &ShadowState) -> Value {
        let names = |list: &[http::HeaderName]| list.iter().map(|h| h.as_str().to_string()).collect::<Vec<_>>();
        let counts: serde_json::Map<String, Value> =
            state.counts().into_iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        json!({
            "enabled": s.enabled,
            "target": s.target.as_str(),
            "sample": f64::from(s.sample) / 100.0,
            "methods": s.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "max_body": s.max_body,
            "max_in_flight": s.max_in_flight,
            "in_flight": state.in_flight(),
            "timeout_ms": s.timeout.as_millis() as u64,
            "compare": {
                "ignore_headers": names(&s.compare.ignore_headers),
                "ignore_json_paths": s.compare.ignore_json_paths.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "noise_sample": f64::from(s.compare.noise_sample) / 100.0,
                "keep_diffs": s.compare.keep_diffs,
                "redact_headers": names(&s.compare.redact_headers),
            },
            "counts": counts,
            "noise": noise_json(state),
        })
    }

    fn upstream_json(u: &Upstream) -> Value {
        let addrs: Vec<String> = u.addrs.iter().map(|a| a.to_string()).collect();
        json!({ "upstream": u.name, "addresses": addrs, "tls": u.tls })
    }
}

impl AdminApp {
    /// `GET /api/routes/{name}/diffs?limit=N`: the newest mismatches first.
    fn diffs(&self, name: &str, query: &str) -> Response<Vec<u8>> {
        let limit = match query.split('&').find_map(|kv| kv.strip_prefix("limit=")) {
            None => DEFAULT_DIFFS,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        format!("limit={v:?} is not valid; give a whole number of records, at least 1"),
                    )
                }
            },
        };
        let snap = self.shared.load();
        let Some(m) = snap.table.get(name) else {
            return error_response(StatusCode::NOT_FOUND, format!("no route named {name:?}"));
        };
        let Some(state) = m.shadow.as_ref() else {
            return error_response(
                StatusCode::NOT_FOUND,
                format!("route {name:?} has no [routes.shadow] section, so nothing is compared"),
            );
        };
        let diffs = state.recent.latest(limit);
        let diffs: Vec<&DiffRecord> = diffs.iter().map(|d| d.as_ref()).collect();
        json_response(StatusCode::OK, &json!({ "route": name, "diffs": diffs, "noise": noise_json(state) }))
    }
}

/// A route's learned noise: `[{"field": "json:$.at", "seen": 4}, ...]`.
fn noise_json(state: &ShadowState) -> Vec<Value> {
    state.noise().fields().into_iter().map(|(field, seen)| json!({"field": field, "seen": seen})).collect()
}

/// Records returned by the diffs endpoint without `limit`.
const DEFAULT_DIFFS: usize = 20;

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut().insert(http::header::CONTENT_LENGTH, len.into());
    resp
}

fn json_response(status: StatusCode, v: &Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

pub fn error_response(status: StatusCode, msg: impl Into<String>) -> Response<Vec<u8>> {
    json_response(status, &json!({ "error": msg.into() }))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let get = method == Method::GET || method == Method::HEAD;
        match segments.as_slice() {
            ["livez"] if get => respond(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            ["readyz"] if get => respond(StatusCode::OK, "text/plain", b"ready\n".to_vec()),
            ["metrics"] if get => respond(StatusCode::OK, "text/plain; version=0.0.4", METRICS.render()),
            ["api", "routes"] if get => {
                let snap = self.shared.load();
                let routes: Vec<Value> =
                    snap.config.routes.iter().filter_map(|r| snap.table.get(&r.name)).map(Self::route_json).collect();
                json_response(StatusCode::OK, &json!({ "routes": routes }))
            }
            ["api", "routes", name] if get => match self.shared.load().table.get(name) {
                Some(m) => json_response(StatusCode::OK, &Self::route_json(m)),
                None => error_response(StatusCode::NOT_FOUND, format!("no route named {name:?}")),
            },
            ["api", "routes", name, "diffs"] if get => {
                let query = session.req_header().uri.query().unwrap_or("");
                self.diffs(name, query)
            }
            ["livez"]
            | ["readyz"]
            | ["metrics"]
            | ["api", "routes"]
            | ["api", "routes", _]
            | ["api", "routes", _, "diffs"] => {
                error_response(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}; use GET"))
            }
            _ => error_response(StatusCode::NOT_FOUND, format!("no admin endpoint at {path}")),
        }
    }
}
