//! `[log] diffs_file`: every mismatch appended as one JSON line, by a writer thread of its own.
//! The shadow tasks run on the proxy's worker threads and must never wait on a disk: they hand
//! each record over a bounded queue, and when the queue is full (a disk slower than the
//! mismatches) the record is dropped and counted in `strangler_diffs_file_dropped_total`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::compare::difference::DiffRecord;
use crate::metrics::METRICS;

/// Records waiting for the writer at most.
const QUEUE: usize = 1024;

pub struct DiffsFile {
    queue: SyncSender<(PathBuf, usize, Arc<DiffRecord>)>,
    /// The writer thread is gone (it could not start): said once.
    gone: AtomicBool,
}

impl DiffsFile {
    pub fn start() -> DiffsFile {
        let (queue, rx) = sync_channel(QUEUE);
        if let Err(e) = std::thread::Builder::new().name("diffs-file".into()).spawn(move || write_all(rx)) {
            tracing::error!("cannot start the diffs file writer, mismatches are not written to it: {e}");
        }
        DiffsFile { queue, gone: AtomicBool::new(false) }
    }

    /// Queue `record` for `path` (rotated past `max` bytes); never waits.
    pub fn append(&self, path: &Path, max: usize, record: Arc<DiffRecord>) {
        match self.queue.try_send((path.to_path_buf(), max, record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => METRICS.diffs_file_dropped.inc(),
            Err(TrySendError::Disconnected(_)) => {
                METRICS.diffs_file_dropped.inc();
                if !self.gone.swap(true, Ordering::Relaxed) {
                    tracing::error!("the diffs file writer is gone: mismatches are no longer written to the file");
                }
            }
        }
    }
}

/// The writer: one open file (reopened when the configured path changes), one write per line so
/// that lines from another process appending to the same file never interleave (O_APPEND).
/// Past `max` bytes the file is renamed to `FILE.1` (replacing the previous one) and a new one
/// started: the file never grows past twice its cap on disk.
fn write_all(rx: Receiver<(PathBuf, usize, Arc<DiffRecord>)>) {
    let mut open: Option<(PathBuf, File, usize)> = None;
    for (path, max, record) in rx {
        let mut line = match serde_json::to_vec(record.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("could not encode a diff record: {e}");
                continue;
            }
        };
        line.push(b'\n');
        let full = open.as_ref().is_some_and(|(p, _, size)| *p == path && *size > 0 && size + line.len() > max);
        if full {
            open = None;
            let mut old = path.clone().into_os_string();
            old.push(".1");
            if let Err(e) = std::fs::rename(&path, &old) {
                tracing::warn!(file = %path.display(), "cannot rotate the diffs file: {e}");
            }
        }
        if open.as_ref().is_none_or(|(p, _, _)| *p != path) {
            match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => {
                    let size = f.metadata().map_or(0, |m| m.len() as usize);
                    open = Some((path.clone(), f, size));
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), "cannot open the diffs file: {e}");
                    continue;
                }
            }
        }
        if let Some((_, f, size)) = open.as_mut() {
            match f.write_all(&line) {
                Ok(()) => *size += line.len(),
                Err(e) => tracing::warn!(file = %path.display(), "cannot append to the diffs file: {e}"),
            }
        }
    }
}
