//! A route's shadow state that outlives config reloads: the in-flight limit, learned noise,
//! recent mismatches and metric handles. Kept by route name, like the request metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus::{Histogram, IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{MismatchKind, ShadowCounts};
use crate::compare::store::Recent;
use crate::compare::{JsonPath, Noise};
use crate::config::shadow::Shadow;
use crate::config::Side;
use crate::metrics::{side_index, METRICS};

/// The result of one shadowed request, as counted in `strangler_shadow_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    Mismatch,
    /// The shadow side failed: refused, reset, timed out, or not HTTP.
    Error,
    /// Over `max_in_flight`: never sent.
    Dropped,
    /// Not comparable: a body over `max_body`, or the primary request failed.
    Skipped,
}

const RESULTS: [Verdict; 5] = [Verdict::Match, Verdict::Mismatch, Verdict::Error, Verdict::Dropped, Verdict::Skipped];

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
            Verdict::Error => "error",
            Verdict::Dropped => "dropped",
            Verdict::Skipped => "skipped",
        }
    }
}

pub struct ShadowState {
    pub route: String,
    /// Swapped when `max_in_flight` changes; permits of the old semaphore drain on their own.
    permits: ArcSwap<Semaphore>,
    limit: AtomicUsize,
    /// Replaced whole when a field is learned, so comparisons read it without a lock.
    noise: ArcSwap<Noise>,
    pub recent: Recent,
    results: [IntCounter; 5],
    mismatches: [IntCounter; 3],
    duration: [Histogram; 2],
    noise_fields: IntGauge,
}

impl ShadowState {
    pub fn new(route: &str) -> Self {
        ShadowState {
            route: route.to_string(),
            permits: ArcSwap::from_pointee(Semaphore::new(0)),
            limit: AtomicUsize::new(0),
            noise: ArcSwap::from_pointee(Noise::default()),
            recent: Recent::default(),
            results: RESULTS.map(|r| METRICS.shadow.with_label_values(&[route, r.as_str()])),
            mismatches: MismatchKind::ALL.map(|k| METRICS.shadow_mismatches.with_label_values(&[route, k.as_str()])),
            duration: [Side::Legacy, Side::New]
                .map(|s| METRICS.shadow_duration.with_label_values(&[route, s.as_str()])),
            noise_fields: METRICS.noise_fields.with_label_values(&[route]),
        }
    }

    /// Apply the route's (new) settings: resize the in-flight limit.
    pub fn configure(&self, shadow: &Shadow) {
        let limit = shadow.max_in_flight;
        if self.limit.swap(limit, Ordering::Relaxed) != limit {
            self.permits.store(Arc::new(Semaphore::new(limit)));
        }
    }

    /// A slot for one more shadow, if the route is under its limit. Never waits.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.load_full().try_acquire_owned().ok()
    }

    /// Shadows holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.limit.load(Ordering::Relaxed).saturating_sub(self.permits.load().available_permits())
    }

    pub fn count(&self, r: Verdict) {
        self.results[r as usize].inc();
    }

    /// Shadowed requests of one result since start.
    pub fn count_of(&self, r: Verdict) -> u64 {
        self.results[r as usize].get()
    }

    pub fn counts(&self) -> ShadowCounts {
        ShadowCounts {
            matched: self.count_of(Verdict::Match),
            mismatch: self.count_of(Verdict::Mismatch),
            error: self.count_of(Verdict::Error),
            dropped: self.count_of(Verdict::Dropped),
            skipped: self.count_of(Verdict::Skipped),
        }
    }

    pub fn count_mismatch(&self, kind: MismatchKind) {
        self.mismatches[kind as usize].inc();
    }

    pub fn observe(&self, side: Side, seconds: f64) {
        self.duration[side_index(side)].observe(seconds);
    }

    pub fn noise(&self) -> Arc<Noise> {
        self.noise.load_full()
    }

    /// Record noise seen between two answers of one side.
    pub fn learn(&self, headers: Vec<String>, paths: Vec<JsonPath>) {
        if headers.is_empty() && paths.is_empty() {
            return;
        }
        let mut learned = 0;
        self.noise.rcu(|current| {
            let mut next = Noise::clone(current);
            learned = next.learn(headers.clone(), paths.clone());
            next
        });
        if learned > 0 {
            let noise = self.noise.load();
            self.noise_fields.set(noise.len() as i64);
            let fields: Vec<String> = noise.fields().iter().map(|f| f.field.to_string()).collect();
            tracing::info!(route = %self.route, ?fields, "learned {learned} noise field(s)");
        }
    }
}
