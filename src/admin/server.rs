//! The admin listener: `/livez`, `/readyz`, `/metrics`, the JSON API, and the console's page at
//! `/` and `/ui` (see [`super::console`]). Loopback by default; the config refuses a non-loopback
//! address without a token. Reads by GET, mutations only by PUT (weight) and POST (reload,
//! rollout actions); with a token set, every `/api/` call needs `Authorization: Bearer TOKEN`.
//! Each mutation is logged with the caller's address.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::client::CLIENT_HEADER;
use super::endpoint::Endpoint;
use super::views;
use crate::api::{self, RolloutAction, Side};
use crate::compare::findings::Page;
use crate::config::persist::PersistError;
use crate::config::shadow::Shadow;
use crate::config::Percent;
use crate::control::reload::{ChangeError, Trigger};
use crate::control::rollout::{By, Control, ControlError, Via};
use crate::control::supervise;
use crate::metrics::METRICS;
use crate::route::split::constant_time_eq;
use crate::route::Matched;
use crate::shadow::ShadowState;
use crate::snapshot::Shared;

pub struct AdminApp {
    shared: Arc<Shared>,
    control: Arc<Control>,
    /// Sends replays, with the shadows' connection pool.
    shadower: Arc<crate::shadow::Shadower>,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>, control: Arc<Control>, shadower: Arc<crate::shadow::Shadower>) -> Self {
        AdminApp { shared, control, shadower }
    }

    /// The snapshot, with the fleet's figures (which a rollout's window sums) fresh enough to show.
    async fn fleet_refreshed(&self) -> Arc<crate::snapshot::Snapshot> {
        if let Some(f) = self.control.reloader().fleet() {
            f.refresh_figures(FIGURES_MAX_AGE).await;
        }
        self.shared.load_full()
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
        self.with_shadow(name, |_, state, _| {
            let diffs = state.recent.latest(limit).iter().map(|d| d.as_ref().clone()).collect();
            json_response(StatusCode::OK, &api::Diffs { route: name.to_string(), diffs, noise: state.noise_fields() })
        })
        .unwrap_or_else(|resp| resp)
    }

    /// `GET /api/routes/{name}/report?limit=N&offset=M`: findings and a verdict per endpoint,
    /// busiest first, a page at a time (at most `limit` endpoints and [`REPORT_BYTES`] of them);
    /// in a fleet, every instance's evidence pooled (`?scope=instance`: this instance's alone).
    async fn report(&self, name: &str, query: &str) -> Response<Vec<u8>> {
        let (local, page) = match report_query(query) {
            Ok(q) => q,
            Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
        };
        let now = std::time::SystemTime::now();
        let Some(fleet) = self.control.reloader().fleet().filter(|_| !local) else {
            return self
                .with_shadow(name, |_, state, cfg| {
                    let report = state.findings().report_page(name, cfg.compare.rules.clone(), now, page);
                    json_response(StatusCode::OK, &report)
                })
                .unwrap_or_else(|resp| resp);
        };
        let (own, rules) =
            match self.with_shadow(name, |_, state, cfg| (state.findings().clone(), cfg.compare.rules.clone())) {
                Ok(found) => found,
                Err(resp) => return resp,
            };
        let (pooled, from) = fleet.pooled_findings(name, own).await;
        let mut report = pooled.report_page(name, rules, now, page);
        report.pooled_from = from;
        json_response(StatusCode::OK, &report)
    }

    /// Run `f` on a shadowed route (its table entry, shadow state and settings), or answer 404
    /// saying why it cannot: no such route, or a route that compares nothing.
    #[allow(clippy::result_large_err)]
    fn with_shadow<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Matched, &Arc<ShadowState>, &Shadow) -> T,
    ) -> Result<T, Response<Vec<u8>>> {
        let snap = self.shared.load();
        let Some(m) = snap.table.get(name) else {
            return Err(error_response(StatusCode::NOT_FOUND, format!("no route named {name:?}")));
        };
        match (m.shadow.as_ref(), m.route.shadow.as_ref()) {
            (Some(state), Some(cfg)) => Ok(f(m, state, cfg)),
            _ => Err(error_response(
                StatusCode::NOT_FOUND,
                format!("route {name:?} has no [routes.shadow] section, so nothing is compared"),
            )),
        }
    }

    /// `GET /api/routes/{name}/replays?limit=N&endpoint=E`: kept requests, redacted.
    fn replays(&self, name: &str, query: &str) -> Response<Vec<u8>> {
        let (endpoint, limit) = match replay_query(query) {
            Ok(q) => q,
            Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
        };
        self.with_shadow(name, |_, state, cfg| {
            let kept = state.kept.latest(endpoint.as_deref(), limit);
            let requests = kept.iter().map(|k| crate::shadow::replay::shown(cfg, k)).collect();
            json_response(StatusCode::OK, &api::Replays { route: name.to_string(), requests })
        })
        .unwrap_or_else(|resp| resp)
    }

    /// `POST /api/routes/{name}/replay`: kept requests sent to both sides again, compared now.
    async fn replay(&self, session: &mut ServerSession, name: &str, who: &str) -> Response<Vec<u8>> {
        let (state, route, pools) =
            match self.with_shadow(name, |m, state, _| (state.clone(), m.route.clone(), m.pools.clone())) {
                Ok(s) => s,
                Err(resp) => return resp,
            };
        let body = match read_body(session).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let ask: api::ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
            api::ReplayRequest::default()
        } else {
            match serde_json::from_slice(&body) {
                Ok(a) => a,
                Err(e) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        format!("the body must be {{\"endpoint\": \"GET /path\", \"limit\": N}}, both optional: {e}"),
                    )
                }
            }
        };
        let limit = ask.limit.unwrap_or(DEFAULT_REPLAYS);
        if limit == 0 || limit > MAX_REPLAYS {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("limit {limit} is out of range; replay from 1 to {MAX_REPLAYS} requests at a time"),
            );
        }
        let kept = state.kept.latest(ask.endpoint.as_deref(), limit);
        tracing::info!(target: "strangler::admin", peer = who, route = name, requests = kept.len(), "replay requested");
        // A few at a time, so a long list finishes within a client's patience without
        // flooding either side.
        let slots = Arc::new(tokio::sync::Semaphore::new(REPLAY_CONCURRENCY));
        let mut set = tokio::task::JoinSet::new();
        for (i, k) in kept.into_iter().enumerate() {
            let (shadower, state, route, pools, slots) =
                (self.shadower.clone(), state.clone(), route.clone(), pools.clone(), slots.clone());
            set.spawn(async move {
                let _slot = slots.acquire().await.ok()?;
                let cfg = route.shadow.as_ref()?;
                Some((i, crate::shadow::replay::replay(&shadower, &state, cfg, &pools, &k).await))
            });
        }
        let mut done: Vec<(usize, api::ReplayResult)> = set.join_all().await.into_iter().flatten().collect();
        done.sort_by_key(|(i, _)| *i);
        let results: Vec<api::ReplayResult> = done.into_iter().map(|(_, r)| r).collect();
        let count = |o: api::ReplayOutcome| results.iter().filter(|r| r.outcome == o).count();
        json_response(
            StatusCode::OK,
            &api::Replayed {
                route: name.to_string(),
                fixed: count(api::ReplayOutcome::Fixed),
                differs: count(api::ReplayOutcome::Differs),
                errors: count(api::ReplayOutcome::Error),
                results,
            },
        )
    }

    /// `POST /api/routes/{name}/report/reset`: start the evidence afresh, keeping learned noise;
    /// in a fleet, on every instance (each applies it from its watch).
    async fn reset_report(&self, name: &str, who: &str) -> Response<Vec<u8>> {
        if let Err(resp) = self.with_shadow(name, |_, _, _| ()) {
            return resp;
        }
        if let Some(fleet) = self.control.reloader().fleet() {
            let note = format!(
                "reset by {who} through {} at {}",
                fleet.settings.instance,
                humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            );
            if let Err(e) = fleet.reset_fleet(name, &note).await {
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("nothing was reset: the report is the fleet's and {e}; try again once etcd is back"),
                );
            }
        }
        self.with_shadow(name, |_, state, cfg| {
            let now = std::time::SystemTime::now();
            let mut findings = state.findings();
            let had = findings.reset(now);
            tracing::info!(target: "strangler::admin", peer = who, route = name, endpoints = had, "cutover report reset");
            json_response(StatusCode::OK, &findings.report(name, cfg.compare.rules.clone(), now))
        })
        .unwrap_or_else(|resp| resp)
    }
}

