//! Config validation: every rule rejects bad input with a message naming the file, the key, the
//! value and what would be valid; `strangler check` reports every problem at once.

mod common;

use std::path::Path;
use std::process::Command;

use strangler::config::{load_str, ConfigError};

const POOLS: &str =
    "[upstreams.legacy]\naddresses = [\"127.0.0.1:3000\"]\n[upstreams.new]\naddresses = [\"127.0.0.1:3001\"]\n";

fn route(extra: &str) -> String {
    format!("{POOLS}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n{extra}\n")
}

fn errors(text: &str) -> ConfigError {
    match load_str(text, Path::new("conf/test.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts one problem mentions `key` and each of `words`, and the rendered message names the file.
fn rejects(text: &str, key: &str, words: &[&str]) {
    let e = errors(text);
    let rendered = e.to_string();
    assert!(rendered.starts_with("conf/test.toml"), "no file name in: {rendered}");
    let line =
        rendered.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("no problem names {key:?}:\n{rendered}"));
    for w in words {
        assert!(line.contains(w), "{line:?} does not mention {w:?}");
    }
}

#[test]
fn a_valid_config_loads() {
    let cfg = load_str(&route("weight = 12.5\nsticky = { cookie = \"sid\" }"), Path::new("x.toml")).expect("valid");
    assert_eq!(cfg.routes[0].weight.hundredths(), 1250);
}

#[test]
fn unknown_keys_are_rejected_with_their_location() {
    let e = errors(&route("wieght = 10"));
    let p = &e.problems[0];
    assert!(p.message.contains("unknown field `wieght`"), "{p:?}");
    assert_eq!(p.location.map(|(l, _)| l), Some(9), "line of the typo");
    rejects("[server]\nlisten = [\"127.0.0.1:1\"]\nthreds = 2\n", "3:1", &["threds"]);
}

#[test]
fn duplicate_route_names() {
    let text = format!(
        "{}[[routes]]\nname = \"orders\"\npath_prefix = \"/b\"\nlegacy = \"legacy\"\nnew = \"new\"\n",
        route("path_prefix = \"/a\"")
    );
    rejects(&text, "routes[1].name", &["\"orders\"", "unique"]);
}

#[test]
fn unknown_upstream() {
    let text = format!("{POOLS}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"orders-new\"\n");
    rejects(&text, "routes[0].new", &["\"orders-new\"", "[upstreams.orders-new]", "legacy, new"]);
}

#[test]
fn empty_address_list() {
    rejects("[upstreams.a]\naddresses = []\n", "upstreams.a.addresses", &["at least one"]);
}

#[test]
fn unparsable_addresses() {
    rejects(
        "[upstreams.a]\naddresses = [\"localhost\"]\n",
        "upstreams.a.addresses[0]",
        &["\"localhost\"", "host:port"],
    );
    rejects("[upstreams.a]\naddresses = [\"127.0.0.1:99999\"]\n", "upstreams.a.addresses[0]", &["1 to 65535"]);
    rejects("[server]\nlisten = [\"8080\"]\n", "server.listen[0]", &["\"8080\"", "0.0.0.0:8080"]);
}

#[test]
fn weight_out_of_range() {
    rejects(&route("weight = 100.5"), "routes[0].weight", &["100.5", "0 to 100"]);
    rejects(&route("weight = -1"), "routes[0].weight", &["-1", "0 to 100"]);
}

#[test]
fn weight_with_more_than_two_decimals() {
    rejects(&route("weight = 12.345"), "routes[0].weight", &["12.345", "0.01"]);
}

#[test]
fn two_routes_with_the_same_hosts_and_prefix() {
    let text = format!(
        "{}[[routes]]\nname = \"orders-2\"\nhosts = [\"b.example.com\", \"a.example.com\"]\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n",
        route("hosts = [\"a.example.com\"]\npath_prefix = \"/orders\"")
    );
    rejects(&text, "routes[1].path_prefix", &["\"orders\"", "a.example.com"]);
    // Different hosts with the same prefix are fine.
    let ok = format!(
        "{}[[routes]]\nname = \"orders-2\"\nhosts = [\"b.example.com\"]\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n",
        route("hosts = [\"a.example.com\"]\npath_prefix = \"/orders\"")
    );
    assert!(load_str(&ok, Path::new("x.toml")).is_ok());
}

#[test]
fn bad_durations() {
    rejects(
        "[upstreams.a]\naddresses = [\"127.0.0.1:1\"]\nread_timeout = \"30 parsecs\"\n",
        "upstreams.a.read_timeout",
        &["\"30 parsecs\"", "\"250ms\""],
    );
    rejects("[server]\ngrace_period = \"0s\"\n", "server.grace_period", &["greater than zero"]);
}

#[test]
fn shadow_threads_are_bounded_and_default_to_the_workers() {
    rejects("[server]\nshadow_threads = 257\n", "server.shadow_threads", &["257", "from 0 to 256"]);
    let shared = load_str(&route(""), Path::new("x.toml")).expect("valid");
    assert_eq!(shared.server.shadow_threads, 0);
    let own = load_str(&format!("[server]\nshadow_threads = 2\n{}", route("")), Path::new("x.toml")).expect("valid");
    assert_eq!(own.server.shadow_threads, 2);
}

#[test]
fn shadow_and_compare_settings() {
    let cfg = load_str(
        &route(
            "[routes.shadow]\nsample = 12.5\nmethods = [\"get\", \"POST\"]\nmax_body = \"64KiB\"\n\
             [routes.compare]\nignore_headers = [\"X-Request-Id\"]\nignore_json_paths = [\"$.items[*].etag\"]",
        ),
        Path::new("x.toml"),
    )
    .expect("valid");
    let s = cfg.routes[0].shadow.as_ref().expect("shadow");
    assert_eq!((s.sample.hundredths(), s.max_body, s.max_in_flight), (1250, 64 << 10, 256));
    assert_eq!(s.methods, [http::Method::GET, http::Method::POST]);
    assert_eq!(s.compare.ignore_headers[0].as_str(), "x-request-id");
    assert_eq!(s.compare.ignore_json_paths[0].to_string(), "$.items[*].etag");
    let patterns: Vec<&str> = s.compare.redaction.headers.iter().map(|h| h.as_str()).collect();
    assert_eq!(
        patterns,
        ["*token*", "*secret*", "*auth*", "*password*", "*api-key*", "*apikey*", "*cookie*", "*session*"],
        "the default patterns"
    );
    assert_eq!(s.compare.bounds.max_bytes, 4 << 20, "max_evidence defaults to 4 MiB");

    let shadow = |keys: &str| route(&format!("[routes.shadow]\n{keys}"));
    rejects(&shadow("target = \"both\""), "routes[0].shadow.target", &["\"both\"", "\"other\""]);
    rejects(&shadow("sample = 101"), "routes[0].shadow.sample", &["0 to 100"]);
    rejects(&shadow("methods = [\"G ET\"]"), "routes[0].shadow.methods[0]", &["HTTP method"]);
    rejects(&shadow("max_body = \"1 parsec\""), "routes[0].shadow.max_body", &["\"1MiB\""]);
    rejects(&shadow("max_in_flight = 0"), "routes[0].shadow.max_in_flight", &["at least 1"]);
    rejects(&shadow("max_in_flight = 100001"), "routes[0].shadow.max_in_flight", &["from 1 to 100000"]);
    rejects(&shadow("timeout = \"soon\""), "routes[0].shadow.timeout", &["\"30s\""]);
    rejects(&shadow("mirror = true"), "mirror", &["unknown field"]);
    rejects(
        &route("[routes.shadow]\n[routes.compare]\nignore_json_paths = [\"meta.at\"]"),
        "routes[0].compare.ignore_json_paths[0]",
        &["\"meta.at\"", "start with '$'"],
    );
    rejects(&route("[routes.compare]\nkeep_diffs = 5"), "routes[0].compare", &["[routes[0].shadow]"]);
    let compare = |line: &str| route(&format!("[routes.shadow]\n[routes.compare]\n{line}"));
    rejects(&compare("max_evidence = \"4KiB\""), "routes[0].compare.max_evidence", &["\"4KiB\"", "at least 64KiB"]);
    rejects(&compare("max_evidence = \"lots\""), "routes[0].compare.max_evidence", &["\"lots\""]);
    rejects(&compare("noise_max_age = \"forever\""), "routes[0].compare.noise_max_age", &["\"forever\""]);
    rejects("[log]\ndiffs_file = \"/nonexistent/dir/diffs.jsonl\"\n", "log.diffs_file", &["not a directory"]);
}

#[test]
fn other_rules() {
    rejects(&route("sticky = \"session\""), "routes[0].sticky", &["cookie", "client_ip"]);
    rejects(&route("hosts = [\"api.example.com/orders\"]"), "routes[0].hosts[0]", &["*.example.com"]);
    rejects(&route("path_prefix = \"orders\""), "routes[0].path_prefix", &["start with '/'"]);
    rejects(&route("override = { header = \"x t\" }"), "routes[0].override.header", &["header name"]);
    for taken in
        ["x-strangler-shadow", "X-Strangler-Side", "connection", "transfer-encoding", "x-forwarded-for", "host"]
    {
        let text = route(&format!("override = {{ header = \"{taken}\" }}"));
        rejects(&text, "routes[0].override.header", &["strangler sets or the connection owns"]);
    }
    rejects(
        &format!("{POOLS}[[routes]]\nname = \"Orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n"),
        "routes[0].name",
        &["[a-z0-9-]+"],
    );
    rejects("[admin]\nlisten = \"0.0.0.0:9090\"\n", "admin.token", &["loopback", "STRANGLER_ADMIN_TOKEN"]);
    rejects("[log]\nformat = \"xml\"\n", "log.format", &["\"xml\"", "\"json\""]);
    rejects("[server]\nca_file = \"/nonexistent/ca.pem\"\n", "server.ca_file", &["/nonexistent/ca.pem", "PEM"]);
    rejects(
        &format!("[server.limits]\nmax_header_bytes = \"1MiB\"\nmax_pending_header_bytes = \"512KiB\"\n{}", route("")),
        "server.limits.max_pending_header_bytes",
        &["\"512KiB\"", "at least max_header_bytes (1MiB)"],
    );
}

/// The pending-header budget defaults to 4 MiB, or to max_header_bytes when that is larger, so
/// raising one limit never makes the other refuse the config.
#[test]
fn the_pending_header_budget_follows_a_larger_header_limit() {
    let limits = |extra: &str| {
        load_str(&format!("[server.limits]\n{extra}\n{}", route("")), Path::new("x.toml")).expect("valid").limits
    };
    assert_eq!(limits("").max_pending_header_bytes, 4 << 20);
    assert_eq!(limits("max_header_bytes = \"16MiB\"").max_pending_header_bytes, 16 << 20);
    assert_eq!(limits("max_pending_header_bytes = \"64KiB\"").max_pending_header_bytes, 64 << 10);
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, format!("{POOLS}[[routes]]\nname = \"a\"\nlegacy = \"nope\"\nnew = \"new\"\nweight = 101\n"))
        .expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("run check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: routes[0].legacy = \"nope\""), "{err}");
    assert!(err.contains("bad.toml: routes[0].weight = 101"), "{err}");
    assert!(err.contains("2 problem(s)"), "{err}");
}

