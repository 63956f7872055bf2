//! Findings: per endpoint and field, how often legacy and new disagree next to how often one side
//! disagrees with itself (noise), and from that a verdict per endpoint.
//!
//! **The noise model.** A same-side sample is the serving side asked twice for one request, both
//! requests sent at request time (a repeat written after the primary's answer was delivered is
//! not counted past an endpoint's first samples, see [`crate::shadow::task`]), so no client can
//! change state between them. Each endpoint keeps its
//! own last [`WINDOW`] samples younger than `noise_max_age`; nothing older counts, and no endpoint
//! uses another's. A field's noise rate is weighed by client: each distinct client (sticky key,
//! else address) counts once, with the share of its own samples in which the field varied, so one
//! client cannot supply most of an endpoint's noise. A field seen to vary is judged against
//! `(rate * n + 1) / (n + 1)` over the `n` samples, so a few lucky samples cannot make a noisy
//! field look steady.
//!
//! A field is a finding when its legacy/new rate exceeds its noise rate by `finding_absolute`
//! percentage points and by `finding_relative` percent of the noise rate. A difference is
//! *explained* by noise when its field has a noise rate now and is not a finding; explained pairs
//! are counted per field and shown. While noise explains differences, the endpoint's same side is
//! sampled more often ([`RECHECK`]), so a field that stopped varying on one side leaves the window
//! quickly and its differences count again.
//!
//! **Bounds.** A route's findings live as long as the process (across reloads) and hold at most
//! `max_endpoints` endpoints (then `{other}`), [`MAX_FIELDS`] fields per endpoint,
//! [`MAX_EXAMPLES`] examples per field with values cut to [`EXAMPLE_BYTES`] and paths to
//! [`EXAMPLE_PATH`], and at most `max_evidence` bytes in all (templates included): past it,
//! new endpoints fold into `{other}` and new fields and examples are counted, not kept.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::difference::{Difference, Field};
use super::endpoint::{self, Learner, Template, OTHER};
use super::path::JsonPath;
use super::report::{EndpointReport, Example, Finding, NoiseField, NoiseRate, Report, ReportRules, Verdict};
use crate::core::Percent;

/// Fields tracked per endpoint; differences in more are counted in the endpoint only. At most
/// 64: a same-side sample keeps the fields that varied as bits.
pub const MAX_FIELDS: usize = 50;
/// Examples kept per field: the first ones seen.
pub const MAX_EXAMPLES: usize = 2;
/// An example value longer than this (as JSON) is kept as a cut string.
pub const EXAMPLE_BYTES: usize = 200;
/// An example's path and query longer than this is kept cut.
pub const EXAMPLE_PATH: usize = 256;
/// A field name (a JSON path) longer than this is kept cut, with a hash of the whole.
pub const FIELD_NAME: usize = 200;
/// An endpoint with fewer same-side samples than this in its window has every compared request
/// that is safe to repeat also sent a second time to its serving side, so noise is known before
/// it can be taken for a difference.
pub const BOOTSTRAP: usize = 20;
/// Same-side samples an endpoint keeps: its noise is what its same side does now.
pub const WINDOW: usize = 64;
/// While noise explains an endpoint's differences, at least this share of its requests is
/// sampled again on the same side.
pub const RECHECK: Percent = Percent::from_hundredths(1000);

/// Endpoints and counters evidence read from elsewhere may hold at most: `max_endpoints` can be
/// 10,000 (and one `{other}` per method), and 2^53 is more than any process counts and exact as
/// a JSON number everywhere.
const MAX_ENDPOINTS: usize = 10_016;
const MAX_COUNT: u64 = 1 << 53;

/// Estimated heap bytes of an endpoint besides its name (stats, window), of a field besides its
/// name, and of an example besides its texts.
const ENDPOINT_BYTES: usize = 400 + WINDOW * 32;
const FIELD_BYTES: usize = 200;
const EXAMPLE_BASE: usize = 160;

/// A route's bounds, from `[routes.compare]`; applied again on every reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_endpoints: usize,
    pub max_bytes: usize,
    pub noise_max_age: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { max_endpoints: 100, max_bytes: 4 << 20, noise_max_age: Duration::from_secs(3600) }
    }
}

/// Which endpoints a report shows: `limit` of them from `offset`, busiest first, and no more than
/// `max_bytes` of them as JSON (at least one).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
    pub max_bytes: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page { offset: 0, limit: 100, max_bytes: 1 << 20 }
    }
}

/// Serialisable: in a fleet each instance publishes its findings, and any instance pools them
/// into the fleet's report ([`Findings::merge`]). The template tree stays with its instance.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Findings {
    endpoints: BTreeMap<String, EndpointStats>,
    folded: u64,
    /// Fields and examples not kept, and endpoints folded, because the byte budget was spent.
    #[serde(default)]
    over_budget: u64,
    #[serde(skip)]
    learner: Learner,
    #[serde(skip)]
    bounds: Bounds,
    /// Estimated heap bytes held, the template tree's included.
    #[serde(skip)]
    bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EndpointStats {
    comparisons: u64,
    mismatches: u64,
    /// Pairs that differed only in fields noise explained.
    #[serde(default)]
    explained: u64,
    /// Same-side samples ever taken.
    noise_samples: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    fields: BTreeMap<Field, FieldStats>,
    /// The newest same-side samples, newest last.
    #[serde(default)]
    window: VecDeque<Sample>,
    /// The last pair had a difference that noise explained: sample the same side more often.
    #[serde(default)]
    explaining: bool,
    /// Counted under a declared template: never renamed by a fold.
    #[serde(default)]
    declared: bool,
}

