//! The notifications strangler sends on its own, from what it watches rather than what it does:
//! a new significant finding on an endpoint, and an instance of the fleet falling behind. Weight
//! changes and rollout events are sent where they happen ([`super::rollout`], [`super::reload`]);
//! a change of the fleet's leader by the fleet ([`crate::cluster::fleet`]).
//!
//! Only the instance that drives rollouts tells (in a fleet, the leader, on the pooled
//! findings), so a team hears each thing once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::json;

use super::rollout::Control;
use crate::cluster::fleet::Fleet;
use crate::compare::difference::Field;
use crate::config::operations::NoticeKind;
use crate::notifications::{self, Notice};
use crate::snapshot::Shared;

/// How often findings and the fleet are looked at.
const EVERY: Duration = Duration::from_secs(5);
/// How long an instance serves an older revision before the team is told: propagation takes
/// milliseconds, a restart a few seconds.
const BEHIND_AFTER: Duration = Duration::from_secs(30);

pub struct NoticeService {
    shared: Arc<Shared>,
    control: Arc<Control>,
    fleet: Option<Arc<Fleet>>,
    instance: String,
}

/// What was already told.
#[derive(Default)]
struct Told {
    /// Significant findings seen at the last look. `None` before the first look of a fleet's
    /// leader: the fleet's pooled findings from before it led were told by the leader before.
    /// (Alone, evidence starts empty with the process: every finding is new.)
    findings: Option<BTreeSet<(String, String, Field)>>,
    behind_since: BTreeMap<String, Instant>,
    behind: BTreeSet<String>,
}

impl NoticeService {
    pub fn new(shared: Arc<Shared>, control: Arc<Control>, fleet: Option<Arc<Fleet>>, instance: String) -> Self {
        NoticeService { shared, control, fleet, instance }
    }

    pub async fn run(&self, mut shutdown: ShutdownWatch) {
        notifications::start(self.shared.clone(), self.instance.clone());
        let fresh = || Told { findings: self.fleet.is_none().then(BTreeSet::new), ..Told::default() };
        let mut told = fresh();
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = every.tick() => {
                    if !self.control.leads() {
                        told = fresh();
                        continue;
                    }
                    self.look(&mut told).await;
                }
            }
        }
    }

    async fn look(&self, told: &mut Told) {
        if self.shared.load().config.notify.is_empty() {
            return;
        }
        self.findings(told).await;
        if let Some(fleet) = &self.fleet {
            self.fleet(fleet, told).await;
        }
    }

    async fn findings(&self, told: &mut Told) {
        let snap = self.shared.load();
        let mut now = BTreeSet::new();
        for route in snap.config.routes.iter().filter(|r| r.shadow.is_some()) {
            let Some(m) = snap.table.get(&route.name) else { continue };
            for s in self.control.significant(m).await {
                let key = (route.name.clone(), s.endpoint.clone(), s.field.clone());
                if told.findings.as_ref().is_some_and(|seen| !seen.contains(&key)) {
                    notifications::send(Notice::new(
                        NoticeKind::Finding,
                        "new_finding",
                        Some(&route.name),
                        format!(
                            "{}: {} differs in {:.1}% of comparisons, beyond its noise: the endpoint's verdict is differs",
                            s.endpoint, s.field, s.rate
                        ),
                        json!({ "endpoint": s.endpoint, "field": s.field, "rate": s.rate }),
                    ));
                }
                now.insert(key);
            }
        }
        told.findings = Some(now);
    }

    async fn fleet(&self, fleet: &Fleet, told: &mut Told) {
        let view = fleet.survey().await;
        let Some(latest) = view.latest_revision else { return };
        let at = Instant::now();
        for i in &view.instances {
            if i.behind {
                let since = *told.behind_since.entry(i.instance.clone()).or_insert(at);
                if at.duration_since(since) >= BEHIND_AFTER && told.behind.insert(i.instance.clone()) {
                    let serves = i.revision.map_or("nothing".to_string(), |r| format!("revision {r}"));
                    notifications::send(Notice::new(
                        NoticeKind::Fleet,
                        "instance_behind",
                        None,
                        format!(
                            "instance {} serves {serves} while etcd holds revision {latest}, for {}s",
                            i.instance,
                            at.duration_since(since).as_secs()
                        ),
                        json!({ "instance": i.instance, "revision": i.revision, "latest": latest }),
                    ));
                }
            } else {
                told.behind_since.remove(&i.instance);
                if told.behind.remove(&i.instance) {
                    notifications::send(Notice::new(
                        NoticeKind::Fleet,
                        "instance_caught_up",
                        None,
                        format!("instance {} serves revision {latest} again", i.instance),
                        json!({ "instance": i.instance, "revision": i.revision }),
                    ));
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for NoticeService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.run(shutdown).await;
    }
}
