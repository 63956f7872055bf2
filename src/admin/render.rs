//! Human renderings of admin API answers for the CLI (`--json` prints the answer as it is).

use std::fmt::Write;

use serde_json::Value;

use crate::api::{self, Side};

/// Widest value shown in a table cell; longer ones are cut with an ellipsis.
const CELL: usize = 48;

fn cell(v: Option<&Value>) -> String {
    let s = v.map_or_else(|| "(absent)".to_string(), Value::to_string);
    if s.chars().count() > CELL {
        let cut: String = s.chars().take(CELL - 1).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// `strangler diffs ROUTE`: each mismatch as a header line and a where / legacy / new table.
pub fn diffs(answer: &api::Diffs) -> String {
    let route = &answer.route;
    let mut out = String::new();
    let noise: Vec<String> = answer.noise.iter().map(|n| format!("{} (seen {})", n.field, n.seen)).collect();
    if !noise.is_empty() {
        let _ = writeln!(out, "route {route}: noise learned and ignored: {}", noise.join(", "));
    }
    if answer.diffs.is_empty() {
        let _ = writeln!(out, "route {route}: no mismatches recorded");
        return out;
    }
    let _ = writeln!(out, "route {route}: {} recent mismatch(es), newest first", answer.diffs.len());
    for d in &answer.diffs {
        let _ = writeln!(
            out,
            "\n{}  {} {}  (served by {})\n  legacy: {} in {:.1} ms   new: {} in {:.1} ms",
            d.at,
            d.method,
            d.path,
            d.served_by.as_str(),
            d.legacy.status,
            d.legacy.duration_ms,
            d.new.status,
            d.new.duration_ms,
        );
        let rows: Vec<[String; 3]> = d
            .differences
            .iter()
            .map(|x| {
                let mut place = x.field.to_string();
                match (&x.lines, x.offset) {
                    (Some(l), _) => {
                        let _ = write!(place, " line {} (-{} +{})", l.first, l.removed, l.added);
                    }
                    (None, Some(off)) => {
                        let _ = write!(place, " @{off}");
                    }
                    (None, None) => {}
                }
                [place, cell(x.legacy.as_ref()), cell(x.new.as_ref())]
            })
            .collect();
        let header = ["WHERE".to_string(), "LEGACY".to_string(), "NEW".to_string()];
        let width = |i: usize| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0);
        let (w0, w1) = (width(0), width(1));
        for r in [&header].into_iter().chain(&rows) {
            let _ = writeln!(out, "  {:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
        }
        if d.truncated {
            let _ = writeln!(out, "  (more differences not kept)");
        }
    }
    out
}

/// A number with `decimals`, or `-` when the API had none (no traffic).
fn num(v: Option<f64>, decimals: usize, unit: &str) -> String {
    v.map_or_else(|| "-".to_string(), |f| format!("{f:.decimals$}{unit}"))
}

/// `legacy/new` for one figure of the live window.
fn pair(live: &api::LiveWindow, figure: fn(&api::SideLive) -> Option<f64>, decimals: usize) -> String {
    let side = |s: Side| num(figure(live.side(s)), decimals, "");
    format!("{}/{}", side(Side::Legacy), side(Side::New))
}

/// `1m 54s`: an age in whole seconds.
fn ago_text(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// The rollout column: `2/4 running`, `rolled_back`, or `-` without a rollout.
fn rollout_cell(r: Option<&api::RolloutView>) -> String {
    match r {
        None => "-".to_string(),
        Some(r) => match r.step {
            Some(step) => format!("{step}/{} {}", r.steps.len(), r.status.as_str()),
            None => r.status.as_str().to_string(),
        },
    }
}

/// `strangler status`: one line per route with the last minute's figures, then why any rollout
/// stopped and which new pools are down.
pub fn status(answer: &api::Routes) -> String {
    let header = ["ROUTE", "WEIGHT", "RPS L/N", "5XX% L/N", "P99 MS L/N", "MISMATCH", "ROLLOUT"];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_string)];
    let mut notes = Vec::new();
    for r in &answer.routes {
        let live = &r.live;
        rows.push([
            r.name.clone(),
            format!("{}%", percent(r.weight)),
            pair(live, |s| Some(s.rps), 1),
            pair(live, |s| s.error_rate, 1),
            pair(live, |s| s.p99_ms, 1),
            num(live.mismatch_rate, 1, "%"),
            rollout_cell(r.rollout.as_ref()),
        ]);
        if let Some(ro) = &r.rollout {
            // A stopped rollout says since when; its step's hold no longer counts.
            let since = match (&ro.stopped_at, ro.stopped_ms_ago) {
                (Some(at), Some(ago)) => format!(" since {at} ({} ago)", ago_text(ago)),
                _ => String::new(),
            };
            match &ro.reason {
                Some(reason) => notes.push(format!("{}: rollout {}{since}: {reason}", r.name, ro.status.as_str())),
                None if !since.is_empty() => notes.push(format!("{}: rollout {}{since}", r.name, ro.status.as_str())),
                None => {}
            }
            if let Some(err) = &ro.error {
                notes.push(format!("{}: rollout cannot change the weight: {err}", r.name));
            }
            if let Some(at) = &ro.next_step_at {
                let held = ro.schedule.as_ref().map_or(String::new(), |why| format!(" ({why})"));
                notes.push(format!("{}: next step not before {at}{held}", r.name));
            }
        }
        if r.new_pool_down {
            notes.push(format!("{}: every address of the new pool is down; all traffic goes to legacy", r.name));
        }
    }
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if answer.routes.is_empty() {
        let _ = writeln!(out, "(no routes)");
    }
    if let Some(refused) = &answer.refused_reload {
        notes.push(format!(
            "config: the reload of {} at {} ({}) was refused; the previous config keeps serving:",
            refused.file, refused.at, refused.trigger
        ));
        for p in &refused.problems {
            let line = p.line.map_or(String::new(), |l| format!("line {l}: "));
            let value = p.value.as_deref().map_or(String::new(), |v| format!(" = {v}"));
            notes.push(format!("  {line}{}{value}: {}", p.key, p.message));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out);
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    let _ = writeln!(out, "(live figures over the last {} s)", answer.window_seconds);
    out
}

/// An example's values as one line: `legacy → new` at the exact place.
fn example_line(e: &api::Example) -> String {
    format!("{} {}: {} → {}", e.path, e.at_field, cell(e.legacy.as_ref()), cell(e.new.as_ref()))
}

fn report_summary(r: &api::Report) -> (usize, usize, usize) {
    let count = |v: api::Verdict| r.endpoints.iter().filter(|e| e.verdict == v).count();
    (count(api::Verdict::Ready), count(api::Verdict::Differs), count(api::Verdict::NotEnoughData))
}

/// `strangler report ROUTE`: one row per endpoint, then each endpoint's findings.
pub fn report(r: &api::Report) -> String {
    let mut out = String::new();
    let (ready, differs, thin) = report_summary(r);
    let _ = writeln!(
        out,
        "route {}: {} endpoint(s): {ready} ready, {differs} differ, {thin} not enough data (ready after {} comparisons)",
        r.route,
        r.endpoints.len(),
        r.rules.ready_after
    );
    if !r.pooled_from.is_empty() {
        let _ =
            writeln!(out, "the fleet's evidence, pooled from {}: {}", r.pooled_from.len(), r.pooled_from.join(", "));
    }
    if r.endpoints.is_empty() {
        let _ = writeln!(out, "(nothing compared yet)");
        return out;
    }
    let header = ["ENDPOINT", "VERDICT", "COMPARED", "MISMATCH", "NOISE SAMPLES", "FINDINGS"];
    let mut rows: Vec<[String; 6]> = vec![header.map(str::to_string)];
    for e in &r.endpoints {
        let fields: Vec<String> = e.findings.iter().map(|f| format!("{} {}%", f.field, f.rate)).collect();
        rows.push([
            e.endpoint.clone(),
            e.verdict.as_str().to_string(),
            e.comparisons.to_string(),
            format!("{}%", e.mismatch_rate),
            e.noise_samples.to_string(),
            if fields.is_empty() { "-".to_string() } else { fields.join(", ") },
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for e in r.endpoints.iter().filter(|e| !e.findings.is_empty()) {
        let _ = writeln!(
            out,
            "
{}",
            e.endpoint
        );
        for f in &e.findings {
            let _ = writeln!(
                out,
                "  {}: {}% of pairs ({}), noise {}%, last {}",
                f.field, f.rate, f.differing, f.noise_rate, f.last_seen
            );
            for ex in &f.examples {
                let _ = writeln!(out, "    {}", example_line(ex));
            }
        }
    }
    for e in r.endpoints.iter().filter(|e| e.explained > 0) {
        let _ = writeln!(
            out,
            "\n{}: {} pair(s) differed only where noise explains it (noise from {} same-side sample(s), {} client(s))",
            e.endpoint, e.explained, e.noise_window, e.noise_clients
        );
        for n in e.noise.iter().filter(|n| n.explained > 0) {
            let _ = writeln!(
                out,
                "  {}: explained {} pair(s); varies on {}% of same-side samples",
                n.field, n.explained, n.rate
            );
        }
    }
    let inferred: Vec<String> = r
        .endpoints
        .iter()
        .filter(|e| !e.inferred_from.is_empty())
        .map(|e| {
            let values: Vec<String> = e.inferred_from.iter().map(u64::to_string).collect();
            let plural = if e.inferred_from == [1] { "" } else { "s" };
            format!("{} ({} distinct value{plural})", e.endpoint, values.join(" / "))
        })
        .collect();
    if !inferred.is_empty() {
        let _ = writeln!(out, "\ntemplates inferred from the traffic: {}", inferred.join(", "));
    }
    if r.folded > 0 {
        let _ = writeln!(
            out,
            "
{} compared request(s) counted under {{other}} (max_endpoints or max_evidence reached)",
            r.folded
        );
    }
    if r.over_budget > 0 {
        let _ = writeln!(
            out,
            "{} field(s), example(s) or endpoint(s) not kept: the evidence budget is spent",
            r.over_budget
        );
    }
    if let Some(next) = r.next_offset {
        let _ = writeln!(
            out,
            "{} more endpoint(s) not shown: GET /api/v1/routes/{}/report?offset={next}",
            r.total_endpoints.saturating_sub(next),
            r.route
        );
    }
    out
}

/// `strangler report ROUTE --markdown`: what a team pastes into its cutover ticket.
pub fn report_markdown(r: &api::Report) -> String {
    let mut out = String::new();
    let (ready, differs, thin) = report_summary(r);
    let _ = writeln!(
        out,
        "## Cutover report: `{}`
",
        r.route
    );
    let _ = writeln!(
        out,
        "Generated {}. {} endpoint(s): **{ready} ready**, **{differs} differ**, {thin} not enough data. \
         An endpoint is ready after {} comparisons with no field differing more than its noise \
         (by {} percentage points and {}%).\n",
        r.generated_at,
        r.endpoints.len(),
        r.rules.ready_after,
        r.rules.finding_absolute,
        r.rules.finding_relative
    );
    if !r.pooled_from.is_empty() {
        let _ =
            writeln!(out, "Evidence pooled from {} instances: {}.\n", r.pooled_from.len(), r.pooled_from.join(", "));
    }
    let _ = writeln!(out, "| Endpoint | Verdict | Compared | Mismatch | Findings |");
    let _ = writeln!(out, "|---|---|---:|---:|---|");
    let md = |s: &str| s.replace('|', "\\|");
    for e in &r.endpoints {
        let fields: Vec<String> =
            e.findings.iter().map(|f| format!("`{}` {}%", md(&f.field.to_string()), f.rate)).collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {}% | {} |",
            md(&e.endpoint),
            e.verdict.as_str(),
            e.comparisons,
            e.mismatch_rate,
            if fields.is_empty() { "-".to_string() } else { fields.join(", ") }
        );
    }
    for e in r.endpoints.iter().filter(|e| e.explained > 0) {
        let fields: Vec<String> = e
            .noise
            .iter()
            .filter(|n| n.explained > 0)
            .map(|n| format!("`{}` ({})", md(&n.field.to_string()), n.explained))
            .collect();
        let _ = writeln!(
            out,
            "\n`{}`: {} pair(s) differed only where noise explains it: {}.",
            md(&e.endpoint),
            e.explained,
            fields.join(", ")
        );
    }
    for e in r.endpoints.iter().filter(|e| !e.findings.is_empty()) {
        let _ = writeln!(out, "\n### `{}`\n", md(&e.endpoint));
        for f in &e.findings {
            let _ = writeln!(
                out,
                "- `{}`: differs on {}% of pairs ({}), noise {}%",
                md(&f.field.to_string()),
                f.rate,
                f.differing,
                f.noise_rate
            );
            for ex in &f.examples {
                let _ = writeln!(out, "  - `{}`", md(&example_line(ex)));
            }
        }
    }
    out
}

/// `strangler replay ROUTE`: what is fixed now and what still differs.
pub fn replayed(r: &api::Replayed) -> String {
    let mut out = format!(
        "route {}: replayed {}: {} fixed, {} still differ, {} error(s)\n",
        r.route,
        r.results.len(),
        r.fixed,
        r.differs,
        r.errors
    );
    if r.results.is_empty() {
        out.push_str("(no mismatching requests kept; they are kept as they happen, see keep_replays)\n");
    }
    for x in &r.results {
        let outcome = match x.outcome {
            api::ReplayOutcome::Fixed => "fixed",
            api::ReplayOutcome::Differs => "differs",
            api::ReplayOutcome::Error => "error",
        };
        let _ = writeln!(out, "{outcome:8} {} {}  ({}, first seen {})", x.method, x.path, x.endpoint, x.seen_at);
        for d in &x.differences {
            let _ = writeln!(out, "           {}: {} → {}", d.field, cell(d.legacy.as_ref()), cell(d.new.as_ref()));
        }
        if let Some(e) = &x.error {
            let _ = writeln!(out, "           {e}");
        }
    }
    out
}

/// Headers strangler sets itself on the way to an upstream: left out of a curl command to it.
const SET_BY_PROXY: [&str; 7] =
    ["host", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"];

/// `strangler replay ROUTE --curl`: each kept request as a command against the proxy at `base`.
pub fn curl(r: &api::Replays, base: &str) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut out = String::new();
    if r.requests.is_empty() {
        out.push_str("# no mismatching requests kept\n");
    }
    for k in &r.requests {
        let _ = writeln!(out, "# {} (first seen {})", k.endpoint, k.seen_at);
        let mut cmd = format!("curl -X {} {}", k.method, quote(&format!("{base}{}", k.path)));
        for (name, v) in &k.headers {
            if SET_BY_PROXY.contains(&name.as_str()) || name.starts_with("x-strangler-") {
                continue;
            }
            let values: Vec<String> = match v {
                Value::Array(all) => all.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect(),
                other => vec![other.as_str().unwrap_or_default().to_string()],
            };
            for value in values {
                let _ = write!(cmd, " -H {}", quote(&format!("{name}: {value}")));
            }
        }
        match &k.body {
            Some(body) => {
                let _ = write!(cmd, " --data-binary {}", quote(body));
            }
            None if k.body_bytes > 0 => {
                let _ = write!(cmd, "  # a {}-byte binary body is not shown", k.body_bytes);
            }
            None => {}
        }
        let _ = writeln!(out, "{cmd}");
    }
    out
}

/// A percentage as people write it: `25`, `12.5`.
fn percent(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// `strangler weight ROUTE PERCENT`.
pub fn weight(answer: &api::WeightChanged) -> String {
    let mut out = if answer.unchanged {
        format!("{}: weight already {}%: unchanged, nothing written\n", answer.route, percent(answer.weight))
    } else {
        format!(
            "{}: weight {}% -> {}% (written to {})\n",
            answer.route,
            percent(answer.old),
            percent(answer.weight),
            answer.persisted,
        )
    };
    if answer.rollout_paused {
        out.push_str("its rollout is paused: `strangler rollout ROUTE resume` hands the route back to it\n");
    }
    out
}

/// `strangler reload`.
pub fn reload(answer: &api::Reloaded) -> String {
    let weights: Vec<String> = answer.weights.iter().map(|(k, v)| format!("{k}={}%", percent(*v))).collect();
    format!("reloaded: {}\n", weights.join(" "))
}

/// `strangler rollout ROUTE ACTION`.
pub fn rollout(answer: &api::RolloutActed) -> String {
    let r = &answer.rollout;
    let step = r.step.map_or("-".to_string(), |s| s.to_string());
    let mut out = format!(
        "{}: rollout {} at step {step} of {} ({}%)\n",
        answer.route,
        r.status.as_str(),
        r.steps.len(),
        r.step_weight.map_or("-".to_string(), percent),
    );
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "  {reason}");
    }
    out
}

/// The fleet under `strangler status`: one line per instance with the revision it serves;
/// an instance behind the revision etcd holds is marked.
pub fn fleet(f: &api::ClusterView) -> String {
    let mut out = String::new();
    let latest = f.latest_revision.map_or("-".to_string(), |r| r.to_string());
    let _ = writeln!(
        out,
        "\nfleet {} (etcd {}): revision {latest} in etcd, this instance {} serves {}{}{}",
        f.key,
        if f.connected { "connected" } else { "UNREACHABLE" },
        f.instance,
        f.revision.map_or("nothing".to_string(), |r| r.to_string()),
        if f.stale { " (from its cache, stale)" } else { "" },
        f.rejected.as_ref().map_or(String::new(), |r| format!(
            "; revision {} refused: {}",
            r.revision,
            r.problems.join("; ")
        )),
    );
    let _ = writeln!(
        out,
        "rollouts are driven by {}",
        match (&f.leader, f.leads) {
            (_, true) => format!("{} (this instance)", f.instance),
            (Some(l), false) => l.clone(),
            (None, false) => "no instance now (no leader: rollouts wait)".to_string(),
        }
    );
    let mut rows = vec![["INSTANCE", "REVISION", "SINCE", "PROXY", "ADMIN", ""].map(str::to_string)];
    for i in &f.instances {
        rows.push([
            i.instance.clone(),
            i.revision.map_or("-".to_string(), |r| r.to_string()),
            i.applied_at.clone().unwrap_or_else(|| "-".into()),
            i.proxy.join(","),
            i.admin.clone(),
            if i.behind { format!("BEHIND (etcd has {latest})") } else { String::new() },
        ]);
    }
    if f.instances.is_empty() {
        let _ = writeln!(out, "  (no instance list while etcd is unreachable)");
        return out;
    }
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

/// The fleet's totals per route, summed over its instances (each since it started).
pub fn fleet_totals(r: &api::Routes) -> String {
    let mut out = String::new();
    if r.fleet_totals.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nfleet totals (every instance since it started)");
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let mut rows =
        vec![["ROUTE", "LEGACY", "NEW", "NEW 5XX", "P99 MS L/N", "COMPARED", "MISMATCH", "BY INSTANCE (L/N)"]
            .map(str::to_string)];
    for f in &r.fleet_totals {
        let t = &f.total;
        rows.push([
            f.route.clone(),
            t.legacy.requests.to_string(),
            t.new.requests.to_string(),
            t.new.error_rate.map_or("-".to_string(), |e| format!("{e:.2}%")),
            format!("{}/{}", ms(t.legacy.p99_ms), ms(t.new.p99_ms)),
            t.shadow_compared.to_string(),
            t.mismatch_rate.map_or("-".to_string(), |m| format!("{m:.2}%")),
            f.instances
                .iter()
                .map(|i| format!("{} {}/{}", i.instance, i.legacy_requests, i.new_requests))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_mismatch_is_a_readable_side_by_side() {
        let answer: api::Diffs = serde_json::from_value(json!({"route": "orders", "noise": [], "diffs": [{
            "at": "2026-11-22T10:00:00.000Z", "route": "orders", "method": "GET", "path": "/orders/7",
            "served_by": "legacy", "request_headers": {},
            "legacy": {"status": 200, "duration_ms": 3.12}, "new": {"status": 404, "duration_ms": 1.0},
            "differences": [
                {"where": "status", "legacy": 200, "new": 404},
                {"where": "json:$.total", "legacy": 15, "new": null},
                {"where": "json:$.amount", "new": "15"},
                {"where": "body", "legacy": "x".repeat(100), "new": "y", "offset": 12},
            ],
            "truncated": false,
        }]}))
        .unwrap();
        let text = diffs(&answer);
        assert!(text.contains("GET /orders/7  (served by legacy)"), "{text}");
        assert!(text.contains("legacy: 200 in 3.1 ms   new: 404 in 1.0 ms"), "{text}");
        let row = |w: &str| text.lines().find(|l| l.trim_start().starts_with(w)).unwrap().to_string();
        let words = |w: &str| row(w).split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words("json:$.total"), ["json:$.total", "15", "null"], "a null stays a value: {text}");
        assert_eq!(words("json:$.amount"), ["json:$.amount", "(absent)", "\"15\""], "{text}");
        assert!(row("body @12").contains('…'), "{text}");
        let empty = api::Diffs { route: "r".into(), diffs: vec![], noise: vec![] };
        assert_eq!(diffs(&empty), "route r: no mismatches recorded\n");
        let noise =
            api::Diffs { noise: vec![api::NoiseField { field: api::Field::Json("$.at".into()), seen: 4 }], ..empty };
        assert!(diffs(&noise).starts_with("route r: noise learned and ignored: json:$.at (seen 4)\n"));
    }
}
