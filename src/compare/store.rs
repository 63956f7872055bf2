//! The recent mismatches of a route, newest first, bounded by `keep_diffs` and
//! `keep_diffs_bytes`; records come here redacted ([`super::redact`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use serde_json::Value;

pub use super::difference::{DiffRecord, SideAnswer};
use super::findings::cut_text;

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

/// A stored record's path and query are kept up to this many bytes, each request header value
/// up to [`RECORD_HEADER`]: what a person reads, not the whole of an attack.
pub const RECORD_PATH: usize = 2048;
pub const RECORD_HEADER: usize = 1024;

/// Cut what a record holds of the request to [`RECORD_PATH`] and [`RECORD_HEADER`] bytes (after
/// redaction, so a secret is never half shown), saying how long each was.
pub fn bound(record: &mut DiffRecord) {
    record.path = cut_text(&record.path, RECORD_PATH);
    for v in record.request_headers.values_mut() {
        match v {
            Value::String(s) if s.len() > RECORD_HEADER => *s = cut_text(s, RECORD_HEADER),
            Value::Array(list) => {
                for x in list.iter_mut() {
                    if let Value::String(s) = x {
                        if s.len() > RECORD_HEADER {
                            *s = cut_text(s, RECORD_HEADER);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A route's last mismatches, bounded by count and by bytes (as encoded for the API).
#[derive(Default)]
pub struct Recent {
    items: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    records: VecDeque<(Arc<DiffRecord>, usize)>,
    bytes: usize,
}

/// The size of `value` as JSON, counted as it is written, without keeping the text.
fn json_size(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

impl Recent {
    /// Keep `record` as the newest, then drop the oldest until at most `keep` records of at most
    /// `max_bytes` in all remain. A record larger than `max_bytes` alone is not kept.
    pub fn push(&self, record: Arc<DiffRecord>, keep: usize, max_bytes: usize) {
        let size = json_size(record.as_ref());
        if size > max_bytes {
            tracing::debug!(route = %record.route, size, max_bytes, "a mismatch too large to keep");
            return;
        }
        let mut kept = self.items.lock().unwrap_or_else(|e| e.into_inner());
        kept.records.push_front((record, size));
        kept.bytes += size;
        while kept.records.len() > keep || kept.bytes > max_bytes {
            match kept.records.pop_back() {
                Some((_, n)) => kept.bytes -= n,
                None => break,
            }
        }
    }

    /// The newest `limit` records, newest first.
    pub fn latest(&self, limit: usize) -> Vec<Arc<DiffRecord>> {
        let kept = self.items.lock().unwrap_or_else(|e| e.into_inner());
        kept.records.iter().take(limit).map(|(r, _)| r.clone()).collect()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).bytes
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
            differences: vec![crate::compare::difference::Difference {
                field: crate::compare::difference::Field::Header("set-cookie".into()),
                legacy: Some("a=1".into()),
                new: None,
                offset: None,
                lines: None,
            }],
            truncated: false,
            request_headers: header_map(&h),
        }
    }

    #[test]
    fn keeps_the_newest_records() {
        let recent = Recent::default();
        for i in 0..5 {
            recent.push(Arc::new(record(&format!("/{i}"))), 3, usize::MAX);
        }
        let paths: Vec<String> = recent.latest(10).iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, ["/4", "/3", "/2"]);
        assert_eq!(recent.latest(1).len(), 1);
    }

    #[test]
    fn keeps_no_more_bytes_than_its_budget() {
        let recent = Recent::default();
        let one = serde_json::to_vec(&record("/0")).unwrap().len();
        for i in 0..10 {
            recent.push(Arc::new(record(&format!("/{i}"))), 100, one * 3);
        }
        assert_eq!(recent.latest(100).len(), 3, "three records fit the budget");
        assert!(recent.bytes() <= one * 3);
        recent.push(Arc::new(record(&"/x".repeat(10_000))), 100, one * 3);
        assert_eq!(recent.latest(1)[0].path, "/9", "a record over the whole budget is not kept");
    }
}
