//! A rollout step's gates: the new side's error rate, the shadow mismatch rate and the p99
//! latency ratio against legacy, each judged over the step's window. Pure functions of the
//! step's figures, so every verdict can be tested from a table.

use crate::config::rollout::Rollout;
use crate::config::Side;
use crate::live::Window;

/// Legacy answers needed in a step before the p99 ratio means anything.
const LATENCY_MIN_LEGACY: u64 = 20;

/// new p99 / legacy p99 over the window, when both sides have enough answers.
pub fn latency_ratio(w: &Window) -> Option<f64> {
    let legacy = w.side(Side::Legacy);
    if legacy.timed() < LATENCY_MIN_LEGACY {
        return None;
    }
    let (new, old) = (w.side(Side::New).quantile_ms(0.99)?, legacy.quantile_ms(0.99)?);
    Some(new / old)
}

/// Check the gates over a step's window. Before the step's end (`last` false) a gate trips only
/// when it is certain to fail: rates count against at least `min_requests`, so a handful of
/// early errors is not yet a verdict but enough of them is. At the end, the actual rates.
pub fn judge(cfg: &Rollout, w: &Window, last: bool) -> Result<(), String> {
    let new = w.side(Side::New);
    let floor = |n: u64| if last { n } else { n.max(cfg.min_requests) };
    let denom = floor(new.requests);
    if denom > 0 {
        let rate = new.errors as f64 * 100.0 / denom as f64;
        if rate > cfg.max_error_rate {
            return Err(format!(
                "new error rate {:.2}% > {}% ({} of {} requests)",
                new.errors as f64 * 100.0 / new.requests.max(1) as f64,
                cfg.max_error_rate,
                new.errors,
                new.requests
            ));
        }
    }
    if let Some(max) = cfg.max_mismatch_rate {
        let compared = w.shadow_match + w.shadow_mismatch;
        let denom = floor(compared);
        if compared > 0 && denom > 0 && w.shadow_mismatch as f64 * 100.0 / denom as f64 > max {
            return Err(format!(
                "shadow mismatch rate {:.2}% > {max}% ({} of {compared} comparisons)",
                w.shadow_mismatch as f64 * 100.0 / compared as f64,
                w.shadow_mismatch
            ));
        }
    }
    if new.timed() >= cfg.min_requests.max(1) {
        if let Some(ratio) = latency_ratio(w) {
            if ratio > cfg.max_latency_ratio {
                return Err(format!(
                    "new p99 {:.1} ms is {ratio:.2}x legacy p99 {:.1} ms (limit {}x)",
                    new.quantile_ms(0.99).unwrap_or_default(),
                    w.side(Side::Legacy).quantile_ms(0.99).unwrap_or_default(),
                    cfg.max_latency_ratio
                ));
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
            max_latency_ratio: 1.5,
            on_failure: OnFailure::Rollback,
        }
    }

    /// A step's window: `new` requests of which `errors` failed, each taking `new_ms`; `legacy`
    /// requests taking `legacy_ms`; and shadow comparisons.
    struct Step {
        new: u64,
        errors: u64,
        new_ms: u64,
        legacy: u64,
        legacy_ms: u64,
        matched: u64,
        mismatched: u64,
    }

    const QUIET: Step = Step { new: 0, errors: 0, new_ms: 10, legacy: 0, legacy_ms: 10, matched: 0, mismatched: 0 };

    fn window(s: &Step) -> Window {
        let live = Live::new();
        let start = live.read(0, 0);
        for i in 0..s.new {
            live.record(Side::New, i < s.errors, Duration::from_millis(s.new_ms));
        }
        for _ in 0..s.legacy {
            live.record(Side::Legacy, false, Duration::from_millis(s.legacy_ms));
        }
        live.read(s.matched, s.mismatched).since(&start)
    }

    #[test]
    fn each_gate_passes_or_trips_as_the_table_says() {
        // (what, window, min_requests, last step check, the gate that trips or None)
        let cases: &[(&str, Step, u64, bool, Option<&str>)] = &[
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
                Some("error rate"),
            ),
            ("1% at the end is at the limit", Step { new: 200, errors: 2, ..QUIET }, 100, true, None),
            ("1.5% at the end is over it", Step { new: 200, errors: 3, ..QUIET }, 100, true, Some("error rate")),
            (
                "1 mismatch in 10 early: 1% of min_requests",
                Step { matched: 9, mismatched: 1, ..QUIET },
                100,
                false,
                Some("mismatch rate"),
            ),
            ("1 mismatch in 1000", Step { matched: 999, mismatched: 1, ..QUIET }, 100, true, None),
            ("new 3x slower than legacy", Step { new: 100, new_ms: 30, legacy: 100, ..QUIET }, 100, true, Some("p99")),
            ("new as fast as legacy", Step { new: 100, legacy: 100, ..QUIET }, 100, true, None),
            (
                "too few legacy answers to compare p99",
                Step { new: 100, new_ms: 30, legacy: 19, ..QUIET },
                100,
                true,
                None,
            ),
            ("too few new answers to compare p99", Step { new: 99, new_ms: 30, legacy: 100, ..QUIET }, 100, true, None),
        ];
        for (what, step, min, last, trips) in cases {
            let verdict = judge(&cfg(*min), &window(step), *last);
            match (trips, &verdict) {
                (None, Ok(())) => {}
                (Some(gate), Err(why)) => assert!(why.contains(gate), "{what}: tripped for another reason: {why}"),
                _ => panic!("{what}: expected {trips:?}, got {verdict:?}"),
            }
        }
    }

    #[test]
    fn the_latency_ratio_needs_legacy_answers() {
        assert_eq!(latency_ratio(&window(&Step { new: 50, legacy: 19, ..QUIET })), None);
        let ratio = latency_ratio(&window(&Step { new: 50, new_ms: 20, legacy: 50, ..QUIET })).unwrap();
        assert!((1.8..=2.2).contains(&ratio), "{ratio}");
    }
}
