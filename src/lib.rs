//! strangler: a reverse proxy for strangler-fig migrations.
//!
//! A request's journey, module by module, in the order it happens:
//!
//! 1. [`proxy`]: Pingora hands us the request; the `ProxyHttp` impl is a table of contents.
//! 2. [`route::table`]: match a route by host, then the longest path prefix.
//! 3. [`route::split`]: choose legacy or new (override header, sticky key hash, or random draw).
//! 4. [`proxy::forward`]: ask the chosen side's [`upstream`] pool for a healthy address and forward; on a route that
//!    fails over, what new cannot take goes to legacy.
//! 5. [`shadow`]: for shadowed requests, tee the request and the answer, send the copy to the
//!    other side from a spawned task.
//! 6. [`compare`]: off the request path, diff the two answers, learn noise, keep the mismatches.
//! 7. [`proxy::record`]: count it in [`metrics`] and write the access log line.
//!
//! Around it: [`core`] (what every module shares: `Side`, `BySide`, `Percent`), [`config`] (file ->
//! validated model, written back by runtime changes), [`snapshot`] (the running config, swapped
//! whole on reload), [`live`] (per-side figures over any window), [`control`] (reload on file
//! change or SIGHUP, weights by hand and by the rollout controller and its pure machine, health
//! checks), [`admin`] (the admin listener, the console, the CLI's client and renderings), [`api`]
//! (the admin API's shapes, at the edge), [`cluster`] (a fleet on etcd), [`telemetry`]
//! (OpenTelemetry traces), [`notifications`] (webhooks), [`server`] (process assembly),
//! [`lifecycle`] (systemd readiness, the SIGUSR2 upgrade) and [`logging`].
//! `ARCHITECTURE.md` follows a request, a weight change and a rollout step through them.

pub mod admin;
pub mod api;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod control;
pub mod core;
pub mod headers;
pub mod lifecycle;
pub mod limits;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod notifications;
pub mod probe;
pub mod proxy;
pub mod route;
pub mod server;
pub mod shadow;
pub mod snapshot;
pub mod telemetry;
pub mod upstream;
