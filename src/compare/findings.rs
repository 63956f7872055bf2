//! Findings: per endpoint and field, how often legacy and new disagree next to how often one side
//! disagrees with itself (noise), and from that a verdict per endpoint. A route's findings live
//! as long as the process (across reloads) and are bounded: at most `max_endpoints` endpoints
//! (then `{other}`), [`MAX_FIELDS`] fields per endpoint, [`MAX_EXAMPLES`] examples per field with
//! values cut to [`EXAMPLE_BYTES`].
//!
//! A field is a finding when its legacy/new rate exceeds its noise rate by `finding_absolute`
//! percentage points and by `finding_relative` percent of the noise rate. A field never seen to
//! vary between two answers of one side has a noise rate of 0; one seen to vary is judged against
//! `(noise + 1) / (samples + 1)`, so a few lucky samples cannot make a noisy field look steady.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::endpoint::{self, Template, OTHER};
use super::JsonPath;
use crate::api::{
    Difference, EndpointReport, Example, Field, Finding, NoiseField, NoiseRate, Report, ReportRules, Verdict,
};

/// Fields tracked per endpoint; differences in more are counted in the endpoint only.
pub const MAX_FIELDS: usize = 50;
/// Examples kept per field: the first ones seen.
pub const MAX_EXAMPLES: usize = 2;
/// An example value longer than this (as JSON) is kept as a cut string.
pub const EXAMPLE_BYTES: usize = 200;
/// Every compared request of an endpoint's first this many that is safe to repeat is also sent a
/// second time to its serving side, so noise is known before it can be taken for a difference.
pub const BOOTSTRAP: u64 = 20;

/// Serialisable: in a fleet each instance publishes its findings, and any instance pools them
/// into the fleet's report ([`Findings::merge`]).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Findings {
    endpoints: BTreeMap<String, EndpointStats>,
    folded: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EndpointStats {
    comparisons: u64,
    mismatches: u64,
    noise_samples: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    fields: BTreeMap<Field, FieldStats>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct FieldStats {
    /// Legacy/new pairs it differed in.
    differ: u64,
    /// Same-side pairs it differed in.
    noise: u64,
    first_seen: Option<SystemTime>,
    last_seen: Option<SystemTime>,
    examples: Vec<Example>,
}

impl EndpointStats {
    fn new(now: SystemTime) -> Self {
        EndpointStats {
            comparisons: 0,
            mismatches: 0,
            noise_samples: 0,
            first_seen: now,
            last_seen: now,
            fields: BTreeMap::new(),
        }
    }

    fn field(&mut self, f: Field) -> Option<&mut FieldStats> {
        if self.fields.len() >= MAX_FIELDS && !self.fields.contains_key(&f) {
            return None;
        }
        Some(self.fields.entry(f).or_default())
    }

    /// The noise rate a field is judged against, 0..=1.
    fn noise_rate(&self, f: &FieldStats) -> f64 {
        if f.noise == 0 {
            0.0
        } else {
            (f.noise + 1) as f64 / (self.noise_samples + 1) as f64
        }
    }

    fn significant(&self, f: &FieldStats, rules: &ReportRules) -> bool {
        if f.differ == 0 || self.comparisons == 0 {
            return false;
        }
        let raw = f.differ as f64 / self.comparisons as f64;
        let noise = self.noise_rate(f);
        raw - noise >= rules.finding_absolute / 100.0 && raw >= noise * (1.0 + rules.finding_relative / 100.0)
    }
}

/// A field with array indices generalised: `json:$.items[3].price` is `json:$.items[*].price`.
pub fn general(field: &Field) -> Field {
    match field {
        Field::Json(path) => match JsonPath::parse(path) {
            Ok(p) => Field::Json(p.generalised().to_string()),
            Err(_) => field.clone(),
        },
        other => other.clone(),
    }
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
    let mut end = EXAMPLE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(Value::String(format!("{}… ({} bytes)", &text[..end], text.len())))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn percent(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 10000.0 / of as f64).round() / 100.0
    }
}

