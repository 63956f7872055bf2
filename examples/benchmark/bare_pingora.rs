//! The benchmark's baseline: the thinnest possible Pingora proxy (one fixed upstream, no routing,
//! no split, no metrics), built from the same Pingora as strangler, so the difference between
//! the two is what strangler itself costs. It uses strangler's allocator (mimalloc) too, so the
//! allocator is not counted as strangler's gain.
//!
//! Usage: `bare_pingora LISTEN UPSTREAM THREADS`

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream), Some(threads)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: bare_pingora LISTEN UPSTREAM THREADS");
        std::process::exit(2);
    };
    let mut conf = ServerConf::new().expect("default conf");
    conf.threads = threads.parse().expect("threads");
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(0);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let upstream = upstream.parse().expect("upstream address");
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
