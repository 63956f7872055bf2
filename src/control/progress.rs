//! Where rollout progress is kept, and what the controller reads of the world through the same
//! door: alone, a state file beside the config ([`FileStore`]); in a fleet, etcd, with every
//! instance's counters and evidence pooled ([`EtcdStore`]). The controller
//! ([`super::rollout`]) has no `if fleet` of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::machine::Progress;
use super::reload::{ChangeError, Reloader};
use crate::cluster::fleet::Fleet;
use crate::cluster::store::Stored;
use crate::compare::findings::Significant;
use crate::compare::report::ReportRules;
use crate::config::persist;
use crate::core::Percent;
use crate::live::{Counted, Tally};
use crate::route::Matched;
use crate::shadow::state::ShadowState;

/// How old the other instances' figures may be when the leader judges a step: they are
/// published every 2 s.
const FIGURES_MAX_AGE: Duration = Duration::from_secs(2);
/// The key of this process's counters in a tally outside a fleet.
const LOCAL: &str = "";

/// Where a route's progress stands in a shared store (etcd's `mod_revision` of its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// Not written there yet (or kept in a file, which has no revisions).
    Unwritten,
    At(i64),
    /// A write failed: read it again before the next move.
    Stale,
}

impl Revision {
    /// What a compare-and-swap expects the key's revision to be (0: absent); `None` when stale.
    pub fn expected(self) -> Option<i64> {
        match self {
            Revision::Unwritten => Some(0),
            Revision::At(r) => Some(r),
            Revision::Stale => None,
        }
    }

    /// Whether what is tracked is at least as new as a stored revision.
    fn covers(self, stored: i64) -> bool {
        matches!(self, Revision::At(r) if r >= stored)
    }
}

/// A route's rollout as the controller tracks it.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub progress: Progress,
    /// The last failure to persist a weight, logged once.
    pub last_error: Option<String>,
    pub revision: Revision,
}

impl Tracked {
    pub fn new(progress: Progress, revision: Revision) -> Tracked {
        Tracked { progress, last_error: None, revision }
    }
}

#[async_trait]
pub trait ProgressStore: Send + Sync {
    /// Progress kept from before this process started, checked; what cannot be read is logged
    /// and left out (that rollout starts over from its weight).
    fn load(&self) -> BTreeMap<String, Progress>;
    /// Whether this instance drives rollouts now (a fleet's follower shows what the leader writes).
    fn leads(&self) -> bool;
    /// Whether others share this progress (a write can lose a race and must be read again).
    fn shared(&self) -> bool;
    /// A route's counters now: this process's, or every instance's.
    fn tally(&self, m: &Matched) -> Tally;
    /// Before a tick that judges: the other instances' figures, fresh enough.
    async fn refresh_figures(&self);
    /// The route's findings that count now, which make their endpoints' verdict `differs`
    /// (pooled from every instance).
    async fn significant(&self, route: &str, state: &ShadowState, rules: &ReportRules) -> Vec<Significant>;
    /// Write `next` as the route's progress, moving its weight to `weight` first if given; the
    /// new revision. `by_leader`: fenced on the leader's term.
    async fn commit(
        &self,
        route: &str,
        at: Revision,
        next: &Progress,
        weight: Option<Percent>,
        by_leader: bool,
    ) -> Result<Revision, ChangeError>;
    /// Take up what the store holds that is newer than `rollouts`; whether anything changed.
    fn sync(&self, rollouts: &mut BTreeMap<String, Tracked>) -> bool;
    /// Read one route's progress now (an operator acts on what is, not on a mirror).
    async fn refresh(&self, route: &str, rollouts: &mut BTreeMap<String, Tracked>) -> Result<(), ChangeError>;
    /// Rollouts taken out of the config leave no progress behind.
    async fn forget(&self, gone: Vec<(String, Revision)>);
    /// Keep every route's progress (after any change).
    async fn save(&self, rollouts: &BTreeMap<String, Tracked>);
}

/// `conf/strangler.toml` -> `conf/strangler.rollout.json`.
pub fn state_file_for(config: &Path) -> PathBuf {
    config.with_extension("rollout.json")
}

