//! A rollout step's gates: the new side's error rate, the shadow mismatch rate and the p99
//! latency ratio against legacy, each judged over the step's window. Pure functions of the
//! step's figures, so every verdict can be tested from a table.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::rollout::Rollout;
use crate::core::Side;
use crate::live::Window;

/// Legacy answers needed in a step before the p99 ratio means anything.
const LATENCY_MIN_LEGACY: u64 = 20;
/// A p99 difference below this never fails the latency gate: on sub-millisecond services one
/// scheduler hiccup doubles a p99, and a ratio of two tiny numbers says nothing.
pub const LATENCY_FLOOR_MS: f64 = 1.0;

/// Why a held step cannot pass yet, if it cannot: new has not served `min_requests`, or (with a
/// mismatch gate) fewer than `min_comparisons` pairs were compared. A step never passes on no
/// evidence.
pub fn waiting(cfg: &Rollout, w: &Window) -> Option<String> {
    let new = w.side(Side::New).requests;
    if new < cfg.min_requests {
        return Some(format!("waiting for new to serve {} requests ({new} so far)", cfg.min_requests));
    }
    let compared = w.shadow_match + w.shadow_mismatch;
    if cfg.max_mismatch_rate.is_some() && compared < cfg.min_comparisons {
        return Some(format!(
            "waiting for {} shadow comparisons to judge the mismatch rate ({compared} so far; is the route shadowed?)",
            cfg.min_comparisons
        ));
    }
    None
}

/// new p99 / legacy p99 over the window, when both sides have enough answers.
pub fn latency_ratio(w: &Window) -> Option<f64> {
    let legacy = w.side(Side::Legacy);
    if legacy.timed() < LATENCY_MIN_LEGACY {
        return None;
    }
    let (new, old) = (w.side(Side::New).quantile_ms(0.99)?, legacy.quantile_ms(0.99)?);
    Some(new / old)
}

/// new p99 - legacy p99 in milliseconds, when the ratio is known.
pub fn latency_added_ms(w: &Window) -> Option<f64> {
    latency_ratio(w)?;
    Some(w.side(Side::New).quantile_ms(0.99)? - w.side(Side::Legacy).quantile_ms(0.99)?)
}

/// The gate a step failed, with the figures it failed on. Shown by the API (`failed_gate`), in
/// the rollout's reason (its [`Display`](fmt::Display) form) and in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum GateFailure {
    /// New failed more than `max_error_rate` percent of its requests.
    ErrorRate { rate: f64, limit: f64, errors: u64, requests: u64 },
    /// More than `max_mismatch_rate` percent of the shadow comparisons differed.
    MismatchRate { rate: f64, limit: f64, mismatches: u64, comparisons: u64 },
    /// New's p99 is over both allowances: `max_latency_ratio` times legacy's, and (when set)
    /// `max_latency_added` more.
    Latency {
        new_p99_ms: f64,
        legacy_p99_ms: f64,
        ratio: f64,
        added_ms: f64,
        limit_ratio: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit_added_ms: Option<u64>,
    },
}

impl fmt::Display for GateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateFailure::ErrorRate { rate, limit, errors, requests } => {
                write!(f, "new error rate {rate:.2}% > {limit}% ({errors} of {requests} requests)")
            }
            GateFailure::MismatchRate { rate, limit, mismatches, comparisons } => {
                write!(f, "shadow mismatch rate {rate:.2}% > {limit}% ({mismatches} of {comparisons} comparisons)")
            }
            GateFailure::Latency { new_p99_ms, legacy_p99_ms, ratio, added_ms, limit_ratio, limit_added_ms } => {
                write!(
                    f,
                    "new p99 {new_p99_ms:.1} ms is {ratio:.2}x legacy p99 {legacy_p99_ms:.1} ms, {added_ms:.1} ms more (limit {limit_ratio}x"
                )?;
                match limit_added_ms {
                    Some(ms) => write!(f, " or {ms} ms more)"),
                    None => write!(f, ")"),
                }
            }
        }
    }
}

