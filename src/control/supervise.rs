//! Background tasks that cannot die silently. A panic in the reload watcher, the health checks,
//! the rollout controller or the live sampler would otherwise leave a process that serves but
//! no longer reloads, checks or rolls out, with nothing to show for it. Each runs supervised:
//! a panic is logged with its message, counted in
//! `strangler_background_restarts_total{task}`, and the task starts again a second later.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::metrics::METRICS;

/// Pause before a task that panicked starts again, so a task that panics at once cannot spin.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// How long `/readyz` mentions a task's last restart.
pub const REPORTED_FOR: Duration = Duration::from_secs(600);

/// A task's restarts, for `/readyz`.
struct Restarts {
    count: u64,
    last: Instant,
    message: String,
}

static RESTARTS: Mutex<BTreeMap<&'static str, Restarts>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, message: &str) {
    let mut all = RESTARTS.lock().unwrap_or_else(|e| e.into_inner());
    let r = all.entry(name).or_insert_with(|| Restarts { count: 0, last: Instant::now(), message: String::new() });
    r.count += 1;
    r.last = Instant::now();
    r.message = message.chars().take(300).collect();
}

/// What `/readyz` says of background tasks: one line per task restarted after a panic in the last
/// [`REPORTED_FOR`], with how often and its last panic's message; empty when none was.
pub fn restarts_report() -> String {
    let all = RESTARTS.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .filter(|(_, r)| r.last.elapsed() < REPORTED_FOR)
        .map(|(name, r)| {
            format!(
                "background task {name} panicked and was restarted ({} time(s), last {} s ago): {}\n",
                r.count,
                r.last.elapsed().as_secs(),
                r.message
            )
        })
        .collect()
}

pub struct Supervised<T> {
    name: &'static str,
    task: Arc<T>,
}

impl<T> Supervised<T> {
    pub fn new(name: &'static str, task: T) -> Self {
        Supervised { name, task: Arc::new(task) }
    }
}

#[async_trait]
impl<T: BackgroundService + Send + Sync + 'static> BackgroundService for Supervised<T> {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let restarts = METRICS.background_restarts.with_label_values(&[self.name]);
        loop {
            let (task, watch) = (self.task.clone(), shutdown.clone());
            let run = tokio::spawn(async move { task.start(watch).await });
            match run.await {
                Err(e) if e.is_panic() => {
                    restarts.inc();
                    let message = panic_message(e);
                    tracing::error!(task = self.name, "background task panicked, restarting it: {message}");
                    record(self.name, &message);
                }
                // Returned (shutdown) or cancelled with the runtime.
                _ => return,
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(RESTART_AFTER) => {}
            }
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast::<&str>().map_or_else(|_| "(no message)".to_string(), |s| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Panics on its first two starts, then runs until shutdown.
    struct Flaky(AtomicUsize);

    #[async_trait]
    impl BackgroundService for Flaky {
        async fn start(&self, mut shutdown: ShutdownWatch) {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            assert!(n >= 2, "start {n} fails");
            let _ = shutdown.changed().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_counted_and_started_again() {
        let supervised = Arc::new(Supervised::new("flaky-test", Flaky(AtomicUsize::new(0))));
        let (stop, watch) = tokio::sync::watch::channel(false);
        let running = tokio::spawn({
            let s = supervised.clone();
            async move { s.start(watch).await }
        });
        let restarts = || METRICS.background_restarts.with_label_values(&["flaky-test"]).get();
        for _ in 0..100 {
            if supervised.task.0.load(Ordering::SeqCst) == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(supervised.task.0.load(Ordering::SeqCst), 3, "started again after each panic");
        assert_eq!(restarts(), 2);
        let report = restarts_report();
        assert!(report.contains("background task flaky-test panicked and was restarted (2 time(s)"), "{report}");
        assert!(report.contains("start 1 fails"), "the last panic's message: {report}");
        stop.send(true).unwrap();
        running.await.unwrap();
        assert_eq!(supervised.task.0.load(Ordering::SeqCst), 3, "a task that returns is not restarted");
    }
}
