//! The decision about a request, made synchronously on one snapshot: refuse it, answer that no
//! route matches, or route it to a side. Nothing here awaits or answers the client; the proxy's
//! `request_filter` matches on the [`Admission`] and does that.

use std::net::IpAddr;
use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::config::Side;
use crate::limits::{Inspected, Limit};
use crate::route::{choose_side, Choice, Decision, Matched};
use crate::snapshot::Snapshot;

/// What becomes of a request.
pub enum Admission {
    /// Answered at once, before any upstream is contacted.
    Refuse(Limit),
    /// No route matches: 404.
    NoRoute,
    Routed(Routed),
}

/// A routed request: its route, pinned for the whole request (its pools come with it, so a
/// reload in flight never changes where it goes), and the side chosen for it.
pub struct Routed {
    pub matched: Arc<Matched>,
    /// Chosen once: a retry in `upstream_peer` never re-rolls it; failover moves it to legacy.
    pub choice: Choice,
}

/// Framing and header limits (`inspected`: [`crate::limits::inspect`] of `req`), the route, a
/// declared body against the route's cap, then the side.
pub fn admit(
    snap: &Snapshot,
    req: &RequestHeader,
    inspected: Result<Inspected<'_>, Limit>,
    client_ip: Option<IpAddr>,
) -> Admission {
    let seen = match inspected {
        Ok(seen) => seen,
        Err(limit) => return Admission::Refuse(limit),
    };
    let Some(matched) = snap.table.find(seen.host, req.uri.path()) else { return Admission::NoRoute };
    if seen.content_length.is_some_and(|n| n > matched.route.max_request_body as u64) {
        return Admission::Refuse(Limit::Body);
    }
    let mut choice = choose_side(&matched.route, &req.headers, client_ip);
    // A new pool that health checks found entirely down takes nothing but forced (override)
    // requests: the rest go to legacy.
    if choice.side == Side::New && choice.decision != Decision::Override && matched.pool(Side::New).all_down() {
        choice.side = Side::Legacy;
    }
    Admission::Routed(Routed { matched: Arc::clone(matched), choice })
}