/// Check the gates over a step's window. Before the step's end (`last` false) a gate trips only
/// when it is certain to fail: rates count against at least `min_requests`, so a handful of
/// early errors is not yet a verdict but enough of them is. At the end, the actual rates.
pub fn judge(cfg: &Rollout, w: &Window, last: bool) -> Result<(), GateFailure> {
    let new = w.side(Side::New);
    let floor = |n: u64| if last { n } else { n.max(cfg.min_requests) };
    let denom = floor(new.requests);
    if denom > 0 {
        let rate = new.errors as f64 * 100.0 / denom as f64;
        if rate > cfg.max_error_rate {
            return Err(GateFailure::ErrorRate {
                rate: new.errors as f64 * 100.0 / new.requests.max(1) as f64,
                limit: cfg.max_error_rate,
                errors: new.errors,
                requests: new.requests,
            });
        }
    }
    if let Some(max) = cfg.max_mismatch_rate {
        // Never a verdict on a handful of pairs: "2 of 2 comparisons" says little about a
        // rewrite, and noise not yet learned makes the first pairs differ most.
        let compared = w.shadow_match + w.shadow_mismatch;
        if compared >= cfg.min_comparisons && w.shadow_mismatch as f64 * 100.0 / compared as f64 > max {
            return Err(GateFailure::MismatchRate {
                rate: w.shadow_mismatch as f64 * 100.0 / compared as f64,
                limit: max,
                mismatches: w.shadow_mismatch,
                comparisons: compared,
            });
        }
    }
    if new.timed() >= cfg.min_requests.max(1) {
        let (new_p99, legacy_p99) =
            (new.quantile_ms(0.99).unwrap_or_default(), w.side(Side::Legacy).quantile_ms(0.99).unwrap_or_default());
        let added = new_p99 - legacy_p99;
        // A slower rewrite passes when either allowance holds: the ratio, or the milliseconds
        // added (a fixed 15 ms is 8x of a 2 ms legacy and nothing to a user).
        let within_added = cfg.max_latency_added.is_some_and(|max| added <= max.as_secs_f64() * 1000.0);
        if let Some(ratio) = latency_ratio(w) {
            if ratio > cfg.max_latency_ratio && added >= LATENCY_FLOOR_MS && !within_added {
                return Err(GateFailure::Latency {
                    new_p99_ms: new_p99,
                    legacy_p99_ms: legacy_p99,
                    ratio,
                    added_ms: added,
                    limit_ratio: cfg.max_latency_ratio,
                    limit_added_ms: cfg.max_latency_added.map(|d| d.as_millis() as u64),
                });
            }
        }
    }
    Ok(())
}

