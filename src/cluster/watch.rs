//! The background task that keeps an instance on the fleet's routing document: it connects to
//! etcd, applies the current document, then every revision a watch reports, through the
//! reloader's all-or-nothing path. When etcd goes away the instance keeps serving what it has;
//! the task reconnects with a growing pause and catches up from the document as it is then.
//!
//! On the same connection it registers the instance on its lease, stands for election as the
//! fleet's rollout controller (and stands again the moment the leader key goes), mirrors every
//! route's rollout progress, and publishes the instance's counters every [`PUBLISH_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{EventType, WatchOptions};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::fleet::{Fleet, Published, PublishedFindings};
use super::store::{Doc, Store, StoreError, Stored};
use crate::api::InstanceView;
use crate::snapshot::Shared;

/// How often a connected instance checks that etcd still answers (a watch alone can stay
/// silent for a long time on a dead connection).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Heartbeats between two elections stood without the leader key going (a watch that missed it).
const CAMPAIGN_EVERY_BEATS: u64 = 10;
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often an instance publishes its counters (when they changed).
pub const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// How often it publishes its cutover evidence (when it changed).
pub const FINDINGS_EVERY: Duration = Duration::from_secs(5);
/// Evidence of one route larger than this travels without its examples.
const FINDINGS_MAX_BYTES: usize = 256 * 1024;

/// What applies a revision of the routing document (the reloader's all-or-nothing path, which
/// validates it and reports a refusal). It blocks: it is called from the blocking pool.
pub type ApplyDoc = Arc<dyn Fn(Doc) + Send + Sync>;

pub struct WatchService {
    fleet: Arc<Fleet>,
    apply: ApplyDoc,
    shared: Arc<Shared>,
}

impl WatchService {
    pub fn new(fleet: Arc<Fleet>, apply: ApplyDoc, shared: Arc<Shared>) -> Self {
        WatchService { fleet, apply, shared }
    }

    /// Stand for election: lead if nobody does.
    async fn campaign(&self, store: &Store, lease: i64) -> Result<(), Lost> {
        let (term, holder) = store.campaign(lease, &self.fleet.settings.instance).await?;
        self.fleet.set_leader(term, holder);
        Ok(())
    }

    /// Publish every shadowed route's cutover evidence (`only`: that route's), unless it is what
    /// was published last.
    async fn publish_findings(
        &self,
        store: &Store,
        lease: i64,
        last: &mut std::collections::BTreeMap<String, String>,
        only: Option<&str>,
    ) -> Result<(), Lost> {
        let snap = self.shared.load_full();
        for m in snap.table.iter().filter(|m| only.is_none_or(|r| r == m.route.name)) {
            let Some(state) = &m.shadow else { continue };
            let route = m.route.name.as_str();
            let mut published = PublishedFindings {
                reset_revision: self.fleet.reset_applied(route),
                findings: state.findings().clone(),
            };
            let mut json = serde_json::to_string(&published)?;
            if json.len() > FINDINGS_MAX_BYTES {
                published.findings.strip_examples();
                json = serde_json::to_string(&published)?;
            }
            if json.len() > FINDINGS_MAX_BYTES {
                if last.get(route).is_none_or(|l| !l.is_empty()) {
                    tracing::warn!(
                        route,
                        bytes = json.len(),
                        "this instance's cutover evidence is too large to publish; the fleet's report leaves it out"
                    );
                    last.insert(route.to_string(), String::new());
                }
                continue;
            }
            if last.get(route) != Some(&json) {
                store.put_findings(lease, route, &self.fleet.settings.instance, json.clone()).await?;
                last.insert(route.to_string(), json);
            }
        }
        Ok(())
    }

    /// A fleet-wide reset of `route`'s report at `revision`: applied here if it is news, and the
    /// emptied evidence published at once.
    async fn apply_reset(
        &self,
        store: &Store,
        lease: i64,
        route: &str,
        revision: i64,
        last: &mut std::collections::BTreeMap<String, String>,
    ) -> Result<(), Lost> {
        if !self.fleet.note_reset(route, revision) {
            return Ok(());
        }
        if let Some(state) = self.shared.load().table.get(route).and_then(|m| m.shadow.clone()) {
            let had = state.findings().reset(std::time::SystemTime::now());
            tracing::info!(route, endpoints = had, revision, "cutover report reset fleet-wide");
        }
        self.publish_findings(store, lease, last, Some(route)).await
    }

