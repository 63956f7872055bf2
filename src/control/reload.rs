//! Hot reload. Triggers: a change to the config file, watched through its directory (so editors'
//! atomic renames and Kubernetes ConfigMap symlink swaps are seen, and other files there are
//! not), and SIGHUP. Bursts of file events
//! are debounced. Each reload parses and validates a complete new config and swaps it in with one
//! store; an invalid file is logged and counted and the running config keeps serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use notify::{EventKind, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::cluster::fleet::Fleet;
use crate::cluster::store::{Commit, Doc, StoreError};
use crate::config::model::TOKEN_ENV;
use crate::config::persist::{self, PersistError};
use crate::config::{self, ConfigError};
use crate::core::Percent;
use crate::metrics::METRICS;
use crate::notifications::{self, Notice};
use crate::snapshot::Shared;

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// A file is loaded once two reads this far apart agree...
const STABLE_GAP: Duration = Duration::from_millis(300);
/// ...or, for a file that keeps changing, after this many reads (about 6 s).
const STABLE_TRIES: usize = 20;

/// What asked for a reload; shown in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    FileChange,
    Signal,
    /// `POST /api/reload`.
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::FileChange => "file change",
            Trigger::Signal => "SIGHUP",
            Trigger::Api => "admin API",
        }
    }
}

/// A reload of the config file that was refused: nothing of it applied.
#[derive(Debug, Clone)]
pub struct Refused {
    pub at: std::time::SystemTime,
    pub trigger: Trigger,
    pub error: ConfigError,
}

/// Why a runtime change was refused. Nothing was written and nothing applied.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Persist(#[from] PersistError),
    /// The file on disk (with the change) does not validate.
    #[error("the config file does not validate, so nothing was changed; fix it first:\n{0}")]
    Invalid(ConfigError),
    /// The file is changing on disk right now (an editor is writing it): writing a change over
    /// it could save a half-written file.
    #[error("{0} is being changed on disk, so nothing was changed: try again once it is saved")]
    ChangedOnDisk(String),
    /// In a fleet: etcd cannot be reached, so the fleet's document cannot change.
    #[error("nothing was changed: {0}; this instance keeps serving its last revision, try again once etcd is back")]
    Unavailable(String),
    /// In a fleet: other writers changed the document each time this change was about to land.
    #[error("nothing was changed: {0}")]
    Conflict(String),
}

/// Result of a reload that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A file event, but the file's bytes are those already seen.
    Unchanged,
}

