//! The mismatching requests of a route, kept (bounded in count and bytes) so they can be sent
//! to both sides again ([`super::replay`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::RequestHeader;

/// Bytes of kept requests per route at most (with `keep_replays`).
pub const KEEP_BYTES: usize = 4 << 20;

/// A mismatching request, kept to be sent again.
pub struct Kept {
    pub seen_at: String,
    pub endpoint: String,
    /// As forwarded to the primary.
    pub request: RequestHeader,
    pub client_host: Option<HeaderValue>,
    pub body: Bytes,
}

impl Kept {
    fn size(&self) -> usize {
        let headers: usize = self.request.headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
        headers + self.body.len() + self.request.uri.to_string().len() + self.endpoint.len() + 64
    }

    pub fn path(&self) -> String {
        self.request.uri.path_and_query().map_or("/", |p| p.as_str()).to_string()
    }
}

/// A route's kept requests, newest last.
#[derive(Default)]
pub struct KeptRequests {
    inner: Mutex<(VecDeque<Arc<Kept>>, usize)>,
}

impl KeptRequests {
    /// Keep `k`, dropping the oldest beyond `max` requests or [`KEEP_BYTES`].
    pub fn keep(&self, k: Kept, max: usize) {
        if max == 0 {
            return;
        }
        let size = k.size();
        if size > KEEP_BYTES {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (list, bytes) = &mut *guard;
        // The same request seen mismatching again replaces its older copy.
        let (method, path) = (k.request.method.clone(), k.path());
        if let Some(i) = list.iter().position(|o| o.request.method == method && o.path() == path) {
            if let Some(old) = list.remove(i) {
                *bytes -= old.size();
            }
        }
        list.push_back(Arc::new(k));
        *bytes += size;
        while list.len() > max || *bytes > KEEP_BYTES {
            match list.pop_front() {
                Some(old) => *bytes -= old.size(),
                None => break,
            }
        }
    }

    /// Up to `limit` kept requests, newest first, of `endpoint` when given.
    pub fn latest(&self, endpoint: Option<&str>, limit: usize) -> Vec<Arc<Kept>> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.iter().rev().filter(|k| endpoint.is_none_or(|e| k.endpoint == e)).take(limit).cloned().collect()
    }
}