impl Findings {
    /// The endpoint a request is counted under: past `max` endpoints, new ones fold into
    /// `METHOD {other}`.
    pub fn endpoint(&mut self, method: &str, path: &str, declared: &[Template], max: usize) -> String {
        let e = endpoint::endpoint(method, path, declared);
        if self.endpoints.contains_key(&e) || self.endpoints.len() < max {
            return e;
        }
        self.folded += 1;
        format!("{method} {OTHER}")
    }

    /// Whether a request of `endpoint` should also be sent twice to its serving side: its first
    /// [`BOOTSTRAP`] ones are.
    pub fn bootstrapping(&self, endpoint: &str) -> bool {
        self.endpoints.get(endpoint).is_none_or(|e| e.noise_samples < BOOTSTRAP)
    }

    /// Count one same-side pair of `endpoint` and the fields that differed in it.
    pub fn record_noise(&mut self, endpoint: &str, fields: &[Field], now: SystemTime) {
        let e = self.endpoints.entry(endpoint.to_string()).or_insert_with(|| EndpointStats::new(now));
        e.noise_samples += 1;
        let mut seen: Vec<Field> = fields.iter().map(general).collect();
        seen.sort();
        seen.dedup();
        for f in seen {
            if let Some(s) = e.field(f) {
                s.noise += 1;
            }
        }
    }

    /// Whether a field of `endpoint` is known to vary between answers of one side. An endpoint
    /// that never had a same-side pair (its method is not safe to repeat) borrows what the
    /// route's other endpoints learned.
    fn is_noise(&self, endpoint: &str, f: &Field) -> bool {
        match self.endpoints.get(endpoint) {
            Some(e) if e.noise_samples > 0 => e.fields.get(f).is_some_and(|s| s.noise > 0),
            _ => self.endpoints.values().any(|e| e.fields.get(f).is_some_and(|s| s.noise > 0)),
        }
    }

    /// The differences in fields not known as noise on `endpoint`, counting nothing.
    pub fn unexplained(&self, endpoint: &str, differences: Vec<Difference>) -> Vec<Difference> {
        differences.into_iter().filter(|d| !self.is_noise(endpoint, &general(&d.field))).collect()
    }

    /// Count one compared legacy/new pair of `endpoint` with all its differences (redacted);
    /// returns those in fields not known as noise: the pair is a mismatch when there are any.
    pub fn record_pair(
        &mut self,
        endpoint: &str,
        path: &str,
        differences: Vec<Difference>,
        now: SystemTime,
    ) -> Vec<Difference> {
        let real: Vec<Difference> =
            differences.iter().filter(|d| !self.is_noise(endpoint, &general(&d.field))).cloned().collect();
        let e = self.endpoints.entry(endpoint.to_string()).or_insert_with(|| EndpointStats::new(now));
        e.comparisons += 1;
        e.last_seen = now;
        if !real.is_empty() {
            e.mismatches += 1;
        }
        let mut counted: Vec<Field> = Vec::new();
        for d in differences {
            let key = general(&d.field);
            let Some(s) = e.field(key.clone()) else { continue };
            if !counted.contains(&key) {
                s.differ += 1;
                counted.push(key);
            }
            s.first_seen.get_or_insert(now);
            s.last_seen = Some(now);
            let (legacy, new) = (cut(&d.legacy), cut(&d.new));
            // A second example that says the same as the first tells nothing more.
            let seen = s
                .examples
                .iter()
                .any(|e| e.path == path && e.at_field == d.field && e.legacy == legacy && e.new == new);
            if s.examples.len() < MAX_EXAMPLES && !seen {
                s.examples.push(Example {
                    // As precise as the pair's diff record, which it names.
                    at: humantime::format_rfc3339_millis(now).to_string(),
                    path: path.to_string(),
                    at_field: d.field.clone(),
                    legacy,
                    new,
                });
            }
        }
        real
    }