pub struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    /// Bytes of the file as last read or written, so file events that change nothing (our own
    /// writes included) are ignored. Held for the whole of a reload or a change: they never
    /// interleave.
    last_seen: Mutex<Option<Vec<u8>>>,
    /// Where the admin listener was bound at start; it stays there whatever the file says now.
    admin_bound: SocketAddr,
    /// In a fleet, the routing document comes from etcd and changes go there.
    fleet: Option<Arc<Fleet>>,
    /// The last reload refused, until a config is applied from the file again.
    refused: Mutex<Option<Refused>>,
    /// Changes to the fleet's document, one at a time.
    fleet_serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(path: PathBuf, shared: Arc<Shared>) -> Self {
        let last_seen = std::fs::read(&path).ok();
        let admin_bound = shared.load().config.admin.listen;
        Reloader {
            path,
            shared,
            last_seen: Mutex::new(last_seen),
            admin_bound,
            fleet: None,
            refused: Mutex::new(None),
            fleet_serial: tokio::sync::Mutex::new(()),
        }
    }

    /// A reloader of an instance in a fleet: the file holds its process settings, etcd the rest.
    pub fn in_fleet(mut self, fleet: Arc<Fleet>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.fleet.as_ref()
    }

    /// Where a runtime change is kept, for the operator: the file, or the fleet's document.
    pub fn persisted_to(&self) -> String {
        match &self.fleet {
            Some(f) => format!("{} revision {}", f.label(), f.applied_revision()),
            None => self.path.display().to_string(),
        }
    }

    /// The config `text` (the file's) makes: alone, or in a fleet with the document served now.
    fn build(&self, text: &str) -> Result<config::Config, ConfigError> {
        match &self.fleet {
            None => config::load_str(text, &self.path),
            Some(f) => f.validate_with(&f.applied_text(), f.applied_revision(), text),
        }
    }

    /// Apply a revision of the fleet's routing document, or refuse it (logged, counted and
    /// reported by `GET /api/v1/cluster`) and keep serving the last good one.
    pub fn apply_doc(&self, doc: Doc) {
        let Some(fleet) = &self.fleet else { return };
        let _serial = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        match fleet.validate(&doc.text, doc.revision).and_then(|cfg| self.fits_running(cfg)) {
            Ok(cfg) => {
                let revision = doc.revision;
                self.shared.replace(cfg);
                fleet.set_applied(doc, false);
                METRICS.config_reloads.with_label_values(&["ok"]).inc();
                let cur = self.shared.load();
                let weights: Vec<String> =
                    cur.config.routes.iter().map(|r| format!("{}={}%", r.name, r.weight_percent())).collect();
                tracing::info!(trigger = "etcd", revision, routes = %weights.join(" "), "config reloaded");
            }
            Err(e) => {
                METRICS.config_reloads.with_label_values(&["error"]).inc();
                fleet.set_rejected(doc.revision, &e);
                tracing::error!(
                    trigger = "etcd",
                    revision = doc.revision,
                    "routing document rejected, revision {} keeps serving:\n{e}",
                    fleet.applied_revision()
                );
            }
        }
    }

    /// What a new config must satisfy against the running process, beyond being valid: the
    /// admin listener stays bound where it started, so "a token is required unless admin.listen
    /// is loopback" is checked against that address. A file that moves `admin.listen` to
    /// loopback and drops the token must not open the running, non-loopback listener.
    fn fits_running(&self, cfg: config::Config) -> Result<config::Config, ConfigError> {
        if self.admin_bound.ip().is_loopback() || cfg.admin.token.is_some() {
            return Ok(cfg);
        }
        Err(ConfigError {
            file: self.path.clone(),
            problems: vec![config::Problem::new(
                "admin.token",
                Some("\"\"".to_string()),
                format!(
                    "the running admin listener is bound to {} (not loopback; admin.listen changes need a restart), so a token stays required: set admin.token or {TOKEN_ENV}",
                    self.admin_bound
                ),
            )],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last reload refused, if no config has been applied from the file since.
    pub fn refused(&self) -> Option<Refused> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_refused(&self, refused: Option<Refused>) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = refused;
    }

    /// Read, validate and apply the config file. Never leaves a partial config in place.
    pub fn reload(&self, trigger: Trigger) -> Result<Outcome, ConfigError> {
        let mut last = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = std::fs::read(&self.path);
        if let Ok(b) = &bytes {
            if trigger == Trigger::FileChange && last.as_deref() == Some(b.as_slice()) {
                return Ok(Outcome::Unchanged);
            }
            *last = Some(b.clone());
        }
        let result = bytes
            .map_err(|e| ConfigError {
                file: self.path.clone(),
                problems: vec![config::Problem::new("", None, format!("cannot read the file: {e}"))],
            })
            .and_then(|b| self.build(&String::from_utf8_lossy(&b)))
            .and_then(|cfg| self.fits_running(cfg));
        match result {
            Ok(new) => {
                let old = self.shared.replace(new);
                let cur = self.shared.load();
                warn_restart_needed(&old.config, &cur.config);
                notify_weights(&old.config, &cur.config, trigger);
                METRICS.config_reloads.with_label_values(&["ok"]).inc();
                let weights: Vec<String> =
                    cur.config.routes.iter().map(|r| format!("{}={}%", r.name, r.weight_percent())).collect();
                tracing::info!(trigger = trigger.as_str(), routes = %weights.join(" "), "config reloaded");
                self.set_refused(None);
                Ok(Outcome::Applied)
            }
            Err(e) => {
                METRICS.config_reloads.with_label_values(&["error"]).inc();
                tracing::error!(
                    trigger = trigger.as_str(),
                    "config reload rejected, the running config keeps serving:\n{e}"
                );
                self.set_refused(Some(Refused { at: std::time::SystemTime::now(), trigger, error: e.clone() }));
                Err(e)
            }
        }
    }
}

impl Reloader {
    /// A runtime change: `edit` the file's current text, validate the result as a whole config,
    /// write it atomically, then swap it in. All or nothing: on any error the file and the
    /// running config are as they were. The file watcher sees our write as already known.
    ///
    /// A file edited on disk since it was loaded is taken as it is (the change is applied on
    /// top of the operator's edit) only once it reads the same twice [`STABLE_GAP`] apart: an
    /// editor still writing it gets `ChangedOnDisk`, never a half-written file saved for good.
    pub async fn change(
        self: &Arc<Self>,
        edit: impl Fn(&str) -> Result<String, PersistError> + Send + Sync + 'static,
    ) -> Result<(), ChangeError> {
        if let Some(fleet) = &self.fleet {
            return self.change_fleet(fleet, &edit).await;
        }
        // File reads, validation (with its DNS look-ups and certificate files) and the fsync:
        // on the blocking pool, never on a runtime's thread.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.change_file(edit))
            .await
            .map_err(|e| ChangeError::Conflict(format!("the change did not complete: {e}")))?
    }

    /// [`Reloader::change`] of the config file, from a blocking thread.
    fn change_file(&self, edit: impl Fn(&str) -> Result<String, PersistError>) -> Result<(), ChangeError> {
        let mut last = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        let read = || {
            std::fs::read_to_string(&self.path)
                .map_err(|why| PersistError::Write { file: self.path.display().to_string(), why })
        };
        let text = read()?;
        if last.as_deref().is_some_and(|seen| seen != text.as_bytes()) {
            std::thread::sleep(STABLE_GAP);
            if read()? != text {
                return Err(ChangeError::ChangedOnDisk(self.path.display().to_string()));
            }
            tracing::info!(file = %self.path.display(), "the file was edited since it was loaded: the change applies on top of the edit");
        }
        let edited = edit(&text)?;
        let cfg = config::load_str(&edited, &self.path)
            .and_then(|cfg| self.fits_running(cfg))
            .map_err(ChangeError::Invalid)?;
        persist::write_atomic(&self.path, &edited, persist::Contents::Plain)?;
        *last = Some(edited.into_bytes());
        self.shared.replace(cfg);
        // The file on disk is valid again and what serves.
        self.set_refused(None);
        Ok(())
    }
}

/// Tell the notification targets of every weight a reload changed (a route taken out or added
/// is a change of the file, not of a weight).
fn notify_weights(old: &config::Config, new: &config::Config, trigger: Trigger) {
    let source = match trigger {
        Trigger::FileChange => "file",
        Trigger::Signal => "file (SIGHUP)",
        Trigger::Api => "file (reload API)",
    };
    for r in &new.routes {
        if let Some(before) = old.route(&r.name).filter(|before| before.weight != r.weight) {
            notifications::send(Notice::weight(&r.name, before.weight, r.weight, source, None));
        }
    }
}

/// Lost compare-and-swap races a fleet change retries before answering 409.
const SWAP_TRIES: usize = 5;

impl Reloader {
    /// A runtime change in a fleet: `edit` the document as etcd has it now, validate the result
    /// as this instance would run it, and write it back only if nobody wrote in between (a
    /// compare-and-swap on its revision); a lost race starts again from the newer document.
    /// Applied here at once; the other instances apply it from their watch.
    async fn change_fleet(
        self: &Arc<Self>,
        fleet: &Arc<Fleet>,
        edit: &(impl Fn(&str) -> Result<String, PersistError> + Sync),
    ) -> Result<(), ChangeError> {
        let _serial = self.fleet_serial.lock().await;
        for _ in 0..SWAP_TRIES {
            let (from, edited, cfg) = self.edit_doc(fleet, edit).await?;
            let commit = Commit { doc: Some((from, edited.clone())), ..Commit::default() };
            match Self::commit_with(fleet, commit).await? {
                Some(revision) => {
                    self.shared.replace(cfg);
                    fleet.set_applied(Doc { text: edited, revision }, false);
                    return Ok(());
                }
                None => {
                    tracing::info!(from, "the routing document changed during a change: trying again on the new one")
                }
            }
        }
        Err(ChangeError::Conflict(format!(
            "{} changed under this change {SWAP_TRIES} times in a row; try again",
            fleet.label()
        )))
    }

    /// The routing document as etcd has it now, edited: its revision, the new text, and the
    /// config this instance would run with it (validated, on the blocking pool).
    async fn edit_doc(
        self: &Arc<Self>,
        fleet: &Arc<Fleet>,
        edit: &(impl Fn(&str) -> Result<String, PersistError> + Sync),
    ) -> Result<(i64, String, config::Config), ChangeError> {
        let unavailable = |e: StoreError| ChangeError::Unavailable(e.to_string());
        let (doc, _) = fleet.call(|s| Box::pin(async move { s.doc().await })).await.map_err(unavailable)?;
        let Some(doc) = doc else {
            return Err(ChangeError::Conflict(format!(
                "{} holds no routing document: upload one with `strangler cluster push`",
                fleet.label()
            )));
        };
        let edited = edit(&doc.text)?;
        let (this, fleet, text) = (self.clone(), fleet.clone(), edited.clone());
        let cfg = tokio::task::spawn_blocking(move || {
            fleet.validate(&text, doc.revision).and_then(|cfg| this.fits_running(cfg))
        })
        .await
        .map_err(|e| ChangeError::Conflict(format!("the change did not complete: {e}")))?
        .map_err(ChangeError::Invalid)?;
        Ok((doc.revision, edited, cfg))
    }

    async fn commit_with(fleet: &Arc<Fleet>, commit: Commit) -> Result<Option<i64>, ChangeError> {
        let commit = Arc::new(commit);
        fleet
            .call(move |s| {
                let c = commit.clone();
                Box::pin(async move { s.commit(&c).await })
            })
            .await
            .map_err(|e| ChangeError::Unavailable(e.to_string()))
    }

    /// A runtime change of one route's weight (see [`Reloader::change`]).
    pub async fn set_weight(self: &Arc<Self>, route: &str, weight: Percent) -> Result<(), ChangeError> {
        self.change(self.weight_edit(route, weight)).await
    }

    /// The edit that sets `route`'s weight in a config's (or the fleet document's) text.
    fn weight_edit(
        &self,
        route: &str,
        weight: Percent,
    ) -> impl Fn(&str) -> Result<String, PersistError> + Send + Sync + 'static {
        let (path, route) = (self.path.clone(), route.to_string());
        move |text| persist::set_weight(text, &path, &route, weight.as_f64())
    }

    /// A rollout's move in a fleet: `rollout` (a route's new progress and the revision it was
    /// computed from) written together with `weight` (the route's new weight, if it changes), in
    /// one transaction, and only while `term` (the leader's, when the leader moves) holds. The
    /// store's new revision; a conflict when anything changed meanwhile: nothing is written, the
    /// caller reads again.
    pub async fn commit_rollout(
        self: &Arc<Self>,
        fleet: &Arc<Fleet>,
        weight: Option<Percent>,
        term: Option<i64>,
        rollout: (String, i64, String),
    ) -> Result<i64, ChangeError> {
        let _serial = self.fleet_serial.lock().await;
        let route = rollout.0.clone();
        let edited = match weight {
            Some(w) => Some(self.edit_doc(fleet, &self.weight_edit(&route, w)).await?),
            None => None,
        };
        let commit =
            Commit { term, doc: edited.as_ref().map(|(from, text, _)| (*from, text.clone())), rollout: Some(rollout) };
        match Self::commit_with(fleet, commit).await? {
            Some(revision) => {
                if let Some((_, text, cfg)) = edited {
                    self.shared.replace(cfg);
                    fleet.set_applied(Doc { text, revision }, false);
                }
                Ok(revision)
            }
            None => Err(ChangeError::Conflict(format!(
                "the rollout of {route:?}{} changed meanwhile{}; read again",
                if weight.is_some() { " or the routing document" } else { "" },
                if term.is_some() { ", or this instance no longer leads" } else { "" }
            ))),
        }
    }
}

