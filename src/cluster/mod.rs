//! A fleet: several strangler instances sharing one routing config in etcd v3.
//!
//! Opt-in with `[cluster]`. The process settings (`[server]`, `[admin]`, `[log]`, `[cluster]`)
//! stay in each instance's file; the routing document (`[upstreams.*]` and `[[routes]]`) lives
//! in etcd. Key layout under `cluster.prefix` (default `/strangler`):
//!
//! | key | value |
//! |-----|-------|
//! | `PREFIX/config` | the routing document, TOML text with its comments |
//! | `PREFIX/instances/NAME` | an instance's registration (JSON `InstanceView`), on its lease |
//! | `PREFIX/leader` | the name of the instance that drives rollouts, on its lease; the key's `create_revision` is its term |
//! | `PREFIX/rollout/ROUTE` | a route's rollout progress (JSON: step, hold clock, status, the counters the step started from) |
//! | `PREFIX/figures/NAME` | an instance's cumulative counters per route (JSON), on its lease |
//! | `PREFIX/findings/ROUTE/NAME` | an instance's cutover evidence of a route (JSON), on its lease |
//! | `PREFIX/reset/ROUTE` | the last fleet-wide reset of a route's cutover report |
//!
//! Every instance watches `PREFIX/config` and applies each revision through the same
//! all-or-nothing path as a file reload; a runtime change (a weight) is a compare-and-swap on
//! the document's `mod_revision`. Every instance stands for election on its lease; the leader
//! alone drives rollouts, on every instance's figures summed, and writes a step's weight and
//! progress in one transaction fenced on its term.

pub mod cli;
pub mod doc;
pub mod fleet;
pub mod store;
pub mod watch;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use fleet::Fleet;
use store::Store;

/// How long a start waits for etcd before it falls back to the cached document.
const BOOT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The config an instance in a fleet starts with: its file's process settings and the routing
/// document from etcd; while etcd is away (or holds a document this instance refuses), the one
/// it last applied, from its local cache, reported stale. No document at all: it refuses to
/// start, saying why.
pub fn boot(local: &Config, path: &Path) -> anyhow::Result<(Config, Arc<Fleet>)> {
    let settings = local.cluster.clone().context("boot needs a [cluster] section")?;
    // Read once: the routes it must not hold are refused before etcd is asked, and every
    // document below is validated against these same process settings.
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    fleet::process_settings(path, &text)?;
    crate::metrics::METRICS.enable_cluster();
    let listeners = (local.server.listen.iter().map(|a| a.to_string()).collect(), local.admin.listen.to_string());
    let fleet = Fleet::new(settings.clone(), path, listeners);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("a runtime for etcd")?;
    let fetched = runtime.block_on(async {
        let store = tokio::time::timeout(BOOT_WAIT, Store::connect(&settings))
            .await
            .map_err(|_| "connecting timed out".to_string())?
            .map_err(|e| e.to_string())?;
        store.doc().await.map_err(|e| e.to_string())
    });
    let why = match fetched {
        Ok((Some(doc), _)) => match fleet.validate_with(&doc.text, doc.revision, &text) {
            Ok(cfg) => {
                fleet.set_applied(doc, false);
                return Ok((cfg, fleet));
            }
            Err(e) => {
                tracing::error!("the routing document in etcd is refused:\n{e}");
                fleet.set_rejected(doc.revision, &e);
                format!("the routing document in etcd (revision {}) is refused:\n{e}", doc.revision)
            }
        },
        Ok((None, _)) => {
            tracing::warn!(key = %fleet.keys.config(), "no routing document in etcd yet: serving no routes until one is pushed");
            let cfg = fleet.validate_with("", 0, &text)?;
            return Ok((cfg, fleet));
        }
        Err(e) => format!("etcd ({}) is unreachable: {e}", settings.endpoints.join(", ")),
    };
    let Some(cached) = fleet.read_cache() else {
        anyhow::bail!(
            "{why}\nand there is no cached routing document at {} (written once this instance has applied one), so there is nothing to serve",
            settings.cache.display()
        );
    };
    tracing::warn!(cache = %settings.cache.display(), revision = cached.revision, "{why}; starting on the cached routing document (stale until etcd confirms it)");
    let cfg = fleet
        .validate_with(&cached.text, cached.revision, &text)
        .with_context(|| format!("the cached routing document {}", settings.cache.display()))?;
    fleet.set_applied(cached, true);
    Ok((cfg, fleet))
}