/// Endpoints in one page of the report without `limit`, and at most.
const REPORT_LIMIT: usize = 100;
const MAX_REPORT_LIMIT: usize = 1000;
/// Bytes of endpoints in one page of the report at most: a size the console can poll.
pub const REPORT_BYTES: usize = 1 << 20;

/// `scope=instance`, `limit=` and `offset=` of the report.
fn report_query(query: &str) -> Result<(bool, Page), String> {
    let mut local = false;
    let mut page = Page { offset: 0, limit: REPORT_LIMIT, max_bytes: REPORT_BYTES };
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let number = |v: &str, min: usize, max: usize| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("{kv:?} is not valid; give a whole number from {min} to {max}"))
        };
        match kv.split_once('=') {
            Some(("scope", "instance")) => local = true,
            Some(("limit", v)) => page.limit = number(v, 1, MAX_REPORT_LIMIT)?,
            Some(("offset", v)) => page.offset = number(v, 0, usize::MAX)?,
            _ => return Err(format!("{kv:?} is not a parameter here; use limit=, offset= and scope=instance")),
        }
    }
    Ok((local, page))
}

/// Records returned by the diffs endpoint without `limit`.
const DEFAULT_DIFFS: usize = 20;
/// Requests replayed (or listed) without `limit`, and at most.
const DEFAULT_REPLAYS: usize = 20;
const MAX_REPLAYS: usize = 1000;
/// Replays in flight at once.
const REPLAY_CONCURRENCY: usize = 8;

