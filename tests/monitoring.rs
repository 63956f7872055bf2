//! The shipped Grafana dashboard and Prometheus alerts use only metrics strangler exports: every
//! `strangler_*` name in them is in a running instance's /metrics (a renamed metric would leave
//! a panel empty and an alert silent). The rules themselves are checked by `promtool` in
//! `make test`.

mod common;
#[path = "common/etcd.rs"]
mod etcd;

use std::collections::BTreeSet;

use common::*;

/// `strangler_*` names in a file, with histogram suffixes taken off.
fn names_in(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("strangler_") {
        let name: String =
            text[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        out.insert(base.to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboard_and_the_alerts_use_is_exported() {
    let legacy = MockUpstream::start("legacy").await;
    let new = MockUpstream::start("new").await;
    let body = format!(
        "{}[[routes]]\nname = \"orders\"\nlegacy = \"legacy\"\nnew = \"new\"\nweight = 0\n\
         [routes.shadow]\n[routes.rollout]\nsteps = [10, 100]\nhold = \"1h\"\n",
        pools(&legacy, &new)
    );
    let s = Strangler::start(&body).await;
    for _ in 0..20 {
        client().get(s.url("/x")).send().await.expect("request");
    }
    s.wait_metric("strangler_rollout_step{route=\"orders\"}", 1.0).await;
    // The fleet's metrics exist only with [cluster]: an instance of a fleet adds them.
    let etcd = etcd::Etcd::start();
    let member = Strangler::start(&etcd.section("a")).await;
    member.wait_metric("strangler_cluster_connected", 1.0).await;
    let mut exported = BTreeSet::new();
    for instance in [&s, &member] {
        let text = reqwest::get(instance.admin_url("/metrics")).await.expect("metrics").text().await.expect("text");
        exported.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string),
        );
    }
    for file in ["examples/grafana/strangler.json", "examples/prometheus/alerts.yml"] {
        let used = names_in(file);
        assert!(used.len() >= 5, "{file} uses only {used:?}");
        let missing: Vec<&String> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics strangler does not export: {missing:?}\nexported: {exported:?}"
        );
    }
}