/// One same-side sample: who asked, when (seconds since the epoch) and the fields that varied
/// (bit `id` of each field's [`FieldStats::id`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Sample {
    client: u64,
    at: u64,
    varied: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct FieldStats {
    /// This field's bit in the window's samples; unique within its endpoint.
    #[serde(default)]
    id: u8,
    /// Legacy/new pairs it differed in.
    differ: u64,
    /// Same-side samples it varied in, ever.
    noise: u64,
    /// Legacy/new pairs where noise explained its difference.
    #[serde(default)]
    explained: u64,
    first_seen: Option<SystemTime>,
    last_seen: Option<SystemTime>,
    examples: Vec<Example>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl EndpointStats {
    fn new(now: SystemTime) -> Self {
        EndpointStats {
            comparisons: 0,
            mismatches: 0,
            explained: 0,
            noise_samples: 0,
            first_seen: now,
            last_seen: now,
            fields: BTreeMap::new(),
            window: VecDeque::new(),
            explaining: false,
            declared: false,
        }
    }

    /// The field's stats, made when there is room; `None` past [`MAX_FIELDS`] or the budget.
    fn field(&mut self, f: Field, room: bool) -> Option<&mut FieldStats> {
        if !self.fields.contains_key(&f) {
            if self.fields.len() >= MAX_FIELDS || !room {
                return None;
            }
            let used: u64 = self.fields.values().fold(0, |m, s| m | (1 << s.id));
            let id = (!used).trailing_zeros() as u8;
            self.fields.insert(f.clone(), FieldStats { id, ..FieldStats::default() });
        }
        self.fields.get_mut(&f)
    }

    /// The samples young enough to count.
    fn fresh(&self, now: u64, max_age: Duration) -> impl Iterator<Item = &Sample> {
        let oldest = now.saturating_sub(max_age.as_secs());
        self.window.iter().filter(move |s| s.at >= oldest)
    }

    /// The noise rate a field is judged against, 0..=1, and the distinct clients behind it.
    fn noise_rate(&self, f: &FieldStats, now: u64, max_age: Duration) -> f64 {
        let bit = 1u64 << f.id;
        let mut clients: Vec<(u64, u32, u32)> = Vec::new();
        let mut n = 0u32;
        for s in self.fresh(now, max_age) {
            n += 1;
            let varied = u32::from(s.varied & bit != 0);
            match clients.iter_mut().find(|c| c.0 == s.client) {
                Some(c) => {
                    c.1 += 1;
                    c.2 += varied;
                }
                None => clients.push((s.client, 1, varied)),
            }
        }
        if clients.iter().all(|c| c.2 == 0) {
            return 0.0;
        }
        let rate = clients.iter().map(|c| f64::from(c.2) / f64::from(c.1)).sum::<f64>() / clients.len() as f64;
        (rate * f64::from(n) + 1.0) / (f64::from(n) + 1.0)
    }

    fn significant(&self, f: &FieldStats, rules: &ReportRules, now: u64, max_age: Duration) -> bool {
        if f.differ == 0 || self.comparisons == 0 {
            return false;
        }
        let raw = f.differ as f64 / self.comparisons as f64;
        let noise = self.noise_rate(f, now, max_age);
        raw - noise >= rules.finding_absolute / 100.0 && raw >= noise * (1.0 + rules.finding_relative / 100.0)
    }

    /// Whether noise explains a difference in `f` now: it varies on one side and is no finding.
    fn explains(&self, f: &Field, rules: &ReportRules, now: u64, max_age: Duration) -> bool {
        self.fields
            .get(f)
            .is_some_and(|s| self.noise_rate(s, now, max_age) > 0.0 && !self.significant(s, rules, now, max_age))
    }

    /// Add another endpoint's evidence (the same template, another instance or an earlier
    /// name): counts summed, samples and examples merged, bounds kept.
    fn absorb(&mut self, o: &EndpointStats) {
        self.comparisons += o.comparisons;
        self.mismatches += o.mismatches;
        self.explained += o.explained;
        self.noise_samples += o.noise_samples;
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        self.explaining |= o.explaining;
        let mut remap = [None::<u8>; 64];
        for (field, of) in &o.fields {
            let Some(f) = self.field(field.clone(), true) else { continue };
            remap[usize::from(of.id)] = Some(f.id);
            f.differ += of.differ;
            f.noise += of.noise;
            f.explained += of.explained;
            f.first_seen = [f.first_seen, of.first_seen].into_iter().flatten().min();
            f.last_seen = f.last_seen.max(of.last_seen);
            f.examples.extend(of.examples.iter().cloned());
            f.examples.sort_by(|a, b| a.at.cmp(&b.at));
            f.examples.truncate(MAX_EXAMPLES);
        }
        for s in &o.window {
            let varied =
                (0..64).filter(|b| s.varied & (1 << b) != 0).filter_map(|b| remap[b]).fold(0, |m, id| m | (1 << id));
            self.window.push_back(Sample { varied, ..*s });
        }
        self.window.make_contiguous().sort_by_key(|s| s.at);
        while self.window.len() > WINDOW {
            self.window.pop_front();
        }
    }

    /// Estimated heap bytes of this endpoint's evidence, its name's included.
    fn bytes(&self, name: &str) -> usize {
        ENDPOINT_BYTES
            + name.len()
            + self
                .fields
                .iter()
                .map(|(f, s)| field_bytes(f) + s.examples.iter().map(example_bytes).sum::<usize>())
                .sum::<usize>()
    }
}

fn field_bytes(f: &Field) -> usize {
    FIELD_BYTES + f.name_len()
}

fn example_bytes(e: &Example) -> usize {
    let value = |v: &Option<Value>| v.as_ref().map_or(0, |v| v.to_string().len());
    EXAMPLE_BASE + e.at.len() + e.path.len() + e.at_field.name_len() + value(&e.legacy) + value(&e.new)
}

/// A field as it is counted: array indices generalised (`json:$.items[3].price` is
/// `json:$.items[*].price`), and a name over [`FIELD_NAME`] bytes cut, with a hash of the whole
/// so two long names stay apart.
/// A finding that counts: an endpoint's field differing beyond its noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Significant {
    pub endpoint: String,
    pub field: Field,
    /// Percent of the endpoint's comparisons it differed in.
    pub rate: f64,
}

pub fn general(field: &Field) -> Field {
    let f = match field {
        Field::Json(path) => match JsonPath::parse(path) {
            Ok(p) => Field::Json(p.generalised().to_string()),
            Err(_) => field.clone(),
        },
        other => other.clone(),
    };
    cut_field(f)
}

fn cut_field(f: Field) -> Field {
    let cut = |s: &str| {
        let mut end = FIELD_NAME;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…#{:016x}", &s[..end], xxhash_rust::xxh3::xxh3_64(s.as_bytes()))
    };
    match f {
        Field::Json(p) if p.len() > FIELD_NAME => Field::Json(cut(&p)),
        Field::Header(h) if h.len() > FIELD_NAME => Field::Header(cut(&h)),
        other => other,
    }
}

/// `text` cut to `max` bytes at a character boundary, saying how long it was.
pub fn cut_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

fn cut(v: &Option<Value>) -> Option<Value> {
    let v = v.as_ref()?;
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.len() <= EXAMPLE_BYTES {
        return Some(v.clone());
    }
    Some(Value::String(cut_text(&text, EXAMPLE_BYTES)))
}

/// Lines of a JSON text.
fn lines(v: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', v).count() + 1
}

/// 9999-12-31T23:59:59Z: the last instant RFC 3339 can write.
const LATEST: u64 = 253_402_300_799;

