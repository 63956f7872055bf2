//! The console in a real browser: headless Chromium (Debian's, installed by `make test`) over
//! WebDriver, against the real binary and real upstreams. Each test also checks that the page
//! logged no JavaScript error, and leaves a screenshot of what it looked at under
//! `target/console/`.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/etcd.rs"]
mod etcd;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use browser::Browser;
use bytes::Bytes;
use common::*;
use strangler::api::{RolloutStatus, Routes};

const TOKEN: &str = "console-test-token-1234567890";

fn file_weight(s: &Strangler, route: usize) -> f64 {
    let text = std::fs::read_to_string(&s.config).expect("read config");
    let parsed: toml::Table = text.parse().expect("TOML");
    parsed["routes"]
        .as_array()
        .and_then(|r| r[route].get("weight"))
        .and_then(|w| w.as_float().or_else(|| w.as_integer().map(|i| i as f64)))
        .expect("weight")
}

async fn get_n(s: &Strangler, path: &str, n: usize) {
    let c = client();
    for i in 0..n {
        let resp = c.get(s.url(&format!("{path}{i}"))).send().await.expect("request");
        assert_eq!(resp.status(), 200, "{path}{i}");
    }
}

/// strangler with one route, `orders`, at 10% between two mock services.
async fn orders_at_10() -> (Strangler, (MockUpstream, MockUpstream)) {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 10\n",
        pools(&legacy, &new)
    );
    (Strangler::start(&body).await, (legacy, new))
}

