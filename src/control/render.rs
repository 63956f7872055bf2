//! Human renderings of admin API answers for the CLI (`--json` prints the answer as it is).

use std::fmt::Write;

use serde_json::Value;

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

/// The elements of a JSON array; none for anything else.
fn elements(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `strangler diffs ROUTE`: each mismatch as a header line and a where / legacy / new table.
pub fn diffs(answer: &Value) -> String {
    let route = answer["route"].as_str().unwrap_or("?");
    let list = elements(&answer["diffs"]);
    let mut out = String::new();
    let noise: Vec<String> = elements(&answer["noise"])
        .iter()
        .map(|n| format!("{} (seen {})", n["field"].as_str().unwrap_or("?"), n["seen"]))
        .collect();
    if !noise.is_empty() {
        let _ = writeln!(out, "route {route}: noise learned and ignored: {}", noise.join(", "));
    }
    if list.is_empty() {
        let _ = writeln!(out, "route {route}: no mismatches recorded");
        return out;
    }
    let _ = writeln!(out, "route {route}: {} recent mismatch(es), newest first", list.len());
    for d in list {
        let ms = |side: &str| d[side]["duration_ms"].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "\n{}  {} {}  (served by {})\n  legacy: {} in {:.1} ms   new: {} in {:.1} ms",
            d["at"].as_str().unwrap_or("-"),
            d["method"].as_str().unwrap_or("-"),
            d["path"].as_str().unwrap_or("-"),
            d["served_by"].as_str().unwrap_or("-"),
            d["legacy"]["status"],
            ms("legacy"),
            d["new"]["status"],
            ms("new"),
        );
        let rows: Vec<[String; 3]> = elements(&d["differences"])
            .iter()
            .map(|x| {
                let mut place = x["where"].as_str().unwrap_or("?").to_string();
                if let Some(off) = x.get("offset").and_then(Value::as_u64) {
                    let _ = write!(place, " @{off}");
                }
                [place, cell(x.get("legacy")), cell(x.get("new"))]
            })
            .collect();
        let header = ["WHERE".to_string(), "LEGACY".to_string(), "NEW".to_string()];
        let width = |i: usize| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0);
        let (w0, w1) = (width(0), width(1));
        for r in [&header].into_iter().chain(&rows) {
            let _ = writeln!(out, "  {:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
        }
        if d["truncated"].as_bool() == Some(true) {
            let _ = writeln!(out, "  (more differences not kept)");
        }
    }
    out
}

/// A number with `decimals`, or `-` when the API had none (no traffic).
fn num(v: &Value, decimals: usize, unit: &str) -> String {
    v.as_f64().map_or_else(|| "-".to_string(), |f| format!("{f:.decimals$}{unit}"))
}

/// `legacy/new` for one figure of the live window.
fn pair(live: &Value, key: &str, decimals: usize, unit: &str) -> String {
    format!("{}/{}", num(&live["legacy"][key], decimals, unit), num(&live["new"][key], decimals, unit))
}

/// The rollout column: `2/4 running`, `rolled_back`, or `-` without a rollout.
fn rollout_cell(r: &Value) -> String {
    match r["status"].as_str() {
        None => "-".to_string(),
        Some(status) => match r["step"].as_u64() {
            Some(step) => format!("{step}/{} {status}", elements(&r["steps"]).len()),
            None => status.to_string(),
        },
    }
}

