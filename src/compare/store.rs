//! The recent mismatches of a route, newest first, bounded by `keep_diffs`; with the headers in
//! `redact_headers` replaced by `[redacted]` before anything is stored.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName};
use serde_json::Value;

use crate::api::Field;
pub use crate::api::{DiffRecord, SideAnswer};

pub const REDACTED: &str = "[redacted]";

/// Replace the values of redacted headers: in the request headers and in header differences.
pub fn redact(record: &mut DiffRecord, redact: &[HeaderName]) {
    let hidden = |name: &str| redact.iter().any(|h| h.as_str() == name);
    for (name, v) in record.request_headers.iter_mut() {
        if hidden(name) {
            *v = Value::from(REDACTED);
        }
    }
    for d in record.differences.iter_mut() {
        if matches!(&d.field, Field::Header(name) if hidden(name)) {
            for side in [&mut d.legacy, &mut d.new] {
                if side.is_some() {
                    *side = Some(Value::from(REDACTED));
                }
            }
        }
    }
}

/// Request headers as a map, repeated headers as arrays.
pub fn header_map(h: &HeaderMap) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for (name, v) in h {
        let v = Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned());
        match out.get_mut(name.as_str()) {
            Some(Value::Array(list)) => list.push(v),
            Some(prev) => *prev = Value::Array(vec![prev.take(), v]),
            None => {
                out.insert(name.as_str().to_string(), v);
            }
        }
    }
    out
}

/// A route's last mismatches.
#[derive(Default)]
pub struct Recent {
    items: Mutex<VecDeque<Arc<DiffRecord>>>,
}

impl Recent {
    pub fn push(&self, record: Arc<DiffRecord>, keep: usize) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.push_front(record);
        items.truncate(keep);
    }

    /// The newest `limit` records, newest first.
    pub fn latest(&self, limit: usize) -> Vec<Arc<DiffRecord>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).iter().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str) -> DiffRecord {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer secret".parse().expect("v"));
        h.append("accept", "a".parse().expect("v"));
        h.append("accept", "b".parse().expect("v"));
        DiffRecord {
            at: String::new(),
            route: "r".into(),
            method: "GET".into(),
            path: path.into(),
            served_by: crate::config::Side::Legacy,
            legacy: SideAnswer { status: 200, duration_ms: 1.0 },
            new: SideAnswer { status: 200, duration_ms: 1.0 },
            differences: vec![crate::api::Difference {
                field: Field::Header("set-cookie".into()),
                legacy: Some("a=1".into()),
                new: None,
                offset: None,
            }],
            truncated: false,
            request_headers: header_map(&h),
        }
    }

    #[test]
    fn redaction_covers_request_headers_and_header_differences() {
        let mut r = record("/");
        redact(&mut r, &[HeaderName::from_static("authorization"), HeaderName::from_static("set-cookie")]);
        assert_eq!(r.request_headers["authorization"], Value::from(REDACTED));
        assert_eq!(r.request_headers["accept"], serde_json::json!(["a", "b"]));
        assert_eq!(r.differences[0].legacy, Some(Value::from(REDACTED)));
        assert_eq!(r.differences[0].new, None);
    }

    #[test]
    fn keeps_the_newest_records() {
        let recent = Recent::default();
        for i in 0..5 {
            recent.push(Arc::new(record(&format!("/{i}"))), 3);
        }
        let paths: Vec<String> = recent.latest(10).iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, ["/4", "/3", "/2"]);
        assert_eq!(recent.latest(1).len(), 1);
    }
}