fn rfc3339(t: SystemTime) -> String {
    // Never past what can be written (a document from elsewhere is checked, this is the last line).
    humantime::format_rfc3339_seconds(t.min(UNIX_EPOCH + Duration::from_secs(LATEST))).to_string()
}

fn percent(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 10000.0 / of as f64).round() / 100.0
    }
}

impl Findings {
    /// What evidence read from elsewhere (another instance's, in etcd) must be to be pooled:
    /// within the bounds one instance keeps (endpoints, fields, examples, samples), times before
    /// year 10000, counters below 2^53.
    pub fn check(&self) -> Result<(), String> {
        let max = MAX_COUNT;
        let time = |t: SystemTime| t.duration_since(UNIX_EPOCH).is_ok_and(|d| d.as_secs() <= LATEST);
        if self.endpoints.len() > MAX_ENDPOINTS {
            return Err(format!("{} endpoints", self.endpoints.len()));
        }
        if self.folded > max || self.over_budget > max {
            return Err(format!("a counter above {max}"));
        }
        for (name, e) in &self.endpoints {
            let at = |what: &str| format!("endpoint {:?}: {what}", cut_text(name, 80));
            if name.len() > 8192 {
                return Err(at("a name over 8 KiB"));
            }
            if [e.comparisons, e.mismatches, e.explained, e.noise_samples].iter().any(|n| *n > max) {
                return Err(at(&format!("a counter above {max}")));
            }
            if !time(e.first_seen) || !time(e.last_seen) {
                return Err(at("a time past year 9999"));
            }
            if e.fields.len() > MAX_FIELDS || e.window.len() > WINDOW {
                return Err(at(&format!("{} fields and {} samples", e.fields.len(), e.window.len())));
            }
            if e.window.iter().any(|s| s.at > LATEST) {
                return Err(at("a sample past year 9999"));
            }
            let mut ids = 0u64;
            for (f, stats) in &e.fields {
                let bit = 1u64.checked_shl(u32::from(stats.id)).filter(|b| ids & b == 0);
                let Some(bit) = bit.filter(|_| stats.id < 64) else {
                    return Err(at(&format!("field {f}: id {} taken or out of range", stats.id)));
                };
                ids |= bit;
                if f.name_len() > FIELD_NAME + 40 || stats.examples.len() > MAX_EXAMPLES {
                    return Err(at(&format!("field {}: too long or too many examples", cut_text(&f.to_string(), 80))));
                }
                if [stats.differ, stats.noise, stats.explained].iter().any(|n| *n > max) {
                    return Err(at(&format!("field {f}: a counter above {max}")));
                }
                if [stats.first_seen, stats.last_seen].into_iter().flatten().any(|t| !time(t)) {
                    return Err(at(&format!("field {f}: a time past year 9999")));
                }
                if stats.examples.iter().any(|x| example_bytes(x) > EXAMPLE_BASE + 4 * 1024) {
                    return Err(at(&format!("field {f}: an example over 4 KiB")));
                }
            }
        }
        Ok(())
    }

    /// Apply the route's (new) bounds.
    pub fn configure(&mut self, bounds: Bounds) {
        self.bounds = bounds;
    }

