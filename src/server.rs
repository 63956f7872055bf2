//! Process assembly: the Pingora server with the proxy, the admin listener and the background
//! services (reloader, rollout controller, live-figures sampler, health checks).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use std::net::SocketAddr;

use pingora::apps::HttpServerOptions;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::RunArgs;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::server::AdminApp;
use crate::config::model::TlsListen;
use crate::config::{self, Config};
use crate::control::health::HealthService;
use crate::control::notices::NoticeService;
use crate::control::reload::{guard_sighup, ReloadService, Reloader};
use crate::control::rollout::{Control, RolloutService};
use crate::control::sampler::SamplerService;
use crate::control::supervise::Supervised;
use crate::lifecycle::{Ready, Signals};
use crate::limits::Guarded;

/// General connections the admin listener holds open at once (at most
/// [`crate::limits::PER_ADDRESS`] of them from one address); past them, health and metrics only
/// ([`crate::limits::Reserve`]).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// The admin listener's keep-alive idle time and header deadline at most: a slot held by a
/// client that sends nothing is given back soon.
pub const ADMIN_IDLE: std::time::Duration = std::time::Duration::from_secs(5);
use crate::proxy::Strangler;
use crate::shadow::Shadower;
use crate::snapshot::Shared;

/// Pingora's own settings, from ours. Built before the `Server` because the upgrade socket is
/// captured at construction.
fn pingora_conf(cfg: &Config) -> anyhow::Result<ServerConf> {
    let mut conf = ServerConf::new().context("default Pingora settings")?;
    conf.threads = cfg.server.threads;
    let grace = cfg.server.grace_period.as_secs_f64().ceil() as u64;
    // Pingora waits the whole grace period after SIGTERM, then gives runtimes a short while to
    // finish: keep both to what the operator configured rather than Pingora's 300 s default.
    conf.grace_period_seconds = Some(grace);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    conf.upgrade_sock = cfg.server.upgrade_sock.clone();
    conf.ca_file = cfg.server.ca_file.as_ref().map(|p| p.display().to_string());
    conf.pid_file = format!("{}.pid", cfg.server.upgrade_sock.trim_end_matches(".sock"));
    Ok(conf)
}

/// Refuse to start when a listen address is taken. Pingora would retry the bind for 30 s in the
/// background while the admin listener reported ready; an operator wants to know at once.
/// Skipped on `--upgrade`, where the listeners come from the running process.
fn check_addresses_free(cfg: &Config) -> anyhow::Result<()> {
    let proxy = cfg.server.listen.iter().enumerate().map(|(i, a)| (format!("server.listen[{i}]"), *a));
    let tls = match &cfg.server.tls_listen {
        TlsListen::Extra(extra) => extra.clone(),
        _ => Vec::new(),
    };
    let tls = tls.into_iter().enumerate().map(|(i, a)| (format!("server.tls.listen[{i}]"), a));
    for (key, addr) in proxy.chain(tls).chain([("admin.listen".to_string(), cfg.admin.listen)]) {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            anyhow::bail!(
                "{key} = {addr}: cannot listen there ({e}); stop what is using it, change {key} in {}, \
                 or take over a running strangler with `strangler run --upgrade`",
                cfg.path.display()
            );
        }
    }
    Ok(())
}

/// Opt this process out of transparent huge pages (unless `server.huge_pages`). With THP, memory
/// touched during a burst is resident in 2 MiB pages that the allocator's purge of a freed 64 KiB
/// connection buffer cannot give back, so the resident size climbs in 2 MiB steps and stays there
/// after the load is gone (74 MB after a 300-connection burst, against 24 MB without THP, which is
/// also where it starts). With 4 KiB pages what is freed returns within a second of the next
/// activity. The price is a few percent of CPU per request (more TLB misses). This overrides the
/// allocator's own THP requests and a host THP setting of `always`. A failure only costs memory.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// How client connections are read. Pingora's default puts a 64 KiB read buffer in front of every
/// client socket, filled ahead of what a request needs: it is what most of an idle connection's
/// memory is, and it reads past the cap a request header is held to ([`crate::limits`]).
/// Plain connections read the socket straight into the request's own buffers instead (one copy
/// less); TLS ones keep a buffer of one TLS record, as the TLS layer reads a record in small
/// pieces.
fn client_reads(tls: bool) -> L4BufferSettings {
    L4BufferSettings::default().read(if tls { 16 * 1024 } else { 0 })
}