    /// Start the legacy/new evidence afresh (after new was fixed and redeployed): comparisons,
    /// findings and examples go; what was learned about noise stays. Returns the endpoints
    /// that had comparisons.
    pub fn reset(&mut self, now: SystemTime) -> usize {
        let had = self.endpoints.values().filter(|e| e.comparisons > 0).count();
        for e in self.endpoints.values_mut() {
            e.comparisons = 0;
            e.mismatches = 0;
            e.first_seen = now;
            e.last_seen = now;
            e.fields.retain(|_, f| f.noise > 0);
            for f in e.fields.values_mut() {
                f.differ = 0;
                f.first_seen = None;
                f.last_seen = None;
                f.examples.clear();
            }
        }
        self.folded = 0;
        had
    }

    /// Add `other`'s evidence (another instance's) to this: counts summed, first and last seen
    /// widened, the earliest examples kept; the same bounds as one instance's.
    pub fn merge(&mut self, other: &Findings) {
        self.folded += other.folded;
        for (name, o) in &other.endpoints {
            let e = self.endpoints.entry(name.clone()).or_insert_with(|| EndpointStats::new(o.first_seen));
            e.comparisons += o.comparisons;
            e.mismatches += o.mismatches;
            e.noise_samples += o.noise_samples;
            e.first_seen = e.first_seen.min(o.first_seen);
            e.last_seen = e.last_seen.max(o.last_seen);
            for (field, of) in &o.fields {
                let Some(f) = e.field(field.clone()) else { continue };
                f.differ += of.differ;
                f.noise += of.noise;
                f.first_seen = [f.first_seen, of.first_seen].into_iter().flatten().min();
                f.last_seen = f.last_seen.max(of.last_seen);
                f.examples.extend(of.examples.iter().cloned());
                f.examples.sort_by(|a, b| a.at.cmp(&b.at));
                f.examples.truncate(MAX_EXAMPLES);
            }
        }
    }

    /// Drop every example: what travels when the whole would be too large.
    pub fn strip_examples(&mut self) {
        for e in self.endpoints.values_mut() {
            for s in e.fields.values_mut() {
                s.examples.clear();
            }
        }
    }

    /// Whether any of `fields` is a significant finding of `endpoint` now.
    pub fn any_significant(&self, endpoint: &str, fields: &[Field], rules: &ReportRules) -> bool {
        let Some(e) = self.endpoints.get(endpoint) else { return false };
        fields.iter().any(|f| e.fields.get(&general(f)).is_some_and(|s| e.significant(s, rules)))
    }

