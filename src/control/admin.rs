//! The admin listener: `/livez`, `/readyz`, `/metrics` and the JSON API. Loopback by default; the
//! config refuses a non-loopback address without a token.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::config::model::{Route, Upstream};
use crate::metrics::METRICS;
use crate::snapshot::Shared;

pub struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminApp { shared }
    }

    fn route_json(route: &Route) -> Value {
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
        })
    }

    fn upstream_json(u: &Upstream) -> Value {
        let addrs: Vec<String> = u.addrs.iter().map(|a| a.to_string()).collect();
        json!({ "upstream": u.name, "addresses": addrs, "tls": u.tls })
    }
}

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
                let routes: Vec<Value> = snap.config.routes.iter().map(|r| Self::route_json(r)).collect();
                json_response(StatusCode::OK, &json!({ "routes": routes }))
            }
            ["api", "routes", name] if get => match self.shared.load().config.route(name) {
                Some(r) => json_response(StatusCode::OK, &Self::route_json(r)),
                None => error_response(StatusCode::NOT_FOUND, format!("no route named {name:?}")),
            },
            ["livez"] | ["readyz"] | ["metrics"] | ["api", "routes"] | ["api", "routes", _] => {
                error_response(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}; use GET"))
            }
            _ => error_response(StatusCode::NOT_FOUND, format!("no admin endpoint at {path}")),
        }
    }
}
