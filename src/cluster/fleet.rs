//! This instance's view of the fleet: the routing document it serves (and from where), whether
//! etcd is reachable, the last document it refused; the local cache that lets it start while
//! etcd is away; and the validation every document goes through.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::doc;
use super::store::{Doc, Keys, Store, StoreError, Stored};
use crate::api;
use crate::config::operations::NoticeKind;
use crate::config::{self, ClusterSettings, Config, ConfigError, Problem};
use crate::live::{Counted, Reading, Tally};
use crate::metrics::METRICS;
use crate::notifications::{self, Notice};

/// What an instance publishes under `PREFIX/figures/NAME`: every route's cumulative counters
/// since the process started (`boot`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Published {
    pub boot: u64,
    pub routes: BTreeMap<String, Reading>,
}

/// What an instance publishes under `PREFIX/findings/ROUTE/NAME`: its cutover evidence of the
/// route since the last fleet-wide reset it applied (that reset's revision).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedFindings {
    pub reset_revision: i64,
    pub findings: crate::compare::findings::Findings,
}

/// The other instances' published figures, as last read.
#[derive(Default)]
struct FiguresCache {
    read_at: Option<Instant>,
    by_instance: Arc<BTreeMap<String, Published>>,
}

/// What an instance knows of the fleet.
pub struct Fleet {
    pub settings: ClusterSettings,
    pub keys: Keys,
    /// The instance's own file.
    local: PathBuf,
    /// Its proxy listeners and admin listener, as it registers them.
    listeners: (Vec<String>, String),
    state: Mutex<State>,
    store: Mutex<Option<Store>>,
    /// Every route's rollout progress as etcd holds it, kept current by a watch, with a count of
    /// the changes seen.
    rollouts: Mutex<(u64, BTreeMap<String, Stored>)>,
    figures: Mutex<FiguresCache>,
    /// Per route, the revision of the last fleet-wide report reset applied here.
    resets: Mutex<BTreeMap<String, i64>>,
}

#[derive(Default)]
struct State {
    applied: Option<Doc>,
    applied_at: Option<SystemTime>,
    /// Serving the cached document, not yet confirmed by etcd since the start.
    stale: bool,
    connected: bool,
    rejected: Option<(i64, Vec<String>)>,
    last_error: Option<String>,
    /// The elected rollout controller, as last seen.
    leader: Option<String>,
    /// This instance's term while it is the leader (the leader key's `create_revision`).
    term: Option<i64>,
}

