//! A fleet on a real etcd (Debian's, on loopback, temporary data): instances of the real binary
//! sharing one routing document, changed by compare-and-swap, serving through etcd's absence.

mod common;
#[path = "common/etcd.rs"]
mod etcd;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use etcd::Etcd;
use strangler::api::{ClusterView, WeightChanged};

/// Two routes on the mocks: `orders` sticky by `x-user`, `users` random.
fn routes(legacy: &MockUpstream, new: &MockUpstream, orders: f64, users: f64) -> String {
    format!(
        "# the fleet's routes\n{}[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\n\
         weight = {orders} # ramping\nsticky = {{ header = \"x-user\" }}\n\
         [[routes]]\nname = \"users\"\npath_prefix = \"/users\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = {users}\n",
        pools(legacy, new)
    )
}

/// `strangler cluster push` of `routing` with a throw-away instance config.
fn push(etcd: &Etcd, routing: &str) -> String {
    let (ok, said) = push_with(etcd, routing, &[]);
    assert!(ok, "cluster push failed: {said}");
    said
}

/// The same with `env` set: whether it succeeded, and what it said.
fn push_with(etcd: &Etcd, routing: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("dir");
    let (config, file) = (dir.path().join("instance.toml"), dir.path().join("routes.toml"));
    std::fs::write(&config, etcd.section("pusher")).expect("config");
    std::fs::write(&file, routing).expect("routes");
    let out = std::process::Command::new(bin())
        .args(["cluster", "push"])
        .arg(&file)
        .arg("-c")
        .arg(&config)
        .env_remove("STRANGLER_ETCD_USER")
        .env_remove("STRANGLER_ETCD_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("cluster push");
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

async fn instance(etcd: &Etcd, name: &str) -> Strangler {
    Strangler::start(&etcd.section(name)).await
}

async fn cluster(s: &Strangler) -> ClusterView {
    s.api("/cluster").await
}

async fn put_weight(s: &Strangler, route: &str, percent: f64) -> (u16, String) {
    let resp = client()
        .put(s.admin_url(&format!("/api/v1/routes/{route}/weight")))
        .header("content-type", "application/json")
        .body(format!("{{\"percent\": {percent}}}"))
        .send()
        .await
        .expect("PUT weight");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

/// Wait until `check` holds, or fail with `what` and the last state.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return start.elapsed(),
            Err(last) => assert!(start.elapsed() < Duration::from_secs(20), "never {what}: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn weight_is(s: &Strangler, route: &str, want: f64) -> Result<(), String> {
    let got = s.route(route).await.weight;
    (got == want).then_some(()).ok_or(format!("{route} at {got}% on the instance on port {}", s.port))
}

/// The side each of 100 sticky users lands on through `s`.
async fn sides(s: &Strangler) -> Vec<String> {
    let c = client();
    let mut out = Vec::new();
    for u in 0..100 {
        let resp = c.get(s.url("/orders/1")).header("x-user", format!("user-{u}")).send().await.expect("request");
        out.push(resp.headers()["x-upstream"].to_str().expect("name").to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weight_set_through_one_instance_is_served_by_all_three_with_the_same_sticky_sides() {
    let etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    // A document the fleet cannot run is refused before it is uploaded, with every problem.
    let (ok, said) =
        push_with(&etcd, &(routes(&legacy, &new, 10.0, 0.0) + "[routes.rollout]\nsteps = [50, 10]\n"), &[]);
    assert!(!ok && said.contains("routes[1].rollout.steps") && said.contains("nothing was uploaded"), "{said}");
    let (ok, said) = push_with(&etcd, &routes(&legacy, &new, 10.0, 250.0), &[]);
    assert!(!ok && said.contains("routes[1].weight = 250"), "{said}");
    let (ok, text) = etcd.ctl(&["get", "/strangler/config"]);
    assert!(ok && text.is_empty(), "nothing in etcd after refused pushes: {text}");
    let said = push(&etcd, &routes(&legacy, &new, 10.0, 0.0));
    assert!(said.contains("pushed 2 route(s)"), "{said}");
    let (a, b, c) = (instance(&etcd, "a").await, instance(&etcd, "b").await, instance(&etcd, "c").await);
    let before = sides(&a).await;
    assert_eq!(sides(&b).await, before, "the same user, the same side on every instance");
    assert_eq!(sides(&c).await, before);
    let on_new = before.iter().filter(|s| *s == "new").count();
    assert!((2..=25).contains(&on_new), "about 10 of 100 users on new, got {on_new}");

    let (status, body) = put_weight(&a, "orders", 50.0).await;
    assert_eq!(status, 200, "{body}");
    let changed: WeightChanged = serde_json::from_str(&body).expect("WeightChanged");
    assert!(changed.persisted.starts_with("etcd /strangler/config revision"), "{changed:?}");
    for s in [&a, &b, &c] {
        eventually("at 50% everywhere", || weight_is(s, "orders", 50.0)).await;
    }
    let revision = cluster(&a).await.revision;
    for s in [&b, &c] {
        let view = cluster(s).await;
        assert_eq!((view.revision, view.connected, view.stale), (revision, true, false), "{view:?}");
    }
    // Every instance registered, each with the revision it serves.
    eventually("every instance registered at the new revision", || async {
        let f = cluster(&c).await;
        f.instances.iter().all(|i| i.revision == revision).then_some(()).ok_or(format!("{f:?}"))
    })
    .await;
    let fleet = cluster(&c).await;
    let names: Vec<&str> = fleet.instances.iter().map(|i| i.instance.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "{fleet:?}");
    assert_eq!(fleet.latest_revision, revision);
    for i in &fleet.instances {
        assert_eq!((i.revision, i.behind), (revision, false), "{i:?}");
        assert_eq!(i.version, env!("CARGO_PKG_VERSION"));
    }
    assert_eq!(fleet.instances[0].admin, format!("127.0.0.1:{}", a.admin_port));
    let (ok, out, err) = b.cli(&["status"]);
    assert!(ok, "{err}");
    let rev = revision.expect("a revision").to_string();
    for name in ["a", "b", "c"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{out}"));
        assert!(line.contains(&rev) && !line.contains("BEHIND"), "{line}");
    }
    let after = sides(&a).await;
    assert_eq!(sides(&b).await, after);
    assert_eq!(sides(&c).await, after);
    for (u, (was, now)) in before.iter().zip(&after).enumerate() {
        assert!(!(was == "new" && now == "legacy"), "user-{u} moved back to legacy when the weight went up");
    }

    // The document keeps its comments through the change, as the file does.
    let (ok, text) = etcd.ctl(&["get", "/strangler/config", "--print-value-only"]);
    assert!(ok, "{text}");
    assert!(text.contains("# the fleet's routes") && text.contains("weight = 50 # ramping"), "{text}");
    let (ok, out, err) = a.cli(&["cluster", "pull"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim_end(), text.trim_end(), "pull gives the document back");

    // Each instance served 200 orders requests (two rounds of 100 users): on any instance, the
    // fleet's totals sum them, with each instance's share.
    eventually("fleet totals of 600 orders requests", || async {
        let routes: strangler::api::Routes = c.api("/routes").await;
        let orders = routes.fleet_totals.iter().find(|f| f.route == "orders").ok_or("no orders totals")?;
        let total = orders.total.legacy.requests + orders.total.new.requests;
        let shares: Vec<(&str, u64)> =
            orders.instances.iter().map(|i| (i.instance.as_str(), i.legacy_requests + i.new_requests)).collect();
        (total == 600 && shares == [("a", 200), ("b", 200), ("c", 200)])
            .then_some(())
            .ok_or(format!("{total}: {shares:?}"))
    })
    .await;
    let routes: strangler::api::Routes = a.api("/routes").await;
    assert_eq!(routes.instances.len(), 3, "one line per instance: {:?}", routes.instances);
    let orders = routes.fleet_totals.iter().find(|f| f.route == "orders").expect("orders totals");
    let shares: Vec<String> =
        orders.instances.iter().map(|i| format!("{} {}/{}", i.instance, i.legacy_requests, i.new_requests)).collect();
    let (ok, out, err) = a.cli(&["status"]);
    assert!(ok, "{err}");
    let totals = out.split("fleet totals").nth(1).unwrap_or_else(|| panic!("no fleet totals:\n{out}"));
    let line = totals.lines().find(|l| l.trim_start().starts_with("orders")).expect("an orders line");
    assert!(line.contains(&shares.join(", ")), "{line} lacks {shares:?}");
    assert!(out.contains("rollouts are driven by "), "{out}");
}

/// Requests on every instance until dropped; failures counted.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl Load {
    fn start(instances: &[&Strangler]) -> Load {
        let (stop, sent, failed) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        for s in instances {
            for path in ["/orders/1", "/users/1"] {
                let (stop, sent, failed, url, c) = (stop.clone(), sent.clone(), failed.clone(), s.url(path), client());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let ok = c.get(&url).send().await.is_ok_and(|r| r.status() == 200);
                        sent.fetch_add(1, Ordering::Relaxed);
                        if !ok {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                });
            }
        }
        Load { stop, sent, failed }
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        (self.sent.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_etcd_away_instances_serve_refuse_changes_with_503_and_catch_up_when_it_is_back() {
    let mut etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(&etcd, &routes(&legacy, &new, 10.0, 20.0));
    let (a, b) = (instance(&etcd, "a").await, instance(&etcd, "b").await);
    let load = Load::start(&[&a, &b]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    etcd.stop();
    for s in [&a, &b] {
        eventually("disconnected", || async {
            let v = cluster(s).await;
            (!v.connected).then_some(()).ok_or(format!("{v:?}"))
        })
        .await;
    }
    assert_eq!(a.metric("strangler_cluster_connected").await, Some(0.0));
    // Nobody leads while etcd is away: no rollout moves.
    for s in [&a, &b] {
        assert!(!cluster(s).await.leads);
        assert_eq!(s.metric("strangler_cluster_leader").await, Some(0.0));
    }
    let (status, body) = put_weight(&a, "orders", 90.0).await;
    assert_eq!(status, 503, "{body}");
    let error: strangler::api::ErrorBody = serde_json::from_str(&body).expect("a JSON reason");
    assert!(error.error.contains("etcd"), "{error:?}");
    assert_eq!(a.route("orders").await.weight, 10.0, "nothing changed");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Back, and changed by another path meanwhile: every instance converges on it.
    etcd.start_again();
    push(&etcd, &routes(&legacy, &new, 70.0, 20.0));
    for s in [&a, &b] {
        eventually("at the pushed 70%", || weight_is(s, "orders", 70.0)).await;
        eventually("connected again", || async {
            let v = cluster(s).await;
            v.connected.then_some(()).ok_or(format!("{v:?}"))
        })
        .await;
    }
    assert_eq!(a.metric("strangler_cluster_connected").await, Some(1.0));
    the_leader(&[&a, &b]).await;
    let (sent, failed) = load.finish();
    assert!(sent > 200, "load ran: {sent} requests");
    assert_eq!(failed, 0, "no client request failed while etcd was away ({sent} sent)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_document_written_with_etcdctl_is_refused_everywhere_and_the_last_good_one_serves() {
    let etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(&etcd, &routes(&legacy, &new, 10.0, 0.0));
    let (mut a, b) = (instance(&etcd, "a").await, instance(&etcd, "b").await);
    let good = cluster(&a).await.revision.expect("a revision");

    let bad = routes(&legacy, &new, 150.0, 0.0);
    let (ok, out) = etcd.ctl(&["put", "/strangler/config", &bad]);
    assert!(ok, "{out}");
    for s in [&a, &b] {
        let view = eventually("the bad revision reported", || async {
            let v = cluster(s).await;
            v.rejected.is_some().then_some(()).ok_or(format!("{v:?}"))
        })
        .await;
        let _ = view;
        let v = cluster(s).await;
        let rejected = v.rejected.expect("rejected");
        assert!(rejected.revision > good);
        assert!(rejected.problems.iter().any(|p| p.contains("routes[0].weight") && p.contains("150")), "{rejected:?}");
        assert_eq!(v.revision, Some(good), "the last good revision keeps serving");
        assert_eq!(s.route("orders").await.weight, 10.0);
        assert!(s.metric_value("strangler_config_reloads_total{result=\"error\"}").await >= 1.0);
    }

    // Every instance is behind the revision etcd holds, and the fleet view says so.
    let fleet = cluster(&b).await;
    assert!(fleet.latest_revision > Some(good), "{fleet:?}");
    assert_eq!(fleet.instances.len(), 2);
    assert!(fleet.instances.iter().all(|i| i.behind && i.revision == Some(good)), "{fleet:?}");
    let (ok, out, err) = b.cli(&["status"]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("BEHIND").count(), 2, "{out}");
    assert!(out.contains("refused") && out.contains("routes[0].weight"), "{out}");

    // A restart while etcd holds the bad document starts on the cached good one, marked stale.
    a.restart().await;
    let v = cluster(&a).await;
    assert_eq!((v.revision, v.stale), (Some(good), true), "{v:?}");
    assert!(v.rejected.is_some(), "{v:?}");
    assert_eq!(a.route("orders").await.weight, 10.0);
    assert_eq!(a.metric("strangler_cluster_stale").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_racing_on_two_instances_all_land_and_none_is_lost() {
    let etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(&etcd, &routes(&legacy, &new, 0.0, 0.0));
    let (a, b) = (instance(&etcd, "a").await, instance(&etcd, "b").await);
    // Each round changes a different route on each instance at the same moment: with a blind
    // write one of the two would undo the other.
    for round in 1..=10 {
        let (orders, users) = (f64::from(round), f64::from(round) + 50.0);
        let ((s1, b1), (s2, b2)) = tokio::join!(put_weight(&a, "orders", orders), put_weight(&b, "users", users));
        assert_eq!((s1, s2), (200, 200), "round {round}: {b1} / {b2}");
        let (ok, text) = etcd.ctl(&["get", "/strangler/config", "--print-value-only"]);
        assert!(ok, "{text}");
        let table: toml::Table = text.parse().expect("TOML");
        let weights: Vec<f64> = table["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .map(|r| r["weight"].as_float().or_else(|| r["weight"].as_integer().map(|i| i as f64)).expect("weight"))
            .collect();
        assert_eq!(weights, [orders, users], "round {round}: both changes are in the document");
    }
    for s in [&a, &b] {
        eventually("both changes served", || async {
            weight_is(s, "orders", 10.0).await?;
            weight_is(s, "users", 60.0).await
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_starts_on_its_cache_while_etcd_is_away_and_refuses_to_start_without_one() {
    let mut etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(&etcd, &routes(&legacy, &new, 30.0, 0.0));
    let mut a = instance(&etcd, "a").await;
    let revision = cluster(&a).await.revision;
    etcd.stop();

    a.restart().await;
    let v = cluster(&a).await;
    assert_eq!((v.revision, v.stale, v.connected), (revision, true, false), "{v:?}");
    assert_eq!(a.route("orders").await.weight, 30.0);
    let resp = client().get(a.url("/orders/1")).send().await.expect("request");
    assert_eq!(resp.status(), 200, "serves the cached routes");

    // A new instance has no cache: it says why it cannot start.
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("strangler.toml");
    let text = Strangler::config_text(
        free_port(),
        free_port(),
        dir.path(),
        &Options::default(),
        "127.0.0.1",
        "",
        &etcd.section("fresh"),
    );
    std::fs::write(&config, text).expect("config");
    let out = std::process::Command::new(bin()).args(["run", "-c"]).arg(&config).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with nothing to serve: {err}");
    assert!(err.contains("unreachable") && err.contains("no cached routing document"), "{err}");

    // etcd back: the stale instance confirms and carries on.
    etcd.start_again();
    eventually("confirmed by etcd", || async {
        let v = cluster(&a).await;
        (v.connected && !v.stale).then_some(()).ok_or(format!("{v:?}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_three_etcd_members_killed_changes_nothing_for_serving_or_changes() {
    let mut etcd = Etcd::start_members(3);
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(&etcd, &routes(&legacy, &new, 10.0, 0.0));
    let (a, b) = (instance(&etcd, "a").await, instance(&etcd, "b").await);
    let load = Load::start(&[&a, &b]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The first member is the one both instances were most likely talking to.
    etcd.kill(0);
    for (round, weight) in [30.0, 40.0, 50.0].into_iter().enumerate() {
        let (status, body) = put_weight(if round % 2 == 0 { &a } else { &b }, "orders", weight).await;
        assert_eq!(status, 200, "a change with one member down: {body}");
        for s in [&a, &b] {
            eventually("the change everywhere", || weight_is(s, "orders", weight)).await;
        }
    }
    for s in [&a, &b] {
        let v = cluster(s).await;
        assert!(v.connected && v.rejected.is_none(), "{v:?}");
    }
    let (sent, failed) = load.finish();
    assert_eq!(failed, 0, "no client request failed ({sent} sent)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_auth_on_in_etcd_the_credentials_come_from_the_environment() {
    let etcd = Etcd::start();
    for args in [&["user", "add", "root:root-pw"][..], &["auth", "enable"][..]] {
        let (ok, out) = etcd.ctl(args);
        assert!(ok, "{args:?}: {out}");
    }
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    let routing = routes(&legacy, &new, 20.0, 0.0);

    let (ok, said) = push_with(&etcd, &routing, &[]);
    assert!(!ok, "a push without credentials is refused: {said}");
    let (ok, said) =
        push_with(&etcd, &routing, &[("STRANGLER_ETCD_USER", "root"), ("STRANGLER_ETCD_PASSWORD", "wrong")]);
    assert!(!ok && said.contains("etcd"), "{said}");
    let (ok, said) =
        push_with(&etcd, &routing, &[("STRANGLER_ETCD_USER", "root"), ("STRANGLER_ETCD_PASSWORD", "root-pw")]);
    assert!(ok, "{said}");

    let env = vec![
        ("STRANGLER_ETCD_USER".to_string(), "root".to_string()),
        ("STRANGLER_ETCD_PASSWORD".to_string(), "root-pw".to_string()),
    ];
    let s = Strangler::start_with(Options { env, ..Options::default() }, &etcd.section("a")).await;
    assert_eq!(s.route("orders").await.weight, 20.0);
    let (status, body) = put_weight(&s, "orders", 40.0).await;
    assert_eq!(status, 200, "{body}");
    let (ok, text) = etcd.ctl_as(Some("root:root-pw"), &["get", "/strangler/config", "--print-value-only"]);
    assert!(ok && text.contains("weight = 40"), "{text}");
    // One of the two without the other is a mistake, named by the check.
    let out = std::process::Command::new(bin())
        .args(["check", "-c"])
        .arg(&s.config)
        .env("STRANGLER_ETCD_USER", "root")
        .env_remove("STRANGLER_ETCD_PASSWORD")
        .output()
        .expect("check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("STRANGLER_ETCD_PASSWORD"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_tls_with_client_certificates_the_fleet_works_and_a_wrong_ca_is_refused() {
    let etcd = Etcd::start_tls();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(&etcd, &routes(&legacy, &new, 20.0, 0.0));
    let (a, b) = (instance(&etcd, "a").await, instance(&etcd, "b").await);
    assert_eq!(a.route("orders").await.weight, 20.0);
    let (status, body) = put_weight(&a, "orders", 60.0).await;
    assert_eq!(status, 200, "{body}");
    eventually("b at 60% over TLS", || weight_is(&b, "orders", 60.0)).await;
    the_leader(&[&a, &b]).await;

    // A CA that did not sign etcd's certificate: the push is refused, saying etcd is unreachable.
    let tls = etcd.tls().expect("tls");
    let dir = tempfile::tempdir().expect("dir");
    let (_, _, other_ca) = cert_files(dir.path(), "elsewhere", "other");
    let other = dir.path().join("other-ca.crt");
    std::fs::write(&other, other_ca).expect("ca");
    let section = etcd.section("pusher").replace(&tls.ca.display().to_string(), &other.display().to_string());
    let (config, file) = (dir.path().join("instance.toml"), dir.path().join("routes.toml"));
    std::fs::write(&config, section).expect("config");
    std::fs::write(&file, routes(&legacy, &new, 90.0, 0.0)).expect("routes");
    let out = std::process::Command::new(bin())
        .args(["cluster", "push"])
        .arg(&file)
        .arg("-c")
        .arg(&config)
        .output()
        .expect("push");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("unreachable"), "{said}");
    assert_eq!(a.route("orders").await.weight, 60.0, "nothing was pushed");

    // https:// without a CA, TLS files with http://, a certificate without its key: each named.
    let plain = etcd.section("x").replace("https://", "http://");
    let cases = [
        (etcd.section("x").lines().filter(|l| !l.starts_with("tls_")).collect::<Vec<_>>().join("\n"), "cluster.tls_ca"),
        (plain, "cluster.tls_ca"),
        (
            etcd.section("x").lines().filter(|l| !l.starts_with("tls_key")).collect::<Vec<_>>().join("\n"),
            "cluster.tls_cert",
        ),
    ];
    for (text, key) in cases {
        std::fs::write(&config, format!("{text}\n")).expect("config");
        let out = std::process::Command::new(bin()).args(["check", "-c"]).arg(&config).output().expect("check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(key), "{key}: {err}");
    }
}

/// The instance that leads the fleet's rollouts, among `all`, once exactly one does.
async fn the_leader(all: &[&Strangler]) -> usize {
    let found = std::cell::Cell::new(0);
    let found_ref = &found;
    eventually("exactly one leader", move || async move {
        let mut leading = Vec::new();
        for (i, s) in all.iter().enumerate() {
            if cluster(s).await.leads {
                leading.push(i);
            }
        }
        found_ref.set(leading.first().copied().unwrap_or_default());
        (leading.len() == 1).then_some(()).ok_or(format!("leading: {leading:?}"))
    })
    .await;
    found.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_leader_drives_a_rollout_on_the_fleets_figures_and_another_resumes_it_after_a_kill() {
    let etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    let rollout =
        "[routes.rollout]\nsteps = [10, 50, 100]\nhold = \"6s\"\nmin_requests = 20\nmax_latency_ratio = 1000\n";
    push(&etcd, &(routes(&legacy, &new, 10.0, 0.0) + rollout));
    // Every instance notifies the same receiver; only the leader has anything to tell.
    let hooks = MockUpstream::start("hooks").await;
    let notify = format!("[[notify]]\nurl = \"http://{}/\"\nevents = [\"fleet\", \"rollout\"]\n", hooks.address());
    let section = |name: &str| etcd.section(name) + "lease_ttl = \"2s\"\n" + &notify;
    let mut all = Vec::new();
    for name in ["a", "b", "c"] {
        all.push(Strangler::start(&section(name)).await);
    }
    let refs: Vec<&Strangler> = all.iter().collect();
    let first = the_leader(&refs).await;
    let leaders: f64 = {
        let mut sum = 0.0;
        for s in &all {
            sum += s.metric_value("strangler_cluster_leader").await;
        }
        sum
    };
    assert_eq!(leaders, 1.0, "strangler_cluster_leader is 1 on one instance only");
    for s in &all {
        eventually("users at the first step everywhere", || weight_is(s, "users", 10.0)).await;
    }

    // Traffic only through the two followers: the leader passes a step on the fleet's figures.
    let followers: Vec<&Strangler> = all.iter().enumerate().filter(|(i, _)| *i != first).map(|(_, s)| s).collect();
    let load = Load::start(&followers);
    let step2 = eventually("step 2 on the leader's figures", || async {
        let r = all[first].rollout("users").await;
        (r.step == Some(2)).then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
    let view = all[first].rollout("users").await;
    assert!(view.window.is_some(), "{view:?}");
    // The followers show the leader's progress.
    for s in &followers {
        eventually("followers show step 2", || async {
            let r = s.rollout("users").await;
            (r.step == Some(2)).then_some(()).ok_or(format!("{r:?}"))
        })
        .await;
        eventually("at 50% everywhere", || weight_is(s, "users", 50.0)).await;
    }
    assert!(step2 > Duration::from_secs(5), "the 6 s hold was kept: step 2 after {step2:?}");

    // SIGKILL the leader during step 2: another takes over within the lease's 2 s (and the
    // moment its key expires), on the same step and hold clock.
    let held_at_kill = followers[0].rollout("users").await.held_ms.expect("held");
    let mut all = all;
    let killed = all.remove(first);
    killed.signal("KILL");
    let killed_at = Instant::now();
    let refs: Vec<&Strangler> = all.iter().collect();
    let next = the_leader(&refs).await;
    let takeover = killed_at.elapsed();
    eprintln!("takeover after the kill: {takeover:?}");
    assert!(takeover < Duration::from_millis(3500), "took over in {takeover:?} (lease 2 s)");
    let resumed = all[next].rollout("users").await;
    assert_eq!(resumed.step, Some(2), "neither skipped nor repeated: {resumed:?}");
    let held = resumed.held_ms.expect("held");
    assert!(
        held >= held_at_kill + takeover.as_millis() as u64 - 200,
        "the hold clock kept running: {held} ms held, {held_at_kill} ms at the kill + {takeover:?}"
    );
    eventually("the new leader completes the rollout", || async {
        let r = all[next].rollout("users").await;
        (r.status == strangler::api::RolloutStatus::Complete).then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
    for s in &all {
        eventually("at 100% everywhere", || weight_is(s, "users", 100.0)).await;
    }
    let (sent, failed) = load.finish();
    assert!(sent > 200 && failed == 0, "{failed} of {sent} requests failed");

    // Exactly one controller acted on each step, over the whole run.
    let logs: String = [killed.log()].into_iter().chain(all.iter().map(|s| s.log())).collect();
    for step in ["rollout step 1 passed", "rollout step 2 passed", "rollout complete"] {
        assert_eq!(logs.matches(step).count(), 1, "{step:?} logged once in the fleet");
    }

    // The receiver heard each leader take over, and each step once.
    let told: Vec<serde_json::Value> =
        hooks.received().iter().map(|r| serde_json::from_slice(&r.body).expect("JSON")).collect();
    let events = |name: &str| told.iter().filter(|d| d["event"] == name).cloned().collect::<Vec<_>>();
    let leaders: Vec<String> = events("leader_changed")
        .iter()
        .map(|d| d["details"]["leader"].as_str().unwrap_or_default().to_string())
        .collect();
    let names = ["a", "b", "c"];
    let (first_name, next_name) = (names[first], all[next].api::<ClusterView>("/cluster").await.instance);
    assert_eq!(leaders, vec![format!("{first_name}"), next_name.clone()], "{told:#?}");
    assert_eq!(events("leader_changed")[1]["details"]["previous"], first_name, "{told:#?}");
    assert_eq!(events("step_passed").len(), 2, "each step told once in the fleet: {told:#?}");
    assert_eq!(events("completed").len(), 1, "{told:#?}");

    // The rollout taken out of the document: its progress leaves etcd too.
    let (ok, text) = etcd.ctl(&["get", "/strangler/rollout/users", "--print-value-only"]);
    assert!(ok && text.contains("\"complete\""), "{text}");
    push(&etcd, &routes(&legacy, &new, 10.0, 100.0));
    eventually("the progress deleted", || async {
        let (ok, text) = etcd.ctl(&["get", "/strangler/rollout/users"]);
        (ok && text.trim().is_empty()).then_some(()).ok_or(text)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cutover_report_pools_every_instances_evidence_and_a_reset_is_fleet_wide() {
    use strangler::api::Report;
    let etcd = Etcd::start();
    let total = |n: u32| move |_: &common::Received| (200, vec![], bytes::Bytes::from(format!("{{\"total\": {n}}}")));
    let legacy = MockUpstream::builder("legacy").reply(total(1)).start().await;
    let new = MockUpstream::builder("new").reply(total(2)).start().await;
    let routing = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\nsample = 100\n[routes.compare]\nnoise_sample = 0\nready_after = 5\n\
         ignore_headers = [\"date\", \"x-upstream\"]\n",
        pools(&legacy, &new)
    );
    push(&etcd, &routing);
    let (a, b) = (instance(&etcd, "a").await, instance(&etcd, "b").await);
    let c = client();
    let send = |s: &Strangler, n: usize| {
        let urls: Vec<String> = (0..n).map(|i| s.url(&format!("/orders/{i}"))).collect();
        let c = c.clone();
        async move {
            for url in urls {
                assert_eq!(c.get(&url).send().await.expect("request").status(), 200);
            }
        }
    };
    send(&a, 10).await;
    send(&b, 6).await;
    let compared = |r: &Report| r.endpoints.iter().map(|e| e.comparisons).sum::<u64>();
    eventually("the report on a pools a's 10 pairs and b's 6", || async {
        let r: Report = a.api("/routes/orders/report").await;
        (compared(&r) == 16 && r.pooled_from == ["a", "b"]).then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
    let r: Report = a.api("/routes/orders/report").await;
    let finding = &r.endpoints[0].findings[0];
    assert_eq!((finding.field.to_string().as_str(), finding.differing), ("json:$.total", 16), "{r:?}");
    assert_eq!(r.endpoints[0].verdict, strangler::api::Verdict::Differs);
    let alone: Report = a.api("/routes/orders/report?scope=instance").await;
    assert_eq!((compared(&alone), alone.pooled_from.len()), (10, 0), "{alone:?}");
    let (ok, out, err) = b.cli(&["report", "orders"]);
    assert!(ok && out.contains("pooled from 2: a, b"), "{out}{err}");

    // A reset through b empties the evidence on every instance; what comes after counts.
    let resp = c
        .post(b.admin_url("/api/v1/routes/orders/report/reset"))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("reset");
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    eventually("a's own evidence reset from its watch", || async {
        let r: Report = a.api("/routes/orders/report?scope=instance").await;
        (compared(&r) == 0).then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
    send(&b, 3).await;
    eventually("the fleet's report counts only what came after", || async {
        let r: Report = a.api("/routes/orders/report").await;
        (compared(&r) == 3).then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
}

/// What garbage looks like: random bytes, JSON of the wrong types, numbers far out of range,
/// deep nesting, and documents shaped like the real ones with values no file would pass.
fn garbage() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let huge = prop_oneof![
        Just(u64::MAX.to_string()),
        Just("1e308".to_string()),
        Just("-1".to_string()),
        Just("300000000000".to_string())
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        Just(Vec::new()),
        Just(b"{\"step\": \"seven\", \"steps\": {}, \"status\": 3}".to_vec()),
        Just(b"[1, 2, 3]".to_vec()),
        Just(b"null".to_vec()),
        (1usize..3000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        (huge.clone(), 0usize..20).prop_map(|(n, step)| format!(
            r#"{{"steps":[100,1000,10000],"step":{step},"step_started_ms":{n},"status":"running","reason":null}}"#
        ).into_bytes()),
        huge.clone().prop_map(|n| format!(
            r#"{{"reset_revision":0,"findings":{{"folded":0,"endpoints":{{"GET /x":{{"comparisons":{n},"mismatches":1,"noise_samples":1,
              "first_seen":{{"secs_since_epoch":{n},"nanos_since_epoch":0}},"last_seen":{{"secs_since_epoch":300000000000,"nanos_since_epoch":0}},
              "fields":{{"json:$.a":{{"id":99,"differ":1,"noise":0,"first_seen":null,"last_seen":null,"examples":[]}}}},
              "window":[{{"client":1,"at":{n},"varied":18446744073709551615}}]}}}}}}}}"#
        ).into_bytes()),
        huge.prop_map(|n| format!(
            r#"{{"boot":{n},"routes":{{"orders":{{"sides":[{{"requests":{n},"errors":{n},"latency":[[99999,{n}],[0,{n}]]}},{{"requests":1,"errors":2}}],"shadow_match":{n},"shadow_mismatch":1}}}}}}"#
        ).into_bytes()),
    ]
}

/// Garbage written to every key an instance reads from etcd, many times over: no panic in any
/// task, traffic served, the admin API answering, the bad documents refused and counted, and
/// the instance's own state (its routes, its rollout) kept.
#[test]
fn garbage_in_every_etcd_key_is_refused_and_nothing_panics() {
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime");
    let etcd = Etcd::start();
    let prefix = "/strangler";
    let (legacy, new, s, store) = rt.block_on(async {
        let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
        let routing = format!(
            "{}[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 1\n\
             [routes.shadow]\n[routes.compare]\nignore_headers = [\"date\", \"x-upstream\"]\n\
             [routes.rollout]\nsteps = [1, 10, 50, 100]\nhold = \"1h\"\n",
            pools(&legacy, &new)
        );
        push(&etcd, &routing);
        let s = instance(&etcd, "a").await;
        let store = etcd_client::Client::connect(etcd.endpoints(), None).await.expect("etcd client");
        (legacy, new, s, store)
    });
    let keys = [
        format!("{prefix}/rollout/orders"),
        format!("{prefix}/figures/ghost"),
        format!("{prefix}/findings/orders/ghost"),
        format!("{prefix}/instances/ghost"),
        format!("{prefix}/reset/orders"),
        format!("{prefix}/leader"),
        format!("{prefix}/config"),
    ];
    // A routing document that is valid TOML but routes nothing (an emptied key, a truncated
    // write) is refused like any other garbage: the routes keep serving.
    rt.block_on(async {
        let mut store = store.clone();
        for (i, empty) in ["", "# nothing here\n", "[upstreams]\n"].into_iter().enumerate() {
            store.put(format!("{prefix}/config"), empty, None).await.expect("put");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while s.log().matches("has no [[routes]]").count() <= i {
                assert!(std::time::Instant::now() < deadline, "{empty:?} was not refused:\n{}", s.log());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(client().get(s.url("/orders/1")).send().await.expect("proxy").status(), 200, "{empty:?}");
        }
    });
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    let docs = proptest::collection::vec(garbage(), keys.len());
    let result = runner.run(&docs, |docs| {
        rt.block_on(async {
            let mut store = store.clone();
            for (key, value) in keys.iter().zip(&docs) {
                store.put(key.as_str(), value.clone(), None).await.expect("put");
            }
            // What reads each key: the report (findings), the fleet view (instances), the
            // leader's ticks (rollout, figures) and the config watch, twice over.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let c = client();
            let report = c.get(s.admin_url("/api/v1/routes/orders/report")).send().await.expect("report");
            let status = report.status();
            let body = report.text().await.expect("the whole report");
            assert_eq!(status, 200, "the report after garbage: {body}");
            assert_eq!(c.get(s.admin_url("/api/v1/cluster")).send().await.expect("cluster").status(), 200);
            // The fleet's totals read every instance's figures.
            assert_eq!(c.get(s.admin_url("/api/v1/routes")).send().await.expect("routes").status(), 200);
            assert_eq!(c.get(s.admin_url("/readyz")).send().await.expect("readyz").status(), 200);
            assert_eq!(c.get(s.url("/orders/1")).send().await.expect("proxy").status(), 200, "traffic served");
        });
        Ok(())
    });
    result.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    rt.block_on(async {
        let text = reqwest::get(s.admin_url("/metrics")).await.expect("metrics").text().await.expect("text");
        let restarted: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("strangler_background_restarts_total{") && !l.ends_with(" 0"))
            .collect();
        assert!(restarted.is_empty(), "a background task panicked: {restarted:?}\n{}", s.log());
        let readyz = client().get(s.admin_url("/readyz")).send().await.expect("readyz").text().await.expect("body");
        assert_eq!(readyz, "ready\n", "no task restarted");
        for kind in ["rollout", "figures", "findings", "instances"] {
            let refused = s.metric_value(&format!("strangler_cluster_refused_total{{key=\"{kind}\"}}")).await;
            assert!(refused > 0.0, "no {kind} document was refused");
        }
        assert!(!s.log().contains("panicked"), "{}", s.log());
        // The instance's own state was kept: its route still at its weight.
        assert_eq!(s.route("orders").await.weight, 1.0);
        drop((legacy, new));
    });
}

/// The cache holds the routing document, override tokens included: it is written 0600 whatever
/// the umask, while a file without secrets (the rollout state, outside a fleet) follows the
/// umask when it is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_holding_secrets_are_0600_and_others_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(
        &etcd,
        &routes(&legacy, &new, 10.0, 0.0)
            .replace("weight = 0\n", "weight = 0\noverride = { header = \"x-qa\", token = \"qa-token-1\" }\n"),
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
    for umask in [0o022, 0o077] {
        let opts = Options { umask: Some(umask), ..Options::default() };
        let s = Strangler::start_with(opts, &etcd.section(&format!("u{umask:o}"))).await;
        let cache = s.dir.path().join("strangler.cluster-cache.toml");
        eventually("the cache written", || async {
            std::fs::read_to_string(&cache)
                .is_ok_and(|t| t.contains("qa-token-1"))
                .then_some(())
                .ok_or("no cache yet".into())
        })
        .await;
        assert_eq!(mode(&cache), Some(0o600), "the cache under umask {umask:03o}");
    }
    for (umask, want) in [(0o022, 0o644), (0o077, 0o600)] {
        let opts = Options { umask: Some(umask), ..Options::default() };
        let body = format!("{}[routes.rollout]\nsteps = [10, 50]\nhold = \"1h\"\n", routes(&legacy, &new, 10.0, 0.0));
        let s = Strangler::start_with(opts, &body).await;
        let state = s.dir.path().join("strangler.rollout.json");
        eventually("the rollout state written", || async {
            state.exists().then_some(()).ok_or("no state file yet".into())
        })
        .await;
        assert_eq!(mode(&state), Some(want), "a new rollout state file under umask {umask:03o}");
    }
}

/// An instance that stops applying documents (here: stopped with SIGSTOP, its registration kept
/// by a long lease) is told to the team once it has served an older revision for 30 s, and
/// again when it serves the latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_tells_of_an_instance_falling_behind_and_catching_up() {
    let etcd = Etcd::start();
    let (legacy, new) = (MockUpstream::start("legacy").await, MockUpstream::start("new").await);
    push(&etcd, &routes(&legacy, &new, 10.0, 0.0));
    let hooks = MockUpstream::start("hooks").await;
    let section = |name: &str| {
        etcd.section(name)
            + "lease_ttl = \"5m\"\n"
            + &format!("[[notify]]\nurl = \"http://{}/\"\nevents = [\"fleet\"]\n", hooks.address())
    };
    let (a, b) = (Strangler::start(&section("a")).await, Strangler::start(&section("b")).await);
    let (leading, other) = if the_leader(&[&a, &b]).await == 0 { (&a, &b) } else { (&b, &a) };
    let stopped = cluster(other).await.instance;
    other.signal("STOP");
    push(&etcd, &routes(&legacy, &new, 20.0, 0.0));
    eventually("the leader serves the new revision", || weight_is(leading, "orders", 20.0)).await;
    let pushed = Instant::now();
    let told = |event: &str| {
        hooks.received().iter().any(|r| {
            let d: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            d["event"] == event && d["details"]["instance"] == stopped.as_str()
        })
    };
    while !told("instance_behind") {
        assert!(pushed.elapsed() < Duration::from_secs(60), "never told behind: {:?}", hooks.received().len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(pushed.elapsed() >= Duration::from_secs(25), "told after {:?}, before 30 s behind", pushed.elapsed());
    other.signal("CONT");
    let resumed = Instant::now();
    while !told("instance_caught_up") {
        assert!(resumed.elapsed() < Duration::from_secs(30), "never told caught up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