/// The status and body of a refusal.
pub fn refusal(limit: Limit) -> (u16, &'static [u8]) {
    match limit {
        Limit::Body => (413, b"request body too large\n"),
        Limit::HeaderBytes | Limit::HeaderCount => (431, b"request header too large\n"),
        Limit::Path => (
            400,
            b"ambiguous path: an encoded slash or backslash, a backslash, an encoded NUL, a malformed escape, a dot segment with parameters (..;) or bytes that are not UTF-8\n",
        ),
        Limit::Host => (400, b"an HTTP/1.1 request needs exactly one Host header\n"),
        _ => (400, b"bad request framing: an unsupported Transfer-Encoding or conflicting Content-Length\n"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::route::bucket;
    use crate::snapshot::Shared;

    /// Three routes: one by host with a sticky cookie and an override, a catch-all prefix at
    /// weight 0, and a longer prefix at 100 with a small body cap.
    const CONFIG: &str = r#"
[upstreams.old]
addresses = ["127.0.0.1:9"]
[upstreams.rewrite]
addresses = ["127.0.0.1:10"]
[[routes]]
name = "shop"
hosts = ["shop.example", "*.shop.example"]
legacy = "old"
new = "rewrite"
weight = 25
sticky = { cookie = "sid" }
override = { header = "x-strangler-target", token = "s3cret" }
[[routes]]
name = "all"
legacy = "old"
new = "rewrite"
weight = 0
[[routes]]
name = "orders"
path_prefix = "/orders"
legacy = "old"
new = "rewrite"
weight = 100
max_request_body = "1KiB"
"#;

    fn shared() -> Arc<Shared> {
        Shared::new(crate::config::load_str(CONFIG, Path::new("admit.toml")).expect("a valid config"))
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).expect("a request");
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).expect("a header");
        }
        req
    }

    /// The route and side a request is admitted to, or why not.
    fn admitted(shared: &Shared, path: &str, headers: &[(&str, &str)]) -> Result<(String, Side, Decision), String> {
        let snap = shared.load();
        let req = request(path, headers);
        let inspected = crate::limits::inspect(&req, &snap.config.limits);
        match admit(&snap, &req, inspected, Some("10.1.2.3".parse().expect("an address"))) {
            Admission::Routed(r) => Ok((r.matched.route.name.clone(), r.choice.side, r.choice.decision)),
            Admission::NoRoute => Err("no route".into()),
            Admission::Refuse(limit) => Err(limit.as_str().into()),
        }
    }

    /// A `sid` cookie whose bucket on `shop` is below (`true`) or above its 25% weight.
    fn sid(on_new: bool) -> String {
        (0..).map(|i| format!("user-{i}")).find(|k| (bucket("shop", k.as_bytes()) < 2500) == on_new).expect("a key")
    }

    #[test]
    fn each_request_is_admitted_as_the_table_says() {
        let s = shared();
        let (new_user, old_user) = (format!("sid={}", sid(true)), format!("sid={}", sid(false)));
        let host = |h: &'static str| ("host", h);
        type Want = Result<(&'static str, Side, Decision), &'static str>;
        type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Want);
        let cases: Vec<Case> = vec![
            (
                "exact host",
                "/x",
                vec![host("shop.example"), ("cookie", &new_user)],
                Ok(("shop", Side::New, Decision::Sticky)),
            ),
            (
                "wildcard host",
                "/x",
                vec![host("eu.shop.example"), ("cookie", &old_user)],
                Ok(("shop", Side::Legacy, Decision::Sticky)),
            ),
            (
                "host with a port",
                "/x",
                vec![host("shop.example:8080"), ("cookie", &new_user)],
                Ok(("shop", Side::New, Decision::Sticky)),
            ),
            (
                "another host: the catch-all at 0%",
                "/x",
                vec![host("other.example")],
                Ok(("all", Side::Legacy, Decision::Random)),
            ),
            (
                "the longest prefix wins",
                "/orders/7",
                vec![host("other.example")],
                Ok(("orders", Side::New, Decision::Random)),
            ),
            (
                "a prefix is a whole segment",
                "/ordersx",
                vec![host("other.example")],
                Ok(("all", Side::Legacy, Decision::Random)),
            ),
            (
                "override with its token",
                "/x",
                vec![host("shop.example"), ("cookie", &old_user), ("x-strangler-target", "new;token=s3cret")],
                Ok(("shop", Side::New, Decision::Override)),
            ),
            (
                "override with a wrong token: the sticky side",
                "/x",
                vec![host("shop.example"), ("cookie", &old_user), ("x-strangler-target", "new;token=nope")],
                Ok(("shop", Side::Legacy, Decision::Sticky)),
            ),
            (
                "a body over the route's cap",
                "/orders/7",
                vec![host("a.example"), ("content-length", "1025")],
                Err("body"),
            ),
            (
                "a body at the cap",
                "/orders/7",
                vec![host("a.example"), ("content-length", "1024")],
                Ok(("orders", Side::New, Decision::Random)),
            ),
            ("two Host headers", "/x", vec![host("a.example"), host("b.example")], Err("host")),
        ];
        for (what, path, headers, want) in cases {
            let got = admitted(&s, path, &headers);
            let want = want.map(|(r, side, d)| (r.to_string(), side, d)).map_err(str::to_string);
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn a_weight_sends_its_share_at_random_and_the_edges_exactly() {
        let s = shared();
        let at = |weight: &str| {
            let text = CONFIG.replacen("weight = 0\n", &format!("weight = {weight}\n"), 1);
            Shared::new(crate::config::load_str(&text, Path::new("admit.toml")).expect("a valid config"))
        };
        let to_new = |s: &Shared, n: usize| {
            (0..n)
                .filter(|_| admitted(s, "/x", &[("host", "a.example")]).map(|(_, side, _)| side) == Ok(Side::New))
                .count()
        };
        assert_eq!(to_new(&s, 2000), 0, "0% sends nothing to new");
        assert_eq!(to_new(&at("100"), 2000), 2000, "100% sends everything");
        let half = to_new(&at("50"), 4000);
        assert!((1700..=2300).contains(&half), "50% of 4000 sent {half} to new");
        let hundredth = to_new(&at("0.01"), 2000);
        assert!(hundredth <= 5, "0.01% of 2000 sent {hundredth} to new");
    }

    #[test]
    fn a_new_pool_all_down_takes_only_forced_requests() {
        let s = shared();
        let snap = s.load();
        let pool = snap.table.get("orders").expect("the route").pool(Side::New).clone();
        assert!(pool.set_healthy("127.0.0.1:10".parse().expect("an address"), false));
        assert!(pool.all_down());
        let plain = admitted(&s, "/orders/1", &[("host", "a.example")]);
        assert_eq!(plain.map(|(_, side, _)| side), Ok(Side::Legacy), "new is down: legacy serves");
        let shop = shared();
        let shop_snap = shop.load();
        let shop_new = shop_snap.table.get("shop").expect("the route").pool(Side::New).clone();
        shop_new.set_healthy("127.0.0.1:10".parse().expect("an address"), false);
        let forced = admitted(&shop, "/x", &[("host", "shop.example"), ("x-strangler-target", "new;token=s3cret")]);
        assert_eq!(forced.map(|(_, side, d)| (side, d)), Ok((Side::New, Decision::Override)), "QA may still force new");
    }
}
