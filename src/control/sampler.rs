//! Once a second, every route's live counters are read into its ring, so the API can show the
//! last minute as one subtraction.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::snapshot::Shared;

pub struct SamplerService {
    shared: Arc<Shared>,
}

impl SamplerService {
    pub fn new(shared: Arc<Shared>) -> Self {
        SamplerService { shared }
    }
}

#[async_trait]
impl BackgroundService for SamplerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = every.tick() => {
                    let snap = self.shared.load();
                    for m in snap.table.iter() {
                        m.stats.live.keep(m.reading(), m.shadow.as_deref().map(|s| &s.paired));
                    }
                }
            }
        }
    }
}
