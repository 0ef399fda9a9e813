//! A Redis Cluster of a test's or bench's own: `masters` masters with
//! `replicas` replicas each, `redis-server --cluster-enabled yes` on free
//! loopback ports joined by `redis-cli --cluster create`, ready once every
//! node says `cluster_state:ok` and every replica is in sync; stopped and
//! removed when dropped. Shared by `tests/it/redis_cluster.rs` and
//! `benches/redis.rs`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A Redis Cluster, its nodes stopped and its directory removed when dropped.
pub struct Cluster {
    dir: PathBuf,
    pub ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
}

fn free_port() -> u16 {
    // Cluster nodes also listen on port + 10000: keep both free.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    /// `masters` masters, each with `replicas` replicas.
    pub fn start(masters: usize, replicas: usize) -> Self {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tollgate-redis-cluster-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let count = masters * (1 + replicas);
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
        let nodes = ports
            .iter()
            .map(|port| {
                let node_dir = dir.join(port.to_string());
                std::fs::create_dir_all(&node_dir).unwrap();
                Some(
                    Command::new("redis-server")
                        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                        .args(["--cluster-enabled", "yes"])
                        .args(["--cluster-node-timeout", "1000"])
                        .args(["--save", "", "--appendonly", "no"])
                        .arg("--dir")
                        .arg(&node_dir)
                        .stdout(Stdio::null())
                        .spawn()
                        .expect("redis-server is needed for these tests"),
                )
            })
            .collect();
        let cluster = Self { dir, ports, nodes };
        for port in &cluster.ports {
            cluster.until(|| {
                cluster
                    .cli(*port, &["PING"])
                    .is_some_and(|out| out.contains("PONG"))
            });
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli is needed for these tests");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        // Ready when every node says the cluster is ok.
        for port in &cluster.ports {
            cluster.until(|| {
                cluster
                    .cli(*port, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
        }
        // Replicas in sync with their masters: only then can one take over.
        for port in &cluster.ports {
            cluster.until(|| {
                cluster
                    .cli(*port, &["INFO", "replication"])
                    .is_some_and(|info| {
                        info.contains("role:master") || info.contains("master_link_status:up")
                    })
            });
        }
        cluster
    }

    /// Waits (at most 30 s, polling) until `ready`: readiness of other
    /// processes, not a duration the test relies on.
    fn until(&self, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            assert!(Instant::now() < deadline, "the cluster never got ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The ports of the nodes that are masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.ports
            .iter()
            .copied()
            .filter(|port| {
                self.cli(*port, &["ROLE"])
                    .is_some_and(|role| role.starts_with("master"))
            })
            .collect()
    }

    pub fn kill(&mut self, port: u16) {
        let index = self.ports.iter().position(|p| *p == port).unwrap();
        if let Some(mut child) = self.nodes[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for port in self.ports.clone() {
            self.kill(port);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