fn local_tally(m: &Matched) -> Tally {
    [(LOCAL.to_string(), Counted { boot: crate::live::boot_id(), reading: m.reading() })].into()
}

/// One instance alone: weights in the config file, progress in a state file beside it.
pub struct FileStore {
    reloader: Arc<Reloader>,
    state_file: PathBuf,
}

impl FileStore {
    pub fn new(reloader: Arc<Reloader>) -> FileStore {
        let state_file = state_file_for(reloader.path());
        FileStore { reloader, state_file }
    }
}

#[async_trait]
impl ProgressStore for FileStore {
    fn load(&self) -> BTreeMap<String, Progress> {
        let Ok(text) = std::fs::read_to_string(&self.state_file) else { return BTreeMap::new() };
        let saved: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::error!("{}: not a rollout state file ({e}); rollouts start over", self.state_file.display());
            BTreeMap::new()
        });
        saved
            .into_iter()
            .filter_map(|(name, value)| match Progress::parse(&value.to_string()) {
                Ok(p) => Some((name, p)),
                Err(e) => {
                    tracing::error!(
                        route = name,
                        "{}: {e}; this rollout starts over from the weight",
                        self.state_file.display()
                    );
                    None
                }
            })
            .collect()
    }

    fn leads(&self) -> bool {
        true
    }

    fn shared(&self) -> bool {
        false
    }

    fn tally(&self, m: &Matched) -> Tally {
        local_tally(m)
    }

    async fn refresh_figures(&self) {}

    async fn significant(&self, _route: &str, state: &ShadowState, rules: &ReportRules) -> Vec<Significant> {
        state.findings().significant(rules)
    }

    async fn commit(
        &self,
        route: &str,
        _at: Revision,
        _next: &Progress,
        weight: Option<Percent>,
        _by_leader: bool,
    ) -> Result<Revision, ChangeError> {
        // The progress goes to the state file with the next save.
        if let Some(w) = weight {
            self.reloader.set_weight(route, w).await?;
        }
        Ok(Revision::Unwritten)
    }

    fn sync(&self, _rollouts: &mut BTreeMap<String, Tracked>) -> bool {
        false
    }

    async fn refresh(&self, _route: &str, _rollouts: &mut BTreeMap<String, Tracked>) -> Result<(), ChangeError> {
        Ok(())
    }

    async fn forget(&self, _gone: Vec<(String, Revision)>) {}

    async fn save(&self, rollouts: &BTreeMap<String, Tracked>) {
        let state: BTreeMap<&String, &Progress> = rollouts.iter().map(|(k, t)| (k, &t.progress)).collect();
        let mut text = serde_json::to_string_pretty(&state).unwrap_or_default();
        text.push('\n');
        let file = self.state_file.clone();
        let written =
            tokio::task::spawn_blocking(move || persist::write_atomic(&file, &text, persist::Contents::Plain)).await;
        if let Err(e) = written.map_err(|e| e.to_string()).and_then(|w| w.map_err(|e| e.to_string())) {
            tracing::error!("cannot keep rollout progress, a restart would start over: {e}");
        }
    }
}

/// An instance of a fleet: weights in the fleet's routing document, progress under
/// `PREFIX/rollout/ROUTE`, both in etcd and written together; figures and evidence pooled from
/// every instance. Only the elected leader drives.
pub struct EtcdStore {
    reloader: Arc<Reloader>,
    fleet: Arc<Fleet>,
    /// The fleet's mirror of progress as last taken up (its change count).
    synced: Mutex<u64>,
}

impl EtcdStore {
    pub fn new(reloader: Arc<Reloader>, fleet: Arc<Fleet>) -> EtcdStore {
        EtcdStore { reloader, fleet, synced: Mutex::new(0) }
    }

    fn tracked(s: &Stored) -> Result<Tracked, String> {
        Ok(Tracked::new(Progress::parse(&s.json)?, Revision::At(s.revision)))
    }

    fn refused(&self, route: &str, revision: i64, why: &str) {
        crate::cluster::store::refused(
            crate::metrics::Refused::Rollout,
            &self.fleet.keys.rollout(route),
            revision,
            why,
        );
    }
}