/// Fail with the messages if the page logged an error (anything but those `expected` names),
/// or shows a value it failed to format.
async fn assert_no_js_errors(b: &Browser, expected: &[&str]) {
    let errors: Vec<String> =
        b.console_errors().await.into_iter().filter(|m| !expected.iter().any(|e| m.contains(e))).collect();
    assert!(errors.is_empty(), "the page logged errors:\n{}", errors.join("\n"));
    let text = b.text("body").await;
    for word in ["undefined", "NaN", "null", "[object"] {
        assert!(!text.contains(word), "the page shows {word:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_overview_lists_every_route_with_the_apis_figures_sorted_and_filtered() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\npath_prefix = \"/orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 30\n\
         [[routes]]\nname = \"billing\"\npath_prefix = \"/billing\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [[routes]]\nname = \"catalog\"\npath_prefix = \"/\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 100\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    get_n(&s, "/orders/", 60).await;
    get_n(&s, "/billing/", 20).await;

    let b = Browser::start().await;
    b.goto(&s.admin_url("/")).await;
    b.find("body[data-rendered=overview]").await;
    let api: Routes = s.api("/routes").await;
    assert_eq!(api.routes.len(), 3);
    for r in &api.routes {
        let row = format!("#routes tr[data-route=\"{}\"]", r.name);
        assert_eq!(b.text(&format!("{row} td[data-col=weight]")).await, format!("{}%", r.weight), "{}", r.name);
        // The live window's request counts: fixed now that traffic has stopped.
        for (side, live) in [("legacy", &r.live.legacy), ("new", &r.live.new)] {
            let cell = b.find(&format!("{row} td[data-col={side}-rps]")).await;
            let shown = cell.attr("data-requests").await.expect("attr").expect("data-requests");
            assert_eq!(shown, live.requests.to_string(), "{} {side} requests", r.name);
            let rps = cell.text().await.expect("text");
            assert!(rps.parse::<f64>().is_ok(), "{} {side} req/s shows {rps:?}", r.name);
        }
        let five = b.text(&format!("{row} td[data-col=new-5xx]")).await;
        match r.live.new.error_rate {
            Some(rate) => assert_eq!(five, format!("{rate:.1}%"), "{}", r.name),
            None => assert_eq!(five, "–", "{}", r.name),
        }
    }
    let orders = api.routes.iter().find(|r| r.name == "orders").expect("orders");
    assert!(
        orders.live.new.requests > 0 && orders.live.legacy.requests > 0,
        "30% splits 60 requests: {:?}",
        orders.live
    );

    // Sorted by weight, highest first; then filtered to one.
    b.click("th[data-sort=weight]").await;
    let order = || async {
        let mut names = Vec::new();
        for row in b.all("#routes tr").await {
            names.push(row.attr("data-route").await.expect("attr").unwrap_or_default());
        }
        names
    };
    assert_eq!(order().await, ["catalog", "orders", "billing"]);
    b.type_into("#filter", "bill").await;
    b.wait_until("only billing after filtering", || async { order().await == ["billing"] }).await;
    assert_eq!(b.text("#route-count").await, "1 of 3 routes");
    b.type_into("#filter", "").await;
    b.screenshot("overview").await;
    assert_no_js_errors(&b, &[]).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_weight_set_on_the_page_needs_the_token_and_changes_the_split_and_the_file() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n",
        pools(&legacy, &new)
    );
    let opts = Options { admin: format!("token = \"{TOKEN}\"\n"), ..Options::default() };
    let s = Strangler::start_with(opts, &body).await;
    let authed = |path: &str| client().get(s.admin_url(&format!("/api/v1{path}"))).bearer_auth(TOKEN);
    let weight = || async {
        let r: strangler::api::RouteView =
            authed("/routes/orders").send().await.expect("api").json().await.expect("json");
        r.weight
    };

    // Without the token the page shows nothing but why, and offers to take it.
    let b = Browser::start().await;
    b.goto(&s.admin_url("/")).await;
    let why = b.text("#need-token-why").await;
    assert!(why.contains("missing or wrong token"), "{why}");
    assert!(b.all("#routes").await.is_empty(), "no route is shown without the token");
    b.screenshot("token-needed").await;

    b.click("#enter-token").await;
    b.type_into("#token-input", TOKEN).await;
    b.click("#token-ok").await;
    b.find("#routes tr[data-route=orders]").await;
    let stored = b.run("return [sessionStorage.length, localStorage.length, location.href]", vec![]).await;
    assert_eq!(stored[0], 1, "the token is kept for the tab's session");
    assert_eq!(stored[1], 0, "and not in local storage");
    assert!(!stored[2].as_str().unwrap_or_default().contains(TOKEN), "nor in the address");

    // The route's page: a weight, a confirmation naming route, old and new weight; cancel first.
    b.click("#routes tr[data-route=orders] a").await;
    b.find("body[data-rendered=route]").await;
    b.type_into("#weight-input", "100").await;
    b.click("#weight-apply").await;
    let asked = b.text("#confirm-text").await;
    assert!(asked.contains("orders") && asked.contains("from 0% to 100%"), "{asked}");
    b.click("#confirm-cancel").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(weight().await, 0.0, "a cancelled change changes nothing");

    b.click("#weight-apply").await;
    b.find("#confirm[open]").await;
    b.click("#confirm-ok").await;
    b.wait_until("the change confirmed", || async { b.text("#notice").await.contains("0% → 100%") }).await;
    assert_eq!(weight().await, 100.0);
    assert_eq!(file_weight(&s, 0), 100.0, "written back to the TOML file");
    let before = new.hits();
    get_n(&s, "/orders/", 20).await;
    assert_eq!(new.hits() - before, 20, "the proxy serves the new split");
    b.wait_until("the new weight on the page", || async { b.text("#weight-now").await == "100%" }).await;
    b.screenshot("route").await;

    // A wrong token (or none): the page says why, and nothing changes.
    b.run("sessionStorage.setItem('strangler.admin-token', 'wrong')", vec![]).await;
    b.type_into("#weight-input", "0").await;
    b.click("#weight-apply").await;
    b.find("#confirm[open]").await;
    b.click("#confirm-ok").await;
    b.wait_until("the refusal", || async { b.text("#notice").await.contains("was not changed") }).await;
    let said = b.text("#notice").await;
    assert!(said.contains("token"), "{said}");
    b.find("#token-dialog[open]").await;
    assert_eq!(weight().await, 100.0, "refused without the right token");
    assert_eq!(file_weight(&s, 0), 100.0);
    // The refused requests are the 401s the browser logs; nothing else.
    assert_no_js_errors(&b, &["401"]).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_is_paused_and_resumed_from_the_page() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.rollout]\nsteps = [10, 50, 100]\nhold = \"1h\"\nwindows = [\"daily 00:00-24:00 UTC\"]\n\
         freeze = [\"2099-12-24/2099-12-26\"]\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let status = || async { s.rollout("orders").await.status };
    for _ in 0..100 {
        if status().await == RolloutStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status().await, RolloutStatus::Running);

    let b = Browser::start().await;
    b.goto(&s.admin_url("/#/route/orders")).await;
    b.find("#rollout-status.running").await;
    let steps = b.all("#rollout-steps li").await;
    assert_eq!(steps.len(), 3);
    assert_eq!(b.text("#rollout-steps li.current").await, "10%");
    assert!(b.text("#rollout-hold").await.contains("Step 1 of 3"), "{}", b.text("#rollout-hold").await);
    assert!(b.text("#gates").await.contains("Requests on new"));
    // When the step may pass: after its hour's hold, inside the configured schedule.
    let next_at = s.rollout("orders").await.next_step_at.expect("a running rollout's next step");
    assert_eq!(b.text("#rollout-next").await, format!("Next step not before {next_at}."));
    let schedule = b.text("#rollout-schedule").await;
    assert!(
        schedule.contains("daily 00:00-24:00 UTC") && schedule.contains("never during 2099-12-24/2099-12-26"),
        "{schedule}"
    );
    b.screenshot("rollout").await;

    b.click("button[data-action=pause]").await;
    b.find("#rollout-status.paused").await;
    assert_eq!(status().await, RolloutStatus::Paused);
    assert!(b.text("#rollout-reason").await.contains("paused"), "{}", b.text("#rollout-reason").await);
    // Stopped: since when, never a clock still counting the hold.
    let hold = b.text("#rollout-hold").await;
    assert!(hold.contains("paused") && hold.contains("ago") && !hold.contains(" of 1 h"), "{hold}");

    b.click("button[data-action=resume]").await;
    b.find("#rollout-status.running").await;
    assert_eq!(status().await, RolloutStatus::Running);
    assert_eq!(s.route("orders").await.weight, 10.0, "resumed at the step it was on");
    assert_no_js_errors(&b, &[]).await;
    b.close().await;
}