    /// Publish every route's counters, unless they are what was published last.
    async fn publish(&self, store: &Store, lease: i64, last: &mut String) -> Result<(), Lost> {
        let snap = self.shared.load();
        let routes = snap.table.iter().map(|m| (m.route.name.clone(), m.reading())).collect();
        let json = serde_json::to_string(&Published { boot: crate::live::boot_id(), routes })?;
        if json != *last {
            store.put_figures(lease, &self.fleet.settings.instance, json.clone()).await?;
            *last = json;
        }
        Ok(())
    }

    /// Apply `doc` unless it is what is served already.
    async fn offer(&self, doc: Doc) {
        if doc.revision <= self.fleet.applied_revision() {
            if doc.revision == self.fleet.applied_revision() {
                self.fleet.confirm();
            }
            return;
        }
        let apply = self.apply.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || apply(doc)).await {
            tracing::error!("applying a routing document did not complete: {e}");
        }
    }

    /// Register again if what this instance serves changed since `announced`.
    async fn reannounce(&self, store: &Store, lease: i64, announced: &mut InstanceView) -> Result<(), Lost> {
        let me = self.fleet.me();
        if me != *announced {
            store.announce(lease, &me).await?;
            *announced = me;
        }
        Ok(())
    }

    /// Events under the leader key, the report resets and the rollouts' progress.
    async fn on_control(
        &self,
        store: &Store,
        lease: i64,
        resp: &etcd_client::WatchResponse,
        findings_published: &mut std::collections::BTreeMap<String, String>,
    ) -> Result<(), Lost> {
        let (leader_key, resets_prefix, rollouts) = (store.keys.leader(), store.keys.resets(), store.keys.rollouts());
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            if key == leader_key {
                // The leader left (or its lease expired): stand at once.
                if event.event_type() == EventType::Delete {
                    self.campaign(store, lease).await?;
                }
                continue;
            }
            if let Some(route) = key.strip_prefix(&resets_prefix) {
                if event.event_type() == EventType::Put {
                    self.apply_reset(store, lease, route, kv.mod_revision(), findings_published).await?;
                }
                continue;
            }
            let Some(route) = key.strip_prefix(&rollouts) else { continue };
            let stored = match event.event_type() {
                EventType::Put => kv.value_str().ok().map(|json| Stored {
                    route: route.to_string(),
                    json: json.to_string(),
                    revision: kv.mod_revision(),
                }),
                EventType::Delete => None,
            };
            self.fleet.rollout_changed(route, stored);
        }
        Ok(())
    }

    /// Revisions of the routing document.
    async fn on_document(&self, resp: &etcd_client::WatchResponse, key: &str) {
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => match kv.value_str() {
                    Ok(text) => self.offer(Doc { text: text.to_string(), revision: kv.mod_revision() }).await,
                    Err(_) => tracing::error!(
                        key,
                        revision = kv.mod_revision(),
                        "the routing document is not UTF-8 text: refused, the last good one keeps serving"
                    ),
                },
                EventType::Delete => {
                    tracing::warn!(key, "the routing document was deleted from etcd: the last one keeps serving")
                }
            }
        }
    }

    /// One connection's life: the current document, then the watch, until etcd fails or the
    /// process stops. `Ok` on shutdown.
    /// `reached`: whether etcd was reached before, since the start.
    async fn follow(&self, store: &Store, shutdown: &mut ShutdownWatch, reached: &mut bool) -> Result<(), Lost> {
        let (doc, revision) = store.doc().await?;
        let key = store.keys.config();
        let mut client = store.client();
        let mut stream = client.watch(key.clone(), Some(WatchOptions::new().with_start_revision(revision + 1))).await?;
        self.fleet.set_connected(Some(store.clone()), None);
        tracing::info!(key = %key, revision, "following the fleet's routing document in etcd");
        match doc {
            Some(doc) => self.offer(doc).await,
            None => {
                tracing::warn!(key = %key, "no routing document in etcd yet: upload one with `strangler cluster push`")
            }
        }
        // Registered on a lease: a crashed instance leaves the list within lease_ttl.
        let ttl = self.fleet.settings.lease_ttl;
        let lease = store.lease(ttl).await?;
        let (mut keeper, mut acks) = client.lease_keep_alive(lease).await?;
        let mut announced = self.fleet.me();
        store.announce(lease, &announced).await?;
        // The leader key, every route's report resets and its rollout progress: one range,
        // `PREFIX/leader` up to the end of `PREFIX/rollout/` (`PREFIX/reset/` sorts between
        // them, nothing else of the fleet's does).
        let (leader_key, rollouts) = (store.keys.leader(), store.keys.rollouts());
        let range_end = format!("{}0", rollouts.trim_end_matches('/'));
        let mut control = client
            .watch(
                leader_key.clone(),
                Some(WatchOptions::new().with_range(range_end).with_start_revision(revision + 1)),
            )
            .await?;
        self.fleet.set_rollouts(store.rollouts().await?);
        self.campaign(store, lease).await?;
        let mut published = String::new();
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut findings_published = std::collections::BTreeMap::new();
        let mut publish_findings = tokio::time::interval(FINDINGS_EVERY);
        publish_findings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Resets made while this instance was away apply now; on the first connection, the
        // ones before its start are only noted (its evidence is younger than them).
        for (route, revision) in store.resets().await? {
            if self.fleet.reset_applied(&route) == 0 && !*reached {
                self.fleet.note_reset(&route, revision);
            } else {
                self.apply_reset(store, lease, &route, revision, &mut findings_published).await?;
            }
        }
        *reached = true;
        let mut renew = tokio::time::interval(ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beats = 0u64;
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    // Leave the list at once rather than after lease_ttl.
                    let _ = tokio::time::timeout(super::store::REQUEST_TIMEOUT, store.revoke(lease)).await;
                    return Ok(());
                }
                _ = renew.tick() => keeper.keep_alive().await?,
                ack = acks.message() => match ack {
                    Ok(Some(a)) if a.ttl() > 0 => {}
                    Ok(Some(_)) => return Err(Lost::Ended("this instance's lease expired".into())),
                    Ok(None) => return Err(Lost::Ended("the lease keep-alive stream ended".into())),
                    Err(e) => return Err(e.into()),
                },
                _ = beat.tick() => {
                    let alive = tokio::time::timeout(super::store::REQUEST_TIMEOUT, client.status()).await;
                    match alive {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => return Err(Lost::Ended("etcd did not answer a status request in time".into())),
                    }
                    self.reannounce(store, lease, &mut announced).await?;
                    // The watch says when the leader key goes; this is the safety net.
                    beats += 1;
                    if beats % CAMPAIGN_EVERY_BEATS == 0 {
                        self.campaign(store, lease).await?;
                    }
                }
                _ = publish.tick() => self.publish(store, lease, &mut published).await?,
                _ = publish_findings.tick() => self.publish_findings(store, lease, &mut findings_published, None).await?,
                message = control.message() => {
                    let resp = watched(message, "rollout watch")?;
                    self.on_control(store, lease, &resp, &mut findings_published).await?;
                }
                message = stream.message() => {
                    self.on_document(&watched(message, "watch")?, &key).await;
                    // The fleet sees the revision this instance serves as soon as it serves it.
                    self.reannounce(store, lease, &mut announced).await?;
                }
            }
        }
    }
}