/// A step's figures for the log.
pub fn figures(cfg: &Rollout, w: &Window) -> String {
    let new = w.side(Side::New);
    let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.2}{unit}"));
    format!(
        "{} new requests (min {}), error rate {}, mismatch rate {}, p99 ratio {}",
        new.requests,
        cfg.min_requests,
        opt(new.error_rate(), "%"),
        opt(w.mismatch_rate(), "%"),
        opt(latency_ratio(w), "x"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::rollout::OnFailure;
    use crate::config::Percent;
    use crate::live::Live;

    fn cfg(min_requests: u64) -> Rollout {
        Rollout {
            steps: vec![Percent::from_hundredths(100), Percent::FULL],
            hold: Duration::from_secs(60),
            min_requests,
            max_error_rate: 1.0,
            max_mismatch_rate: Some(0.5),
            min_comparisons: 10,
            max_latency_ratio: 1.5,
            max_latency_added: None,
            on_failure: OnFailure::Rollback,
            require_ready: false,
            schedule: Default::default(),
        }
    }

    /// A step's window: `new` requests of which `errors` failed, each taking `new_us`
    /// microseconds; `legacy` requests taking `legacy_us`; and shadow comparisons.
    struct Step {
        new: u64,
        errors: u64,
        new_us: u64,
        legacy: u64,
        legacy_us: u64,
        matched: u64,
        mismatched: u64,
    }

    const QUIET: Step =
        Step { new: 0, errors: 0, new_us: 10_000, legacy: 0, legacy_us: 10_000, matched: 0, mismatched: 0 };

    /// Which gate a failure is, without its figures.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Gate {
        ErrorRate,
        MismatchRate,
        Latency,
    }

    impl Gate {
        fn of(f: &GateFailure) -> Gate {
            match f {
                GateFailure::ErrorRate { .. } => Gate::ErrorRate,
                GateFailure::MismatchRate { .. } => Gate::MismatchRate,
                GateFailure::Latency { .. } => Gate::Latency,
            }
        }
    }

    #[test]
    fn a_failure_reads_as_it_always_has_and_travels_tagged() {
        let f = GateFailure::ErrorRate { rate: 2.5, limit: 1.0, errors: 5, requests: 200 };
        assert_eq!(f.to_string(), "new error rate 2.50% > 1% (5 of 200 requests)");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["gate"], "error_rate");
        assert_eq!(serde_json::from_value::<GateFailure>(json).unwrap(), f);
        let l = GateFailure::Latency {
            new_p99_ms: 32.8,
            legacy_p99_ms: 6.7,
            ratio: 4.9,
            added_ms: 26.1,
            limit_ratio: 1.5,
            limit_added_ms: Some(20),
        };
        assert_eq!(
            l.to_string(),
            "new p99 32.8 ms is 4.90x legacy p99 6.7 ms, 26.1 ms more (limit 1.5x or 20 ms more)"
        );
    }

    fn window(s: &Step) -> Window {
        let live = Live::new();
        let start = live.read(0, 0);
        for i in 0..s.new {
            live.record(Side::New, i < s.errors, Some(Duration::from_micros(s.new_us)));
        }
        for _ in 0..s.legacy {
            live.record(Side::Legacy, false, Some(Duration::from_micros(s.legacy_us)));
        }
        live.read(s.matched, s.mismatched).since(&start)
    }

    #[test]
    fn each_gate_passes_or_trips_as_the_table_says() {
        // (what, window, min_requests, last step check, the gate that trips or None)
        let cases: &[(&str, Step, u64, bool, Option<Gate>)] = &[
            ("nothing yet", QUIET, 100, false, None),
            ("nothing at the end", QUIET, 100, true, None),
            (
                "1 early error of 10 is 1% of min_requests: not certain",
                Step { new: 10, errors: 1, ..QUIET },
                100,
                false,
                None,
            ),
            (
                "2 early errors of 10 are 2% of min_requests: certain",
                Step { new: 10, errors: 2, ..QUIET },
                100,
                false,
                Some(Gate::ErrorRate),
            ),
            ("1% at the end is at the limit", Step { new: 200, errors: 2, ..QUIET }, 100, true, None),
            ("1.5% at the end is over it", Step { new: 200, errors: 3, ..QUIET }, 100, true, Some(Gate::ErrorRate)),
            (
                "1 mismatch in 10 early, the gate's minimum: 10% is over 0.5%",
                Step { matched: 9, mismatched: 1, ..QUIET },
                100,
                false,
                Some(Gate::MismatchRate),
            ),
            ("2 of 2 comparisons differ: too few pairs to decide", Step { mismatched: 2, ..QUIET }, 100, false, None),
            ("2 of 2 at the step's end: still too few", Step { mismatched: 2, ..QUIET }, 100, true, None),
            ("1 mismatch in 1000", Step { matched: 999, mismatched: 1, ..QUIET }, 100, true, None),
            (
                "new 3x slower than legacy",
                Step { new: 100, new_us: 30_000, legacy: 100, ..QUIET },
                100,
                true,
                Some(Gate::Latency),
            ),
            (
                "3x slower but by under a millisecond",
                Step { new: 100, new_us: 600, legacy: 100, legacy_us: 200, ..QUIET },
                100,
                true,
                None,
            ),
            ("new as fast as legacy", Step { new: 100, legacy: 100, ..QUIET }, 100, true, None),
            (
                "too few legacy answers to compare p99",
                Step { new: 100, new_us: 30_000, legacy: 19, ..QUIET },
                100,
                true,
                None,
            ),
            (
                "too few new answers to compare p99",
                Step { new: 99, new_us: 30_000, legacy: 100, ..QUIET },
                100,
                true,
                None,
            ),
        ];
        for (what, step, min, last, trips) in cases {
            let verdict = judge(&cfg(*min), &window(step), *last);
            match (trips, &verdict) {
                (None, Ok(())) => {}
                (Some(gate), Err(failure)) => {
                    assert_eq!(Gate::of(failure), *gate, "{what}: tripped for another reason: {failure}")
                }
                _ => panic!("{what}: expected {trips:?}, got {verdict:?}"),
            }
        }
    }

    #[test]
    fn a_step_waits_for_enough_requests_and_comparisons() {
        let c = cfg(100);
        let w = |new, matched| window(&Step { new, matched, ..QUIET });
        assert!(waiting(&c, &w(99, 100)).is_some_and(|why| why.contains("serve 100 requests")));
        let why = waiting(&c, &w(100, 9)).expect("9 of 10 comparisons");
        assert!(why.contains("10 shadow comparisons") && why.contains("9 so far"), "{why}");
        assert_eq!(waiting(&c, &w(100, 10)), None);
        let without_gate = Rollout { max_mismatch_rate: None, ..cfg(100) };
        assert_eq!(waiting(&without_gate, &w(100, 0)), None, "no mismatch gate, no comparisons needed");
    }

    #[test]
    fn the_latency_gate_passes_a_rewrite_within_either_allowance() {
        let allowed = |ms| Rollout { max_latency_added: Some(Duration::from_millis(ms)), ..cfg(100) };
        let step = |legacy_ms: u64, new_ms: u64| {
            window(&Step { new: 100, new_us: new_ms * 1000, legacy: 100, legacy_us: legacy_ms * 1000, ..QUIET })
        };
        // (what, allowance in ms or none, legacy p99 ms, new p99 ms, passes)
        let cases: &[(&str, Option<u64>, u64, u64, bool)] = &[
            ("15 ms slower than 2 ms: 8x, but within 20 ms", Some(20), 2, 17, true),
            ("15 ms slower than 2 ms, ratio alone", None, 2, 17, false),
            ("3x slower, 40 ms more: outside both", Some(20), 20, 60, false),
            ("1.2x slower: within the ratio, whatever the milliseconds", Some(1), 100, 120, true),
            ("18 ms more, under 20 (p99s are read from buckets a few percent wide)", Some(20), 10, 28, true),
        ];
        for (what, ms, legacy, new, passes) in cases {
            let c = ms.map_or_else(|| cfg(100), allowed);
            let verdict = judge(&c, &step(*legacy, *new), true);
            assert_eq!(verdict.is_ok(), *passes, "{what}: {verdict:?}");
            if let Err(failure) = verdict {
                assert_eq!(Gate::of(&failure), Gate::Latency, "{what}: {failure}");
                let why = failure.to_string();
                assert!(why.contains("p99") && why.contains("ms more"), "{what}: {why}");
            }
        }
    }

    #[test]
    fn the_latency_ratio_needs_legacy_answers() {
        assert_eq!(latency_ratio(&window(&Step { new: 50, legacy: 19, ..QUIET })), None);
        let ratio = latency_ratio(&window(&Step { new: 50, new_us: 20_000, legacy: 50, ..QUIET })).unwrap();
        assert!((1.8..=2.2).contains(&ratio), "{ratio}");
    }
}