/// A service answering JSON with a fresh id every time; `price` is 10, or 11 on `/orders/7`
/// when `wrong`.
async fn service(name: &str, wrong: bool) -> MockUpstream {
    let counter = Arc::new(AtomicU64::new(0));
    let tag = name.to_string();
    MockUpstream::builder(name)
        .reply(move |r: &Received| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let price = if wrong && r.path.split('?').next() == Some("/orders/7") { 11 } else { 10 };
            let body = format!(r#"{{"id":"{tag}-{n}","items":[{{"sku":"a","price":{price}}}]}}"#);
            (200, vec![("content-type".into(), "application/json".into())], Bytes::from(body))
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_findings_pair_is_shown_side_by_side_with_the_differing_field_highlighted() {
    let legacy = service("legacy", false).await;
    let new = service("new", true).await;
    let body = format!(
        "{}[[routes]]\nname = \"shop\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\nsample = 100\n[routes.compare]\nnoise_sample = 0\nignore_headers = [\"date\", \"x-upstream\"]\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    get_n(&s, "/orders/", 30).await;
    // A mismatching request carrying secrets the way clients send them: none may reach the page.
    let secret = client()
        .get(s.url("/orders/7?a=1;token=PAGESECRET1"))
        .header("x-auth-token", "PAGESECRET2")
        .header("referer", "https://shop.example/?token=PAGESECRET3")
        .send()
        .await
        .expect("request");
    assert_eq!(secret.status(), 200);
    let compared = || async {
        s.metric_value("strangler_shadow_total{result=\"match\",route=\"shop\"}").await
            + s.metric_value("strangler_shadow_total{result=\"mismatch\",route=\"shop\"}").await
    };
    for _ in 0..100 {
        if compared().await >= 31.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let b = Browser::start().await;
    b.goto(&s.admin_url("/#/route/shop")).await;
    let endpoint = "#report tr.endpoint[data-endpoint=\"GET /orders/{id}\"]";
    b.find(&format!("{endpoint} [data-verdict=differs]")).await;
    b.click(endpoint).await;
    let pair = ".finding[data-field=\"json:$.items[*].price\"] .pair";
    let field = b.text(&format!("{pair} .hl[data-where]")).await;
    assert_eq!(field, "json:$.items[0].price", "the differing field is the highlighted row");
    assert_eq!(b.text(&format!("{pair} .legacy-value.hl")).await, "10");
    assert_eq!(b.text(&format!("{pair} .new-value.hl")).await, "11");
    // The pair itself, from its diff record: both statuses side by side, not highlighted.
    let status_row: Vec<String> = {
        let mut cells = Vec::new();
        for c in b.all(&format!("{pair} [data-where=status], {pair} .legacy-value, {pair} .new-value")).await {
            cells.push(c.text().await.expect("text"));
        }
        cells
    };
    assert!(status_row.starts_with(&["status".to_string(), "200".into(), "200".into()]), "{status_row:?}");
    let pairs = b.all(pair).await.len();
    assert_eq!(pairs, 2, "both mismatching requests of /orders/7 are examples");
    assert_eq!(b.all(&format!("{pair} .hl")).await.len(), 3 * pairs, "one highlighted row a pair: field, legacy, new");
    b.run("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", vec![pair.into()]).await;
    b.screenshot("evidence").await;
    let page = b.run("return document.documentElement.outerHTML", vec![]).await;
    let page = page.as_str().expect("the page's HTML");
    assert!(page.contains("/orders/7?a=1;token=[redacted]"), "the redacted request is listed");
    for s in ["PAGESECRET1", "PAGESECRET2", "PAGESECRET3"] {
        assert!(!page.contains(s), "{s} on the page");
    }
    assert_no_js_errors(&b, &[]).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_from_another_origin_cannot_change_anything() {
    let (s, _upstreams) = orders_at_10().await;
    let admin = s.admin_url("");
    // A page elsewhere (another port is another origin) trying every way a browser lets it:
    // a JSON fetch (needs a preflight the API never grants), a "simple" fetch without CORS, and
    // a form posted into a hidden frame.
    let evil = format!(
        r#"<!doctype html><html><body><iframe name="sink"></iframe>
<form id="f" method="POST" action="{admin}/api/v1/reload" target="sink" enctype="text/plain">
<input name='{{"percent":100,"x":"' value='"}}'></form>
<script>
(async () => {{
  const tries = [];
  tries.push(fetch('{admin}/api/v1/routes/orders/weight', {{method: 'PUT', headers: {{'Content-Type': 'application/json'}}, body: '{{"percent": 100}}'}}).then(() => 'sent', e => 'blocked'));
  tries.push(fetch('{admin}/api/v1/routes/orders/weight', {{method: 'PUT', mode: 'no-cors', body: '{{"percent": 100}}'}}).then(() => 'sent', e => 'blocked'));
  tries.push(fetch('{admin}/api/v1/routes/orders/weight', {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}}, body: '{{"percent": 100}}'}}).then(() => 'sent', e => 'blocked'));
  document.getElementById('f').submit();
  const results = await Promise.all(tries);
  document.title = 'done ' + results.join(',');
}})();
</script></body></html>"#
    );
    let page = MockUpstream::builder("evil")
        .reply(move |_| (200, vec![("content-type".into(), "text/html".into())], Bytes::from(evil.clone())))
        .start()
        .await;

    let b = Browser::start().await;
    b.goto(&format!("http://{}/", page.address())).await;
    b.wait_until("the foreign page's attempts", || async {
        b.client.title().await.unwrap_or_default().starts_with("done")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the form's post
    assert_eq!(s.route("orders").await.weight, 10.0, "nothing changed");
    assert_eq!(file_weight(&s, 0), 10.0);
    let log = s.log();
    assert!(log.contains("cannot change anything here (another origin)"), "the refusals are logged:\n{log}");
    assert!(!log.contains("reload requested"), "the form's reload never ran:\n{log}");
    // Framing the console is refused as well.
    let resp = client().get(s.admin_url("/")).send().await.expect("page");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(resp.headers()["content-security-policy"].to_str().expect("csp").contains("frame-ancestors 'none'"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_view_lists_every_instance_with_its_revision_and_marks_the_ones_behind() {
    let etcd = etcd::Etcd::start();
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let a = Strangler::start(&etcd.section("proxy-a")).await;
    let routing = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 10\n[routes.shadow]\n",
        pools(&legacy, &new)
    );
    let file = a.dir.path().join("routes.toml");
    std::fs::write(&file, &routing).expect("routes");
    let (ok, out, err) = a.cli(&["cluster", "push", file.to_str().expect("path")]);
    assert!(ok, "{out}{err}");
    let b = Strangler::start(&etcd.section("proxy-b")).await;
    let view = || async { a.api::<strangler::api::ClusterView>("/cluster").await };
    for _ in 0..100 {
        if view().await.instances.iter().filter(|i| !i.behind && i.revision.is_some()).count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revision = view().await.revision.expect("a revision").to_string();

    let br = Browser::start().await;
    br.goto(&a.admin_url("/")).await;
    br.find("#fleet #instances tr[data-instance=proxy-b]").await;
    for name in ["proxy-a", "proxy-b"] {
        let row = format!("#instances tr[data-instance={name}]");
        assert_eq!(br.text(&format!("{row} td[data-col=revision]")).await, revision, "{name}");
        assert_eq!(br.text(&format!("{row} td[data-col=lag]")).await, "current", "{name}");
    }
    assert_eq!(br.text("#fleet-etcd").await, "etcd connected");
    assert_eq!(br.text("#fleet-leader").await, "Rollouts are driven by proxy-a (this instance).");
    // Requests through b only: the totals on a's page count them, under b.
    let c = client();
    for _ in 0..7 {
        c.get(b.url("/x")).send().await.expect("request");
    }
    br.wait_until("the fleet's totals count b's 7 requests", || async {
        let legacy = br.text("#fleet-totals tr[data-route=orders] td[data-col=legacy]").await;
        let new = br.text("#fleet-totals tr[data-route=orders] td[data-col=new]").await;
        legacy.parse::<u64>().unwrap_or(0) + new.parse::<u64>().unwrap_or(0) == 7
    })
    .await;
    // A route's cutover evidence is the fleet's, and the page says whose.
    br.goto(&a.admin_url("/#/route/orders")).await;
    let said = br.text("#evidence-pooled").await;
    assert!(said.starts_with("The fleet's evidence, pooled from") && said.contains("proxy-a"), "{said}");
    br.goto(&a.admin_url("/")).await;
    br.find("#fleet #instances tr[data-instance=proxy-b]").await;

    // A document nobody can serve: both instances stay behind, and the page says so.
    let bad = routing.replace("weight = 10", "weight = 150");
    let (ok, out) = etcd.ctl(&["put", "/strangler/config", &bad]);
    assert!(ok, "{out}");
    br.wait_until("both instances marked behind", || async {
        br.all("#instances td[data-col=lag] .badge.down").await.len() == 2
    })
    .await;
    let said = br.text("#fleet-rejected").await;
    assert!(said.contains("was refused") && said.contains("routes[0].weight"), "{said}");
    br.screenshot("fleet").await;
    assert_no_js_errors(&br, &[]).await;
    br.close().await;
    drop(b);
}

/// Every element of every visible panel whose box reaches outside its panel, described; and
/// every pair of charts whose boxes overlap.
const OVERFLOWS: &str = r#"
const out = [];
const describe = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (typeof e.className === 'string' && e.className ? '.' + e.className.split(' ').join('.') : '');
for (const panel of document.querySelectorAll('section.panel')) {
  if (panel.hidden) continue;
  const p = panel.getBoundingClientRect();
  for (const e of panel.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < p.left - 1 || r.right > p.right + 1)
      out.push(`${describe(e)} spans x ${Math.round(r.left)}-${Math.round(r.right)}, outside ${describe(panel)} at ${Math.round(p.left)}-${Math.round(p.right)}`);
  }
}
const charts = [...document.querySelectorAll('.chart')];
for (const box of charts) {
  const b = box.getBoundingClientRect();
  for (const e of box.querySelectorAll('.uplot, canvas')) {
    const r = e.getBoundingClientRect();
    if (r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1 || r.bottom > b.bottom + 1)
      out.push(`${describe(e)} of ${box.id} (${Math.round(r.width)} px wide) is outside its box (${Math.round(b.width)} px)`);
  }
}
for (let i = 0; i < charts.length; i++) for (let j = i + 1; j < charts.length; j++) {
  const a = charts[i].getBoundingClientRect(), c = charts[j].getBoundingClientRect();
  if (a.left < c.right - 1 && c.left < a.right - 1 && a.top < c.bottom - 1 && c.top < a.bottom - 1)
    out.push(`${charts[i].id} overlaps ${charts[j].id}`);
}
return out;
"#;

async fn assert_nothing_overflows(b: &Browser, page: &str) {
    let found = b.run(OVERFLOWS, vec![]).await;
    let found: Vec<String> = serde_json::from_value(found).expect("a list of overflows");
    assert!(found.is_empty(), "{page}: {} element(s) reach outside their panel:\n{}", found.len(), found.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_chart_fits_its_panel_and_the_5xx_chart_shows_the_historys_error_rates() {
    // New fails one request in four; legacy never does.
    let counter = Arc::new(AtomicU64::new(0));
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::builder("new")
        .reply(move |_: &Received| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            (if n % 4 == 3 { 500 } else { 200 }, Vec::new(), Bytes::from_static(b"new"))
        })
        .start()
        .await;
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 50\n\
         [routes.shadow]\nsample = 100\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    let history = || async { s.api::<strangler::api::History>("/routes/orders/history").await };
    // Traffic until the history holds two samples, so each chart draws lines, not points.
    let c = client();
    let mut i = 0;
    while history().await.samples.len() < 2 {
        c.get(s.url(&format!("/orders/{i}"))).send().await.expect("request");
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let b = Browser::start().await;
    for (width, height) in [(1400, 1000), (1920, 1080)] {
        b.resize(width, height).await;
        b.goto(&s.admin_url("/#/route/orders")).await;
        b.find("#chart-paired .uplot").await;
        // The charts are sized after the grid has placed all four, not before.
        b.wait_until("four charts", || async { b.all(".chart .uplot").await.len() == 4 }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_nothing_overflows(&b, &format!("route page at {width}x{height}")).await;
        b.screenshot(&format!("route-{width}")).await;

        // The 5xx chart draws the history's error rates, sample for sample.
        b.wait_until("the 5xx chart drawing the history's error rates", || async {
            let drawn = b.run("return document.getElementById('chart-errors').chart.data", vec![]).await;
            let drawn: Vec<Vec<Option<f64>>> = serde_json::from_value(drawn).expect("the chart's data");
            let h = history().await;
            let rates = |side: fn(&strangler::api::HistorySample) -> Option<f64>| -> Vec<Option<f64>> {
                h.samples.iter().map(side).collect()
            };
            drawn.len() == 3
                && drawn[1] == rates(|s| s.window.legacy.error_rate)
                && drawn[2] == rates(|s| s.window.new.error_rate)
        })
        .await;
        let h = history().await;
        assert!(h.samples.iter().all(|s| s.window.legacy.error_rate.unwrap_or(0.0) == 0.0), "legacy never failed");
        assert!(h.samples.iter().any(|s| s.window.new.error_rate.unwrap_or(0.0) > 0.0), "new failed some: {h:?}");

        // The window narrowed to half its width: the charts follow their panels.
        b.resize(width / 2 + 200, height).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_nothing_overflows(&b, &format!("route page narrowed from {width}")).await;

        b.goto(&s.admin_url("/")).await;
        b.find("body[data-rendered=overview]").await;
        b.resize(width, height).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_nothing_overflows(&b, &format!("overview at {width}x{height}")).await;
    }
    assert_no_js_errors(&b, &[]).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_reload_is_shown_until_a_good_one_lands() {
    let (s, _upstreams) = orders_at_10().await;
    let good = std::fs::read_to_string(&s.config).expect("read");
    std::fs::write(&s.config, good.replace("weight = 10", "weight = 300")).expect("write");
    let (ok, _, _) = s.cli(&["reload"]);
    assert!(!ok, "the broken file is refused");

    let b = Browser::start().await;
    b.goto(&s.admin_url("/")).await;
    let problem = b.text("#refused li[data-key=\"routes[0].weight\"]").await;
    assert!(problem.contains("routes[0].weight = 300") && problem.contains("percentage"), "{problem}");
    assert!(b.text("#refused-when").await.contains("previous config keeps serving"));
    assert_nothing_overflows(&b, "overview with a refused reload").await;
    b.screenshot("refused").await;

    std::fs::write(&s.config, &good).expect("write");
    let (ok, _, err) = s.cli(&["reload"]);
    assert!(ok, "{err}");
    b.wait_until("the notice gone after a good reload", || async {
        b.run("return document.getElementById('refused').hidden", vec![]).await == serde_json::Value::Bool(true)
    })
    .await;
    assert_no_js_errors(&b, &[]).await;
    b.close().await;
}
