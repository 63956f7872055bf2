//! `strangler cluster push` and `pull`: the routing document between a file and etcd.

use std::path::Path;

use super::doc;
use super::store::Store;
use crate::config::{self, ClusterSettings, ConfigError};

/// Why a push or pull did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(ConfigError),
    #[error("{0}")]
    Other(String),
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Other(format!("cannot read {}: {e}", path.display())))
}

/// The `[cluster]` settings of an instance's file (validated with the rest of the file).
fn settings(config_path: &Path, text: &str) -> Result<ClusterSettings, CliError> {
    let process = doc::process_part(text).map_err(|e| CliError::Other(format!("{}: {e}", config_path.display())))?;
    let cfg = config::load_str(&process, config_path).map_err(CliError::Invalid)?;
    cfg.cluster.ok_or_else(|| {
        CliError::Other(format!(
            "{} has no [cluster] section: add one with the etcd endpoints (cluster.etcd = [\"http://127.0.0.1:2379\"])",
            config_path.display()
        ))
    })
}

/// Validate the routing part of `routes_path` (default: the config file itself) joined to the
/// process settings of `config_path`, exactly as every instance will, then upload it. Returns
/// what was done, for the operator.
pub async fn push(config_path: &Path, routes_path: Option<&Path>) -> Result<String, CliError> {
    let text = read(config_path)?;
    let cluster = settings(config_path, &text)?;
    let source = routes_path.unwrap_or(config_path);
    let source_text = if routes_path.is_some() { read(source)? } else { text.clone() };
    let routing = doc::routing_part(&source_text).map_err(|e| CliError::Other(format!("{}: {e}", source.display())))?;
    if doc::routing_in(&routing).is_empty() {
        return Err(CliError::Other(format!(
            "{} has no [upstreams.*] or [[routes]]: nothing to push",
            source.display()
        )));
    }
    let process = doc::process_part(&text).map_err(|e| CliError::Other(format!("{}: {e}", config_path.display())))?;
    let joined = doc::join(&routing, &process);
    let cfg = config::load_str(&joined, source).map_err(CliError::Invalid)?;
    let routes = cfg.routes.len();
    let store = Store::connect(&cluster).await.map_err(|e| CliError::Other(e.to_string()))?;
    let (before, _) = store.doc().await.map_err(|e| CliError::Other(e.to_string()))?;
    let revision = store.put_doc(&routing).await.map_err(|e| CliError::Other(e.to_string()))?;
    let was = before.map_or("nothing before".to_string(), |d| format!("was revision {}", d.revision));
    Ok(format!(
        "pushed {routes} route(s) from {} to etcd {}: revision {revision} ({was}); every instance applies it now",
        source.display(),
        store.keys.config(),
    ))
}

/// The routing document in etcd, and its revision.
pub async fn pull(config_path: &Path) -> Result<(String, i64), CliError> {
    let text = read(config_path)?;
    let cluster = settings(config_path, &text)?;
    let store = Store::connect(&cluster).await.map_err(|e| CliError::Other(e.to_string()))?;
    match store.doc().await.map_err(|e| CliError::Other(e.to_string()))? {
        (Some(d), _) => Ok((d.text, d.revision)),
        (None, _) => Err(CliError::Other(format!(
            "nothing at etcd {} yet: upload a routing document with `strangler cluster push`",
            store.keys.config()
        ))),
    }
}
