//! Runtime control through the admin API and the CLI: weights that are served at once, written to
//! the file (and only the weight), kept across restarts; all-or-nothing failures; auth.

mod common;

use common::*;
use strangler::api::{ErrorBody, Routes, WeightChanged};

/// A route with comments and formatting an operator would not want rewritten.
fn body(legacy: &MockUpstream, new: &MockUpstream, weight: &str) -> String {
    format!(
        "# pools\n{}# the orders migration: ramp carefully\n[[routes]]\nname   = \"orders\"      # aligned on purpose\n\
         path_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = {weight}   # percent on new\n\n\
         [[routes]]\nname = \"users\"\npath_prefix = \"/users\"\nlegacy = \"legacy\"\nnew = \"new\"\n",
        pools(legacy, new)
    )
}

/// How many of `n` requests to `/orders` the new side answered.
async fn served_by_new(s: &Strangler, n: usize) -> usize {
    let c = client();
    let mut new = 0;
    for _ in 0..n {
        let text = c.get(s.url("/orders/1")).send().await.expect("send").text().await.expect("body");
        new += usize::from(text == "new");
    }
    new
}

/// The status and the typed answer: the change on 200, the API's error otherwise.
async fn put_weight(
    s: &Strangler,
    route: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, Result<WeightChanged, ErrorBody>) {
    let mut req = client()
        .put(s.admin_url(&format!("/api/routes/{route}/weight")))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("put");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    fn typed<T: serde::de::DeserializeOwned>(status: u16, text: &str) -> T {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{status} with an answer of another shape ({e}): {text}"))
    }
    let answer = if status == 200 { Ok(typed(status, &text)) } else { Err(typed(status, &text)) };
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weight_set_by_the_api_is_served_written_alone_and_survives_a_restart() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let mut s = Strangler::start(&body(&legacy, &new, "0")).await;
    let before = std::fs::read_to_string(&s.config).expect("read");
    assert_eq!(served_by_new(&s, 20).await, 0);

    let (status, answer) = put_weight(&s, "orders", r#"{"percent": 100}"#, None).await;
    let answer = answer.unwrap();
    assert_eq!(status, 200);
    assert_eq!((answer.old, answer.weight), (0.0, 100.0));
    assert_eq!(served_by_new(&s, 20).await, 20, "served at once");

    let after = std::fs::read_to_string(&s.config).expect("read");
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed, vec![("weight = 0   # percent on new", "weight = 100   # percent on new")]);
    assert_eq!(before.lines().count(), after.lines().count());

    // Our own write is not a foreign change: the watcher does not reload it. An edit by hand
    // made after it is, and the watcher takes events in order: once the edit's reload is
    // counted, a reload of our write would have been counted before it.
    std::fs::write(&s.config, format!("{after}# edited by hand\n")).expect("edit");
    s.wait_metric(RELOAD_OK, 1.0).await;
    assert_eq!(s.metric(RELOAD_OK).await, Some(1.0), "our own write was reloaded as a foreign change");
    let log = s.log();
    assert!(
        log.lines().any(|l| l.contains("weight set") && l.contains("route=\"orders\"") && l.contains("new=100")),
        "the mutation is logged with what changed:\n{log}"
    );
    assert!(log.contains("peer=\"127.0.0.1:"), "the mutation is logged with who:\n{log}");

    s.restart().await;
    assert_eq!(s.route("orders").await.weight, 100.0);
    assert_eq!(served_by_new(&s, 10).await, 10, "the weight survives a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_calls_get_a_4xx_and_change_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let s = Strangler::start(&body(&legacy, &new, "10")).await;
    let before = std::fs::read_to_string(&s.config).expect("read");

    for (route, payload, want, words) in [
        ("orders", "{percent: 5}", 400, "JSON"),
        ("orders", "", 400, "JSON"),
        ("orders", r#"{"percent": "50"}"#, 400, "JSON"),
        ("orders", r#"{"percent": 50, "extra": 1}"#, 400, "extra"),
        ("orders", r#"{"percent": 101}"#, 400, "0 to 100"),
        ("orders", r#"{"percent": 12.345}"#, 400, "0.01"),
        ("payments", r#"{"percent": 5}"#, 404, "payments"),
    ] {
        let (status, answer) = put_weight(&s, route, payload, None).await;
        assert_eq!(status, want, "{payload}: {answer:?}");
        let error = answer.unwrap_err().error;
        assert!(error.contains(words), "{payload}: {error}");
    }
    let get = client().get(s.admin_url("/api/routes/orders/weight")).send().await.expect("get");
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "PUT");

    // A write that cannot happen (the operator made the file read-only) changes nothing.
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let (status, answer) = put_weight(&s, "orders", r#"{"percent": 50}"#, None).await;
    assert_eq!(status, 500, "{answer:?}");
    let error = answer.unwrap_err().error;
    assert!(error.contains("read-only"), "{error}");
    assert_eq!(s.route("orders").await.weight, 10.0, "not applied either");
    assert_eq!(std::fs::read_to_string(&s.config).expect("read"), before);
    let n = served_by_new(&s, 200).await;
    assert!((5..50).contains(&n), "still about 10% on new, not 50%: {n} of 200");
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_token_the_api_wants_it_and_compares_it_whole() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let opts = Options { admin: "token = \"s3cret\"".to_string(), ..Options::default() };
    let s = Strangler::start_with(opts, &body(&legacy, &new, "10")).await;

    for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
        let (status, answer) = put_weight(&s, "orders", r#"{"percent": 50}"#, token).await;
        assert_eq!(status, 401, "{token:?}: {answer:?}");
        assert!(answer.unwrap_err().error.contains("Bearer"));
    }
    let reload = client().post(s.admin_url("/api/reload")).send().await.expect("post");
    assert_eq!(reload.status(), 401);
    let read = client().get(s.admin_url("/api/routes")).send().await.expect("get");
    assert_eq!(read.status(), 401, "diffs and routes carry user data: the token guards reads too");
    let metrics = client().get(s.admin_url("/metrics")).send().await.expect("get");
    assert_eq!(metrics.status(), 200, "scrapers and probes need no token");
    assert_eq!(s.metric("strangler_route_weight_percent{route=\"orders\"}").await, Some(10.0));

    let (status, answer) = put_weight(&s, "orders", r#"{"percent": 50}"#, Some("s3cret")).await;
    assert_eq!(status, 200, "{answer:?}");
    assert_eq!(s.metric("strangler_route_weight_percent{route=\"orders\"}").await, Some(50.0));

    // The CLI reads the token from the same config.
    let (ok, out, err) = s.cli(&["weight", "users", "25"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("users: weight 0% -> 25%"), "{out}");
    let (ok, _, err) = s.cli(&["status", "--token", "nope"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("401"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_status_weight_reload_and_their_errors() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let s = Strangler::start(&body(&legacy, &new, "50")).await;
    served_by_new(&s, 40).await;

    let (ok, out, err) = s.cli(&["status"]);
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or_default();
    for col in ["ROUTE", "WEIGHT", "RPS L/N", "5XX% L/N", "P99 MS L/N", "MISMATCH", "ROLLOUT"] {
        assert!(header.contains(col), "{col} missing: {out}");
    }
    let orders = out.lines().find(|l| l.starts_with("orders")).unwrap_or_default();
    assert!(orders.contains("50%"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("users")), "{out}");

    let (ok, out, _) = s.cli(&["status", "--json"]);
    assert!(ok);
    let v: Routes = serde_json::from_str(&out).expect("--json prints the API's JSON");
    let live = &v.routes[0].live;
    assert_eq!(
        live.legacy.requests + live.new.requests,
        40,
        "live figures count every request of the last minute: {live:?}"
    );
    assert!(live.new.p99_ms.is_some_and(|p| p > 0.0), "{live:?}");
    assert_eq!(live.new.error_rate, Some(0.0));

    let (ok, out, err) = s.cli(&["weight", "orders", "12.5", "--json"]);
    assert!(ok, "{err}");
    let v: WeightChanged = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v.weight, 12.5);
    assert!(std::fs::read_to_string(&s.config).expect("read").contains("weight = 12.5   # percent on new"));

    for (args, words) in [
        (vec!["weight", "orders", "150"], "0 to 100"),
        (vec!["weight", "payments", "5"], "404"),
        (vec!["rollout", "orders", "pause"], "no [routes.rollout]"),
        (vec!["weight", "orders", "5", "--admin", "http://127.0.0.1:1"], "cannot reach the admin API"),
    ] {
        let (ok, out, err) = s.cli(&args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err}");
        assert!(err.starts_with("error: ") && err.contains(words), "{args:?}: {err}");
    }

    // reload: a broken file is refused with the reason, the running config stays.
    let good = std::fs::read_to_string(&s.config).expect("read");
    std::fs::write(&s.config, good.replace("weight = 12.5", "weight = 300")).expect("write");
    let (ok, _, err) = s.cli(&["reload"]);
    assert!(!ok);
    assert!(err.contains("422") && err.contains("routes[0].weight"), "{err}");
    assert_eq!(s.route("orders").await.weight, 12.5);
    // Until a good file lands, status and the API say the file on disk is not what serves.
    let routes: Routes = s.api("/routes").await;
    let refused = routes.refused_reload.expect("the refused reload is shown");
    assert_eq!(refused.trigger, "admin API");
    let p = refused.problems.iter().find(|p| p.key == "routes[0].weight").expect("the weight's problem");
    assert_eq!(p.value.as_deref(), Some("300"));
    let (ok, out, _) = s.cli(&["status"]);
    assert!(ok);
    assert!(
        out.contains(&format!("the reload of {} at {} (admin API) was refused", refused.file, refused.at)),
        "{out}"
    );
    assert!(out.contains("routes[0].weight = 300: must be a percentage"), "{out}");
    // A weight already set writes nothing, and says so: the broken file stays as it is.
    let on_disk = std::fs::read_to_string(&s.config).expect("read");
    let (ok, out, err) = s.cli(&["weight", "orders", "12.5"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "orders: weight already 12.5%: unchanged, nothing written");
    assert_eq!(std::fs::read_to_string(&s.config).expect("read"), on_disk);

    std::fs::write(&s.config, good.replace("weight = 12.5", "weight = 30")).expect("write");
    let (ok, out, err) = s.cli(&["reload"]);
    assert!(ok, "{err}");
    assert!(out.contains("orders=30"), "{out}");
    assert_eq!(s.route("orders").await.weight, 30.0);
    assert_eq!(s.api::<Routes>("/routes").await.refused_reload, None, "a good reload clears it");
    let (_, out, _) = s.cli(&["status"]);
    assert!(!out.contains("refused"), "{out}");
}