/// `endpoint=` (percent-encoded) and `limit=` of the replays listing.
fn replay_query(query: &str) -> Result<(Option<String>, usize), String> {
    let (mut endpoint, mut limit) = (None, DEFAULT_REPLAYS);
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("endpoint", v)) => {
                let v = v.replace('+', " ");
                let decoded = percent_encoding::percent_decode_str(&v).decode_utf8();
                endpoint = Some(decoded.map_err(|_| format!("endpoint={v:?} is not UTF-8 once decoded"))?.into_owned());
            }
            Some(("limit", v)) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_REPLAYS).contains(&n) => limit = n,
                _ => return Err(format!("limit={v:?} is not valid; give a whole number from 1 to {MAX_REPLAYS}")),
            },
            _ => return Err(format!("{kv:?} is not a parameter here; use endpoint= and limit=")),
        }
    }
    Ok((endpoint, limit))
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

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response<Vec<u8>> {
    match serde_json::to_vec_pretty(v) {
        Ok(mut body) => {
            body.push(b'\n');
            respond(status, "application/json", body)
        }
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            format!("{{\"error\": \"the answer could not be encoded: {e}\"}}\n").into_bytes(),
        ),
    }
}

pub fn error_response(status: StatusCode, msg: impl Into<String>) -> Response<Vec<u8>> {
    json_response(status, &api::ErrorBody { error: msg.into(), problems: Vec::new() })
}

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 * 1024;

/// The API answers only what a page of its own, a script or the CLI sends, never a page of
/// another site in an operator's browser (the default listener is loopback without a token):
/// - `Host` must be an IP address, `localhost` or a name in `admin.hosts`: a DNS-rebinding page
///   (evil.example resolving to 127.0.0.1) reads nothing;
/// - a mutation with an `Origin` must come from this listener's own origin;
/// - a mutation must say `Content-Type: application/json`, which a cross-site form or a
///   no-preflight `fetch` cannot send.
fn same_site(session: &ServerSession, mutation: bool, hosts: &[String]) -> Result<(), String> {
    let headers = &session.req_header().headers;
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !host_allowed(host, hosts) {
        return Err(format!(
            "Host {host:?} is not a name of this admin listener: use its address, localhost, or add the name to admin.hosts"
        ));
    }
    if !mutation {
        return Ok(());
    }
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        if own != Some(host) {
            return Err(format!("a request from the page at {origin:?} cannot change anything here (another origin)"));
        }
    }
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err("changes need Content-Type: application/json".to_string());
    }
    Ok(())
}

