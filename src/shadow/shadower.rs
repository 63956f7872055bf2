//! What every shadow task shares: the connector to the upstreams, the diffs file's writer and
//! where the tasks run; and what the primary exchange hands to the task when the request ends.

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use tokio::runtime::Runtime;

use super::client::in_box;
use super::diffs_file::DiffsFile;

/// Process-wide shadow machinery: the upstream connector (with its own connection pool), the
/// diffs file's writer and, with `server.shadow_threads`, a runtime of its own.
pub struct Shadower {
    pub(super) connector: Connector,
    pub(super) diffs_file: DiffsFile,
    /// Threads that only run shadow tasks, scheduled `SCHED_IDLE`: the kernel gives them a core
    /// only when no proxy worker wants it, and takes it back the moment one wakes, so a shadow
    /// never delays a primary request; on a saturated machine shadows wait, reach the route's
    /// `max_in_flight` and are dropped (counted), as they would be on the workers.
    runtime: Option<Runtime>,
}

impl Shadower {
    /// `threads` above 0 gives shadow work threads of its own, at the lowest CPU priority.
    pub fn new(connector: Connector, threads: usize) -> std::io::Result<Self> {
        let runtime = match threads {
            0 => None,
            n => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .thread_name("shadow")
                    .on_thread_start(lowest_priority)
                    .enable_all()
                    .build()?,
            ),
        };
        Ok(Shadower { connector, diffs_file: DiffsFile::start(), runtime })
    }

    /// Run the shadow task `make` makes: on the shadow runtime when there is one, else on the
    /// calling worker's.
    pub(super) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, make: impl FnOnce() -> F) {
        // Made in its box: the runtime moves what it is given (into its task cell, into the
        // finished stage), and a box moves as a pointer.
        let task = in_box(make);
        match &self.runtime {
            Some(r) => drop(r.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
    }
}

impl Drop for Shadower {
    /// Shadows still in flight are abandoned, as a worker's are at shutdown; waiting for them
    /// (the default) would block, and panics inside a runtime.
    fn drop(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

/// The calling thread runs only when its core would otherwise be idle.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler with pid 0 changes the calling thread's policy only; the
        // pointer is to a live, initialised sched_param.
        let set = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if set != 0 {
            tracing::warn!(
                "shadow thread keeps its normal priority (SCHED_IDLE refused: {})",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// What the primary exchange produced, handed to the shadow task when the request ends.
pub struct Primary {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The body went over `max_body`: not comparable.
    pub over: bool,
    /// The request failed (no complete answer from the upstream).
    pub failed: bool,
    pub took: std::time::Duration,
    /// When the primary's answer had been delivered to the client: a same-side repeat written
    /// after it is not counted as noise (the client could have acted on the answer by then).
    pub delivered: Instant,
}