    /// Endpoints that saw traffic and are `differs` now.
    pub fn differing(&self, rules: &ReportRules) -> Vec<String> {
        self.endpoints
            .iter()
            .filter(|(_, e)| e.fields.values().any(|f| e.significant(f, rules)))
            .map(|(name, _)| name.clone())
            .collect()
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

    pub fn report(&self, route: &str, rules: ReportRules, now: SystemTime) -> Report {
        let mut endpoints: Vec<EndpointReport> = self
            .endpoints
            .iter()
            .filter(|(_, e)| e.comparisons > 0)
            .map(|(name, e)| {
                let mut findings: Vec<Finding> = e
                    .fields
                    .iter()
                    .filter(|(_, s)| e.significant(s, &rules))
                    .map(|(f, s)| Finding {
                        field: f.clone(),
                        differing: s.differ,
                        rate: percent(s.differ, e.comparisons),
                        noise_rate: (e.noise_rate(s) * 10000.0).round() / 100.0,
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
                let noise = e
                    .fields
                    .iter()
                    .filter(|(_, s)| s.noise > 0)
                    .map(|(f, s)| NoiseRate { field: f.clone(), rate: percent(s.noise, e.noise_samples) })
                    .collect();
                EndpointReport {
                    endpoint: name.clone(),
                    verdict,
                    comparisons: e.comparisons,
                    mismatches: e.mismatches,
                    mismatch_rate: percent(e.mismatches, e.comparisons),
                    noise_samples: e.noise_samples,
                    first_seen: rfc3339(e.first_seen),
                    last_seen: rfc3339(e.last_seen),
                    findings,
                    noise,
                }
            })
            .collect();
        endpoints.sort_by(|a, b| b.comparisons.cmp(&a.comparisons).then_with(|| a.endpoint.cmp(&b.endpoint)));
        Report {
            route: route.to_string(),
            generated_at: rfc3339(now),
            rules,
            endpoints,
            folded: self.folded,
            pooled_from: Vec::new(),
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
                if f.bootstrapping(ep) || i % 50 == 0 {
                    f.record_noise(
                        ep,
                        &["json:$.id".parse().expect("f"), "header:x-request-id".parse().expect("f")],
                        now,
                    );
                }
                let mut d = vec![diff("json:$.id", i, i + 1), diff("header:x-request-id", i, -i)];
                if ep == "GET /orders/{id}" && i % 100 == 7 {
                    d.push(diff("json:$.items[2].price", 10, 11));
                }
                let real = f.record_pair(ep, &format!("/x/{i}"), d, now);
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
                f.record_pair("GET /orders/{id}", &format!("/orders/{i}"), d, now);
                f.record_pair("GET /health", "/health", vec![], now);
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
        f.record_noise(ep, &["json:$.items[4]".parse().expect("f")], now);
        let real =
            f.record_pair(ep, "/feed", vec![diff("json:$.items[5]", 1, 2), diff("json:$.items[1].price", 1, 2)], now);
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
                if f.bootstrapping("GET /a") {
                    let noisy: Vec<Field> = if i % 3 == 0 { vec!["json:$.at".parse().expect("f")] } else { vec![] };
                    f.record_noise("GET /a", &noisy, now);
                }
                let d = if i % 100 < real_rate { vec![diff("json:$.at", 1, 2)] } else { vec![] };
                f.record_pair("GET /a", "/a", d, now);
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
        assert_eq!(f.endpoint("GET", "/a/1", &[], 2), "GET /a/{id}");
        f.record_pair("GET /a/{id}", "/a/1", vec![], now);
        assert_eq!(f.endpoint("GET", "/b", &[], 2), "GET /b");
        f.record_pair("GET /b", "/b", vec![], now);
        assert_eq!(f.endpoint("GET", "/c", &[], 2), "GET {other}");
        assert_eq!(f.endpoint("GET", "/a/2", &[], 2), "GET /a/{id}", "known endpoints still count");
        assert_eq!(f.report("r", RULES, now).folded, 1);
        assert_eq!(verdicts(&f)[0].1, Verdict::NotEnoughData);
        for _ in 0..99 {
            f.record_pair("GET /b", "/b", vec![], now);
        }
        assert_eq!(verdicts(&f)[0], ("GET /b".into(), Verdict::Ready, vec![]));
    }

    #[test]
    fn an_example_is_not_kept_twice() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        for _ in 0..3 {
            f.record_pair("GET /a", "/a/1", vec![diff("json:$.price", 1, 2)], now);
        }
        f.record_pair("GET /a", "/a/2", vec![diff("json:$.price", 1, 2)], now);
        let r = f.report("r", RULES, now);
        let paths: Vec<&str> = r.endpoints[0].findings[0].examples.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/a/1", "/a/2"]);
    }

    #[test]
    fn a_reset_clears_the_evidence_and_keeps_the_noise() {
        let mut f = Findings::default();
        let now = SystemTime::now();
        f.record_noise("GET /a", &["json:$.id".parse().expect("f")], now);
        f.record_pair("GET /a", "/a", vec![diff("json:$.price", 1, 2), diff("json:$.id", 1, 2)], now);
        assert_eq!(verdicts(&f)[0].1, Verdict::Differs);
        assert_eq!(f.reset(now), 1);
        assert!(verdicts(&f).is_empty(), "no comparisons left to report");
        let real = f.record_pair("GET /a", "/a", vec![diff("json:$.id", 3, 4)], now);
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
            f.record_pair("GET /x", &format!("/x/{i}"), d.clone(), now);
        }
        let r = f.report("r", RULES, now);
        assert_eq!(r.endpoints[0].findings.len(), MAX_FIELDS);
        let ex = &r.endpoints[0].findings[0].examples;
        assert_eq!(ex.len(), MAX_EXAMPLES);
        let shown = ex[0].legacy.as_ref().and_then(Value::as_str).expect("a string");
        assert!(shown.len() < EXAMPLE_BYTES + 20 && shown.ends_with("(1000 bytes)"), "{shown}");
    }
}
