//! The background task that keeps an instance on the fleet's routing document: it connects to
//! etcd, applies the current document, then every revision a watch reports, through the
//! reloader's all-or-nothing path. When etcd goes away the instance keeps serving what it has;
//! the task reconnects with a growing pause and catches up from the document as it is then.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{EventType, WatchOptions};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::fleet::Fleet;
use super::store::{Doc, Store};
use crate::api::InstanceView;
use crate::control::reload::Reloader;

/// How often a connected instance checks that etcd still answers (a watch alone can stay
/// silent for a long time on a dead connection).
const HEARTBEAT: Duration = Duration::from_secs(1);
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct WatchService {
    fleet: Arc<Fleet>,
    reloader: Arc<Reloader>,
}

impl WatchService {
    pub fn new(fleet: Arc<Fleet>, reloader: Arc<Reloader>) -> Self {
        WatchService { fleet, reloader }
    }

    /// Apply `doc` unless it is what is served already; the reloader validates it and reports
    /// a refusal.
    async fn offer(&self, doc: Doc) {
        if doc.revision <= self.fleet.applied_revision() {
            if doc.revision == self.fleet.applied_revision() {
                self.fleet.confirm();
            }
            return;
        }
        let reloader = self.reloader.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || reloader.apply_doc(doc)).await {
            tracing::error!("applying a routing document did not complete: {e}");
        }
    }

    /// Register again if what this instance serves changed since `announced`.
    async fn reannounce(&self, store: &Store, lease: i64, announced: &mut InstanceView) -> Result<(), String> {
        let me = self.fleet.me();
        if me != *announced {
            store.announce(lease, &me).await.map_err(|e| e.to_string())?;
            *announced = me;
        }
        Ok(())
    }

    /// One connection's life: the current document, then the watch, until etcd fails or the
    /// process stops. `Ok` on shutdown.
    async fn follow(&self, store: &Store, shutdown: &mut ShutdownWatch) -> Result<(), String> {
        let (doc, revision) = store.doc().await.map_err(|e| e.to_string())?;
        let key = store.keys.config();
        let mut client = store.client();
        let mut stream = client
            .watch(key.clone(), Some(WatchOptions::new().with_start_revision(revision + 1)))
            .await
            .map_err(|e| e.to_string())?;
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
        let lease = store.lease(ttl).await.map_err(|e| e.to_string())?;
        let (mut keeper, mut acks) = client.lease_keep_alive(lease).await.map_err(|e| e.to_string())?;
        let mut announced = self.fleet.me();
        store.announce(lease, &announced).await.map_err(|e| e.to_string())?;
        let mut renew = tokio::time::interval(ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    // Leave the list at once rather than after lease_ttl.
                    let _ = tokio::time::timeout(super::store::REQUEST_TIMEOUT, store.revoke(lease)).await;
                    return Ok(());
                }
                _ = renew.tick() => keeper.keep_alive().await.map_err(|e| e.to_string())?,
                ack = acks.message() => match ack {
                    Ok(Some(a)) if a.ttl() > 0 => {}
                    Ok(Some(_)) => return Err("this instance's lease expired".into()),
                    Ok(None) => return Err("the lease keep-alive stream ended".into()),
                    Err(e) => return Err(e.to_string()),
                },
                _ = beat.tick() => {
                    let alive = tokio::time::timeout(super::store::REQUEST_TIMEOUT, client.status()).await;
                    match alive {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.to_string()),
                        Err(_) => return Err("etcd did not answer a status request in time".into()),
                    }
                    self.reannounce(store, lease, &mut announced).await?;
                }
                message = stream.message() => match message {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            return Err(format!("the watch was cancelled (compacted at {})", resp.compact_revision()));
                        }
                        for event in resp.events() {
                            let Some(kv) = event.kv() else { continue };
                            match event.event_type() {
                                EventType::Put => match kv.value_str() {
                                    Ok(text) => self.offer(Doc { text: text.to_string(), revision: kv.mod_revision() }).await,
                                    Err(_) => tracing::error!(key = %key, revision = kv.mod_revision(), "the routing document is not UTF-8 text: refused, the last good one keeps serving"),
                                },
                                EventType::Delete => tracing::warn!(key = %key, "the routing document was deleted from etcd: the last one keeps serving"),
                            }
                        }
                        // The fleet sees the revision this instance serves as soon as it serves it.
                        self.reannounce(store, lease, &mut announced).await?;
                    }
                    Ok(None) => return Err("the watch ended".into()),
                    Err(e) => return Err(e.to_string()),
                },
            }
        }
    }
}

#[async_trait]
impl BackgroundService for WatchService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.fleet.set_handle(tokio::runtime::Handle::current());
        let mut pause = RETRY_MIN;
        loop {
            let outcome = match Store::connect(&self.fleet.settings).await {
                Ok(store) => {
                    pause = RETRY_MIN;
                    self.follow(&store, &mut shutdown).await
                }
                Err(e) => Err(e.to_string()),
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
                    self.fleet.set_connected(None, Some(why));
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
