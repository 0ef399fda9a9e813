//! A `redis-server` of a bench's or test's own on a loopback port, without
//! persistence, killed when dropped. Shared by `benches/redis.rs`,
//! `benches/approximate.rs` and `tests/metrics.rs`.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// On a free port.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::on(port)
    }

    /// On `port` (again, after one was killed there), once it accepts
    /// connections: readiness, not timing.
    pub fn on(port: u16) -> Self {
        // Owned at once: dropped (killed) if it never accepts.
        let server = Self {
            port,
            child: Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is needed: apt-get install -y redis-server"),
        };
        for _ in 0..2_000 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("redis-server did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
