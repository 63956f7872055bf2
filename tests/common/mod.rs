//! Test harness: mock upstreams (real HTTP servers on loopback that record what they receive) and
//! the real `strangler` binary started on a generated config. No fixed ports anywhere.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A port nothing listens on (yet). Pingora must not bind several listeners to port 0, so the
/// proxy's ports are chosen here first: from a block of 200 per test process, below the kernel's
/// ephemeral range, so neither a parallel test nor a mock upstream binding port 0 can take a port
/// between its choice here and the proxy binding it.
/// The metric sample of reloads that applied.
pub const RELOAD_OK: &str = "strangler_config_reloads_total{result=\"ok\"}";

pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = 24_000 + (std::process::id() as usize % 40) * 200;
    for _ in 0..200 {
        let port = (base + NEXT.fetch_add(1, Ordering::SeqCst) % 200) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:{base}..{}", base + 200)
}

/// What a mock upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A real HTTP/1.1 server on loopback. Answers every request with its name as the body and in
/// `x-upstream`, after an optional delay, and records each request.
pub struct MockUpstream {
    pub name: String,
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct MockBuilder {
    name: String,
    delay: Duration,
    status: u16,
    record: bool,
    reply: Option<Reply>,
}

/// A mock's answer computed from the request: status, extra headers, body.
pub type Reply = Arc<dyn Fn(&Received) -> (u16, Vec<(String, String)>, Bytes) + Send + Sync>;

impl MockUpstream {
    pub fn builder(name: &str) -> MockBuilder {
        MockBuilder { name: name.to_string(), delay: Duration::ZERO, status: 200, record: true, reply: None }
    }

    pub async fn start(name: &str) -> MockUpstream {
        Self::builder(name).start().await
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}

impl MockBuilder {
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }

    /// Answer with `f(request)` instead of the mock's name.
    pub fn reply(
        mut self,
        f: impl Fn(&Received) -> (u16, Vec<(String, String)>, Bytes) + Send + Sync + 'static,
    ) -> Self {
        self.reply = Some(Arc::new(f));
        self
    }

    /// Count requests but keep no copies (for load tests).
    pub fn no_record(mut self) -> Self {
        self.record = false;
        self
    }

    pub async fn start(self) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (h, r) = (hits.clone(), received.clone());
        let MockBuilder { name, delay, status, record, reply } = self;
        let name2 = name.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (h, r, name, reply) = (h.clone(), r.clone(), name2.clone(), reply.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (h, r, name, reply) = (h.clone(), r.clone(), name.clone(), reply.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            h.fetch_add(1, Ordering::SeqCst);
                            let received = Received {
                                method: parts.method.to_string(),
                                path: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let (code, headers, body) = match &reply {
                                Some(f) => f(&received),
                                None => (status, Vec::new(), Bytes::from(name.clone())),
                            };
                            if record {
                                r.lock().expect("lock").push(received);
                            }
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let mut resp = Response::builder()
                                .status(StatusCode::from_u16(code).expect("status"))
                                .header("x-upstream", &name);
                            for (k, v) in headers {
                                resp = resp.header(k, v);
                            }
                            let resp = resp.body(Full::new(body)).expect("response");
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        MockUpstream { name, addr, hits, received }
    }
}

/// A TCP server that accepts connections and never answers.
pub async fn black_hole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    addr
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_strangler")
}

/// The real binary, running on a config in its own temporary directory. Killed on drop.
pub struct Strangler {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    opts: Options,
}

/// Sections of the generated config a test may set.
#[derive(Clone, Default)]
pub struct Options {
    /// Keys of `[log]`, without the header; default: info, no access log.
    pub log: Option<String>,
    /// Extra keys of `[server]`.
    pub server: String,
    /// Extra keys of `[admin]` (a token).
    pub admin: String,
    /// Environment of the process (NOTIFY_SOCKET, as systemd sets it).
    pub env: Vec<(String, String)>,
    /// The IP `admin.listen` binds (default 127.0.0.1); the tests reach it on loopback.
    pub admin_ip: Option<String>,
    /// Run as this user, with the config directory and file given to it with these modes, as
    /// an install would set them up (needs root).
    pub install: Option<Install>,
    /// The process's umask (default: the test's).
    pub umask: Option<u32>,
}

/// Owner and modes of the config directory and file, as an install creates them.
#[derive(Clone, Copy, Debug)]
pub struct Install {
    pub uid: u32,
    pub gid: u32,
    pub dir_mode: u32,
    pub file_mode: u32,
}

const QUIET_LOG: &str = "level = \"info\"\naccess_log = false\n";

impl Strangler {
    /// `body` is the `[upstreams.*]` and `[[routes]]` part; server, admin and log are added.
    pub async fn start(body: &str) -> Strangler {
        Self::start_with(Options::default(), body).await
    }

    pub async fn start_with(opts: Options, body: &str) -> Strangler {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("strangler.toml");
        Self::launch(dir, config, opts, body).await
    }

