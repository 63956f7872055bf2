//! The fleet's keys in etcd, through `etcd-client`: connecting with the configured endpoints and
//! credentials, reading and writing the routing document, and a compare-and-swap on it.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions, TlsOptions, Txn, TxnOp,
};

use crate::api::InstanceView;

use crate::config::ClusterSettings;

/// How long a connection attempt, and then each request, may take before etcd counts as away.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The keys under `cluster.prefix`.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.trim_end_matches('/').to_string() }
    }

    /// The routing document.
    pub fn config(&self) -> String {
        format!("{}/config", self.prefix)
    }

    /// Where the instances register, each under its name, on its lease.
    pub fn instances(&self) -> String {
        format!("{}/instances/", self.prefix)
    }

    pub fn instance(&self, name: &str) -> String {
        format!("{}{name}", self.instances())
    }

    /// The elected rollout controller's name, on its lease; the key's `create_revision` is its
    /// term, which fences every write it makes.
    pub fn leader(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    /// Each route's rollout progress (JSON), written by the leader and by operators' actions.
    pub fn rollouts(&self) -> String {
        format!("{}/rollout/", self.prefix)
    }

    pub fn rollout(&self, route: &str) -> String {
        format!("{}{route}", self.rollouts())
    }

    /// Each instance's cumulative counters per route (JSON), on its lease.
    pub fn figures(&self) -> String {
        format!("{}/figures/", self.prefix)
    }

    /// Every instance's cutover evidence of `route` (JSON), each on its lease.
    pub fn findings(&self, route: &str) -> String {
        format!("{}/findings/{route}/", self.prefix)
    }

    /// Each route's last fleet-wide reset of its cutover report: the key's `mod_revision` is the
    /// reset, its value says who made it and when, for people.
    pub fn resets(&self) -> String {
        format!("{}/reset/", self.prefix)
    }

    pub fn reset(&self, route: &str) -> String {
        format!("{}{route}", self.resets())
    }
}

/// One atomic change of the fleet's shared state, made only if nothing it read has changed:
/// the routing document and a route's rollout progress, together, and (for the leader) only
/// while its term lasts.
#[derive(Debug, Default)]
pub struct Commit {
    /// The leader's term that must still hold.
    pub term: Option<i64>,
    /// The new routing document and the revision it was edited from.
    pub doc: Option<(i64, String)>,
    /// A route's new progress and the `mod_revision` it was computed from (0: absent).
    pub rollout: Option<(String, i64, String)>,
}

/// A route's rollout progress as etcd holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub route: String,
    pub json: String,
    pub revision: i64,
}

/// The routing document as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub text: String,
    /// The key's `mod_revision`: what a compare-and-swap compares.
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd at {endpoints} is unreachable or failing: {why}")]
    Unavailable { endpoints: String, why: String },
    #[error("{key} is not UTF-8 text")]
    NotText { key: String },
}

/// A connection to the fleet's etcd.
#[derive(Clone)]
pub struct Store {
    client: Client,
    pub keys: Keys,
    endpoints: String,
}

/// A document read from etcd that is refused: logged with its key and revision, counted in
/// `strangler_cluster_refused_total{key}`; the caller keeps its last good state. Everything read
/// from etcd is checked by the same function as the same thing read from a file.
pub fn refused(kind: crate::metrics::Refused, key: &str, revision: i64, why: &str) {
    crate::metrics::METRICS.cluster_refused.with_label_values(&[kind.as_str()]).inc();
    tracing::error!(key, revision, "refused a document from etcd, the last good state is kept: {why}");
}