    /// Estimated heap bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn room(&self, more: usize) -> bool {
        self.bytes + more <= self.bounds.max_bytes
    }

    fn recount(&mut self) {
        self.bytes = self.learner.bytes() + self.endpoints.iter().map(|(n, e)| e.bytes(n)).sum::<usize>();
    }

    /// Back within the budget after evidence was merged (a fold, another instance's): the
    /// newest examples go first.
    fn trim(&mut self) {
        self.recount();
        if self.bytes <= self.bounds.max_bytes {
            return;
        }
        for e in self.endpoints.values_mut() {
            for s in e.fields.values_mut() {
                while self.bytes > self.bounds.max_bytes {
                    let Some(x) = s.examples.pop() else { break };
                    self.bytes = self.bytes.saturating_sub(example_bytes(&x));
                    self.over_budget += 1;
                }
            }
        }
    }

    /// The endpoint a request is counted under, made now so that concurrent requests cannot
    /// pass `max_endpoints` or the budget: a declared template, else the one learned from the
    /// traffic; past the bounds, `METHOD {other}`.
    pub fn endpoint(&mut self, method: &str, path: &str, declared: &[Template], now: SystemTime) -> String {
        let bare = path.split(['?', '#']).next().unwrap_or("/");
        let (name, is_declared) = match declared.iter().find(|t| t.matches(bare)) {
            Some(t) => (format!("{method} {t}"), true),
            None => {
                // A path can add a node per segment: with no room for them, nothing is learned
                // and an unknown path counts under `{other}`.
                if !self.room(endpoint::MAX_PATH_BYTES) {
                    let name = format!("{method} {}", self.learner.resolve(bare));
                    if self.endpoints.contains_key(&name) {
                        return name;
                    }
                    self.folded += 1;
                    self.over_budget += 1;
                    (format!("{method} {OTHER}"), false)
                } else {
                    let before = self.learner.bytes();
                    let learned = self.learner.learn(bare);
                    self.bytes = (self.bytes + self.learner.bytes()).saturating_sub(before);
                    if learned.folded {
                        self.refold();
                    }
                    match learned.template {
                        Some(t) => (format!("{method} {t}"), false),
                        None => (format!("{method} {OTHER}"), false),
                    }
                }
            }
        };
        if self.endpoints.contains_key(&name) {
            return name;
        }
        let cost = ENDPOINT_BYTES + name.len();
        let other = format!("{method} {OTHER}");
        // Room is kept for the method's `{other}`, where everything goes once the rest is full.
        let reserve = if self.endpoints.contains_key(&other) { 0 } else { ENDPOINT_BYTES + other.len() };
        let full = self.endpoints.len() >= self.bounds.max_endpoints;
        if name != other {
            if !full && self.room(cost + reserve) {
                let mut e = EndpointStats::new(now);
                e.declared = is_declared;
                self.endpoints.insert(name.clone(), e);
                self.bytes += cost;
                return name;
            }
            self.folded += 1;
            self.over_budget += u64::from(!full);
        }
        // With no room even for it, the request is counted in `folded` alone.
        if reserve > 0 && self.room(reserve) {
            self.bytes += reserve;
            self.endpoints.insert(other.clone(), EndpointStats::new(now));
        }
        other
    }

    /// After a fold: endpoints named by a template that changed move (their evidence merged)
    /// to the template they have now.
    fn refold(&mut self) {
        let renames: Vec<(String, String)> = self
            .endpoints
            .iter()
            .filter(|(_, e)| !e.declared)
            .filter_map(|(name, _)| {
                let (method, template) = name.split_once(' ')?;
                if template == OTHER {
                    return None;
                }
                let now = self.learner.resolve(template);
                (now != template).then(|| (name.clone(), format!("{method} {now}")))
            })
            .collect();
        for (old, new) in renames {
            let Some(stats) = self.endpoints.remove(&old) else { continue };
            match self.endpoints.get_mut(&new) {
                Some(e) => e.absorb(&stats),
                None => {
                    self.endpoints.insert(new, stats);
                }
            }
        }
        self.trim();
    }

    /// Whether this request of `endpoint` is also sent a second time to its serving side: while
    /// its window holds fewer than [`BOOTSTRAP`] fresh samples, always; while noise explains its
    /// differences, at least [`RECHECK`]; otherwise `sample`.
    pub fn wants_noise_sample(&self, endpoint: &str, sample: Percent, now: SystemTime) -> bool {
        let Some(e) = self.endpoints.get(endpoint) else { return true };
        if e.fresh(secs(now), self.bounds.noise_max_age).count() < BOOTSTRAP {
            return true;
        }
        if e.explaining && RECHECK.hundredths() > sample.hundredths() {
            return RECHECK.draw();
        }
        sample.draw()
    }

    /// Whether the first requests of `endpoint` are still being sampled for noise.
    pub fn bootstrapping(&self, endpoint: &str, now: SystemTime) -> bool {
        self.endpoints.get(endpoint).is_none_or(|e| e.fresh(secs(now), self.bounds.noise_max_age).count() < BOOTSTRAP)
    }

    /// Count one same-side sample of `endpoint`, asked by `client`, and the fields that differed
    /// in it.
    pub fn record_noise(&mut self, endpoint: &str, client: u64, fields: &[Field], now: SystemTime) {
        if !self.endpoints.contains_key(endpoint) {
            // Made by `endpoint` when there was room; without room, nothing is kept.
            let cost = ENDPOINT_BYTES + endpoint.len();
            if !self.room(cost) {
                self.over_budget += 1;
                return;
            }
            self.bytes += cost;
        }
        let mut budget = self.bounds.max_bytes.saturating_sub(self.bytes);
        let e = self.endpoints.entry(endpoint.to_string()).or_insert_with(|| EndpointStats::new(now));
        e.noise_samples += 1;
        e.explaining = false;
        let mut seen: Vec<Field> = fields.iter().map(general).collect();
        seen.sort();
        seen.dedup();
        let mut varied = 0u64;
        let mut added = 0;
        let mut dropped = 0;
        for f in seen {
            let cost = field_bytes(&f);
            let new = !e.fields.contains_key(&f);
            match e.field(f, cost <= budget) {
                Some(s) => {
                    s.noise += 1;
                    varied |= 1 << s.id;
                    if new {
                        added += cost;
                        budget -= cost;
                    }
                }
                None => dropped += 1,
            }
        }
        e.window.push_back(Sample { client, at: secs(now), varied });
        while e.window.len() > WINDOW {
            e.window.pop_front();
        }
        self.bytes += added;
        self.over_budget += dropped;
    }

    /// The differences in fields noise does not explain on `endpoint`, counting nothing.
    pub fn unexplained(&self, endpoint: &str, differences: Vec<Difference>, rules: &ReportRules) -> Vec<Difference> {
        let (now, age) = (secs(SystemTime::now()), self.bounds.noise_max_age);
        let Some(e) = self.endpoints.get(endpoint) else { return differences };
        differences.into_iter().filter(|d| !e.explains(&general(&d.field), rules, now, age)).collect()
    }

    /// Count one compared legacy/new pair of `endpoint` with all its differences (redacted);
    /// returns those noise does not explain: the pair is a mismatch when there are any.
    pub fn record_pair(
        &mut self,
        endpoint: &str,
        path: &str,
        differences: Vec<Difference>,
        rules: &ReportRules,
        now: SystemTime,
    ) -> Vec<Difference> {
        let (at, age) = (secs(now), self.bounds.noise_max_age);
        if !self.endpoints.contains_key(endpoint) {
            // Made by `endpoint` when there was room; without room, nothing is kept.
            let cost = ENDPOINT_BYTES + endpoint.len();
            if !self.room(cost) {
                self.over_budget += 1;
                return differences;
            }
            self.bytes += cost;
        }
        let mut budget = self.bounds.max_bytes.saturating_sub(self.bytes);
        let mut dropped = 0;
        let e = self.endpoints.entry(endpoint.to_string()).or_insert_with(|| EndpointStats::new(now));
        // Each difference's field as the findings count it, made once.
        let keys: Vec<Field> = differences.iter().map(|d| general(&d.field)).collect();
        let explained: Vec<bool> = keys.iter().map(|k| e.explains(k, rules, at, age)).collect();
        e.comparisons += 1;
        e.last_seen = now;
        let any_real = explained.iter().any(|x| !x);
        if any_real {
            e.mismatches += 1;
        } else if !differences.is_empty() {
            e.explained += 1;
        }
        e.explaining = explained.iter().any(|x| *x);
        let example_path = cut_text(path, EXAMPLE_PATH);
        let mut counted: Vec<Field> = Vec::new();
        for ((d, key), &by_noise) in differences.iter().zip(keys).zip(&explained) {
            let cost = field_bytes(&key);
            let new = !e.fields.contains_key(&key);
            let Some(s) = e.field(key.clone(), cost <= budget) else {
                dropped += 1;
                continue;
            };
            if new {
                budget -= cost;
            }
            if !counted.contains(&key) {
                s.differ += 1;
                s.explained += u64::from(by_noise);
                counted.push(key);
            }
            s.first_seen.get_or_insert(now);
            s.last_seen = Some(now);
            if s.examples.len() >= MAX_EXAMPLES {
                continue;
            }
            let (legacy, new) = (cut(&d.legacy), cut(&d.new));
            // A second example that says the same as the first tells nothing more.
            if s.examples
                .iter()
                .any(|x| x.path == example_path && x.at_field == d.field && x.legacy == legacy && x.new == new)
            {
                continue;
            }
            let example = Example {
                // As precise as the pair's diff record, which it names.
                at: humantime::format_rfc3339_millis(now).to_string(),
                path: example_path.clone(),
                at_field: cut_field(d.field.clone()),
                legacy,
                new,
            };
            let cost = example_bytes(&example);
            if cost > budget {
                dropped += 1;
                continue;
            }
            budget -= cost;
            s.examples.push(example);
        }
        self.over_budget += dropped;
        self.bytes = self.bounds.max_bytes.saturating_sub(budget).max(self.bytes);
        differences.into_iter().zip(explained).filter(|(_, x)| !x).map(|(d, _)| d).collect()
    }

    /// Start the legacy/new evidence afresh (after new was fixed and redeployed): comparisons,
    /// findings and examples go; what was learned about noise stays. Returns the endpoints
    /// that had comparisons.
    pub fn reset(&mut self, now: SystemTime) -> usize {
        let had = self.endpoints.values().filter(|e| e.comparisons > 0).count();
        for e in self.endpoints.values_mut() {
            e.comparisons = 0;
            e.mismatches = 0;
            e.explained = 0;
            e.first_seen = now;
            e.last_seen = now;
            e.fields.retain(|_, f| f.noise > 0);
            for f in e.fields.values_mut() {
                f.differ = 0;
                f.explained = 0;
                f.first_seen = None;
                f.last_seen = None;
                f.examples.clear();
            }
        }
        self.folded = 0;
        self.over_budget = 0;
        self.recount();
        had
    }

    /// Add `other`'s evidence (another instance's) to this: counts summed, first and last seen
    /// widened, the earliest examples and the newest samples kept; the same bounds as one
    /// instance's.
    pub fn merge(&mut self, other: &Findings) {
        self.folded += other.folded;
        self.over_budget += other.over_budget;
        let max = self.bounds.max_endpoints.max(other.bounds.max_endpoints);
        for (name, o) in &other.endpoints {
            let room = self.endpoints.len() < max;
            match self.endpoints.get_mut(name) {
                Some(e) => e.absorb(o),
                None if room => {
                    self.endpoints.insert(name.clone(), o.clone());
                }
                None => self.folded += o.comparisons,
            }
        }
        self.recount();
    }

    /// Drop every example: what travels when the whole would be too large.
    pub fn strip_examples(&mut self) {
        for e in self.endpoints.values_mut() {
            for s in e.fields.values_mut() {
                s.examples.clear();
            }
        }
        self.recount();
    }

    /// Whether any of `fields` is a significant finding of `endpoint` now.
    pub fn any_significant(&self, endpoint: &str, fields: &[Field], rules: &ReportRules) -> bool {
        let Some(e) = self.endpoints.get(endpoint) else { return false };
        let (now, age) = (secs(SystemTime::now()), self.bounds.noise_max_age);
        fields.iter().any(|f| e.fields.get(&general(f)).is_some_and(|s| e.significant(s, rules, now, age)))
    }

    /// Endpoints that saw traffic and are `differs` now.
    pub fn differing(&self, rules: &ReportRules) -> Vec<String> {
        let (now, age) = (secs(SystemTime::now()), self.bounds.noise_max_age);
        self.endpoints
            .iter()
            .filter(|(_, e)| e.fields.values().any(|f| e.significant(f, rules, now, age)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every finding that counts now: a field differing beyond its noise, per endpoint, in
    /// endpoint order.
    pub fn significant(&self, rules: &ReportRules) -> Vec<Significant> {
        let (now, age) = (secs(SystemTime::now()), self.bounds.noise_max_age);
        let mut out = Vec::new();
        for (name, e) in &self.endpoints {
            for (field, f) in e.fields.iter().filter(|(_, f)| e.significant(f, rules, now, age)) {
                let rate = 100.0 * f.differ as f64 / e.comparisons as f64;
                out.push(Significant { endpoint: name.clone(), field: field.clone(), rate });
            }
        }
        out
    }

    /// Fields seen varying on one side, summed over endpoints: what the API lists as noise.
    pub fn noise_fields(&self) -> Vec<NoiseField> {
        let mut all: BTreeMap<&Field, u64> = BTreeMap::new();
        for e in self.endpoints.values() {
            for (f, s) in e.fields.iter().filter(|(_, s)| s.noise > 0) {
                *all.entry(f).or_default() += s.noise;
            }
        }
        all.into_iter().map(|(f, seen)| NoiseField { field: f.clone(), seen }).collect()
    }

    /// The whole report (the first [`Page::default`] of it).
    pub fn report(&self, route: &str, rules: ReportRules, now: SystemTime) -> Report {
        self.report_page(route, rules, now, Page::default())
    }

    pub fn report_page(&self, route: &str, rules: ReportRules, now: SystemTime, page: Page) -> Report {
        let (at, age) = (secs(now), self.bounds.noise_max_age);
        let mut order: Vec<(&String, &EndpointStats)> =
            self.endpoints.iter().filter(|(_, e)| e.comparisons > 0).collect();
        order.sort_by(|a, b| b.1.comparisons.cmp(&a.1.comparisons).then_with(|| a.0.cmp(b.0)));
        let total = order.len();
        let mut endpoints = Vec::new();
        let mut bytes = 0;
        let mut next = None;
        for (i, (name, e)) in order.into_iter().enumerate().skip(page.offset) {
            if endpoints.len() >= page.limit {
                next = Some(i);
                break;
            }
            let report = self.endpoint_report(name, e, &rules, at, age);
            // As the API writes it: pretty, each line four spaces deeper inside the report.
            let size = serde_json::to_vec_pretty(&report).map_or(usize::MAX, |v| v.len() + 4 * lines(&v));
            if !endpoints.is_empty() && bytes + size > page.max_bytes {
                next = Some(i);
                break;
            }
            bytes += size;
            endpoints.push(report);
        }
        Report {
            route: route.to_string(),
            generated_at: rfc3339(now),
            rules,
            endpoints,
            folded: self.folded,
            pooled_from: Vec::new(),
            total_endpoints: total,
            next_offset: next,
            evidence_bytes: self.bytes,
            over_budget: self.over_budget,
        }
    }

    fn endpoint_report(
        &self,
        name: &str,
        e: &EndpointStats,
        rules: &ReportRules,
        at: u64,
        age: Duration,
    ) -> EndpointReport {
        let mut findings: Vec<Finding> = e
            .fields
            .iter()
            .filter(|(_, s)| e.significant(s, rules, at, age))
            .map(|(f, s)| Finding {
                field: f.clone(),
                differing: s.differ,
                rate: percent(s.differ, e.comparisons),
                noise_rate: (e.noise_rate(s, at, age) * 10000.0).round() / 100.0,
                first_seen: s.first_seen.map(rfc3339).unwrap_or_default(),
                last_seen: s.last_seen.map(rfc3339).unwrap_or_default(),
                examples: s.examples.clone(),
            })
            .collect();
        findings.sort_by(|a, b| b.rate.total_cmp(&a.rate).then_with(|| a.field.cmp(&b.field)));
        let verdict = if !findings.is_empty() {
            Verdict::Differs
        } else if e.comparisons < rules.ready_after {
            Verdict::NotEnoughData
        } else {
            Verdict::Ready
        };
        let fresh: Vec<&Sample> = e.fresh(at, age).collect();
        let noise = e
            .fields
            .iter()
            .filter_map(|(f, s)| {
                let bit = 1u64 << s.id;
                let varied = fresh.iter().filter(|x| x.varied & bit != 0).count() as u64;
                (varied > 0 || s.explained > 0).then(|| NoiseRate {
                    field: f.clone(),
                    rate: percent(varied, fresh.len() as u64),
                    explained: s.explained,
                })
            })
            .collect();
        let mut clients: Vec<u64> = fresh.iter().map(|s| s.client).collect();
        clients.sort_unstable();
        clients.dedup();
        let template = name.split_once(' ').map_or("", |(_, t)| t);
        EndpointReport {
            endpoint: name.to_string(),
            verdict,
            comparisons: e.comparisons,
            mismatches: e.mismatches,
            mismatch_rate: percent(e.mismatches, e.comparisons),
            noise_samples: e.noise_samples,
            first_seen: rfc3339(e.first_seen),
            last_seen: rfc3339(e.last_seen),
            findings,
            noise,
            explained: e.explained,
            noise_window: fresh.len() as u64,
            noise_clients: clients.len() as u64,
            declared: e.declared,
            inferred_from: if e.declared { Vec::new() } else { self.learner.distinct_values(template) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ReportRules = ReportRules { finding_absolute: 0.05, finding_relative: 100.0, ready_after: 100 };

    fn diff(field: &str, l: i64, n: i64) -> Difference {
        Difference {
            field: field.parse().expect("field"),
            legacy: Some(l.into()),
            new: Some(n.into()),
            offset: None,
            lines: None,
        }
    }

    fn verdicts(f: &Findings) -> Vec<(String, Verdict, Vec<String>)> {
        let r = f.report("r", RULES, SystemTime::now());
        r.endpoints
            .into_iter()
            .map(|e| (e.endpoint, e.verdict, e.findings.into_iter().map(|f| f.field.to_string()).collect()))
            .collect()
    }

    #[test]
    fn indices_are_generalised() {
        assert_eq!(general(&"json:$.items[3].tags[10]".parse().expect("f")).to_string(), "json:$.items[*].tags[*]");
        assert_eq!(general(&"json:$[\"a[1]\"]".parse().expect("f")).to_string(), "json:$[\"a[1]\"]");
        assert_eq!(general(&Field::Status), Field::Status);
    }

    /// A random field on both sides is noise from the first pair on; a field that differs on 1%
    /// of one endpoint's pairs is a finding of that endpoint only, at about 1%.
    #[test]
    fn random_fields_are_noise_and_a_rare_real_difference_is_found() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        for i in 0..1000 {
            for ep in ["GET /orders/{id}", "GET /search"] {
                if f.bootstrapping(ep, now) || i % 50 == 0 {
                    f.record_noise(
                        ep,
                        1,
                        &["json:$.id".parse().expect("f"), "header:x-request-id".parse().expect("f")],
                        now,
                    );
                }
                let mut d = vec![diff("json:$.id", i, i + 1), diff("header:x-request-id", i, -i)];
                if ep == "GET /orders/{id}" && i % 100 == 7 {
                    d.push(diff("json:$.items[2].price", 10, 11));
                }
                let real = f.record_pair(ep, &format!("/x/{i}"), d, &RULES, now);
                assert!(real.iter().all(|d| d.field.to_string().contains("price")), "noise shown as real: {real:?}");
            }
        }
        let v = verdicts(&f);
        assert_eq!(v[0], ("GET /orders/{id}".into(), Verdict::Differs, vec!["json:$.items[*].price".to_string()]));
        assert_eq!(v[1], ("GET /search".into(), Verdict::Ready, vec![]));
        let r = f.report("r", RULES, now);
        let price = &r.endpoints[0].findings[0];
        assert_eq!((price.differing, price.rate, price.noise_rate), (10, 1.0, 0.0));
        assert_eq!(price.examples.len(), MAX_EXAMPLES);
        assert_eq!(price.examples[0].at_field.to_string(), "json:$.items[2].price");
        assert_eq!(r.endpoints[0].mismatches, 10, "only the pairs with the real difference are mismatches");
    }

    /// Two instances that each saw half of the pairs pool into the report one instance would
    /// give with all of them: counts summed, the finding's rate over all 200 pairs, an example
    /// from each.
    #[test]
    fn findings_of_two_instances_pool_into_one_verdict() {
        let rules = ReportRules { finding_absolute: 0.5, finding_relative: 100.0, ready_after: 150 };
        let now = SystemTime::now();
        let half = |offset: i64| {
            let mut f = Findings::default();
            for i in 0..100 {
                let d = if i == 50 { vec![diff("json:$.total", i + offset, -1)] } else { vec![] };
                f.record_pair("GET /orders/{id}", &format!("/orders/{i}"), d, &RULES, now);
                f.record_pair("GET /health", "/health", vec![], &RULES, now);
            }
            f
        };
        let (a, b) = (half(0), half(1000));
        let alone = a.report("r", rules.clone(), now);
        let verdict = |r: &Report, ep: &str| r.endpoints.iter().find(|e| e.endpoint == ep).map(|e| e.verdict);
        assert_eq!(verdict(&alone, "GET /health"), Some(Verdict::NotEnoughData), "100 pairs < ready_after");
        // Through JSON, as it travels in etcd.
        let b: Findings = serde_json::from_str(&serde_json::to_string(&b).expect("json")).expect("parse");
        let mut fleet = a.clone();
        fleet.merge(&b);
        let r = fleet.report("r", rules, now);
        assert_eq!(verdict(&r, "GET /health"), Some(Verdict::Ready), "the fleet's 200 pairs are enough");
        let e = r.endpoints.iter().find(|e| e.endpoint == "GET /orders/{id}").expect("orders");
        assert_eq!((e.comparisons, e.mismatches), (200, 2));
        assert_eq!(e.findings[0].differing, 2);
        assert_eq!(e.findings[0].rate, 1.0);
        assert_eq!(e.findings[0].examples.len(), MAX_EXAMPLES, "one example from each instance");
        fleet.strip_examples();
        assert!(fleet.report("r", RULES, now).endpoints[0].findings.iter().all(|f| f.examples.is_empty()));
    }

    /// A list whose length changed between two reads of one side makes its elements' presence
    /// noise, not everything inside them.
    #[test]
    fn a_list_changing_length_does_not_hide_a_difference_inside_it() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        let ep = "GET /feed";
        f.record_noise(ep, 1, &["json:$.items[4]".parse().expect("f")], now);
        let real = f.record_pair(
            ep,
            "/feed",
            vec![diff("json:$.items[5]", 1, 2), diff("json:$.items[1].price", 1, 2)],
            &RULES,
            now,
        );
        let fields: Vec<String> = real.iter().map(|d| d.field.to_string()).collect();
        assert_eq!(fields, ["json:$.items[1].price"]);
        assert_eq!(verdicts(&f)[0].2, ["json:$.items[*].price"]);
    }

    /// A field that varies on a third of one side's answers is not a finding at the same rate
    /// between legacy and new, even on few samples; at far more than its noise it is.
    #[test]
    fn partly_noisy_fields_are_judged_against_their_noise() {
        let now = SystemTime::now();
        let run = |real_rate: u64| {
            let mut f = Findings::default();
            for i in 0..300u64 {
                if f.bootstrapping("GET /a", now) {
                    let noisy: Vec<Field> = if i % 3 == 0 { vec!["json:$.at".parse().expect("f")] } else { vec![] };
                    f.record_noise("GET /a", 1, &noisy, now);
                }
                let d = if i % 100 < real_rate { vec![diff("json:$.at", 1, 2)] } else { vec![] };
                f.record_pair("GET /a", "/a", d, &RULES, now);
            }
            verdicts(&f)[0].1
        };
        assert_eq!(run(33), Verdict::Ready);
        assert_eq!(run(90), Verdict::Differs);
    }

    #[test]
    fn endpoints_are_capped_and_verdicts_need_enough_data() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        f.configure(Bounds { max_endpoints: 2, ..Bounds::default() });
        assert_eq!(f.endpoint("GET", "/a/1", &[], now), "GET /a/{id}");
        f.record_pair("GET /a/{id}", "/a/1", vec![], &RULES, now);
        assert_eq!(f.endpoint("GET", "/b", &[], now), "GET /b");
        f.record_pair("GET /b", "/b", vec![], &RULES, now);
        assert_eq!(f.endpoint("GET", "/c", &[], now), "GET {other}");
        assert_eq!(f.endpoint("GET", "/a/2", &[], now), "GET /a/{id}", "known endpoints still count");
        assert_eq!(f.report("r", RULES, now).folded, 1);
        assert_eq!(verdicts(&f)[0].1, Verdict::NotEnoughData);
        for _ in 0..99 {
            f.record_pair("GET /b", "/b", vec![], &RULES, now);
        }
        assert_eq!(verdicts(&f)[0], ("GET /b".into(), Verdict::Ready, vec![]));
    }

    #[test]
    fn an_example_is_not_kept_twice() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        for _ in 0..3 {
            f.record_pair("GET /a", "/a/1", vec![diff("json:$.price", 1, 2)], &RULES, now);
        }
        f.record_pair("GET /a", "/a/2", vec![diff("json:$.price", 1, 2)], &RULES, now);
        let r = f.report("r", RULES, now);
        let paths: Vec<&str> = r.endpoints[0].findings[0].examples.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/a/1", "/a/2"]);
    }

    #[test]
    fn a_reset_clears_the_evidence_and_keeps_the_noise() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        f.record_noise("GET /a", 1, &["json:$.id".parse().expect("f")], now);
        f.record_pair("GET /a", "/a", vec![diff("json:$.price", 1, 2), diff("json:$.id", 1, 2)], &RULES, now);
        assert_eq!(verdicts(&f)[0].1, Verdict::Differs);
        assert_eq!(f.reset(now), 1);
        assert!(verdicts(&f).is_empty(), "no comparisons left to report");
        let real = f.record_pair("GET /a", "/a", vec![diff("json:$.id", 3, 4)], &RULES, now);
        assert!(real.is_empty(), "the noise learned before the reset still applies");
        assert_eq!(verdicts(&f)[0].1, Verdict::NotEnoughData);
    }

    #[test]
    fn fields_and_examples_are_bounded() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        let long = "z".repeat(1000);
        let d: Vec<Difference> = (0..MAX_FIELDS + 10)
            .map(|i| Difference {
                field: Field::Json(format!("$.f{i}")),
                legacy: Some(Value::from(long.clone())),
                new: None,
                offset: None,
                lines: None,
            })
            .collect();
        for i in 0..5 {
            f.record_pair("GET /x", &format!("/x/{i}"), d.clone(), &RULES, now);
        }
        let r = f.report("r", RULES, now);
        assert_eq!(r.endpoints[0].findings.len(), MAX_FIELDS);
        let ex = &r.endpoints[0].findings[0].examples;
        assert_eq!(ex.len(), MAX_EXAMPLES);
        let shown = ex[0].legacy.as_ref().and_then(Value::as_str).expect("a string");
        assert!(shown.len() < EXAMPLE_BYTES + 20 && shown.ends_with("(1000 bytes)"), "{shown}");
    }

    fn field(s: &str) -> Field {
        s.parse().expect("field")
    }

    /// One client that made a field vary on every one of its samples (it changed state between
    /// them) is one voice among the endpoint's clients: the real difference in that field stays
    /// a finding, and a field varying for every client stays noise.
    #[test]
    fn one_client_cannot_teach_noise() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        let ep = "GET /accounts/{id}";
        for _ in 0..20 {
            f.record_noise(ep, 666, &[field("json:$.fee"), field("json:$.nonce")], now);
        }
        for client in 0..40 {
            f.record_noise(ep, client, &[field("json:$.nonce")], now);
        }
        for i in 0..200 {
            let real = f.record_pair(
                ep,
                &format!("/accounts/{i}"),
                vec![diff("json:$.fee", 1, 2), diff("json:$.nonce", i, -i)],
                &RULES,
                now,
            );
            assert!(i < 5 || real.iter().any(|d| d.field == field("json:$.fee")), "fee explained at pair {i}");
            assert!(!real.iter().any(|d| d.field == field("json:$.nonce")), "a nonce reported at pair {i}");
        }
        let r = f.report("r", RULES, now);
        let e = &r.endpoints[0];
        assert_eq!(e.verdict, Verdict::Differs);
        assert_eq!(e.findings.iter().map(|f| f.field.to_string()).collect::<Vec<_>>(), ["json:$.fee"]);
        assert_eq!((e.noise_window, e.noise_clients), (60, 41));
        let nonce = e.noise.iter().find(|n| n.field == field("json:$.nonce")).expect("nonce is noise");
        assert_eq!(nonce.explained, 200, "every pair's nonce difference is explained, and counted");
    }

    /// Noise is what the same side does now: samples older than `noise_max_age`, or pushed out
    /// of the window by newer ones, no longer explain a difference.
    #[test]
    fn old_noise_ages_out() {
        let mut f = Findings::default();
        f.configure(Bounds { noise_max_age: Duration::from_secs(600), ..Bounds::default() });
        let then = SystemTime::now() - Duration::from_secs(3600);
        let now = SystemTime::now();
        let ep = "GET /a";
        for c in 0..30 {
            f.record_noise(ep, c, &[field("json:$.at")], then);
        }
        assert!(f.bootstrapping(ep, now), "an hour-old window is no window");
        assert_eq!(f.record_pair(ep, "/a", vec![diff("json:$.at", 1, 2)], &RULES, now).len(), 1);
        // Fresh samples where it no longer varies push the old ones out of the window too.
        let mut f = Findings::default();
        for c in 0..30 {
            f.record_noise(ep, c, &[field("json:$.at")], now);
        }
        assert!(f.record_pair(ep, "/a", vec![diff("json:$.at", 1, 2)], &RULES, now).is_empty());
        for c in 0..WINDOW as u64 {
            f.record_noise(ep, 100 + c, &[], now);
        }
        assert_eq!(f.record_pair(ep, "/a", vec![diff("json:$.at", 1, 2)], &RULES, now).len(), 1);
    }

    /// An endpoint that never sampled its same side (its method is not safe to repeat) borrows
    /// nothing from the others.
    #[test]
    fn no_endpoint_borrows_noise() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        for c in 0..30 {
            f.record_noise("GET /orders", c, &[field("json:$.id")], now);
        }
        assert!(f.record_pair("GET /orders", "/orders", vec![diff("json:$.id", 1, 2)], &RULES, now).is_empty());
        assert_eq!(f.record_pair("POST /orders", "/orders", vec![diff("json:$.id", 1, 2)], &RULES, now).len(), 1);
    }

    /// While noise explains an endpoint's differences its same side is sampled at least
    /// RECHECK of the time; past the bootstrap, with no explained difference, `noise_sample`.
    #[test]
    fn explained_differences_ask_for_more_samples() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        let ep = "GET /a";
        assert!(f.wants_noise_sample(ep, Percent::ZERO, now), "an unknown endpoint bootstraps");
        for c in 0..BOOTSTRAP as u64 {
            f.record_noise(ep, c, &[field("json:$.at")], now);
        }
        f.record_pair(ep, "/a", vec![], &RULES, now);
        assert!((0..100).all(|_| !f.wants_noise_sample(ep, Percent::ZERO, now)));
        f.record_pair(ep, "/a", vec![diff("json:$.at", 1, 2)], &RULES, now);
        let taken = (0..2000).filter(|_| f.wants_noise_sample(ep, Percent::ZERO, now)).count();
        assert!((100..=320).contains(&taken), "{taken} of 2000 at RECHECK 10%");
    }

    /// A hostile client sending distinct paths with 60 KB queries and 50 long differing fields
    /// cannot grow the evidence past its budget, nor past max_endpoints, and the report stays
    /// small enough to poll.
    #[test]
    fn the_evidence_is_bounded_to_the_byte() {
        let mut f = Findings::default();
        let budget = 256 * 1024;
        f.configure(Bounds { max_bytes: budget, max_endpoints: 100, ..Bounds::default() });
        let now = SystemTime::now();
        let query = "q=".to_string() + &"x".repeat(60_000);
        for i in 0..400 {
            let path = format!("/p{i}/{}?{query}", "s".repeat(i % 50));
            let ep = f.endpoint("GET", &path, &[], now);
            let d: Vec<Difference> = (0..50)
                .map(|k| Difference {
                    field: Field::Json(format!("$.{}{k}", "k".repeat(300))),
                    legacy: Some(Value::from("v".repeat(5000))),
                    new: Some(Value::from(i)),
                    offset: None,
                    lines: None,
                })
                .collect();
            f.record_pair(&ep, &path, d, &RULES, now);
            assert!(f.bytes() <= budget, "{} bytes after {i} requests", f.bytes());
        }
        let actual: usize = f.endpoints.iter().map(|(n, e)| e.bytes(n)).sum::<usize>() + f.learner.bytes();
        assert_eq!(f.bytes(), actual, "the running count is the recount");
        assert!(f.endpoints.len() <= 100);
        let r = f.report_page("r", RULES, now, Page { offset: 0, limit: 1000, max_bytes: 64 * 1024 });
        assert!(r.over_budget > 0 && r.folded > 0, "{} {}", r.over_budget, r.folded);
        let written = serde_json::to_vec_pretty(&r).expect("json").len();
        assert!(written < 68 * 1024, "the page as the API writes it: {written} bytes");
        for e in &r.endpoints {
            for x in e.findings.iter().flat_map(|f| &f.examples) {
                assert!(x.path.len() < EXAMPLE_PATH + 20, "{}", x.path.len());
                assert!(x.at_field.name_len() < FIELD_NAME + 30);
            }
        }
    }

    /// Concurrent requests cannot pass max_endpoints: the endpoint is made when it is chosen.
    #[test]
    fn max_endpoints_is_hard_before_any_pair_is_recorded() {
        let mut f = Findings::default();
        f.configure(Bounds { max_endpoints: 10, ..Bounds::default() });
        let now = SystemTime::now();
        // Two values under each parent: nothing folds.
        let chosen: Vec<String> =
            (0..50).map(|i| f.endpoint("GET", &format!("/r{}/{}", i / 2, ["a", "b"][i % 2]), &[], now)).collect();
        assert_eq!(f.endpoints.len(), 11, "ten and {{other}}");
        assert_eq!(chosen.iter().filter(|e| e.as_str() == "GET {other}").count(), 40);
    }

    /// Once a position folds, the endpoints counted under its early values move, with their
    /// evidence, to the template.
    #[test]
    fn a_fold_moves_earlier_endpoints_to_the_template() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        for i in 0..30 {
            let path = format!("/posts/post-{}", char::from(b'a' + i as u8));
            let ep = f.endpoint("GET", &path, &[], now);
            f.record_pair(&ep, &path, vec![diff("json:$.title", 1, 2)], &RULES, now);
        }
        let r = f.report("r", RULES, now);
        let names: Vec<&str> = r.endpoints.iter().map(|e| e.endpoint.as_str()).collect();
        assert_eq!(names, ["GET /posts/{id}"]);
        assert_eq!(r.endpoints[0].comparisons, 30);
        assert_eq!(r.endpoints[0].inferred_from, [30]);
    }
}
