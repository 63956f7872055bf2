//! End-to-end: the real binary between real upstream servers on loopback.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

fn route(name: &str, prefix: &str, weight: f64, extra: &str) -> String {
    format!("[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = {weight}\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weight_10_sends_about_10_percent_to_new() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let s = Strangler::start(&format!("{}{}", pools(&legacy, &new), route("orders", "/orders", 10.0, ""))).await;

    let codes = load(&client(), &s.url("/orders/1"), 20_000, 32).await;
    assert_eq!(codes, BTreeMap::from([(200, 20_000)]));
    let share = new.hits() as f64 / 20_000.0 * 100.0;
    assert_eq!(legacy.hits() + new.hits(), 20_000);
    assert!((9.0..=11.0).contains(&share), "new got {share:.2}% at weight 10");
    // Requests are counted once the response is sent, so the last few may land just after it.
    let counted = "strangler_requests_total{code=\"200\",route=\"orders\",side=\"new\"}";
    s.wait_metric(counted, new.hits() as f64).await;
    assert_eq!(s.metric(counted).await, Some(new.hits() as f64));
    assert_eq!(s.metric("strangler_route_weight_percent{route=\"orders\"}").await, Some(10.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weights_0_and_100_are_exact() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let body =
        format!("{}{}{}", pools(&legacy, &new), route("none", "/none", 0.0, ""), route("all", "/all", 100.0, ""));
    let s = Strangler::start(&body).await;
    let c = client();

    load(&c, &s.url("/none"), 2_000, 16).await;
    assert_eq!((legacy.hits(), new.hits()), (2_000, 0));
    load(&c, &s.url("/all"), 2_000, 16).await;
    assert_eq!((legacy.hits(), new.hits()), (2_000, 2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sticky_cookie_keeps_its_side_and_raising_the_weight_never_moves_a_key_back() {
    let legacy = MockUpstream::builder("legacy").no_record().start().await;
    let new = MockUpstream::builder("new").no_record().start().await;
    let body = |w: f64| format!("{}{}", pools(&legacy, &new), route("orders", "/", w, "sticky = { cookie = \"sid\" }"));
    let s = Strangler::start(&body(10.0)).await;
    let c = client();

    async fn sides(c: &reqwest::Client, url: &str) -> Vec<String> {
        let mut out = Vec::new();
        for key in 0..400 {
            let r = c
                .get(url)
                .header("cookie", format!("theme=dark; sid=user-{key}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("request for user-{key} failed: {e:?}"));
            out.push(r.text().await.expect("body"));
        }
        out
    }

    let at10 = sides(&c, &s.url("/x")).await;
    assert_eq!(at10, sides(&c, &s.url("/x")).await, "the same cookie must always get the same side");
    let on_new = at10.iter().filter(|s| *s == "new").count();
    assert!((15..=70).contains(&on_new), "{on_new} of 400 keys on new at 10%");

    let mut previous = at10;
    for w in [50.0, 100.0] {
        let before = s.metric_value("strangler_config_reloads_total{result=\"ok\"}").await;
        s.rewrite(&body(w));
        s.wait_metric("strangler_config_reloads_total{result=\"ok\"}", before + 1.0).await;
        let now = sides(&c, &s.url("/x")).await;
        for (key, (was, is)) in previous.iter().zip(&now).enumerate() {
            assert!(
                !(was == "new" && is == "legacy"),
                "key user-{key} moved back to legacy when the weight rose to {w}"
            );
        }
        previous = now;
    }
    assert!(previous.iter().all(|s| s == "new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_by_host_and_longest_prefix() {
    let ups: Vec<MockUpstream> = futures_join(["root", "orders", "orders-items", "wild", "exact"]).await;
    let pools: String =
        ups.iter().map(|u| format!("[upstreams.{}]\naddresses = [\"{}\"]\n\n", u.name, u.address())).collect();
    let r = |name: &str, prefix: &str, hosts: &str| {
        format!("[[routes]]\nname = \"{name}\"\n{hosts}\npath_prefix = \"{prefix}\"\nlegacy = \"{name}\"\nnew = \"{name}\"\n\n")
    };
    let body = [
        pools,
        r("root", "/", ""),
        r("orders", "/orders", ""),
        r("orders-items", "/orders/items", ""),
        r("wild", "/", "hosts = [\"*.example.com\"]"),
        r("exact", "/", "hosts = [\"api.example.com\"]"),
    ]
    .concat();
    // Only host-bound routes on "/": a request for another host and path falls to "root".
    let s = Strangler::start(&body).await;
    let c = client();
    let get = |path: &str, host: &str| {
        let req = c.get(s.url(path)).header("host", host);
        async move {
            let r = req.send().await.expect("send");
            (r.status().as_u16(), r.text().await.expect("text"))
        }
    };
    assert_eq!(get("/orders/items/3", "any.host").await.1, "orders-items");
    assert_eq!(get("/orders/3", "any.host").await.1, "orders");
    assert_eq!(get("/orders", "any.host").await.1, "orders");
    assert_eq!(get("/orders-admin", "any.host").await.1, "root", "prefixes match whole path segments");
    assert_eq!(get("/", "shop.example.com").await.1, "wild");
    assert_eq!(get("/", "API.example.com:8080").await.1, "exact");
    assert_eq!(get("/", "example.com").await.1, "root", "*.example.com does not match the bare domain");
    assert_eq!(
        get("/orders/1", "shop.example.com").await.1,
        "wild",
        "a matching host beats a longer prefix on any host"
    );
}

async fn futures_join<const N: usize>(names: [&str; N]) -> Vec<MockUpstream> {
    let mut v = Vec::new();
    for n in names {
        v.push(MockUpstream::start(n).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_route_is_a_404_counted_under_dash() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let s = Strangler::start(&format!("{}{}", pools(&legacy, &new), route("orders", "/orders", 50.0, ""))).await;
    let r = client().get(s.url("/users/1")).send().await.expect("send");
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("body").contains("no route"));
    assert_eq!(legacy.hits() + new.hits(), 0);
    // Counted once the response is sent: wait for it rather than race it.
    s.wait_metric("strangler_requests_total{code=\"404\",route=\"-\",side=\"-\"}", 1.0).await;
    assert_eq!(s.metric("strangler_requests_total{code=\"404\",route=\"-\",side=\"-\"}").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_down_is_502_and_silent_upstream_is_504_within_read_timeout() {
    let down = free_port();
    let hole = black_hole().await;
    let body = format!(
        "[upstreams.down]\naddresses = [\"127.0.0.1:{down}\"]\n\n\
         [upstreams.hole]\naddresses = [\"{hole}\"]\nread_timeout = \"300ms\"\n\n\
         [[routes]]\nname = \"down\"\npath_prefix = \"/down\"\nlegacy = \"down\"\nnew = \"down\"\n\n\
         [[routes]]\nname = \"slow\"\npath_prefix = \"/slow\"\nlegacy = \"hole\"\nnew = \"hole\"\n"
    );
    let s = Strangler::start(&body).await;
    let c = client();

    let r = c.get(s.url("/down")).send().await.expect("send");
    assert_eq!(r.status(), 502);

    let t = Instant::now();
    let r = c.get(s.url("/slow")).send().await.expect("send");
    let took = t.elapsed();
    assert_eq!(r.status(), 504);
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "504 after {took:?}");

    assert_eq!(
        s.metric("strangler_upstream_errors_total{kind=\"connect\",route=\"down\",side=\"legacy\"}").await,
        Some(1.0)
    );
    assert_eq!(
        s.metric("strangler_upstream_errors_total{kind=\"timeout\",route=\"slow\",side=\"legacy\"}").await,
        Some(1.0)
    );
    // The proxy still serves after both failures.
    assert_eq!(c.get(s.url("/down")).send().await.expect("send").status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_address_in_a_pool_is_retried_on_the_next_one() {
    let live = MockUpstream::start("live").await;
    let dead = free_port();
    let body = format!(
        "[upstreams.pool]\naddresses = [\"127.0.0.1:{dead}\", \"{}\"]\n\n\
         [[routes]]\nname = \"r\"\nlegacy = \"pool\"\nnew = \"pool\"\n",
        live.address()
    );
    let s = Strangler::start(&body).await;
    let codes = load(&client(), &s.url("/"), 50, 4).await;
    assert_eq!(codes, BTreeMap::from([(200, 50)]));
    assert_eq!(live.hits(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn override_header_forces_a_side_only_with_the_right_token() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}{}{}",
        pools(&legacy, &new),
        route("open", "/open", 0.0, "override = { header = \"x-target\" }\nexpose_side = true"),
        route("locked", "/locked", 0.0, "override = { header = \"x-target\", token = \"s3cret\" }"),
    );
    let s = Strangler::start(&body).await;
    let c = client();
    let side = |path: &str, value: &str| {
        let req = c.get(s.url(path)).header("x-target", value);
        async move { req.send().await.expect("send").text().await.expect("text") }
    };

    let r = c.get(s.url("/open")).header("x-target", "new").send().await.expect("send");
    assert_eq!(r.headers()["x-strangler-side"], "new");
    assert_eq!(r.text().await.expect("text"), "new");
    assert_eq!(side("/locked", "new").await, "legacy", "no token: ignored");
    assert_eq!(side("/locked", "new;token=wrong").await, "legacy", "wrong token: ignored");
    assert_eq!(side("/locked", "new;token=s3cret").await, "new");
    assert_eq!(side("/open", "sideways").await, "legacy", "bad value: ignored");
    assert_eq!(s.metric("strangler_override_rejected_total{route=\"locked\"}").await, Some(2.0));
    assert_eq!(s.metric("strangler_override_rejected_total{route=\"open\"}").await, Some(1.0));
    // The header (and its token) never reaches the upstreams.
    assert!(new.received().iter().chain(legacy.received().iter()).all(|r| !r.headers.contains_key("x-target")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarding_headers_and_host_rewrite() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "[upstreams.legacy]\naddresses = [\"{}\"]\nhost_header = \"orders.internal\"\n\n[upstreams.new]\naddresses = [\"{}\"]\n\n{}",
        legacy.address(),
        new.address(),
        route("r", "/", 0.0, "")
    );
    let s = Strangler::start(&body).await;
    let r = client()
        .get(s.url("/a?b=1"))
        .header("host", "api.example.com")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let got = &legacy.received()[0];
    assert_eq!(got.path, "/a?b=1");
    assert_eq!(got.headers["host"], "orders.internal");
    // The peer is not a trusted proxy: its x-forwarded-for is a claim, replaced, not appended to.
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(got.headers["x-forwarded-proto"], "http");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_upstream_with_sni_and_a_private_ca() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (addr, ca) = tls_upstream(certs.path(), "orders.internal").await;
    let body = format!(
        "[upstreams.good]\naddresses = [\"{addr}\"]\ntls = true\nsni = \"orders.internal\"\n\n\
         [upstreams.wrong-name]\naddresses = [\"{addr}\"]\ntls = true\nsni = \"other.internal\"\n\n\
         [[routes]]\nname = \"good\"\npath_prefix = \"/good\"\nlegacy = \"good\"\nnew = \"good\"\n\n\
         [[routes]]\nname = \"bad\"\npath_prefix = \"/bad\"\nlegacy = \"wrong-name\"\nnew = \"wrong-name\"\n"
    );
    let opts = Options { server: format!("ca_file = \"{}\"\n", ca.display()), ..Options::default() };
    let s = Strangler::start_with(opts, &body).await;
    let c = client();

    let r = c.get(s.url("/good")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "tls:orders.internal", "SNI sent to the upstream");
    // The certificate is for orders.internal: a pool that expects another name must not connect.
    assert_eq!(c.get(s.url("/bad")).send().await.expect("send").status(), 502);
    assert_eq!(
        s.metric("strangler_upstream_errors_total{kind=\"tls\",route=\"bad\",side=\"legacy\"}").await,
        Some(1.0)
    );
}