    /// With a `[log]` section of the test's choosing (its keys, without the header).
    pub async fn start_with_log(log: &str, body: &str) -> Strangler {
        Self::start_with(Options { log: Some(log.to_string()), ..Options::default() }, body).await
    }

    pub async fn start_at(dir: tempfile::TempDir, config: PathBuf, body: &str) -> Strangler {
        Self::launch(dir, config, Options::default(), body).await
    }

    pub async fn start_at_with(dir: tempfile::TempDir, config: PathBuf, opts: Options, body: &str) -> Strangler {
        Self::launch(dir, config, opts, body).await
    }

    async fn launch(dir: tempfile::TempDir, config: PathBuf, opts: Options, body: &str) -> Strangler {
        let port = free_port();
        let admin_port = free_port();
        let text = Self::full_config(port, admin_port, dir.path(), &opts, body);
        std::fs::write(&config, text).expect("write config");
        if let Some(i) = opts.install {
            use std::os::unix::fs::PermissionsExt;
            for (path, mode) in [(dir.path(), i.dir_mode), (config.as_path(), i.file_mode)] {
                std::os::unix::fs::chown(path, Some(i.uid), Some(i.gid)).expect("chown (needs root)");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            }
        }
        let child = Self::spawn(dir.path(), &config, &opts);
        let mut s = Strangler { child, port, admin_port, dir, config, opts };
        s.wait_ready().await;
        s
    }

    /// The binary on `config`, its stderr appended to `strangler.log` in `dir`.
    fn spawn(dir: &Path, config: &Path, opts: &Options) -> Child {
        use std::os::unix::process::CommandExt;
        let log_file =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join("strangler.log")).expect("log file");
        let mut cmd = Command::new(bin());
        if let Some(i) = opts.install {
            cmd.uid(i.uid).gid(i.gid);
        }
        if let Some(mask) = opts.umask {
            // SAFETY: umask only sets the new process's file mode mask; it cannot fail.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        }
        cmd.args(["run", "-c"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("STRANGLER_ADMIN_TOKEN")
            .env_remove("NOTIFY_SOCKET")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn strangler")
    }

    /// Kill the process (SIGKILL: no chance to save anything) and start it again on the config
    /// file as it is now.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), &self.config, &self.opts);
        self.wait_ready().await;
    }

    /// The admin API's answer to a GET of `path` (under `/api/v1`), as its typed shape.
    pub async fn api<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let url = self.admin_url(&format!("{}{path}", strangler::api::PREFIX));
        let text = reqwest::get(&url).await.expect("admin API").text().await.expect("body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}; the answer was:\n{text}"))
    }

    /// `GET /api/v1/routes/{name}`.
    pub async fn route(&self, name: &str) -> strangler::api::RouteView {
        self.api(&format!("/routes/{name}")).await
    }

    /// The rollout state of route `name`.
    pub async fn rollout(&self, name: &str) -> strangler::api::RolloutView {
        self.route(name).await.rollout.unwrap_or_else(|| panic!("route {name} shows no rollout"))
    }

    /// Run the CLI against this instance: `strangler ARGS -c CONFIG`; (exit ok, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(bin())
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .env_remove("STRANGLER_ADMIN_TOKEN")
            .output()
            .expect("run the CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn full_config(port: u16, admin_port: u16, dir: &Path, opts: &Options, body: &str) -> String {
        Self::config_text(
            port,
            admin_port,
            dir,
            opts,
            opts.admin_ip.as_deref().unwrap_or("127.0.0.1"),
            &opts.admin,
            body,
        )
    }

    /// The whole config file, with `[admin]` bound to `admin_ip` and holding `admin` (its other keys).
    pub fn config_text(
        port: u16,
        admin_port: u16,
        dir: &Path,
        opts: &Options,
        admin_ip: &str,
        admin: &str,
        body: &str,
    ) -> String {
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 2\ngrace_period = \"1s\"\nupgrade_sock = \"{}\"\n{}\n\
             [admin]\nlisten = \"{admin_ip}:{admin_port}\"\n{admin}\n\n[log]\n{}\n{body}",
            dir.join("upgrade.sock").display(),
            opts.server,
            opts.log.as_deref().unwrap_or(QUIET_LOG),
        )
    }

    /// Replace the config body the way editors do: write a temp file, then rename over.
    pub fn rewrite(&self, body: &str) {
        self.replace_file(&Self::full_config(self.port, self.admin_port, self.dir.path(), &self.opts, body));
    }

    /// The config as [`Self::rewrite`] writes it, but with `[admin]` bound to `admin_ip` and
    /// holding `admin` (its other keys).
    pub fn text_with_admin(&self, admin_ip: &str, admin: &str, body: &str) -> String {
        Self::config_text(self.port, self.admin_port, self.dir.path(), &self.opts, admin_ip, admin, body)
    }