/// Settings bound at start-up cannot change on reload; say so instead of pretending.
fn warn_restart_needed(old: &config::Config, new: &config::Config) {
    let mut changed = Vec::new();
    if old.server != new.server {
        changed.push("server");
    }
    if old.admin.listen != new.admin.listen {
        changed.push("admin.listen");
    }
    if old.log.level != new.log.level || old.log.format != new.log.format {
        changed.push("log.level/log.format");
    }
    if !changed.is_empty() {
        tracing::warn!("changes to {} take effect only after a restart", changed.join(", "));
    }
}

/// The background task that turns file events and SIGHUP into reloads.
pub struct ReloadService {
    reloader: Arc<Reloader>,
}

impl ReloadService {
    pub fn new(reloader: Arc<Reloader>) -> Self {
        ReloadService { reloader }
    }

    /// A reload (file reads, validation, DNS look-ups) on the blocking pool; its result is
    /// logged and counted by the reloader.
    async fn reload(&self, trigger: Trigger) {
        let reloader = self.reloader.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload(trigger)).await {
            tracing::error!("a reload did not complete: {e}");
        }
    }
}

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watcher = watch_dir(self.reloader.path(), tx);
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP, reload by signal is off: {e}");
                None
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    self.reload(Trigger::Signal).await;
                }
                Some(()) = rx.recv() => {
                    // Debounce: wait until events stop for a moment, then reload once the file
                    // reads the same twice in a row (an editor writing in place and pausing
                    // must not get a half-written file applied).
                    while tokio::time::timeout(DEBOUNCE, rx.recv()).await.is_ok_and(|e| e.is_some()) {}
                    let mut before = tokio::fs::read(self.reloader.path()).await.ok();
                    for _ in 0..STABLE_TRIES {
                        tokio::time::sleep(STABLE_GAP).await;
                        let now = tokio::fs::read(self.reloader.path()).await.ok();
                        if now == before {
                            break;
                        }
                        before = now;
                    }
                    self.reload(Trigger::FileChange).await;
                }
            }
        }
    }
}