/// `strangler status`: one line per route with the last minute's figures, then why any rollout
/// stopped and which new pools are down.
pub fn status(answer: &Value) -> String {
    let routes = elements(&answer["routes"]);
    let header = ["ROUTE", "WEIGHT", "RPS L/N", "5XX% L/N", "P99 MS L/N", "MISMATCH", "ROLLOUT"];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_string)];
    let mut notes = Vec::new();
    for r in routes {
        let name = r["name"].as_str().unwrap_or("?").to_string();
        let live = &r["live"];
        rows.push([
            name.clone(),
            format!("{}%", percent(&r["weight"])),
            pair(live, "rps", 1, ""),
            pair(live, "error_rate", 1, ""),
            pair(live, "p99_ms", 1, ""),
            num(&live["mismatch_rate"], 1, "%"),
            rollout_cell(&r["rollout"]),
        ]);
        if let Some(reason) = r["rollout"]["reason"].as_str() {
            notes.push(format!("{name}: rollout {}: {reason}", r["rollout"]["status"].as_str().unwrap_or("?")));
        }
        if let Some(err) = r["rollout"]["error"].as_str() {
            notes.push(format!("{name}: rollout cannot change the weight: {err}"));
        }
        if r["new_pool_down"].as_bool() == Some(true) {
            notes.push(format!("{name}: every address of the new pool is down; all traffic goes to legacy"));
        }
    }
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if routes.is_empty() {
        let _ = writeln!(out, "(no routes)");
    }
    if !notes.is_empty() {
        let _ = writeln!(out);
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    let _ = writeln!(out, "(live figures over the last {} s)", answer["window_seconds"].as_u64().unwrap_or(60));
    out
}

/// A percentage as people write it: `25`, `12.5`.
fn percent(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Some(f) => f.to_string(),
        None => "?".to_string(),
    }
}

/// `strangler weight ROUTE PERCENT`.
pub fn weight(answer: &Value) -> String {
    let mut out = format!(
        "{}: weight {}% -> {}% (written to {})\n",
        answer["route"].as_str().unwrap_or("?"),
        percent(&answer["old"]),
        percent(&answer["weight"]),
        answer["persisted"].as_str().unwrap_or("the config file"),
    );
    if answer["rollout_paused"].as_bool() == Some(true) {
        out.push_str("its rollout is paused: `strangler rollout ROUTE resume` hands the route back to it\n");
    }
    out
}

/// `strangler reload`.
pub fn reload(answer: &Value) -> String {
    let weights: Vec<String> = answer["weights"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}%", percent(v))).collect())
        .unwrap_or_default();
    format!("reloaded: {}\n", weights.join(" "))
}

/// `strangler rollout ROUTE ACTION`.
pub fn rollout(answer: &Value) -> String {
    let r = &answer["rollout"];
    let mut out = format!(
        "{}: rollout {} at step {} of {} ({}%)\n",
        answer["route"].as_str().unwrap_or("?"),
        r["status"].as_str().unwrap_or("?"),
        r["step"],
        elements(&r["steps"]).len(),
        percent(&r["step_weight"]),
    );
    if let Some(reason) = r["reason"].as_str() {
        let _ = writeln!(out, "  {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_mismatch_is_a_readable_side_by_side() {
        let answer = json!({"route": "orders", "diffs": [{
            "at": "2026-11-22T10:00:00.000Z", "method": "GET", "path": "/orders/7", "served_by": "legacy",
            "legacy": {"status": 200, "duration_ms": 3.12}, "new": {"status": 404, "duration_ms": 1.0},
            "differences": [
                {"where": "status", "legacy": 200, "new": 404},
                {"where": "json:$.total", "legacy": 15, "new": null},
                {"where": "json:$.amount", "new": "15"},
                {"where": "body", "legacy": "x".repeat(100), "new": "y", "offset": 12},
            ],
            "truncated": false,
        }]});
        let text = diffs(&answer);
        assert!(text.contains("GET /orders/7  (served by legacy)"), "{text}");
        assert!(text.contains("legacy: 200 in 3.1 ms   new: 404 in 1.0 ms"), "{text}");
        let row = |w: &str| text.lines().find(|l| l.trim_start().starts_with(w)).unwrap_or_default().to_string();
        let words = |w: &str| row(w).split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words("json:$.total"), ["json:$.total", "15", "null"], "{text}");
        assert_eq!(words("json:$.amount"), ["json:$.amount", "(absent)", "\"15\""], "{text}");
        assert!(row("body @12").contains('…'), "{text}");
        assert_eq!(diffs(&json!({"route": "r", "diffs": []})), "route r: no mismatches recorded\n");
        let noise = json!({"route": "r", "diffs": [], "noise": [{"field": "json:$.at", "seen": 4}]});
        assert!(diffs(&noise).starts_with("route r: noise learned and ignored: json:$.at (seen 4)\n"));
    }
}
