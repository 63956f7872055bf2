#![allow(dead_code)]
//! A real etcd (Debian's `etcd-server`, which `make test` installs) on loopback with a temporary
//! data directory: one member, or a cluster of three. Killed, with its data kept, on `stop`;
//! started again on the same ports and data by `start_again`; gone on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ETCD: &str = "/usr/bin/etcd";
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

pub struct Etcd {
    members: Vec<Member>,
    dir: tempfile::TempDir,
    /// With TLS: clients must present a certificate signed by the same CA.
    tls: Option<Tls>,
}

/// PEM files in the etcd's directory: the CA, etcd's certificate (for 127.0.0.1) and a client's.
pub struct Tls {
    pub ca: std::path::PathBuf,
    server: (std::path::PathBuf, std::path::PathBuf),
    pub client: (std::path::PathBuf, std::path::PathBuf),
}

impl Tls {
    fn generate(dir: &std::path::Path) -> Tls {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        let leaf = |name: &str, sans: &[&str]| {
            let key = KeyPair::generate().expect("key");
            let params =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
            let cert = params.signed_by(&key, &ca).expect("sign");
            (write(&format!("{name}.crt"), cert.pem()), write(&format!("{name}.key"), key.serialize_pem()))
        };
        let server = leaf("etcd", &["127.0.0.1", "localhost"]);
        let client = leaf("client", &["strangler"]);
        Tls { ca: write("ca.crt", ca.pem()), server, client }
    }
}

impl Etcd {
    /// One member.
    pub fn start() -> Etcd {
        Self::start_members(1)
    }

    /// One member that speaks only TLS and checks client certificates.
    pub fn start_tls() -> Etcd {
        Self::start_with(1, true)
    }

    /// `n` members forming one cluster.
    pub fn start_members(n: usize) -> Etcd {
        Self::start_with(n, false)
    }

    fn start_with(n: usize, tls: bool) -> Etcd {
        assert!(std::path::Path::new(ETCD).exists(), "{ETCD} is missing: `make test` installs Debian's etcd-server");
        let dir = tempfile::tempdir().expect("etcd dir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: super::free_port(),
                peer: super::free_port(),
                child: None,
            })
            .collect();
        let tls = tls.then(|| Tls::generate(dir.path()));
        let mut etcd = Etcd { members, dir, tls };
        for i in 0..n {
            etcd.spawn(i);
        }
        etcd.wait_healthy();
        etcd
    }

    fn spawn(&mut self, i: usize) {
        let cluster: Vec<String> =
            self.members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer)).collect();
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name))).expect("etcd log");
        let scheme = self.scheme();
        let tls_args: Vec<String> = match &self.tls {
            Some(t) => vec![
                format!("--cert-file={}", t.server.0.display()),
                format!("--key-file={}", t.server.1.display()),
                format!("--trusted-ca-file={}", t.ca.display()),
                "--client-cert-auth".to_string(),
            ],
            None => Vec::new(),
        };
        let child = Command::new(ETCD)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .arg(format!("--listen-client-urls={scheme}://127.0.0.1:{}", m.client))
            .arg(format!("--advertise-client-urls={scheme}://127.0.0.1:{}", m.client))
            .args(tls_args)
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", m.peer))
            .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", m.peer))
            .arg(format!("--initial-cluster={}", cluster.join(",")))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=strangler-test")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// A member's client URL.
    fn url(&self, m: &Member) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), m.client)
    }

    /// Every endpoint, as `cluster.etcd` lists them.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| self.url(m)).collect()
    }

    /// The `[cluster]` section of an instance named `instance` (with the client's TLS files).
    pub fn section(&self, instance: &str) -> String {
        let list: Vec<String> = self.endpoints().iter().map(|e| format!("\"{e}\"")).collect();
        let mut s = format!("[cluster]\netcd = [{}]\ninstance = \"{instance}\"\n", list.join(", "));
        if let Some(t) = &self.tls {
            s += &format!(
                "tls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                t.ca.display(),
                t.client.0.display(),
                t.client.1.display()
            );
        }
        s
    }

    /// `etcdctl ARGS` against the running members.
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        self.ctl_as(None, args)
    }

    /// `etcdctl --user USER:PASSWORD ARGS`, once auth is on.
    pub fn ctl_as(&self, user: Option<&str>, args: &[&str]) -> (bool, String) {
        let running: Vec<String> = self.members.iter().filter(|m| m.child.is_some()).map(|m| self.url(m)).collect();
        let tls_args: Vec<String> = match &self.tls {
            Some(t) => vec![
                format!("--cacert={}", t.ca.display()),
                format!("--cert={}", t.client.0.display()),
                format!("--key={}", t.client.1.display()),
            ],
            None => Vec::new(),
        };
        let out = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", running.join(",")))
            .args(tls_args)
            .args(user.map(|u| format!("--user={u}")))
            .args(args)
            .output()
            .expect("run etcdctl");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (ok, out) = self.ctl(&["endpoint", "health"]);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "etcd never became healthy: {out}\n{}", self.log(0));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL member `i` (its data stays).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL every member.
    pub fn stop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Start every stopped member again on its ports and data.
    pub fn start_again(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                self.spawn(i);
            }
        }
        self.wait_healthy();
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.members[i].name))).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
