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
}

impl Etcd {
    /// One member.
    pub fn start() -> Etcd {
        Self::start_members(1)
    }

    /// `n` members forming one cluster.
    pub fn start_members(n: usize) -> Etcd {
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
        let mut etcd = Etcd { members, dir };
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
        let child = Command::new(ETCD)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .arg(format!("--listen-client-urls=http://127.0.0.1:{}", m.client))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{}", m.client))
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

    /// Every endpoint, as `cluster.etcd` lists them.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("http://127.0.0.1:{}", m.client)).collect()
    }

    /// The `[cluster]` section of an instance named `instance`.
    pub fn section(&self, instance: &str) -> String {
        let list: Vec<String> = self.endpoints().iter().map(|e| format!("\"{e}\"")).collect();
        format!("[cluster]\netcd = [{}]\ninstance = \"{instance}\"\n", list.join(", "))
    }

    /// `etcdctl ARGS` against the running members.
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        self.ctl_as(None, args)
    }

    /// `etcdctl --user USER:PASSWORD ARGS`, once auth is on.
    pub fn ctl_as(&self, user: Option<&str>, args: &[&str]) -> (bool, String) {
        let running: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect();
        let out = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", running.join(",")))
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