impl Fleet {
    pub fn new(settings: ClusterSettings, local: &Path, listeners: (Vec<String>, String)) -> Arc<Fleet> {
        let keys = Keys::new(&settings.prefix);
        Arc::new(Fleet {
            settings,
            keys,
            local: local.to_path_buf(),
            listeners,
            state: Mutex::new(State::default()),
            store: Mutex::new(None),
            rollouts: Mutex::new((0, BTreeMap::new())),
            figures: Mutex::new(FiguresCache::default()),
            resets: Mutex::new(BTreeMap::new()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection to etcd, while there is one.
    fn store(&self) -> Option<Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Where a document is named in messages: `etcd /strangler/config`.
    pub fn label(&self) -> String {
        format!("etcd {}", self.keys.config())
    }

    /// The routing document being served ("" before the first one).
    pub fn applied_text(&self) -> String {
        self.state().applied.as_ref().map_or_else(String::new, |d| d.text.clone())
    }

    pub fn applied_revision(&self) -> i64 {
        self.state().applied.as_ref().map_or(0, |d| d.revision)
    }

    /// `doc` is now served. Unless it came from the cache, it is written there for a start
    /// while etcd is away.
    pub fn set_applied(&self, doc: Doc, from_cache: bool) {
        if !from_cache {
            self.write_cache(&doc);
        }
        METRICS.cluster_revision.set(doc.revision);
        METRICS.cluster_stale.set(i64::from(from_cache));
        let mut s = self.state();
        s.applied = Some(doc);
        s.applied_at = Some(SystemTime::now());
        s.stale = from_cache;
        // A refusal stays reported until etcd's own document applies.
        if !from_cache {
            s.rejected = None;
        }
    }

    /// etcd confirmed the document being served (the same revision as the cache's).
    pub fn confirm(&self) {
        METRICS.cluster_stale.set(0);
        self.state().stale = false;
    }

    pub fn set_rejected(&self, revision: i64, e: &ConfigError) {
        let problems = e.to_string().lines().map(str::to_string).collect();
        self.state().rejected = Some((revision, problems));
    }

    pub fn set_connected(&self, store: Option<Store>, error: Option<String>) {
        METRICS.cluster_connected.set(i64::from(store.is_some()));
        if store.is_none() {
            // Whatever the leader key says, an instance that cannot reach etcd cannot act.
            self.set_leader(None, None);
        }
        let mut s = self.state();
        s.connected = store.is_some();
        if error.is_some() || store.is_some() {
            s.last_error = error;
        }
        drop(s);
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = store;
    }

    // === the leader ===

    /// This instance's term while it leads the fleet's rollouts.
    pub fn term(&self) -> Option<i64> {
        self.state().term
    }

    pub fn set_leader(&self, term: Option<i64>, holder: Option<String>) {
        let mut s = self.state();
        if s.term != term {
            let me = self.settings.instance.as_str();
            match term {
                Some(t) => {
                    tracing::info!(term = t, "this instance now leads the fleet's rollouts");
                    let was = s.leader.clone().filter(|l| l != me);
                    let text = format!(
                        "{me} now leads the fleet's rollouts{}",
                        was.as_ref().map_or(String::new(), |w| format!(" (was {w})"))
                    );
                    notifications::send(Notice::new(
                        NoticeKind::Fleet,
                        "leader_changed",
                        None,
                        text,
                        serde_json::json!({ "leader": me, "previous": was, "term": t }),
                    ));
                }
                None if s.term.is_some() => {
                    tracing::warn!("this instance no longer leads the fleet's rollouts");
                    notifications::send(Notice::new(
                        NoticeKind::Fleet,
                        "leadership_lost",
                        None,
                        format!("{me} no longer leads the fleet's rollouts"),
                        serde_json::json!({ "instance": me }),
                    ));
                }
                None => {}
            }
        }
        s.term = term;
        s.leader = holder;
        METRICS.cluster_leader.set(i64::from(term.is_some()));
    }

    // === rollout progress ===

    /// Replace the mirror of every route's rollout progress (after a read of them all).
    pub fn set_rollouts(&self, all: Vec<Stored>) {
        let mut r = self.rollouts.lock().unwrap_or_else(|p| p.into_inner());
        r.0 += 1;
        r.1 = all.into_iter().map(|s| (s.route.clone(), s)).collect();
    }

    /// A route's progress changed (`None`: deleted).
    pub fn rollout_changed(&self, route: &str, stored: Option<Stored>) {
        let mut r = self.rollouts.lock().unwrap_or_else(|p| p.into_inner());
        r.0 += 1;
        match stored {
            Some(s) if r.1.get(route).is_none_or(|old| old.revision < s.revision) => {
                r.1.insert(route.to_string(), s);
            }
            Some(_) => {}
            None => {
                r.1.remove(route);
            }
        }
    }

    /// The mirror, with its change count.
    pub fn rollouts(&self) -> (u64, BTreeMap<String, Stored>) {
        self.rollouts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    // === cutover evidence ===

    /// The revision of the last fleet-wide reset of `route` applied here (0: none).
    pub fn reset_applied(&self, route: &str) -> i64 {
        self.resets.lock().unwrap_or_else(|p| p.into_inner()).get(route).copied().unwrap_or(0)
    }

    /// Whether the reset of `route` at `revision` is news here; noted as applied if it is.
    pub fn note_reset(&self, route: &str, revision: i64) -> bool {
        let mut r = self.resets.lock().unwrap_or_else(|p| p.into_inner());
        let seen = r.entry(route.to_string()).or_insert(0);
        let news = revision > *seen;
        *seen = (*seen).max(revision);
        news
    }

    /// The fleet's evidence of `route`: `own` (this instance's, now) pooled with what every other
    /// instance published since the route's last reset; with the instances pooled. Without etcd,
    /// this instance's alone.
    pub async fn pooled_findings(
        &self,
        route: &str,
        own: crate::compare::findings::Findings,
    ) -> (crate::compare::findings::Findings, Vec<String>) {
        let mut pooled = own;
        let mut from = vec![self.settings.instance.clone()];
        let Some(store) = self.store() else { return (pooled, from) };
        let Ok(Ok((list, reset))) = tokio::time::timeout(Duration::from_secs(1), store.findings(route)).await else {
            return (pooled, from);
        };
        for e in list {
            if e.name == self.settings.instance {
                continue;
            }
            let read = serde_json::from_slice::<PublishedFindings>(&e.value)
                .map_err(|err| err.to_string())
                .and_then(|p| p.findings.check().map(|()| p));
            match read {
                // Evidence from before the last reset is not counted: the instance publishes
                // again once it has applied it.
                Ok(p) if p.reset_revision >= reset => {
                    pooled.merge(&p.findings);
                    from.push(e.name);
                }
                Ok(_) => {}
                Err(why) => {
                    let key = format!("{}{}", self.keys.findings(route), e.name);
                    super::store::refused(crate::metrics::Refused::Findings, &key, e.revision, &why);
                }
            }
        }
        from.sort();
        (pooled, from)
    }

    /// Reset `route`'s report on every instance: the reset's revision, applied here by the caller.
    pub async fn reset_fleet(&self, route: &str, note: &str) -> Result<i64, StoreError> {
        let Some(store) = self.store() else {
            return Err(StoreError::Unavailable {
                endpoints: self.settings.endpoints.join(", "),
                why: "not connected".to_string(),
            });
        };
        let revision = store.put_reset(route, note).await?;
        self.note_reset(route, revision);
        Ok(revision)
    }

    // === figures ===

    /// Read every instance's published figures unless the last read is younger than `max_age`.
    /// Without etcd, the last ones read stay.
    pub async fn refresh_figures(&self, max_age: Duration) {
        let fresh = |c: &FiguresCache| c.read_at.is_some_and(|t| t.elapsed() < max_age);
        if fresh(&self.figures.lock().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        let Some(store) = self.store() else { return };
        let read = tokio::time::timeout(Duration::from_secs(1), store.figures()).await;
        let Ok(Ok(list)) = read else { return };
        let by_instance = list
            .into_iter()
            .filter_map(|e| {
                let read = serde_json::from_slice::<Published>(&e.value)
                    .map_err(|err| err.to_string())
                    .and_then(|p| p.routes.values().try_for_each(crate::live::Reading::check).map(|()| p));
                match read {
                    Ok(p) => Some((e.name, p)),
                    Err(why) => {
                        let key = format!("{}{}", self.keys.figures(), e.name);
                        super::store::refused(crate::metrics::Refused::Figures, &key, e.revision, &why);
                        None
                    }
                }
            })
            .collect();
        *self.figures.lock().unwrap_or_else(|p| p.into_inner()) =
            FiguresCache { read_at: Some(Instant::now()), by_instance: Arc::new(by_instance) };
    }

    /// A route's counters on every instance: `own` (read now) for this one, the last published
    /// figures for the others.
    pub fn tally(&self, route: &str, own: Reading) -> Tally {
        let others = self.figures.lock().unwrap_or_else(|p| p.into_inner()).by_instance.clone();
        let mut tally: Tally = others
            .iter()
            .filter(|(name, _)| **name != self.settings.instance)
            .filter_map(|(name, p)| {
                Some((name.clone(), Counted { boot: p.boot, reading: p.routes.get(route)?.clone() }))
            })
            .collect();
        tally.insert(self.settings.instance.clone(), Counted { boot: crate::live::boot_id(), reading: own });
        tally
    }

    /// Run an etcd call. A call that fails (a member going down under it, or no connection
    /// yet) is tried again on a new connection to whichever member answers, for up to
    /// [`CALL_PATIENCE`]: every call made here is safe to repeat.
    pub async fn call<T>(
        &self,
        f: impl Fn(Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send>>,
    ) -> Result<T, StoreError> {
        let deadline = tokio::time::Instant::now() + CALL_PATIENCE;
        let mut store = self.store();
        loop {
            let result = match store.take() {
                Some(s) => f(s).await,
                None => match Store::connect(&self.settings).await {
                    Ok(s) => f(s).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Err(StoreError::Unavailable { why, .. }) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("an etcd call failed, trying again on a new connection: {why}");
                    store = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// The fleet as this instance sees it, for `GET /api/v1/cluster`.
    pub fn view(&self) -> api::ClusterView {
        let s = self.state();
        api::ClusterView {
            instance: self.settings.instance.clone(),
            key: self.keys.config(),
            endpoints: self.settings.endpoints.clone(),
            connected: s.connected,
            revision: s.applied.as_ref().map(|d| d.revision),
            applied_at: s.applied_at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
            stale: s.stale,
            rejected: s
                .rejected
                .as_ref()
                .map(|(revision, problems)| api::RejectedDoc { revision: *revision, problems: problems.clone() }),
            last_error: s.last_error.clone(),
            leader: s.leader.clone(),
            leads: s.term.is_some(),
            latest_revision: None,
            instances: Vec::new(),
        }
    }

    /// How this instance registers itself.
    pub fn me(&self) -> api::InstanceView {
        let s = self.state();
        api::InstanceView {
            instance: self.settings.instance.clone(),
            proxy: self.listeners.0.clone(),
            admin: self.listeners.1.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: s.applied.as_ref().map(|d| d.revision),
            applied_at: s.applied_at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
            behind: false,
        }
    }

    /// The fleet now: this instance's view, with every registered instance and the document's
    /// revision in etcd, read at once (a second at most; without them while etcd is away).
    pub async fn survey(&self) -> api::ClusterView {
        let mut view = self.view();
        let Some(store) = self.store() else { return view };
        let read = async { Ok::<_, StoreError>((store.doc().await?.0.map(|d| d.revision), store.instances().await?)) };
        match tokio::time::timeout(std::time::Duration::from_secs(1), read).await {
            Ok(Ok((latest, mut instances))) => {
                for i in &mut instances {
                    i.behind = matches!((latest, i.revision), (Some(l), Some(r)) if r < l)
                        || (latest.is_some() && i.revision.is_none());
                }
                view.latest_revision = latest;
                view.instances = instances;
            }
            Ok(Err(e)) => view.last_error = Some(e.to_string()),
            Err(_) => view.last_error = Some("etcd did not answer within a second".to_string()),
        }
        view
    }

    // === validation ===

    /// The config this instance runs with `routing` as the fleet's document: joined to the
    /// process settings of its own file and validated as one config, as a file is.
    pub fn validate(&self, routing: &str, revision: i64) -> Result<Config, ConfigError> {
        let local_text = std::fs::read_to_string(&self.local).map_err(|e| ConfigError {
            file: self.local.clone(),
            problems: vec![Problem::new("", None, format!("cannot read the file: {e}"))],
        })?;
        self.validate_with(routing, revision, &local_text)
    }

    /// [`Fleet::validate`] with the instance's file as `local_text`, already read by the caller
    /// (a reload compares those very bytes with the last ones seen).
    pub fn validate_with(&self, routing: &str, revision: i64, local_text: &str) -> Result<Config, ConfigError> {
        let label = PathBuf::from(format!("{}@{revision}", self.label()));
        let err = |key: &str, message: String| ConfigError {
            file: label.clone(),
            problems: vec![Problem::new(key, None, message)],
        };
        let foreign = doc::foreign_keys(routing).map_err(|e| err("", e))?;
        if !foreign.is_empty() {
            return Err(err(
                &foreign.join(", "),
                "process settings stay in each instance's own file: the routing document holds only [upstreams.*] and [[routes]]".into(),
            ));
        }
        let process = process_settings(&self.local, local_text)?;
        let mut cfg = config::load_str(&doc::join(routing, &process), &label)?;
        // Valid TOML that routes nothing (an empty value, a truncated write) would take every
        // route out of every instance at once: never what a fleet's document means. (Revision 0
        // is no document yet: an instance starts on no routes until one is pushed.)
        if revision > 0 && cfg.routes.is_empty() {
            return Err(err(
                "routes",
                "the routing document has no [[routes]]: applied, every instance would answer every request with 404; \
                 take a route out by removing it, and push a document that keeps at least one"
                    .into(),
            ));
        }
        cfg.path = self.local.clone();
        Ok(cfg)
    }

    // === the local cache ===

    fn write_cache(&self, doc: &Doc) {
        let text = format!("{CACHE_MARK}{} revision {}\n{}", self.keys.config(), doc.revision, doc.text);
        if let Err(e) = config::persist::write_atomic(&self.settings.cache, &text, config::persist::Contents::Secrets) {
            tracing::warn!(cache = %self.settings.cache.display(), "cannot cache the routing document: {e}");
        }
    }

    /// The cached document, if there is one.
    pub fn read_cache(&self) -> Option<Doc> {
        let text = std::fs::read_to_string(&self.settings.cache).ok()?;
        let (first, rest) = text.split_once('\n')?;
        let revision = first.strip_prefix(CACHE_MARK)?.rsplit(' ').next()?.parse().ok()?;
        Some(Doc { text: rest.to_string(), revision })
    }
}

/// How long a runtime change keeps trying etcd before it answers 503.
const CALL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// The first line of the cache file.
const CACHE_MARK: &str = "# strangler's cache of etcd ";

/// The process settings of an instance's own file, which must not hold routing tables in a fleet.
pub fn process_settings(path: &Path, text: &str) -> Result<String, ConfigError> {
    let err =
        |message: String| ConfigError { file: path.to_path_buf(), problems: vec![Problem::new("", None, message)] };
    let routing = doc::routing_in(text);
    if !routing.is_empty() {
        return Err(err(format!(
            "{} here: with [cluster], upstreams and routes come from etcd; upload them with `strangler cluster push -c {}` and remove them from this file",
            routing.join(" and "),
            path.display()
        )));
    }
    doc::process_part(text).map_err(err)
}
