//! A route's shadow state that outlives config reloads: the in-flight limit, findings and noise
//! per endpoint, recent mismatches and metric handles. Kept by route name, like the request
//! metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use prometheus::{Histogram, IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::kept::KeptRequests;
use crate::compare::difference::{Field, MismatchKind};
use crate::compare::report::NoiseField;
use crate::compare::store::Recent;
use crate::compare::Findings;
use crate::config::shadow::Shadow;
use crate::core::{BySide, Side};
use crate::metrics::METRICS;
use serde::{Deserialize, Serialize};

/// Shadowed requests of a route by result, since start (as `strangler_shadow_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowCounts {
    #[serde(rename = "match")]
    pub matched: u64,
    pub mismatch: u64,
    pub error: u64,
    pub dropped: u64,
    pub skipped: u64,
    /// Of `match`: pairs that differed only in fields noise explained.
    #[serde(default)]
    pub explained: u64,
}

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

/// What became of a same-side repeat, as counted in `strangler_noise_samples_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSample {
    /// Counted in the endpoint's noise window.
    Learned,
    /// Sent after the primary's answer had arrived: a client could have changed state in
    /// between, so it is not counted.
    Late,
    /// No answer, or an answer that could not be compared.
    Failed,
}

impl NoiseSample {
    const ALL: [NoiseSample; 3] = [NoiseSample::Learned, NoiseSample::Late, NoiseSample::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            NoiseSample::Learned => "learned",
            NoiseSample::Late => "late",
            NoiseSample::Failed => "failed",
        }
    }
}

pub struct ShadowState {
    pub route: String,
    /// Swapped when `max_in_flight` changes; permits of the old semaphore drain on their own.
    permits: ArcSwap<Semaphore>,
    limit: AtomicUsize,
    /// Taken once per compared pair, by shadow tasks only (never on the request path).
    findings: Mutex<Findings>,
    pub recent: Recent,
    /// Mismatching requests kept for replay.
    pub kept: KeptRequests,
    results: [IntCounter; 5],
    mismatches: [IntCounter; 3],
    duration: BySide<Histogram>,
    noise_fields: IntGauge,
    /// Same-side repeats: learned, late, failed.
    noise_samples: [IntCounter; 3],
    evidence_bytes: IntGauge,
    /// Mismatching pairs that differed in a significant finding: what the mismatch gate counts.
    significant: std::sync::atomic::AtomicU64,
    /// Pairs that differed only in fields noise explained (counted as matches too).
    explained: std::sync::atomic::AtomicU64,
    /// Both answer times of every compared pair, for the history's paired latency.
    pub paired: crate::live::Paired,
}

impl ShadowState {
    pub fn new(route: &str) -> Self {
        ShadowState {
            route: route.to_string(),
            permits: ArcSwap::from_pointee(Semaphore::new(0)),
            limit: AtomicUsize::new(0),
            findings: Mutex::new(Findings::default()),
            recent: Recent::default(),
            kept: Default::default(),
            results: RESULTS.map(|r| METRICS.shadow.with_label_values(&[route, r.as_str()])),
            mismatches: MismatchKind::ALL.map(|k| METRICS.shadow_mismatches.with_label_values(&[route, k.as_str()])),
            duration: BySide::from_fn(|s| METRICS.shadow_duration.with_label_values(&[route, s.as_str()])),
            noise_fields: METRICS.noise_fields.with_label_values(&[route]),
            noise_samples: NoiseSample::ALL.map(|r| METRICS.noise_samples.with_label_values(&[route, r.as_str()])),
            evidence_bytes: METRICS.evidence_bytes.with_label_values(&[route]),
            significant: std::sync::atomic::AtomicU64::new(0),
            explained: std::sync::atomic::AtomicU64::new(0),
            paired: Default::default(),
        }
    }

    /// Apply the route's (new) settings: resize the in-flight limit, bound the evidence.
    pub fn configure(&self, shadow: &Shadow) {
        self.findings().configure(shadow.compare.bounds);
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
            explained: self.explained.load(Ordering::Relaxed),
        }
    }

    pub fn count_explained(&self) {
        self.explained.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_significant(&self) {
        self.significant.fetch_add(1, Ordering::Relaxed);
    }

    /// Compared pairs so far, and those that differed in a significant finding.
    pub fn gate_counts(&self) -> (u64, u64) {
        let compared = self.count_of(Verdict::Match) + self.count_of(Verdict::Mismatch);
        (compared, self.significant.load(Ordering::Relaxed).min(compared))
    }

    pub fn count_mismatch(&self, kind: MismatchKind) {
        self.mismatches[kind as usize].inc();
    }

    /// Both answer times of a pair that will be compared.
    pub fn observe(&self, side: Side, took: std::time::Duration) {
        self.duration[side].observe(took.as_secs_f64());
        self.paired.record(side, took);
    }

    /// The route's findings. A shadow task that panicked while holding them left whole
    /// counters behind (each update is a few additions), so a poisoned lock is taken over.
    pub fn findings(&self) -> MutexGuard<'_, Findings> {
        self.findings.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fields seen varying between two answers of one side, over all endpoints.
    pub fn noise_fields(&self) -> Vec<NoiseField> {
        self.findings().noise_fields()
    }

    pub fn count_noise_sample(&self, r: NoiseSample) {
        self.noise_samples[r as usize].inc();
    }

    /// Publish the evidence's size (after each pair).
    pub fn evidence_bytes(&self, bytes: usize) {
        self.evidence_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Record a same-side sample of `endpoint` asked by `client` and the fields that differed in
    /// it.
    pub fn learn(&self, endpoint: &str, client: u64, fields: &[Field]) {
        self.count_noise_sample(NoiseSample::Learned);
        let noise = {
            let mut f = self.findings();
            f.record_noise(endpoint, client, fields, std::time::SystemTime::now());
            f.noise_fields()
        };
        let before = self.noise_fields.get();
        self.noise_fields.set(noise.len() as i64);
        if noise.len() as i64 > before {
            let fields: Vec<String> = noise.iter().map(|f| f.field.to_string()).collect();
            tracing::info!(route = %self.route, endpoint, ?fields, "learned {} noise field(s)", noise.len() as i64 - before);
        }
    }
}