    /// Replace the whole file with `text` the way editors do: a temp file, then a rename.
    pub fn replace_file(&self, text: &str) {
        let tmp = self.dir.path().join(".strangler.toml.tmp");
        std::fs::write(&tmp, text).expect("write temp");
        std::fs::rename(&tmp, &self.config).expect("rename");
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("strangler exited during start-up ({status}); log:\n{}", self.log());
            }
            let ready = reqwest::get(self.admin_url("/readyz")).await.is_ok_and(|r| r.status() == 200)
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "strangler did not become ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("strangler.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// The value of one metric sample, e.g. `strangler_config_reloads_total{result="ok"}` (labels
    /// in any order); `None` when the exporter has no such series.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        parse_metric(&self.metrics_text().await, sample)
    }

    /// Like [`Self::metric`], but the series must exist: a failure lists the series there are.
    pub async fn metric_value(&self, sample: &str) -> f64 {
        let text = self.metrics_text().await;
        parse_metric(&text, sample).unwrap_or_else(|| panic!("{}", missing_series(&text, sample)))
    }

    async fn metrics_text(&self) -> String {
        reqwest::get(self.admin_url("/metrics")).await.expect("metrics").text().await.expect("text")
    }

    /// Wait until `sample` exists and reaches at least `value`.
    pub async fn wait_metric(&self, sample: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.metrics_text().await;
            let now = parse_metric(&text, sample);
            if now.is_some_and(|v| v >= value) {
                return;
            }
            if Instant::now() >= deadline {
                let found = now.map_or_else(|| missing_series(&text, sample), |v| format!("it is {v}"));
                panic!("{sample} never reached {value}: {found}\nlog:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Strangler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample's name and labels: `name{a="x",b="y"}` -> ("name", {a: x, b: y}).
fn parse_sample(sample: &str) -> (&str, std::collections::BTreeSet<(String, String)>) {
    let (name, labels) = match sample.split_once('{') {
        Some((name, rest)) => (name, rest.trim_end_matches('}')),
        None => (sample, ""),
    };
    let labels = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    (name.trim(), labels)
}

/// The value of the series `sample` names in Prometheus text, matching its labels as a set
/// (in any order); `None` when there is no such series.
pub fn parse_metric(text: &str, sample: &str) -> Option<f64> {
    let want = parse_sample(sample);
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        (parse_sample(series) == want).then(|| value.trim().parse().ok()).flatten()
    })
}

/// What a failure says when a series is absent: the series of that metric that do exist.
fn missing_series(text: &str, sample: &str) -> String {
    let name = parse_sample(sample).0;
    let found: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && parse_sample(l.split(' ').next().unwrap_or("")).0 == name)
        .collect();
    if found.is_empty() {
        format!("no series named {name} at all (a typo?)")
    } else {
        format!("no series {sample}; the series of {name} are:\n  {}", found.join("\n  "))
    }
}

/// A client that keeps connections alive, as real callers do.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client")
}

/// `[upstreams]` entries for a legacy and a new mock.
pub fn pools(legacy: &MockUpstream, new: &MockUpstream) -> String {
    format!(
        "[upstreams.legacy]\naddresses = [\"{}\"]\n\n[upstreams.new]\naddresses = [\"{}\"]\n\n",
        legacy.address(),
        new.address()
    )
}

/// Send `n` GETs to `url` from `concurrency` tasks; returns the status codes' counts.
pub async fn load(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    concurrency: usize,
) -> std::collections::BTreeMap<u16, usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), url.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut codes = std::collections::BTreeMap::new();
            while next.fetch_add(1, Ordering::SeqCst) < n {
                let code = match client.get(&url).send().await {
                    Ok(r) => {
                        let c = r.status().as_u16();
                        let _ = r.bytes().await;
                        c
                    }
                    Err(_) => 0,
                };
                *codes.entry(code).or_insert(0) += 1;
            }
            codes
        }));
    }
    let mut all = std::collections::BTreeMap::new();
    for t in tasks {
        for (c, k) in t.await.expect("task") {
            *all.entry(c).or_insert(0) += k;
        }
    }
    all
}

/// A TLS upstream: a test CA (written to `ca.pem` in `dir`) signs a certificate for `name`; the
/// server answers `tls:<SNI it was sent>`.
pub async fn tls_upstream(dir: &Path, name: &str) -> (SocketAddr, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec![name.to_string()]).expect("params").signed_by(&leaf_key, &ca).expect("leaf");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write ca");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_string();
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let body = format!("tls:{sni}");
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    (addr, ca_path)
}

/// A fresh CA and a leaf certificate for `name` signed by it: the leaf chain and key written as
/// PEM to `dir/{tag}.crt` and `dir/{tag}.key`; returns those paths and the CA's PEM.
pub fn cert_files(dir: &Path, name: &str, tag: &str) -> (PathBuf, PathBuf, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec![name.to_string()]).expect("params").signed_by(&leaf_key, &ca).expect("leaf");
    let (cert, key) = (dir.join(format!("{tag}.crt")), dir.join(format!("{tag}.key")));
    std::fs::write(&cert, leaf.pem()).expect("write cert");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    (cert, key, ca.pem())
}