/// Why a connection to etcd ended: the task starts over on a new one.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    #[error("cannot encode what this instance publishes: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Ended(String),
}

/// A watch's next answer; an error once the watch ended, failed or was cancelled (its start
/// compacted away), which makes the connection start over.
fn watched(
    message: Result<Option<etcd_client::WatchResponse>, etcd_client::Error>,
    what: &str,
) -> Result<etcd_client::WatchResponse, Lost> {
    match message {
        Ok(Some(resp)) if resp.canceled() => {
            Err(Lost::Ended(format!("the {what} was cancelled (compacted at {})", resp.compact_revision())))
        }
        Ok(Some(resp)) => Ok(resp),
        Ok(None) => Err(Lost::Ended(format!("the {what} ended"))),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl BackgroundService for WatchService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut pause = RETRY_MIN;
        let mut reached = false;
        loop {
            let outcome = match Store::connect(&self.fleet.settings).await {
                Ok(store) => {
                    pause = RETRY_MIN;
                    self.follow(&store, &mut shutdown, &mut reached).await
                }
                Err(e) => Err(e.into()),
            };
            match outcome {
                Ok(()) => return,
                Err(why) => {
                    if self.fleet.view().connected {
                        tracing::warn!(
                            "lost etcd: {why}; serving revision {} until it is back",
                            self.fleet.applied_revision()
                        );
                    } else {
                        tracing::debug!("etcd still unreachable: {why}");
                    }
                    self.fleet.set_connected(None, Some(why.to_string()));
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
}
