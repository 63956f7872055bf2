//! Live figures per route and side: requests, failures and a latency histogram, as cumulative
//! counters the request path bumps with one atomic add each. Any window is a subtraction of two
//! readings: the last minute (against a reading sampled once a second into a ring) or a rollout
//! step (against the reading taken when the step began).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::core::{BySide, Side};

/// One side's figures over the live window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideLive {
    pub requests: u64,
    pub rps: f64,
    /// Percent of 5xx answers and failed attempts; `None` without requests.
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Both sides over the live window (the last minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveWindow {
    pub seconds: f64,
    pub legacy: SideLive,
    pub new: SideLive,
    pub shadow_compared: u64,
    /// Percent of comparisons that mismatched; `None` without comparisons.
    pub mismatch_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySample {
    /// The end of the interval, RFC 3339, UTC.
    pub at: String,
    pub window: LiveWindow,
    /// Legacy's and new's answer times on the same shadowed requests in this interval; absent
    /// when nothing was compared.
    #[serde(default)]
    pub shadowed: Option<PairedLatency>,
}

/// Both sides' latency on identical requests: each compared shadow pair adds one answer time
/// to each side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedLatency {
    pub pairs: u64,
    pub legacy_p50_ms: Option<f64>,
    pub legacy_p99_ms: Option<f64>,
    pub new_p50_ms: Option<f64>,
    pub new_p99_ms: Option<f64>,
}

impl LiveWindow {
    pub fn side(&self, side: Side) -> &SideLive {
        match side {
            Side::Legacy => &self.legacy,
            Side::New => &self.new,
        }
    }
}

/// Sub-buckets per power of two: each bucket is at most 1/8 (12.5%) wider than its lower bound.
const SUB: u32 = 8;
/// Microsecond powers of two covered: up to 2^28 us (about 4.5 minutes); slower is clamped.
const POWERS: u32 = 28;
const BUCKETS: usize = (POWERS * SUB) as usize;

/// The bucket of a duration in microseconds: log-linear, like HDR histograms.
fn bucket_of(micros: u64) -> usize {
    if micros < u64::from(SUB) {
        return micros as usize;
    }
    let power = 63 - micros.leading_zeros(); // >= 3
    let sub = (micros >> (power - 3)) & u64::from(SUB - 1);
    ((power - 2) * SUB + sub as u32).min(BUCKETS as u32 - 1) as usize
}

/// The upper bound, in microseconds, of a bucket.
fn bucket_upper(index: usize) -> u64 {
    let index = index as u32;
    if index < SUB {
        return u64::from(index);
    }
    let power = index / SUB + 2;
    let sub = u64::from(index % SUB);
    ((u64::from(SUB) + sub + 1) << (power - 3)) - 1
}

/// One side's counters, only ever increased.
struct SideCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency: Box<[AtomicU64]>,
}