/// Watch the directory, not the file: an atomic rename or a symlink swap replaces the inode a
/// file watch would be attached to.
fn watch_dir(path: &Path, tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    let handler = move |res: notify::Result<notify::Event>| {
        // Reads (ours included) produce access events; they never change the config.
        if let Ok(ev) = res {
            if !matches!(ev.kind, EventKind::Access(_)) && may_change_config(&name, &ev.paths) {
                let _ = tx.send(());
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch {}: {e}; reload with SIGHUP", dir.display());
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::error!("cannot watch {}: {e}; reload with SIGHUP", dir.display());
        return None;
    }
    Some(watcher)
}

/// Whether an event on `paths` (in the config's directory) can change the config named `name`:
/// one on the file itself (written in place, or a file renamed onto it), or on a `..`-prefixed
/// entry (Kubernetes swaps a ConfigMap's `..data` symlink, which the file's own symlink goes
/// through). Anything else there (a log kept next to the config, an editor's swap file) would
/// only wake the reloader to find the file unchanged. An event without paths (the watcher lost
/// track) may be anything.
fn may_change_config(name: &std::ffi::OsStr, paths: &[PathBuf]) -> bool {
    paths.is_empty()
        || paths.iter().any(|p| p.file_name().is_none_or(|n| n == name || n.as_encoded_bytes().starts_with(b"..")))
}

/// Make SIGHUP harmless from the very start of the process: until a handler is installed its
/// default action kills the process. Tokio keeps the OS handler installed for the life of the
/// process once registered, so registering it on a short-lived runtime is enough.
pub fn guard_sighup() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async { signal(SignalKind::hangup()).map(drop) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_that_can_change_the_config_wake_the_reloader() {
        let name = std::ffi::OsStr::new("strangler.toml");
        let d = Path::new("/etc/strangler");
        let one = |f: &str| may_change_config(name, &[d.join(f)]);
        assert!(one("strangler.toml"), "the file itself");
        assert!(one("..data") && one("..data_tmp") && one("..2026_12_02_10_00_00.123"), "a ConfigMap swap");
        assert!(!one("access.log"), "a log next to the config");
        assert!(!one(".strangler.toml.swp") && !one("strangler.toml~"), "an editor's side files");
        assert!(
            may_change_config(name, &[d.join("strangler.toml.tmp"), d.join("strangler.toml")]),
            "a rename onto the file names both"
        );
        assert!(may_change_config(name, &[]), "a lost-track event may be anything");
    }
}
