//! Sending one request to an upstream pool from a spawned task, with Pingora's connector (and
//! its connection pool): used for the shadow copy and for the noise-learning repeat.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::HeaderValue;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;

use crate::config::Upstream;
use crate::upstream::Pool;

pub const SHADOW_HEADER: http::HeaderName = http::HeaderName::from_static("x-strangler-shadow");

/// Idle time a pooled shadow connection is kept.
const IDLE: Duration = Duration::from_secs(60);

/// An upstream's raw answer.
pub struct Raw {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub took: Duration,
    /// When the whole request had been written to the upstream.
    pub sent: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("the answer's body is larger than max_body ({0} bytes)")]
    TooLarge(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Upstream(String),
}

/// The request to send: the primary request as forwarded, marked as a shadow, with the Host the
/// target pool expects and the body's exact length (it is fully buffered).
pub fn prepare(
    forwarded: &RequestHeader,
    client_host: Option<&HeaderValue>,
    up: &Upstream,
    body_len: usize,
) -> RequestHeader {
    let mut req = forwarded.clone();
    let host = up.host_header.as_ref().or(client_host);
    if let Some(h) = host {
        let _ = req.insert_header(HOST, h.clone());
    }
    let _ = req.insert_header(SHADOW_HEADER, HeaderValue::from_static("1"));
    req.remove_header(&TRANSFER_ENCODING);
    if body_len > 0 || req.headers.contains_key(CONTENT_LENGTH) {
        let _ = req.insert_header(CONTENT_LENGTH, body_len);
    }
    req
}

/// Send `req` with `body` to the next address of `pool`, read the answer up to `max_body` bytes,
/// all within `timeout`.
pub async fn exchange(
    connector: &Connector,
    pool: &Pool,
    req: RequestHeader,
    body: Bytes,
    max_body: usize,
    timeout: Duration,
) -> Result<Raw, ExchangeError> {
    let started = Instant::now();
    // Pinned where it is made: the timeout holds a pointer to it, not a copy of the session's
    // futures.
    let send = std::pin::pin!(send(connector, pool, req, body, max_body));
    match tokio::time::timeout(timeout, send).await {
        Ok(Ok((status, headers, body, sent))) => Ok(Raw { status, headers, body, took: started.elapsed(), sent }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ExchangeError::Timeout(timeout)),
    }
}

async fn send(
    connector: &Connector,
    pool: &Pool,
    req: RequestHeader,
    body: Bytes,
    max_body: usize,
) -> Result<(u16, http::HeaderMap, Bytes, Instant), ExchangeError> {
    let err = |e: Box<pingora::Error>| ExchangeError::Upstream(e.to_string());
    let peer = pool.next_peer();
    // Boxed when reached: Pingora's connect future is kilobytes, and held inline it would make
    // every shadow task that large, copied whole when it is spawned.
    let (mut session, _reused) = in_box(|| connector.get_http_session(&peer)).await.map_err(err)?;
    session.write_request_header(Box::new(req)).await.map_err(err)?;
    if !body.is_empty() {
        session.write_request_body(body, true).await.map_err(err)?;
    }
    session.finish_request_body().await.map_err(err)?;
    let sent = Instant::now();
    session.read_response_header().await.map_err(err)?;
    let (status, headers) = match session.response_header() {
        Some(h) => (h.status.as_u16(), h.headers.clone()),
        None => return Err(ExchangeError::Upstream("no response header".into())),
    };
    let mut buf = BytesMut::new();
    while let Some(chunk) = session.read_response_body().await.map_err(err)? {
        if buf.len() + chunk.len() > max_body {
            // Dropping the session closes the connection: the rest is never read.
            return Err(ExchangeError::TooLarge(max_body));
        }
        buf.extend_from_slice(&chunk);
    }
    connector.release_http_session(session, &peer, Some(IDLE)).await;
    Ok((status, headers, buf.freeze(), sent))
}

/// `Box::pin(make())`, with the box allocated first so that the call writes the future straight
/// into it. `Box::pin` of a future already made copies it, and a future is as large as every
/// state it can be in: Pingora's connect future is kilobytes, and an exchange holds one.
#[inline(always)]
pub(super) fn in_box<F>(make: impl FnOnce() -> F) -> std::pin::Pin<Box<F>> {
    let mut slot = Box::<F>::new_uninit();
    slot.write(make());
    // SAFETY: the line above initialised the box's value. (`Box::write`, which says this
    // without `unsafe`, is newer than the supported Rust.)
    Box::into_pin(unsafe { slot.assume_init() })
}