impl Store {
    /// A connection to one member that answers, trying them in turn from the one after the
    /// last tried: one member at a time, so a member that dies is left on the next connect
    /// rather than kept in a balancer that keeps sending it requests.
    pub async fn connect(settings: &ClusterSettings) -> Result<Store, StoreError> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let endpoints = settings.endpoints.join(", ");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if let Some((user, password)) = &settings.user {
            options = options.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &settings.tls {
            let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        let n = settings.endpoints.len().max(1);
        let first = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut failures = Vec::new();
        for i in 0..n {
            let Some(endpoint) = settings.endpoints.get((first + i) % n) else { break };
            let attempt = async {
                let mut client = Client::connect([endpoint], Some(options.clone())).await?;
                client.status().await?;
                Ok::<_, etcd_client::Error>(client)
            };
            match tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await {
                Ok(Ok(client)) => return Ok(Store { client, keys: Keys::new(&settings.prefix), endpoints }),
                Ok(Err(e)) => failures.push(format!("{endpoint}: {e}")),
                Err(_) => failures.push(format!("{endpoint}: no answer in time")),
            }
        }
        Err(StoreError::Unavailable { endpoints, why: failures.join("; ") })
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable { endpoints: self.endpoints.clone(), why: e.to_string() }
    }

    /// The client, for watches and leases.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The routing document, with the store's revision at the time of the read; `None` when
    /// nothing was pushed yet.
    pub async fn doc(&self) -> Result<(Option<Doc>, i64), StoreError> {
        let key = self.keys.config();
        let resp = self.client.clone().get(key.clone(), None).await.map_err(|e| self.unavailable(e))?;
        let store_revision = resp.header().map_or(0, |h| h.revision());
        let doc = match resp.kvs().first() {
            None => None,
            Some(kv) => {
                let text = kv.value_str().map_err(|_| StoreError::NotText { key: key.clone() })?.to_string();
                Some(Doc { text, revision: kv.mod_revision() })
            }
        };
        Ok((doc, store_revision))
    }

    /// Write the routing document whatever it was; the new revision.
    pub async fn put_doc(&self, text: &str) -> Result<i64, StoreError> {
        let resp = self.client.clone().put(self.keys.config(), text, None).await.map_err(|e| self.unavailable(e))?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }
}

/// A key under a prefix: the rest of its name, its value and its `mod_revision`.
pub struct Entry {
    pub name: String,
    pub value: Vec<u8>,
    pub revision: i64,
}

impl Store {
    /// Every key under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, StoreError> {
        let resp = self
            .client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let name = kv.key_str().ok()?.strip_prefix(prefix)?.to_string();
                Some(Entry { name, value: kv.value().to_vec(), revision: kv.mod_revision() })
            })
            .collect())
    }

    /// Apply `c` if everything it was computed from still holds: the store's new revision, or
    /// `None` when something changed first (another writer, or a new leader).
    pub async fn commit(&self, c: &Commit) -> Result<Option<i64>, StoreError> {
        let mut when = Vec::new();
        let mut then = Vec::new();
        if let Some(term) = c.term {
            when.push(Compare::create_revision(self.keys.leader(), CompareOp::Equal, term));
        }
        if let Some((revision, text)) = &c.doc {
            when.push(Compare::mod_revision(self.keys.config(), CompareOp::Equal, *revision));
            then.push(TxnOp::put(self.keys.config(), text.as_str(), None));
        }
        if let Some((route, revision, json)) = &c.rollout {
            when.push(Compare::mod_revision(self.keys.rollout(route), CompareOp::Equal, *revision));
            then.push(TxnOp::put(self.keys.rollout(route), json.as_str(), None));
        }
        let resp =
            self.client.clone().txn(Txn::new().when(when).and_then(then)).await.map_err(|e| self.unavailable(e))?;
        Ok(resp.succeeded().then(|| resp.header().map_or(0, |h| h.revision())))
    }

    /// Delete a route's rollout progress if it is still at `revision` and `term` still leads.
    pub async fn forget_rollout(&self, route: &str, revision: i64, term: i64) -> Result<bool, StoreError> {
        let key = self.keys.rollout(route);
        let when = [
            Compare::mod_revision(key.clone(), CompareOp::Equal, revision),
            Compare::create_revision(self.keys.leader(), CompareOp::Equal, term),
        ];
        let txn = Txn::new().when(when).and_then([TxnOp::delete(key, None)]);
        let resp = self.client.clone().txn(txn).await.map_err(|e| self.unavailable(e))?;
        Ok(resp.succeeded())
    }

    /// Every route's stored rollout progress.
    pub async fn rollouts(&self) -> Result<Vec<Stored>, StoreError> {
        Ok(self
            .list(&self.keys.rollouts())
            .await?
            .into_iter()
            .filter_map(|e| {
                Some(Stored { json: String::from_utf8(e.value).ok()?, route: e.name, revision: e.revision })
            })
            .collect())
    }

    /// One route's stored rollout progress, if any.
    pub async fn rollout(&self, route: &str) -> Result<Option<Stored>, StoreError> {
        let resp = self.client.clone().get(self.keys.rollout(route), None).await.map_err(|e| self.unavailable(e))?;
        Ok(resp.kvs().first().and_then(|kv| {
            Some(Stored {
                route: route.to_string(),
                json: kv.value_str().ok()?.to_string(),
                revision: kv.mod_revision(),
            })
        }))
    }

    /// Become the leader on `lease` unless another instance is: this instance's term if it
    /// leads (now or already), else `None`; with the leader's name either way.
    pub async fn campaign(&self, lease: i64, me: &str) -> Result<(Option<i64>, Option<String>), StoreError> {
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), me, Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = self.client.clone().txn(txn).await.map_err(|e| self.unavailable(e))?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            return Ok((Some(revision), Some(me.to_string())));
        }
        let Some(kv) = resp.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        }) else {
            return Ok((None, None));
        };
        let holder = kv.value_str().ok().map(str::to_string);
        if holder.as_deref() != Some(me) {
            return Ok((None, holder));
        }
        if kv.lease() == lease {
            return Ok((Some(kv.create_revision()), holder));
        }
        // This instance's own key from before a reconnection (or a restart), on a lease that
        // is running out: carried over to the new lease, the same term, rather than leaving
        // the fleet without a leader until the old lease expires. Names are unique in a fleet.
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, kv.create_revision())])
            .and_then([TxnOp::put(key, me, Some(PutOptions::new().with_lease(lease)))]);
        let resp = self.client.clone().txn(txn).await.map_err(|e| self.unavailable(e))?;
        Ok((resp.succeeded().then(|| kv.create_revision()), holder))
    }

    /// Publish this instance's figures on its lease.
    pub async fn put_figures(&self, lease: i64, instance: &str, json: String) -> Result<(), StoreError> {
        self.put_on_lease(format!("{}{instance}", self.keys.figures()), json, lease).await
    }

    /// Write `key` on `lease`: it goes when the lease does.
    async fn put_on_lease(&self, key: String, value: String, lease: i64) -> Result<(), StoreError> {
        self.client
            .clone()
            .put(key, value, Some(PutOptions::new().with_lease(lease)))
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    /// Publish this instance's evidence of `route` on its lease.
    pub async fn put_findings(&self, lease: i64, route: &str, instance: &str, json: String) -> Result<(), StoreError> {
        self.put_on_lease(format!("{}{instance}", self.keys.findings(route)), json, lease).await
    }

    /// Every instance's published evidence of `route` (JSON), by instance, and the revision of
    /// the route's last fleet-wide reset (0: never).
    pub async fn findings(&self, route: &str) -> Result<(Vec<Entry>, i64), StoreError> {
        let list = self.list(&self.keys.findings(route)).await?;
        let reset = self.client.clone().get(self.keys.reset(route), None).await.map_err(|e| self.unavailable(e))?;
        Ok((list, reset.kvs().first().map_or(0, |kv| kv.mod_revision())))
    }

    /// Reset `route`'s cutover report on every instance (each applies it from its watch); the
    /// value says when and by whom, for people. The reset's revision.
    pub async fn put_reset(&self, route: &str, note: &str) -> Result<i64, StoreError> {
        let resp =
            self.client.clone().put(self.keys.reset(route), note, None).await.map_err(|e| self.unavailable(e))?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Every route's last fleet-wide reset: (route, its revision).
    pub async fn resets(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self.list(&self.keys.resets()).await?.into_iter().map(|e| (e.name, e.revision)).collect())
    }

    /// Every instance's published figures (JSON), by instance.
    pub async fn figures(&self) -> Result<Vec<Entry>, StoreError> {
        self.list(&self.keys.figures()).await
    }

    /// A lease of `ttl` for this instance's registration: its id.
    pub async fn lease(&self, ttl: Duration) -> Result<i64, StoreError> {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let resp = self.client.clone().lease_grant(secs, None).await.map_err(|e| self.unavailable(e))?;
        Ok(resp.id())
    }

    /// Register (or refresh) this instance under its name, on `lease`.
    pub async fn announce(&self, lease: i64, me: &InstanceView) -> Result<(), StoreError> {
        let value = serde_json::to_string(me).map_err(|e| self.unavailable(e))?;
        self.put_on_lease(self.keys.instance(&me.instance), value, lease).await
    }

    pub async fn revoke(&self, lease: i64) -> Result<(), StoreError> {
        self.client.clone().lease_revoke(lease).await.map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    /// Every registered instance, by name.
    pub async fn instances(&self) -> Result<Vec<InstanceView>, StoreError> {
        let mut list: Vec<InstanceView> = self
            .list(&self.keys.instances())
            .await?
            .iter()
            .filter_map(|e| match serde_json::from_slice(&e.value) {
                Ok(view) => Some(view),
                Err(err) => {
                    let key = self.keys.instance(&e.name);
                    refused(crate::metrics::Refused::Instances, &key, e.revision, &err.to_string());
                    None
                }
            })
            .collect();
        list.sort_by(|a, b| a.instance.cmp(&b.instance));
        Ok(list)
    }
}