/// An IP literal (with or without port), `localhost`, or a configured name.
fn host_allowed(host: &str, names: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => return v6.split(']').next().is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => host
            .rsplit_once(':')
            .map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host }),
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// `Authorization: Bearer TOKEN`, compared in constant time.
fn authorized(session: &ServerSession, token: &str) -> bool {
    let given = session.req_header().headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let given = given.and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))).map(str::trim);
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

/// The request body, up to [`MAX_BODY`].
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("request body over {MAX_BODY} bytes"),
                    ));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(error_response(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")))
            }
        }
    }
}

/// The weight a `PUT .../weight` body asks for, or why it is refused.
pub fn parse_weight_body(body: &[u8]) -> Result<Percent, String> {
    let parsed: api::WeightRequest =
        serde_json::from_slice(body).map_err(|e| format!("the body must be JSON like {{\"percent\": 50}} ({e})"))?;
    Percent::parse(parsed.percent, "weights").map_err(|msg| format!("percent = {}: {msg}", parsed.percent))
}

/// How old the fleet's figures may be when the API shows them.
const FIGURES_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Every route's figures summed over the fleet's instances, each from its own start.
fn fleet_totals(fleet: &crate::cluster::fleet::Fleet, snap: &crate::snapshot::Snapshot) -> Vec<api::FleetRoute> {
    let empty = crate::live::Tally::new();
    snap.config
        .routes
        .iter()
        .filter_map(|r| snap.table.get(&r.name))
        .map(|m| {
            let tally = fleet.tally(&m.route.name, m.reading());
            let mut total = crate::live::tally_window(&tally, &empty).summary();
            total.seconds = 0.0;
            let instances = tally
                .iter()
                .map(|(instance, c)| api::InstanceCount {
                    instance: instance.clone(),
                    legacy_requests: c.reading.side(Side::Legacy).requests,
                    new_requests: c.reading.side(Side::New).requests,
                })
                .collect();
            api::FleetRoute { route: m.route.name.clone(), total, instances }
        })
        .collect()
}