#[test]
fn check_lists_unknown_keys_mistyped_values_and_invalid_ones_in_one_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = format!(
        "{POOLS}[[routes]]\nname = \"items\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 150\ncolour = [\n  \"blue\",\n]\n\
         sticky = 5\n[routes.shadw]\nsample = 100\n[routes.compare]\nignore_headers = [\"date\"]\n[log]\nlevel = 5\n"
    );
    std::fs::write(&path, &text).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("run check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // Each where it is in the file: lines after a set-aside one keep their numbers.
    for said in [
        "bad.toml:10:1: routes[0].colour: unknown field `colour`",
        "bad.toml:14:9: routes[0].shadw: unknown field `shadw`",
        "bad.toml:19:9: log.level = 5: invalid type",
        "bad.toml: routes[0].weight = 150: must be a percentage from 0 to 100",
        "bad.toml: routes[0].sticky = 5: must be",
        // What the misspelt section leaves: a compare section with no shadow to compare.
        "bad.toml: routes[0].compare",
    ] {
        assert!(err.contains(said), "{said:?} missing:\n{err}");
    }
    assert!(err.contains("6 problem(s)"), "{err}");
    // The compare section after the misspelt one was read, not swallowed with it: a valid
    // file with only the shadow section fixed loads.
    let fixed = text.replace("weight = 150", "weight = 10").replace("colour = [\n  \"blue\",\n]\n", "");
    let fixed = fixed.replace("sticky = 5\n", "").replace("shadw", "shadow").replace("level = 5", "level = \"info\"");
    load_str(&fixed, Path::new("x.toml")).expect("the fixed file loads");
}

