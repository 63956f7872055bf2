//! The admin listener's paths: each endpoint with its parameters, the methods it takes, and
//! whether it needs the token or the listener's own site.

use http::Method;

/// An admin path, parsed once: the handlers get their parameters, not segments to match again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Livez,
    Readyz,
    Metrics,
    Routes,
    Route(String),
    Diffs(String),
    Weight(String),
    Reload,
    /// A route and the action (`pause`, `resume`, `abort`), checked by the handler.
    Rollout(String, String),
    Report(String),
    ReportReset(String),
    Replay(String),
    Replays(String),
    History(String),
    /// The console's page and its files.
    Console,
    /// This instance's view of its fleet.
    Cluster,
}

impl Endpoint {
    /// The endpoint at `path`. `/api/v1/...` and the unversioned `/api/...` alias are the same
    /// endpoints.
    pub fn of(path: &str) -> Option<Endpoint> {
        let mut segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if segments.len() > 1 && segments[0] == "api" && segments[1] == "v1" {
            segments.remove(1);
        }
        let route = |name: &str| name.to_string();
        Some(match segments.as_slice() {
            ["livez"] => Endpoint::Livez,
            ["readyz"] => Endpoint::Readyz,
            ["metrics"] => Endpoint::Metrics,
            ["api", "routes"] => Endpoint::Routes,
            ["api", "routes", name] => Endpoint::Route(route(name)),
            ["api", "routes", name, "diffs"] => Endpoint::Diffs(route(name)),
            ["api", "routes", name, "report"] => Endpoint::Report(route(name)),
            ["api", "routes", name, "report", "reset"] => Endpoint::ReportReset(route(name)),
            ["api", "routes", name, "replay"] => Endpoint::Replay(route(name)),
            ["api", "routes", name, "replays"] => Endpoint::Replays(route(name)),
            ["api", "routes", name, "history"] => Endpoint::History(route(name)),
            ["api", "routes", name, "weight"] => Endpoint::Weight(route(name)),
            ["api", "reload"] => Endpoint::Reload,
            ["api", "cluster"] => Endpoint::Cluster,
            ["api", "routes", name, "rollout", action] => Endpoint::Rollout(route(name), action.to_string()),
            [""] | ["ui"] | ["ui", _] => Endpoint::Console,
            _ => return None,
        })
    }

    pub fn allows(&self, method: &Method) -> bool {
        let takes = self.allowed();
        *method == takes || (takes == Method::GET && *method == Method::HEAD)
    }

    /// The method it takes (GET also answers HEAD).
    pub fn allowed(&self) -> Method {
        match self {
            Endpoint::Weight(_) => Method::PUT,
            Endpoint::Reload | Endpoint::Rollout(..) | Endpoint::ReportReset(_) | Endpoint::Replay(_) => Method::POST,
            _ => Method::GET,
        }
    }

    /// A replay sends requests to both upstreams: it acts, like a mutation.
    pub fn mutates(&self) -> bool {
        self.allowed() != Method::GET
    }

    /// Health and metrics stay open for probes and scrapers; the API (whose diffs carry
    /// response bodies) needs the token when one is set.
    /// The console's files carry no data (the page asks the API, with the token), so they load
    /// without it and the page can ask for it.
    pub fn needs_token(&self) -> bool {
        !matches!(self, Endpoint::Livez | Endpoint::Readyz | Endpoint::Metrics | Endpoint::Console)
    }

    /// The API and the console answer only under this listener's own names (see
    /// [`super::server`]'s `same_site`).
    pub fn checks_site(&self) -> bool {
        self.needs_token() || *self == Endpoint::Console
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_is_its_endpoint_with_its_parameters() {
        let orders = || "orders".to_string();
        let cases = [
            ("/livez", Some(Endpoint::Livez)),
            ("/metrics", Some(Endpoint::Metrics)),
            ("/api/v1/routes", Some(Endpoint::Routes)),
            ("/api/routes", Some(Endpoint::Routes)),
            ("/api/v1/routes/orders", Some(Endpoint::Route(orders()))),
            ("/api/v1/routes/orders/weight", Some(Endpoint::Weight(orders()))),
            ("/api/v1/routes/orders/report/reset", Some(Endpoint::ReportReset(orders()))),
            ("/api/v1/routes/orders/rollout/pause", Some(Endpoint::Rollout(orders(), "pause".into()))),
            ("/api/routes/orders/history", Some(Endpoint::History(orders()))),
            ("/", Some(Endpoint::Console)),
            ("/ui/app.js", Some(Endpoint::Console)),
            ("/api/v1/routes/orders/weight/extra", None),
            ("/api/v2/routes", None),
            ("/nothing", None),
        ];
        for (path, want) in cases {
            assert_eq!(Endpoint::of(path), want, "{path}");
        }
    }

    #[test]
    fn each_endpoint_takes_its_method_and_reads_take_head() {
        let weight = Endpoint::Weight("orders".into());
        assert!(weight.allows(&Method::PUT) && !weight.allows(&Method::GET) && weight.mutates());
        assert!(Endpoint::Reload.allows(&Method::POST) && !Endpoint::Reload.allows(&Method::PUT));
        assert!(Endpoint::Routes.allows(&Method::HEAD) && !Endpoint::Routes.allows(&Method::POST));
        assert!(Endpoint::Replay("orders".into()).mutates(), "a replay acts on both upstreams");
        assert!(!Endpoint::Metrics.needs_token() && !Endpoint::Metrics.checks_site());
        assert!(!Endpoint::Console.needs_token() && Endpoint::Console.checks_site());
    }
}