fn control_error(e: ControlError) -> Response<Vec<u8>> {
    let status = match &e {
        ControlError::NoRoute(_) | ControlError::NoRollout(_) => StatusCode::NOT_FOUND,
        ControlError::Conflict(_) => StatusCode::CONFLICT,
        ControlError::Change(ChangeError::Invalid(_) | ChangeError::ChangedOnDisk(_)) => StatusCode::CONFLICT,
        ControlError::Change(ChangeError::Persist(PersistError::NoRoute { .. })) => StatusCode::CONFLICT,
        ControlError::Change(ChangeError::Persist(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        ControlError::Change(ChangeError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::Change(ChangeError::Conflict(_)) => StatusCode::CONFLICT,
    };
    error_response(status, e.to_string())
}

impl AdminApp {
    /// `PUT /api/routes/{name}/weight` with `{"percent": N}`.
    async fn put_weight(&self, session: &mut ServerSession, name: &str, who: &By) -> Response<Vec<u8>> {
        if self.shared.load().table.get(name).is_none() {
            return error_response(StatusCode::NOT_FOUND, format!("no route named {name:?}"));
        }
        let body = match read_body(session).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let weight = match parse_weight_body(&body) {
            Ok(w) => w,
            Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
        };
        match self.control.set_weight(name, weight, who).await {
            Ok(change) => json_response(
                StatusCode::OK,
                &api::WeightChanged {
                    route: name.to_string(),
                    old: change.old,
                    weight: change.new,
                    persisted: self.control.reloader().persisted_to(),
                    rollout_paused: change.rollout_paused,
                    unchanged: change.old == change.new,
                },
            ),
            Err(e) => control_error(e),
        }
    }

    /// `POST /api/reload`: the file, now.
    async fn reload(&self, who: &str) -> Response<Vec<u8>> {
        tracing::info!(target: "strangler::admin", peer = who, "reload requested");
        let control = self.control.clone();
        match off_runtime(move || control.reloader().reload(Trigger::Api)).await {
            Ok(Ok(_)) => {
                let snap = self.shared.load();
                let weights = snap.config.routes.iter().map(|r| (r.name.clone(), r.weight_percent())).collect();
                json_response(StatusCode::OK, &api::Reloaded { reloaded: true, weights })
            }
            Ok(Err(e)) => {
                let problems: Vec<String> = e.to_string().lines().map(str::to_string).collect();
                let error =
                    format!("config reload rejected, the running config keeps serving: {}", problems.join("; "));
                json_response(StatusCode::UNPROCESSABLE_ENTITY, &api::ErrorBody { error, problems })
            }
            Err(resp) => resp,
        }
    }

    /// `POST /api/v1/routes/{name}/rollout/{action}`.
    async fn rollout(&self, name: &str, action: &str, who: &By) -> Response<Vec<u8>> {
        let Some(action) = RolloutAction::parse(action) else {
            return error_response(
                StatusCode::NOT_FOUND,
                format!("no rollout action {action:?}; use pause, resume or abort"),
            );
        };
        if let Err(e) = self.control.act(name, action, who).await {
            return control_error(e);
        }
        let shown = self.shared.load().table.get(name).and_then(|m| views::rollout_view(m, &self.control));
        match shown {
            Some(rollout) => json_response(StatusCode::OK, &api::RolloutActed { route: name.to_string(), rollout }),
            None => control_error(ControlError::NoRollout(name.to_string())),
        }
    }
}

/// Run a reload (file reads, validation with its DNS look-ups and certificate files) on the
/// blocking pool: the admin runtime keeps answering `/readyz` and `/metrics` meanwhile.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Response<Vec<u8>>> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!("an admin change did not complete: {e}");
        error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("the change did not complete: {e}"))
    })
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        crate::limits::header_complete(session.stream(), None);
        let answer = self.answer(session).await;
        crate::limits::request_done(session.stream(), std::time::Instant::now());
        answer
    }
}

impl AdminApp {
    async fn answer(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let Some(endpoint) = Endpoint::of(&path) else {
            return error_response(StatusCode::NOT_FOUND, format!("no admin endpoint at {path}"));
        };
        if let Some(refused) = self.refusal(session, &endpoint, &path) {
            return refused;
        }
        let who = session.client_addr().map_or("-".to_string(), |a| a.to_string());
        let via = match session.req_header().headers.get(CLIENT_HEADER).map(|v| v.as_bytes()) {
            Some(b"cli") => Via::Cli,
            Some(b"console") => Via::Console,
            _ => Via::Api,
        };
        let who = By { peer: who, via };
        self.dispatch(session, endpoint, &path, &who).await
    }