#[test]
fn the_mismatch_gate_is_on_by_default_for_a_shadowed_route_and_check_warns_when_it_is_off() {
    let shadowed = |gate: &str| route(&format!("[routes.shadow]\nsample = 10\n[routes.rollout]\n{gate}"));
    let on = load_str(&shadowed(""), Path::new("x.toml")).expect("valid");
    let ro = on.routes[0].rollout.as_ref().expect("rollout");
    assert_eq!((ro.max_mismatch_rate, ro.min_comparisons), (Some(1.0), 100));
    assert!(on.warnings().is_empty());
    let plain = load_str(&route("[routes.rollout]"), Path::new("x.toml")).expect("valid");
    assert_eq!(plain.routes[0].rollout.as_ref().expect("rollout").max_mismatch_rate, None, "nothing to compare");
    rejects(&shadowed("max_mismatch_rate = \"never\""), "routes[0].rollout.max_mismatch_rate", &["\"off\""]);
    rejects(&shadowed("min_comparisons = 0"), "routes[0].rollout.min_comparisons", &["at least 1"]);
    rejects(&shadowed("max_latency_added = \"soon\""), "routes[0].rollout.max_latency_added", &["soon"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("off.toml");
    std::fs::write(&path, shadowed("max_mismatch_rate = \"off\"")).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("run check");
    assert!(out.status.success(), "a warning is not a failure");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("warning: ") && said.contains("routes[0].rollout.max_mismatch_rate = \"off\""), "{said}");
}

#[test]
fn check_probe_names_every_address_that_does_not_answer() {
    let live = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let live = live.local_addr().expect("addr");
    // A port nothing listens on: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("addr");
    let dead_etcd = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("probe.toml");
    let config = |new: std::net::SocketAddr, cluster: &str| {
        format!(
            "{cluster}[upstreams.legacy]\naddresses = [\"{live}\"]\n[upstreams.new]\naddresses = [\"{new}\"]\n\
             [[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n"
        )
    };
    let check = |text: String| {
        std::fs::write(&path, text).expect("write");
        let out = Command::new(common::bin()).args(["check", "--probe", "-c"]).arg(&path).output().expect("run check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, out, err) = check(config(dead, ""));
    assert_eq!(code, Some(1), "a dead port fails the probe:\n{out}{err}");
    assert!(err.contains(&format!("probe upstream new {dead}: does not answer")), "{err}");
    assert!(out.contains(&format!("probe upstream legacy {live}: answers")), "{out}");
    assert!(err.contains("1 of 2 address(es) do not answer"), "{err}");

    let (code, out, err) = check(config(live, ""));
    assert_eq!(code, Some(0), "every address answers:\n{out}{err}");

    let cluster = format!("[cluster]\netcd = [\"http://{dead_etcd}\"]\n");
    let (code, _, err) = check(config(live, &cluster));
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("probe etcd http://{dead_etcd}: does not answer")), "{err}");
}

/// The README's first-hour config, the block a newcomer copies: it must pass `check` as it is,
/// with no warning.
#[test]
fn the_readmes_first_hour_config_passes_check() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let after = readme.split("<!-- first-hour-config").nth(1).expect("the first-hour marker in the README");
    let block = after.split("```toml\n").nth(1).and_then(|b| b.split("\n```").next()).expect("a toml block after it");
    for section in ["[server]", "[admin]", "[upstreams.legacy]", "[upstreams.new]", "[[routes]]", "[routes.shadow]"] {
        assert!(block.contains(section), "the snippet is complete: {section} missing");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("strangler.toml");
    std::fs::write(&path, block).expect("write");
    let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("run check");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the README's config fails check:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("ok, 1 route(s)") && !said.contains("warning"), "{said}");
    // Uncommented, the rollout it suggests is valid too.
    let rollout = block.replace("# [routes.rollout]", "[routes.rollout]").replace("# steps", "steps");
    let rollout = rollout.replace("# hold", "hold").replace("# max_latency_added", "max_latency_added");
    load_str(&rollout, Path::new("x.toml")).expect("the suggested rollout is valid");
    assert!(rollout.contains("\n[routes.rollout]\nsteps"), "{rollout}");
}

#[test]
fn every_shipped_config_passes_check() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut seen = 0;
    for entry in std::fs::read_dir(conf).expect("conf/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(common::bin()).args(["check", "-c"]).arg(&path).output().expect("run check");
            assert!(out.status.success(), "{} fails check:\n{}", path.display(), String::from_utf8_lossy(&out.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected conf/strangler.toml and conf/demo.toml");
}

#[test]
fn rollout_failover_and_health_rules() {
    let ok = load_str(
        &route("failover = true\n[routes.rollout]\nsteps = [5, 25.5, 100]\nhold = \"10m\"\non_failure = \"hold\""),
        Path::new("x.toml"),
    )
    .expect("valid");
    let r = &ok.routes[0];
    assert!(r.failover);
    let ro = r.rollout.as_ref().expect("rollout");
    assert_eq!(ro.steps.iter().map(|s| s.hundredths()).collect::<Vec<_>>(), [500, 2550, 10_000]);
    assert_eq!(ro.hold, std::time::Duration::from_secs(600));
    assert_eq!((ro.min_requests, ro.max_error_rate, ro.max_latency_ratio), (500, 1.0, 1.5));
    assert!(r.new.health.enabled, "health checks are on by default");

    let rollout = |s: &str| route(&format!("[routes.rollout]\n{s}"));
    rejects(&rollout("steps = [10, 5]"), "routes[0].rollout.steps[1]", &["increase"]);
    rejects(&rollout("steps = [0, 5]"), "routes[0].rollout.steps[0]", &["above 0"]);
    rejects(&rollout("steps = [1.005]"), "routes[0].rollout.steps[0]", &["0.01"]);
    rejects(&rollout("steps = []"), "routes[0].rollout.steps", &["at least one"]);
    rejects(&rollout("hold = \"soon\""), "routes[0].rollout.hold", &["soon"]);
    rejects(&rollout("on_failure = \"retry\""), "routes[0].rollout.on_failure", &["rollback", "hold"]);
    rejects(&rollout("max_error_rate = 120"), "routes[0].rollout.max_error_rate", &["0 to 100"]);
    rejects(&rollout("max_latency_ratio = 0"), "routes[0].rollout.max_latency_ratio", &["positive"]);
    rejects(&rollout("max_mismatch_rate = 1"), "routes[0].rollout.max_mismatch_rate", &["[routes.shadow]"]);
    rejects(&route("failover = \"yes\""), "routes[0].failover", &["bool"]);

    let health = |s: &str| {
        format!(
            "{POOLS}[upstreams.legacy.health]\n{s}\n[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n"
        )
    };
    rejects(&health("path = \"healthz\""), "upstreams.legacy.health.path", &["/healthz"]);
    rejects(&health("fails = 0"), "upstreams.legacy.health.fails", &["at least 1"]);
    rejects(&health("interval = \"0s\""), "upstreams.legacy.health.interval", &["greater than zero"]);
    let off = load_str(&health("enabled = false"), Path::new("x.toml")).expect("valid");
    assert!(!off.routes[0].legacy.health.enabled);
}

/// An array, inline table or multi-line string left open, or a string ended by a backslash, is
/// reported by the parser where it gave up, lines below; the problem names the key whose value
/// opened it, at its line.
#[test]
fn a_value_left_open_is_blamed_on_its_key() {
    for (value, shown) in
        [("[", "= ["), ("{ cookie = \"sid\"", "inline table"), ("\"\"\"", "= \"\"\""), ("\"\\", "escape")]
    {
        let text = route(&format!("sticky = {value}\nweight = 10\nfailover = true"));
        let e = errors(&text);
        let rendered = e.to_string();
        assert!(rendered.contains("routes[0].sticky"), "{value}: {rendered}");
        assert!(rendered.contains(shown), "{value}: {rendered}");
        let line = text.lines().position(|l| l.starts_with("sticky")).unwrap() + 1;
        assert_eq!(e.problems[0].location.map(|l| l.0), Some(line), "{value}: {rendered}");
    }
}

/// Every matcher is validated, and a bad one is named by its index and key.
#[test]
fn matchers_are_validated_by_key() {
    let m = |body: &str| route(&format!("[routes.shadow]\n[[routes.compare.matchers]]\n{body}"));
    assert!(load_str(&m("field = \"json:$.total\"\nkind = \"tolerance\"\nrelative = 0.5"), Path::new("x.toml")).is_ok());
    assert!(
        load_str(&m("field = \"header:x-id\"\nkind = \"same_shape\"\npattern = \"^[0-9]+$\""), Path::new("x")).is_ok()
    );
    rejects(&m("field = \"json:total\"\nkind = \"ignore\""), "routes[0].compare.matchers[0].field", &["json:$.path"]);
    rejects(&m("field = \"json:$.a\"\nkind = \"fuzzy\""), "routes[0].compare.matchers[0].kind", &["\"tolerance\""]);
    rejects(&m("field = \"json:$.a\"\nkind = \"tolerance\""), "routes[0].compare.matchers[0].kind", &["absolute"]);
    rejects(&m("field = \"json:$.a\"\nkind = \"tolerance\"\nabsolute = -1"), "matchers[0].absolute", &["from 0"]);
    rejects(&m("field = \"json:$.a\"\nkind = \"same_shape\""), "routes[0].compare.matchers[0].kind", &["pattern"]);
    rejects(
        &m("field = \"json:$.a\"\nkind = \"same_shape\"\npattern = \"([a-z\""),
        "matchers[0].pattern",
        &["regular"],
    );
    rejects(&m("field = \"header:x-a\"\nkind = \"unordered\""), "matchers[0].kind", &["\"ignore\" or \"same_shape\""]);
    rejects(&m("field = \"json:$.a\"\nkind = \"present\"\nendpoint = \"orders\""), "matchers[0].endpoint", &["'/'"]);
    rejects(&m("field = \"status\"\nkind = \"ignore\""), "matchers[0].field", &["header:NAME"]);
}

#[test]
fn rollout_windows_and_freezes_are_checked_with_a_fix_for_each() {
    let with = |lines: &str| route(&format!("[routes.rollout]\n{lines}"));
    let ok = load_str(
        &with("windows = [\"Mon-Fri 09:00-17:00 Europe/Berlin\", \"Sat 10:00-12:00\"]\nfreeze = [\"2026-12-20/2027-01-04\"]"),
        Path::new("x.toml"),
    )
    .expect("valid");
    let schedule = &ok.routes[0].rollout.as_ref().expect("rollout").schedule;
    assert_eq!((schedule.windows.len(), schedule.freeze.len()), (2, 1));
    rejects(
        &with("windows = [\"Mon-Fri 09:00-17:00 Europe/Berlim\"]"),
        "routes[0].rollout.windows[0]",
        &["Europe/Berlin", "IANA"],
    );
    rejects(&with("windows = [\"weekdays 9-5\"]"), "routes[0].rollout.windows[0]", &["not a day"]);
    rejects(&with("freeze = [\"2027-01-04/2026-12-20\"]"), "routes[0].rollout.freeze[0]", &["ends before it begins"]);
}