impl SideCounters {
    fn new() -> Self {
        SideCounters {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn read(&self) -> Figures {
        Figures {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self.latency.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
        }
    }
}

/// Answer times of legacy and new on the same shadowed requests: every compared pair adds one
/// to each side, so the two distributions come from identical traffic (the fairest latency
/// comparison there is; the live figures compare different requests).
pub struct Paired {
    sides: BySide<SideCounters>,
}

impl Default for Paired {
    fn default() -> Self {
        Paired { sides: BySide::from_fn(|_| SideCounters::new()) }
    }
}

impl Paired {
    pub fn record(&self, side: Side, took: Duration) {
        let c = &self.sides[side];
        c.requests.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        c.latency[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self) -> BySide<Figures> {
        self.sides.map(|_, c| c.read())
    }
}

/// The paired figures between two readings of [`Paired`]; `None` without pairs.
fn paired_summary(now: &BySide<Figures>, base: &BySide<Figures>) -> Option<PairedLatency> {
    let BySide { legacy, new } = BySide::from_fn(|s| now[s].since(&base[s]));
    let pairs = legacy.requests.min(new.requests);
    (pairs > 0).then(|| PairedLatency {
        pairs,
        legacy_p50_ms: legacy.quantile_ms(0.50),
        legacy_p99_ms: legacy.quantile_ms(0.99),
        new_p50_ms: new.quantile_ms(0.50),
        new_p99_ms: new.quantile_ms(0.99),
    })
}

/// One side's counts over some span: a reading, or the difference of two. It travels (to etcd,
/// to the rollout state) with its latency histogram as the buckets that are not empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "SparseFigures", from = "SparseFigures")]
pub struct Figures {
    /// Requests answered (or attempts that failed before an answer).
    pub requests: u64,
    /// 5xx answers and failed attempts.
    pub errors: u64,
    latency: Box<[u64]>,
}

#[derive(Serialize, Deserialize)]
struct SparseFigures {
    requests: u64,
    errors: u64,
    /// (bucket, count) for every bucket that is not empty.
    #[serde(default)]
    latency: Vec<(usize, u64)>,
}

impl From<Figures> for SparseFigures {
    fn from(f: Figures) -> Self {
        let latency = f.latency.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (i, *n)).collect();
        SparseFigures { requests: f.requests, errors: f.errors, latency }
    }
}

impl From<SparseFigures> for Figures {
    fn from(s: SparseFigures) -> Self {
        let mut f = Figures::zero();
        (f.requests, f.errors) = (s.requests, s.errors);
        for (i, n) in s.latency {
            if let Some(b) = f.latency.get_mut(i) {
                *b += n;
            }
        }
        f
    }
}

impl Figures {
    fn zero() -> Self {
        Figures { requests: 0, errors: 0, latency: vec![0; BUCKETS].into_boxed_slice() }
    }

    fn add(&mut self, other: &Figures) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        for (a, b) in self.latency.iter_mut().zip(other.latency.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// Counters another instance published (in etcd) must be below [`MAX_COUNT`].
    fn check(&self) -> Result<(), String> {
        let over = [self.requests, self.errors].into_iter().chain(self.latency.iter().copied()).any(|n| n > MAX_COUNT);
        if over {
            return Err(format!("a counter above {MAX_COUNT}"));
        }
        Ok(())
    }

    fn since(&self, earlier: &Figures) -> Figures {
        Figures {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            latency: self.latency.iter().zip(earlier.latency.iter()).map(|(a, b)| a.saturating_sub(*b)).collect(),
        }
    }

    /// Requests with a measured latency.
    pub fn timed(&self) -> u64 {
        self.latency.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Percent of requests that failed; `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 * 100.0 / self.requests as f64)
    }

    /// The `q` quantile (0..=1) of latency in milliseconds, as the upper bound of its bucket
    /// (at most 12.5% above the true value); `None` without timed requests.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.timed();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_upper(i) as f64 / 1000.0);
            }
        }
        None
    }
}

/// Everything a window needs, read at one instant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reading {
    #[serde(skip, default = "Instant::now")]
    pub at: Instant,
    sides: BySide<Figures>,
    /// Cumulative shadow comparisons that matched / mismatched.
    pub shadow_match: u64,
    pub shadow_mismatch: u64,
}

impl Reading {
    fn zero(at: Instant) -> Reading {
        Reading { at, sides: BySide::from_fn(|_| Figures::zero()), shadow_match: 0, shadow_mismatch: 0 }
    }

    pub fn side(&self, side: Side) -> &Figures {
        &self.sides[side]
    }

    /// What a reading read from etcd must be to be counted: counters below [`MAX_COUNT`].
    pub fn check(&self) -> Result<(), String> {
        Side::BOTH.iter().try_for_each(|&s| self.sides[s].check())?;
        if self.shadow_match > MAX_COUNT || self.shadow_mismatch > MAX_COUNT {
            return Err(format!("a counter above {MAX_COUNT}"));
        }
        Ok(())
    }

    /// What happened between `earlier` and this reading.
    pub fn since(&self, earlier: &Reading) -> Window {
        Window {
            seconds: self.at.saturating_duration_since(earlier.at).as_secs_f64(),
            sides: BySide::from_fn(|s| self.sides[s].since(&earlier.sides[s])),
            shadow_match: self.shadow_match.saturating_sub(earlier.shadow_match),
            shadow_mismatch: self.shadow_mismatch.saturating_sub(earlier.shadow_mismatch),
        }
    }
}

/// This process's boot: its start in Unix milliseconds, mixed with its pid so two processes
/// started in the same millisecond differ. Counters counted in another boot are not comparable.
pub fn boot_id() -> u64 {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        (ms << 20) ^ u64::from(std::process::id())
    })
}

/// A route's readings across a fleet, by instance, each with the boot of the process that
/// counted it (outside a fleet, one entry). Counters start from zero when a process starts, so a
/// window compares a reading only with an earlier one of the same boot.
pub type Tally = BTreeMap<String, Counted>;

/// The largest counter a document read from etcd may hold: 2^53, more requests than any
/// process serves, and exact as a JSON number everywhere.
pub const MAX_COUNT: u64 = 1 << 53;

/// A tally read from etcd or the state file, checked: every reading's counters (see
/// [`Reading::check`]).
pub fn check_tally(t: &Tally) -> Result<(), String> {
    t.values().try_for_each(|c| c.reading.check())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counted {
    pub boot: u64,
    pub reading: Reading,
}

/// What happened fleet-wide between two tallies: the sum over the instances of `now` of what
/// each counted since its entry in `base` (from zero for an instance that was not in `base` or
/// has started again since). An instance that left is no longer counted.
pub fn tally_window(now: &Tally, base: &Tally) -> Window {
    let mut total =
        Window { seconds: 0.0, sides: BySide::from_fn(|_| Figures::zero()), shadow_match: 0, shadow_mismatch: 0 };
    for (instance, c) in now {
        let w = match base.get(instance).filter(|b| b.boot == c.boot) {
            Some(b) => c.reading.since(&b.reading),
            None => c.reading.since(&Reading::zero(c.reading.at)),
        };
        total.seconds = total.seconds.max(w.seconds);
        for s in Side::BOTH {
            total.sides[s].add(&w.sides[s]);
        }
        total.shadow_match += w.shadow_match;
        total.shadow_mismatch += w.shadow_mismatch;
    }
    total
}

/// Counts over a span of time.
#[derive(Debug, Clone)]
pub struct Window {
    pub seconds: f64,
    sides: BySide<Figures>,
    pub shadow_match: u64,
    pub shadow_mismatch: u64,
}

impl Window {
    pub fn side(&self, side: Side) -> &Figures {
        &self.sides[side]
    }

    /// Percent of shadow comparisons that mismatched; `None` without comparisons.
    pub fn mismatch_rate(&self) -> Option<f64> {
        let compared = self.shadow_match + self.shadow_mismatch;
        (compared > 0).then(|| self.shadow_mismatch as f64 * 100.0 / compared as f64)
    }

    /// The figures the API and `strangler status` show.
    pub fn summary(&self) -> LiveWindow {
        let side = |s: Side| {
            let f = self.side(s);
            SideLive {
                requests: f.requests,
                rps: if self.seconds > 0.0 { f.requests as f64 / self.seconds } else { 0.0 },
                error_rate: f.error_rate(),
                p50_ms: f.quantile_ms(0.50),
                p99_ms: f.quantile_ms(0.99),
            }
        };
        LiveWindow {
            seconds: self.seconds,
            legacy: side(Side::Legacy),
            new: side(Side::New),
            shadow_compared: self.shadow_match + self.shadow_mismatch,
            mismatch_rate: self.mismatch_rate(),
        }
    }
}

/// How far back the live window reaches.
pub const LIVE_WINDOW: Duration = Duration::from_secs(60);
/// What one history sample covers, and how many are kept: 15 minutes, 51 KiB per route (44 KiB
/// of samples, each a [`LiveWindow`] and the step's paired shadow latency, the figures without
/// the histograms; 7 KiB of paired-latency counters). `history_memory_per_route` checks it.
pub const HISTORY_STEP: Duration = Duration::from_secs(5);
pub const HISTORY_LEN: usize = 180;

/// A route's live counters, the ring of once-a-second readings, and the history.
pub struct Live {
    sides: BySide<SideCounters>,
    ring: Mutex<VecDeque<Reading>>,
    history: Mutex<History>,
}

/// Summaries of consecutive [`HISTORY_STEP`]s, and the reading the next one starts from.
struct History {
    base: Reading,
    paired_base: BySide<Figures>,
    samples: VecDeque<Sample>,
}

struct Sample {
    at: std::time::SystemTime,
    window: LiveWindow,
    shadowed: Option<PairedLatency>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        let start = Reading::zero(Instant::now());
        let history = History {
            base: start.clone(),
            paired_base: BySide::from_fn(|_| Figures::zero()),
            // Allocated once at its full size: a growing ring would double past it.
            samples: VecDeque::with_capacity(HISTORY_LEN + 1),
        };
        Live {
            sides: BySide::from_fn(|_| SideCounters::new()),
            ring: Mutex::new(VecDeque::from([start])),
            history: Mutex::new(history),
        }
    }

    /// One answered request. `failed` = a 5xx answer; `latency` = how long the upstream took to
    /// start answering, `None` when it never did.
    pub fn record(&self, side: Side, failed: bool, latency: Option<Duration>) {
        let c = &self.sides[side];
        c.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(latency) = latency {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            c.latency[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An attempt that failed without an answer from `side` (e.g. new was retried on legacy):
    /// it counts against that side's error rate but has no latency.
    pub fn record_failed_attempt(&self, side: Side) {
        let c = &self.sides[side];
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with the route's cumulative shadow results.
    pub fn read(&self, shadow_match: u64, shadow_mismatch: u64) -> Reading {
        Reading { at: Instant::now(), sides: self.sides.map(|_, c| c.read()), shadow_match, shadow_mismatch }
    }

    /// Keep a reading for the live window; readings older than the window (but the one just
    /// past it) are dropped. Every [`HISTORY_STEP`], the step's summary (with the route's
    /// `paired` shadow latencies, when it shadows) joins the history.
    pub fn keep(&self, reading: Reading, paired: Option<&Paired>) {
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if reading.at.saturating_duration_since(h.base.at) >= HISTORY_STEP {
                let window = reading.since(&h.base).summary();
                let shadowed = paired.and_then(|p| {
                    let now = p.read();
                    let step = paired_summary(&now, &h.paired_base);
                    h.paired_base = now;
                    step
                });
                h.samples.push_back(Sample { at: std::time::SystemTime::now(), window, shadowed });
                while h.samples.len() > HISTORY_LEN {
                    h.samples.pop_front();
                }
                h.base = reading.clone();
            }
        }
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.push_back(reading);
        while ring.len() > 2 && ring[1].at.elapsed() >= LIVE_WINDOW {
            ring.pop_front();
        }
    }

    /// The history samples, oldest first.
    pub fn history(&self) -> Vec<HistorySample> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.samples
            .iter()
            .map(|s| HistorySample {
                at: humantime::format_rfc3339_seconds(s.at).to_string(),
                window: s.window.clone(),
                shadowed: s.shadowed.clone(),
            })
            .collect()
    }

    /// The last minute (or less, just after start) up to `now`.
    pub fn last_minute(&self, now: &Reading) -> Window {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let base =
            ring.iter().rev().find(|r| now.at.saturating_duration_since(r.at) >= LIVE_WINDOW).or_else(|| ring.front());
        match base {
            Some(b) => now.since(b),
            None => now.since(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for i in 0..BUCKETS {
            let upper = bucket_upper(i);
            assert!(upper >= last, "bucket {i}");
            last = upper;
        }
        for micros in [1u64, 7, 8, 9, 15, 16, 100, 999, 1000, 12_345, 250_000, 3_000_000] {
            let b = bucket_of(micros);
            assert!(bucket_upper(b) >= micros, "{micros} above its bucket's bound");
            assert!(bucket_upper(b) as f64 <= micros as f64 * 1.125 + 1.0, "{micros}: bound too loose");
            if b > 0 {
                assert!(bucket_upper(b - 1) < micros, "{micros} belongs to an earlier bucket");
            }
        }
    }

    #[test]
    fn a_tally_window_sums_instances_and_restarts_count_from_zero() {
        let reading = |new: u64, errors: u64, ms: u64| {
            let live = Live::new();
            for i in 0..new {
                live.record(Side::New, i < errors, Some(Duration::from_millis(ms)));
            }
            live.read(new, 0)
        };
        let counted = |boot, r: Reading| Counted { boot, reading: r };
        let base: Tally =
            [("a".to_string(), counted(1, reading(10, 0, 5))), ("b".to_string(), counted(7, reading(50, 5, 5)))].into();
        // a served 30 more; b restarted (boot 8) and served 4 since; c joined with 6.
        let now: Tally = [
            ("a".to_string(), counted(1, reading(40, 0, 5))),
            ("b".to_string(), counted(8, reading(4, 1, 5))),
            ("c".to_string(), counted(3, reading(6, 0, 200))),
        ]
        .into();
        let w = tally_window(&now, &base);
        assert_eq!((w.side(Side::New).requests, w.side(Side::New).errors), (40, 1));
        assert_eq!(w.side(Side::New).timed(), 40);
        assert_eq!(w.shadow_match, 40);
        assert!(w.side(Side::New).quantile_ms(0.99).is_some_and(|p| p > 100.0), "c's slow answers are in the sum");

        // Through JSON (etcd, the state file) and back: the same counts.
        let text = serde_json::to_string(&now).expect("json");
        let back: Tally = serde_json::from_str(&text).expect("parse");
        let again = tally_window(&back, &base);
        assert_eq!(again.side(Side::New), w.side(Side::New));
        assert!(text.len() < 600, "only the buckets in use travel: {text}");
    }

    #[test]
    fn history_keeps_one_summary_per_step_and_is_bounded() {
        let live = Live::new();
        let start = live.read(0, 0).at;
        for second in 1..=(HISTORY_STEP.as_secs() as usize * (HISTORY_LEN + 10)) {
            live.record(Side::New, false, Some(Duration::from_millis(5)));
            let mut r = live.read(second as u64, 0);
            r.at = start + Duration::from_secs(second as u64);
            live.keep(r, None);
        }
        let h = live.history();
        assert_eq!(h.len(), HISTORY_LEN);
        let w = &h[0].window;
        assert_eq!((w.seconds, w.new.requests, w.shadow_compared), (5.0, 5, 5));
        assert!((w.new.rps - 1.0).abs() < 1e-9);
        assert_eq!(h[0].shadowed, None, "a route that shadows nothing has no paired latency");
    }

    /// The figure the docs give: a route's history (the samples and the paired latencies'
    /// counters and base) stays under 56 KiB.
    #[test]
    fn history_memory_per_route() {
        let samples = std::mem::size_of::<Sample>() * (HISTORY_LEN + 1);
        let paired = 2 * 2 * (BUCKETS * 8 + std::mem::size_of::<Figures>());
        let total = samples + paired;
        println!("history per route: {samples} B of samples + {paired} B of paired latency = {total} B");
        assert!(total < 56 * 1024, "{total} bytes per route");
        let h = Live::new().history.into_inner().expect("lock");
        assert!(h.samples.capacity() <= HISTORY_LEN + 8, "the ring is allocated at its size");
    }

    #[test]
    fn history_pairs_each_step_own_shadowed_latencies() {
        let (live, paired) = (Live::new(), Paired::default());
        let start = live.read(0, 0).at;
        let step = |n: u64, legacy_ms: u64, new_ms: u64| {
            for _ in 0..n {
                paired.record(Side::Legacy, Duration::from_millis(legacy_ms));
                paired.record(Side::New, Duration::from_millis(new_ms));
            }
        };
        step(10, 20, 40);
        let mut r = live.read(0, 0);
        r.at = start + HISTORY_STEP;
        live.keep(r, Some(&paired));
        let mut r = live.read(0, 0);
        r.at = start + HISTORY_STEP * 2;
        live.keep(r, Some(&paired));
        step(4, 100, 10);
        let mut r = live.read(0, 0);
        r.at = start + HISTORY_STEP * 3;
        live.keep(r, Some(&paired));

        let h = live.history();
        let first = h[0].shadowed.clone().expect("ten pairs in the first step");
        assert_eq!(first.pairs, 10);
        let (l, n) = (first.legacy_p50_ms.expect("legacy p50"), first.new_p50_ms.expect("new p50"));
        assert!((20.0..=22.5).contains(&l) && (40.0..=45.0).contains(&n), "p50s {l} and {n}");
        assert_eq!(h[1].shadowed, None, "no pairs in the second step");
        let third = h[2].shadowed.clone().expect("four pairs in the third step");
        assert_eq!(third.pairs, 4, "a step counts only its own pairs");
        assert!(third.new_p99_ms.expect("new p99") < third.legacy_p99_ms.expect("legacy p99"));
    }

    #[test]
    fn quantiles_and_rates_over_a_window() {
        let live = Live::new();
        let start = live.read(0, 0);
        for i in 0..100u64 {
            live.record(Side::New, i < 3, Some(Duration::from_millis(if i < 98 { 10 } else { 200 })));
        }
        live.record(Side::Legacy, false, Some(Duration::from_millis(20)));
        live.record_failed_attempt(Side::New);
        let w = live.read(8, 2).since(&start);
        let new = w.side(Side::New);
        assert_eq!((new.requests, new.errors, new.timed()), (101, 4, 100));
        let p50 = new.quantile_ms(0.5).unwrap_or_default();
        assert!((10.0..=11.25).contains(&p50), "p50 {p50}");
        let p99 = new.quantile_ms(0.99).unwrap_or_default();
        assert!((200.0..=225.0).contains(&p99), "p99 {p99}");
        assert_eq!(w.mismatch_rate(), Some(20.0));
        assert_eq!(w.side(Side::Legacy).requests, 1);
        assert!(live.read(0, 0).since(&live.read(0, 0)).side(Side::New).quantile_ms(0.99).is_none());
    }
}
