//! What every shadow task shares: the connector to the upstreams and the diffs file's writer;
//! and what the primary exchange hands to the task when the request ends.

use std::time::Instant;

use bytes::Bytes;
use pingora::connectors::http::Connector;

use super::diffs_file::DiffsFile;

/// Process-wide shadow machinery: the upstream connector (with its own connection pool) and the
/// diffs file's writer.
pub struct Shadower {
    pub(super) connector: Connector,
    pub(super) diffs_file: DiffsFile,
}

impl Shadower {
    pub fn new(connector: Connector) -> Self {
        Shadower { connector, diffs_file: DiffsFile::start() }
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
