//! Replay: the mismatching requests of a route are kept (bounded), and can be sent to both sides
//! again and compared with today's rules, so "fix new, redeploy, replay, confirm" needs no
//! waiting for traffic. Requests are kept in memory only, as received, because a replay without
//! its credentials would prove nothing; everything shown (API, `--curl`) is redacted.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::client::{self, ExchangeError};
use super::kept::Kept;
use super::shadower::Shadower;
use super::state::ShadowState;
use super::task::answer;
use crate::compare::compare;
use crate::compare::difference::{Difference, Field};
use crate::compare::store::header_map;
use crate::config::shadow::Shadow;
use crate::core::{BySide, Side};
use crate::upstream::Pool;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// Legacy and new now agree (up to noise and matchers).
    Fixed,
    /// They still differ.
    Differs,
    /// A side could not be asked.
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayResult {
    /// When the request was first seen mismatching.
    pub seen_at: String,
    pub endpoint: String,
    pub method: String,
    /// Path and query, redacted.
    pub path: String,
    pub outcome: ReplayOutcome,
    /// Today's differences, redacted.
    pub differences: Vec<Difference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRequest {
    pub seen_at: String,
    pub endpoint: String,
    pub method: String,
    pub path: String,
    /// Redacted like every stored diff.
    pub headers: BTreeMap<String, Value>,
    /// The body when it is UTF-8 text; `body_bytes` says how long it is either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub body_bytes: usize,
}

/// The kept request as the API shows it: redacted, its body when it is text (secrets in JSON
/// keys and `name=value` pairs redacted too).
pub fn shown(cfg: &Shadow, k: &Kept) -> KeptRequest {
    let body = std::str::from_utf8(&k.body).ok().filter(|b| !b.is_empty()).map(|text| {
        let (field, value) = match serde_json::from_str::<Value>(text) {
            Ok(v) => (Field::Json("$".into()), v),
            Err(_) => (Field::Body, Value::from(text)),
        };
        let mut d = [Difference { field, legacy: Some(value), new: None, offset: None, lines: None }];
        cfg.compare.redaction.differences(&mut d);
        match d[0].legacy.take() {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        }
    });
    let mut headers = header_map(&k.request.headers);
    cfg.compare.redaction.headers(&mut headers);
    KeptRequest {
        seen_at: k.seen_at.clone(),
        endpoint: k.endpoint.clone(),
        method: k.request.method.to_string(),
        path: cfg.compare.redaction.query(&k.path()),
        headers,
        body,
        body_bytes: k.body.len(),
    }
}

/// Send `k` to both sides now and compare the answers with today's rules and learned noise.
pub async fn replay(
    shadower: &Shadower,
    state: &ShadowState,
    cfg: &Shadow,
    pools: &BySide<Arc<Pool>>,
    k: &Kept,
) -> ReplayResult {
    let send = |side: Side| {
        let pool = &pools[side];
        let req = client::prepare(&k.request, k.client_host.as_ref(), &pool.config, k.body.len());
        client::exchange(&shadower.connector, pool, req, k.body.clone(), cfg.max_body, cfg.timeout)
    };
    let (legacy, new) = tokio::join!(send(Side::Legacy), send(Side::New));
    let shown_path = cfg.compare.redaction.query(&k.path());
    let result = |outcome, differences, error| ReplayResult {
        seen_at: k.seen_at.clone(),
        endpoint: k.endpoint.clone(),
        method: k.request.method.to_string(),
        path: shown_path.clone(),
        outcome,
        differences,
        error,
    };
    let answers = legacy.and_then(|l| Ok((l, new?))).and_then(|(l, n)| {
        let decode = |r: client::Raw| {
            answer(r.status, r.headers, r.body, cfg.max_body).map_err(|e| ExchangeError::Upstream(e.to_string()))
        };
        Ok((decode(l)?, decode(n)?))
    });
    let (legacy, new) = match answers {
        Ok(pair) => pair,
        Err(e) => return result(ReplayOutcome::Error, Vec::new(), Some(e.to_string())),
    };
    let c = &cfg.compare;
    let matchers = c.matchers_for(&k.endpoint);
    let rules = c.rules(&matchers);
    let outcome = compare(&legacy, &new, &rules);
    let mut differences = state.findings().unexplained(&k.endpoint, outcome.differences, &c.rules);
    cfg.compare.redaction.differences(&mut differences);
    let verdict = if differences.is_empty() { ReplayOutcome::Fixed } else { ReplayOutcome::Differs };
    result(verdict, differences, None)
}
