//! The benchmark's baseline: the thinnest possible Pingora proxy (one fixed upstream, no routing,
//! no split, no metrics), built from the same Pingora as strangler, so the difference between
//! the two is what strangler itself costs. It uses strangler's allocator (mimalloc) too, so the
//! allocator is not counted as strangler's gain.
//!
//! With `duties` as a fourth argument it does, in plain Pingora, the per-request work any proxy
//! in front of production traffic does and strangler does too: an idle timeout on keep-alive
//! connections, a read timeout on request bodies, connect and read timeouts upstream (a hung
//! upstream must end in a 504, not hold the client forever), and `X-Forwarded-For` /
//! `X-Forwarded-Proto`; and, like strangler by default (`server.huge_pages = false`), it runs
//! without transparent huge pages, which costs ~7% CPU per request and keeps memory low after a
//! burst. What strangler costs beyond that peer is routing, the split, figures, limits and
//! shadowing: strangler's own work.
//!
//! `duties-except=NAME,...` leaves the named duties out (`idle`, `body`, `connect`, `read`,
//! `forwarded`), so what each one costs is measured by difference (`instructions.sh` with
//! `BREAKDOWN=1`).
//!
//! Usage: `bare_pingora LISTEN UPSTREAM THREADS [duties | duties-except=NAME,...]`

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use std::any::Any;
use std::time::Duration;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: std::net::SocketAddr,
    duties: Duties,
}

/// Which of the duties this proxy does; none for the bare passthrough.
#[derive(Clone, Copy, Default)]
struct Duties {
    /// Keep-alive idle timeout.
    idle: bool,
    /// Read timeout on request bodies.
    body: bool,
    /// Upstream connect timeout.
    connect: bool,
    /// Upstream read timeout.
    read: bool,
    /// `X-Forwarded-For` and `X-Forwarded-Proto`.
    forwarded: bool,
}

impl Duties {
    /// `duties` (all) or `duties-except=NAME,...`; `None` for anything else.
    fn parse(arg: &str) -> Option<Duties> {
        let all = Duties { idle: true, body: true, connect: true, read: true, forwarded: true };
        if arg == "duties" {
            return Some(all);
        }
        let mut d = all;
        for name in arg.strip_prefix("duties-except=")?.split(',') {
            match name {
                "idle" => d.idle = false,
                "body" => d.body = false,
                "connect" => d.connect = false,
                "read" => d.read = false,
                "forwarded" => d.forwarded = false,
                _ => return None,
            }
        }
        Some(d)
    }

    fn any(self) -> bool {
        self.idle || self.body || self.connect || self.read || self.forwarded
    }
}

/// strangler's defaults for the same timeouts.
const IDLE: Duration = Duration::from_secs(60);
const BODY: Duration = Duration::from_secs(30);
const CONNECT: Duration = Duration::from_secs(1);
const READ: Duration = Duration::from_secs(30);

#[async_trait]
impl ProxyHttp for Bare {
    /// The client's address, formatted once per connection (as strangler does).
    type CTX = Option<HeaderValue>;

    fn new_ctx(&self) -> Self::CTX {
        None
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut Self::CTX) -> Result<bool> {
        if self.duties.idle && session.get_keepalive().is_some() {
            session.set_keepalive(Some(IDLE.as_secs()));
        }
        if self.duties.body {
            session.set_read_timeout(Some(BODY));
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if self.duties.connect {
            peer.options.connection_timeout = Some(CONNECT);
        }
        if self.duties.read {
            peer.options.read_timeout = Some(READ);
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if self.duties.forwarded {
            if ctx.is_none() {
                *ctx = session.client_addr().and_then(|a| a.as_inet()).and_then(|a| a.ip().to_string().try_into().ok());
            }
            if let Some(ip) = ctx {
                req.insert_header(X_FORWARDED_FOR, ip.clone())?;
            }
            req.insert_header(X_FORWARDED_PROTO, HeaderValue::from_static("http"))?;
        }
        Ok(())
    }

    fn persist_connection_context(&self, _session: &Session, ctx: &Self::CTX) -> Option<Box<dyn Any + Send + Sync>> {
        ctx.clone().map(|v| Box::new(v) as Box<dyn Any + Send + Sync>)
    }

    fn on_connection_reuse(&self, _session: &mut Session, ctx: &mut Self::CTX, prev: Box<dyn Any + Send + Sync>) {
        if let Ok(ip) = prev.downcast::<HeaderValue>() {
            *ctx = Some(*ip);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream), Some(threads)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: bare_pingora LISTEN UPSTREAM THREADS [duties | duties-except=NAME,...]");
        std::process::exit(2);
    };
    let mut conf = ServerConf::new().expect("default conf");
    conf.threads = threads.parse().expect("threads");
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(0);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let upstream = upstream.parse().expect("upstream address");
    let duties = match args.get(4) {
        None => Duties::default(),
        Some(arg) => Duties::parse(arg).unwrap_or_else(|| {
            eprintln!("bare_pingora: {arg:?} is not `duties` or `duties-except=` idle, body, connect, read, forwarded");
            std::process::exit(2);
        }),
    };
    if duties.any() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory of ours.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream, duties });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