    /// The method, the token and the site, in that order: what any endpoint checks before it
    /// is asked anything. `None` when the request may go on.
    fn refusal(&self, session: &ServerSession, endpoint: &Endpoint, path: &str) -> Option<Response<Vec<u8>>> {
        let method = &session.req_header().method;
        if !endpoint.allows(method) {
            let mut resp = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}; use {}", endpoint.allowed()),
            );
            if let Ok(v) = endpoint.allowed().as_str().parse() {
                resp.headers_mut().insert(http::header::ALLOW, v);
            }
            return Some(resp);
        }
        let (token, hosts) = {
            let snap = self.shared.load();
            (snap.config.admin.token.clone(), snap.config.admin.hosts.clone())
        };
        if let Some(token) = token.filter(|_| endpoint.needs_token()) {
            if !authorized(session, &token) {
                let mut resp = error_response(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token: send Authorization: Bearer TOKEN (admin.token or STRANGLER_ADMIN_TOKEN)",
                );
                resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                return Some(resp);
            }
        }
        if endpoint.checks_site() {
            if let Err(why) = same_site(session, endpoint.mutates(), &hosts) {
                tracing::warn!(target: "strangler::admin", peer = ?session.client_addr().map(|a| a.to_string()), "refused: {why}");
                return Some(error_response(StatusCode::FORBIDDEN, why));
            }
        }
        None
    }

    async fn dispatch(
        &self,
        session: &mut ServerSession,
        endpoint: Endpoint,
        path: &str,
        who: &By,
    ) -> Response<Vec<u8>> {
        let query = session.req_header().uri.query().unwrap_or("").to_string();
        match endpoint {
            Endpoint::Console => match super::console::asset(path) {
                Some(asset) => {
                    super::console::serve(asset, session.req_header().headers.get(http::header::IF_NONE_MATCH))
                }
                None => error_response(StatusCode::NOT_FOUND, format!("the console has no file at {path}")),
            },
            Endpoint::Cluster => match self.control.reloader().fleet() {
                Some(fleet) => json_response(StatusCode::OK, &fleet.survey().await),
                None => error_response(
                    StatusCode::NOT_FOUND,
                    "this instance has no [cluster] section: it runs on its config file alone",
                ),
            },
            Endpoint::Livez => respond(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            // Ready, and which background tasks were restarted after a panic lately (they run
            // again: a restart is reported, not a reason to take the proxy out).
            Endpoint::Readyz => {
                respond(StatusCode::OK, "text/plain", format!("ready\n{}", supervise::restarts_report()).into_bytes())
            }
            Endpoint::Metrics => respond(StatusCode::OK, "text/plain; version=0.0.4", METRICS.render()),
            Endpoint::Routes => self.routes().await,
            Endpoint::Route(name) => match self.fleet_refreshed().await.table.get(&name) {
                Some(m) => json_response(StatusCode::OK, &views::route_view(m, &self.control)),
                None => error_response(StatusCode::NOT_FOUND, format!("no route named {name:?}")),
            },
            Endpoint::Diffs(name) => self.diffs(&name, &query),
            Endpoint::Report(name) => self.report(&name, &query).await,
            Endpoint::ReportReset(name) => self.reset_report(&name, &who.peer).await,
            Endpoint::History(name) => match self.shared.load().table.get(&name) {
                Some(m) => json_response(
                    StatusCode::OK,
                    &api::History {
                        route: name.to_string(),
                        step_seconds: crate::live::HISTORY_STEP.as_secs(),
                        samples: m.stats.live.history(),
                    },
                ),
                None => error_response(StatusCode::NOT_FOUND, format!("no route named {name:?}")),
            },
            Endpoint::Replays(name) => self.replays(&name, &query),
            Endpoint::Replay(name) => self.replay(session, &name, &who.peer).await,
            Endpoint::Weight(name) => self.put_weight(session, &name, who).await,
            Endpoint::Reload => self.reload(&who.peer).await,
            Endpoint::Rollout(name, action) => self.rollout(&name, &action, who).await,
        }
    }

    /// `GET /api/v1/routes`: every route, with the fleet's totals in a fleet.
    async fn routes(&self) -> Response<Vec<u8>> {
        let fleet = self.control.reloader().fleet();
        if let Some(f) = &fleet {
            f.refresh_figures(FIGURES_MAX_AGE).await;
        }
        let snap = self.shared.load_full();
        let (fleet_totals, instances) = match &fleet {
            Some(f) => (fleet_totals(f, &snap), f.survey().await.instances),
            None => (Vec::new(), Vec::new()),
        };
        let routes = snap
            .config
            .routes
            .iter()
            .filter_map(|r| snap.table.get(&r.name))
            .map(|m| views::route_view(m, &self.control))
            .collect();
        json_response(
            StatusCode::OK,
            &api::Routes {
                routes,
                window_seconds: crate::live::LIVE_WINDOW.as_secs(),
                fleet: fleet.is_some(),
                fleet_totals,
                instances,
                refused_reload: self.control.reloader().refused().as_ref().map(views::refused_view),
            },
        )
    }
}