#[async_trait]
impl ProgressStore for EtcdStore {
    fn load(&self) -> BTreeMap<String, Progress> {
        // Taken up from the fleet's mirror by the first sync.
        BTreeMap::new()
    }

    fn leads(&self) -> bool {
        self.fleet.term().is_some()
    }

    fn shared(&self) -> bool {
        true
    }

    fn tally(&self, m: &Matched) -> Tally {
        self.fleet.tally(&m.route.name, m.reading())
    }

    async fn refresh_figures(&self) {
        self.fleet.refresh_figures(FIGURES_MAX_AGE).await;
    }

    async fn significant(&self, route: &str, state: &ShadowState, rules: &ReportRules) -> Vec<Significant> {
        let own = state.findings().clone();
        self.fleet.pooled_findings(route, own).await.0.significant(rules)
    }

    async fn commit(
        &self,
        route: &str,
        at: Revision,
        next: &Progress,
        weight: Option<Percent>,
        by_leader: bool,
    ) -> Result<Revision, ChangeError> {
        let term = match by_leader {
            true => Some(self.fleet.term().ok_or_else(|| {
                ChangeError::Conflict("this instance no longer leads the fleet's rollouts".to_string())
            })?),
            false => None,
        };
        let expected = at
            .expected()
            .ok_or_else(|| ChangeError::Conflict(format!("the rollout of {route:?} is being read again from etcd")))?;
        let json = serde_json::to_string(next).map_err(|e| ChangeError::Conflict(e.to_string()))?;
        let revision =
            self.reloader.commit_rollout(&self.fleet, weight, term, (route.to_string(), expected, json)).await?;
        Ok(Revision::At(revision))
    }

    fn sync(&self, rollouts: &mut BTreeMap<String, Tracked>) -> bool {
        let (version, stored) = self.fleet.rollouts();
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        let stale = rollouts.values().any(|t| t.revision == Revision::Stale);
        if *synced == version && !stale {
            return false;
        }
        *synced = version;
        // Gone from etcd (deleted by hand), or a first write that lost: forgotten here too, and
        // taken up again.
        rollouts.retain(|name, t| t.revision == Revision::Unwritten || stored.contains_key(name));
        for (name, s) in stored {
            if rollouts.get(&name).is_some_and(|t| t.revision.covers(s.revision)) {
                continue;
            }
            match Self::tracked(&s) {
                Ok(t) => {
                    rollouts.insert(name, t);
                }
                Err(e) => self.refused(&name, s.revision, &e),
            }
        }
        true
    }

    async fn refresh(&self, route: &str, rollouts: &mut BTreeMap<String, Tracked>) -> Result<(), ChangeError> {
        let name = route.to_string();
        let stored = self
            .fleet
            .call(move |s| {
                let name = name.clone();
                Box::pin(async move { s.rollout(&name).await })
            })
            .await
            .map_err(|e| ChangeError::Unavailable(e.to_string()))?;
        match stored {
            Some(s) => match Self::tracked(&s) {
                Ok(t) => {
                    rollouts.insert(route.to_string(), t);
                }
                Err(e) => {
                    return Err(ChangeError::Conflict(format!(
                        "the rollout progress of {route:?} in etcd is unreadable ({e}); abort or delete it"
                    )))
                }
            },
            None => {
                rollouts.remove(route);
            }
        }
        Ok(())
    }

    async fn forget(&self, gone: Vec<(String, Revision)>) {
        let Some(term) = self.fleet.term() else { return };
        for (route, revision) in gone {
            let Revision::At(revision) = revision else { continue };
            let key = (route.clone(), revision);
            let done = self
                .fleet
                .call(move |s| {
                    let (route, revision) = key.clone();
                    Box::pin(async move { s.forget_rollout(&route, revision, term).await })
                })
                .await;
            if let Err(e) = done {
                tracing::warn!(route, "the progress of a removed rollout stays in etcd: {e}");
            }
        }
    }

    async fn save(&self, _rollouts: &BTreeMap<String, Tracked>) {
        // In etcd already, written move by move.
    }
}