/// Load the config and run until a shutdown signal.
pub fn run(path: &Path, upgrade: bool) -> anyhow::Result<()> {
    guard_sighup().context("installing the SIGHUP handler")?;
    let cfg = config::load(path)?;
    crate::logging::init(&cfg.log)?;
    // In a fleet, the routes come from etcd (or, while it is away, the local cache).
    let (cfg, fleet) = match cfg.cluster.is_some() {
        true => crate::cluster::boot(&cfg, path).map(|(c, f)| (c, Some(f)))?,
        false => (cfg, None),
    };
    if !cfg.server.huge_pages {
        no_huge_pages();
    }
    if !upgrade {
        check_addresses_free(&cfg)?;
    }

    let opt = Opt { upgrade, ..Opt::default() };
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf(&cfg)?);
    server.bootstrap();

    let listen = cfg.server.listen.clone();
    let tls_listen = cfg.server.tls_listen.clone();
    let h2c = cfg.server.h2c;
    let limits = cfg.limits.clone();
    // The admin listener has caps of its own: a handful of operators, scripts and scrapers, never
    // a crowd, no address holding more than its share, and a reserve for health and metrics.
    let admin_limits = config::model::Limits {
        max_connections: ADMIN_MAX_CONNECTIONS,
        idle_timeout: cfg.limits.idle_timeout.min(ADMIN_IDLE),
        header_timeout: cfg.limits.header_timeout.min(ADMIN_IDLE),
        ..cfg.limits.clone()
    };
    let admin_addr = cfg.admin.listen;
    let instance = cfg.cluster.as_ref().map_or_else(crate::config::host_name, |c| c.instance.clone());
    let signals = Signals { config: path.to_path_buf(), upgrade_sock: cfg.server.upgrade_sock.clone().into() };
    let shadow_threads = cfg.server.shadow_threads;
    let shared = Shared::new(cfg);

    let connector_options = ConnectorOptions::from_server_conf(&server.configuration);
    let shadower = Arc::new(
        Shadower::new(Connector::new(Some(connector_options.clone())), shadow_threads)
            .context("starting the shadow threads (server.shadow_threads)")?,
    );
    let mut app = pingora::proxy::http_proxy(&server.configuration, Strangler::new(shared.clone(), shadower.clone()));
    let mut options = HttpServerOptions::default();
    options.h2c = h2c;
    // An HTTP/2 connection (TLS or h2c) with no stream in flight is closed after idle_timeout,
    // as an idle HTTP/1 keep-alive connection is.
    options.h2_idle_timeout = Some(limits.idle_timeout);
    app.server_options = Some(options);
    // An HTTP/2 header list is held to max_header_bytes too (the h2 layer refuses a larger one
    // before it is buffered whole), as an HTTP/1 header is by the proxy's HeaderCap.
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    app.h2_options = Some(h2);
    let mut proxy = Service::new("proxy".to_string(), Guarded::new(app, limits, shared.clone(), h2c));
    let tls_addrs: Vec<SocketAddr> = match &tls_listen {
        TlsListen::None => Vec::new(),
        TlsListen::All => listen.clone(),
        TlsListen::Extra(extra) => extra.clone(),
    };
    for addr in listen.iter().filter(|a| !tls_addrs.contains(a)) {
        proxy.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(client_reads(false)));
    }
    if let Some(certs) = shared.certs() {
        for addr in &tls_addrs {
            let mut settings = TlsSettings::intermediate("", "").context("TLS settings")?;
            settings.set_cert_resolver(certs.clone());
            settings.enable_h2();
            proxy.add_listener(ListenerConfig::tcp(addr.to_string()).tls(settings).l4_buffer(client_reads(true)));
        }
    }

    let reloader = Reloader::new(path.to_path_buf(), shared.clone());
    let reloader = Arc::new(match &fleet {
        Some(f) => reloader.in_fleet(f.clone()),
        None => reloader,
    });
    let control = Control::new(reloader.clone(), shared.clone());

    let admin_app = AdminApp::new(shared.clone(), control.clone(), shadower.clone());
    let mut admin = Service::new("admin".to_string(), Guarded::admin(admin_app, admin_limits, shared.clone()));
    admin.add_listener(ListenerConfig::tcp(admin_addr.to_string()).l4_buffer(client_reads(false)));
    admin.threads = Some(1);

    if let Some(f) = &fleet {
        let apply = {
            let reloader = reloader.clone();
            Arc::new(move |doc| reloader.apply_doc(doc)) as crate::cluster::watch::ApplyDoc
        };
        let watch = crate::cluster::watch::WatchService::new(f.clone(), apply, shared.clone());
        server.add_service(background_service("cluster", Supervised::new("cluster", watch)));
    }
    let reload = background_service("reload", Supervised::new("reload", ReloadService::new(reloader)));

    let proxy = server.add_service(proxy);
    // Admin answers /readyz only once the proxy listeners are up.
    let admin = server.add_service(admin);
    admin.add_dependency(&proxy);
    // Tells systemd (Type=notify) this process is ready and the main one, once both listen.
    let ready = server.add_service(background_service("ready", Ready));
    ready.add_dependency(&proxy);
    ready.add_dependency(&admin);
    server.add_service(reload);
    let notices = NoticeService::new(shared.clone(), control.clone(), fleet.clone(), instance);
    server.add_service(background_service("notices", Supervised::new("notices", notices)));
    server.add_service(background_service("rollout", Supervised::new("rollout", RolloutService::new(control))));
    server.add_service(background_service("live", Supervised::new("live", SamplerService::new(shared.clone()))));
    let health = HealthService::new(shared.clone(), Some(connector_options));
    server.add_service(background_service("health", Supervised::new("health", health)));

    tracing::info!(
        proxy = %listen.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(","),
        admin = %admin_addr,
        config = %path.display(),
        "strangler starting"
    );
    server.run(RunArgs { shutdown_signal: Box::new(signals) });
    Ok(())
}
