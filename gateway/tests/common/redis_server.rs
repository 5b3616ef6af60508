//! Redis helpers for tests: connections to a running Redis, and private
//! `redis-server` processes for tests that kill, pause or restart Redis.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|error| {
            panic!("no Redis at {url} ({error}); scripts/test.sh installs and starts one")
        })
}

pub async fn redis_command(connection: &mut redis::aio::MultiplexedConnection, words: &[&str]) {
    let mut command = redis::cmd(words[0]);
    command.arg(&words[1..]);
    command
        .query_async::<redis::Value>(connection)
        .await
        .unwrap_or_else(|error| panic!("{words:?} failed: {error}"));
}

/// A `redis-server` of one test, on a free loopback port, without
/// persistence. Dropping it kills the process.
pub struct RedisServer {
    port: u16,
    process: Child,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = closed_port();
        let process = spawn_redis(port);
        wait_for_redis(port).await;
        Self { port, process }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL, so its data is lost.
    pub fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }

    /// Starts a new, empty server on the same port.
    pub async fn restart(&mut self) {
        self.process = spawn_redis(self.port);
        wait_for_redis(self.port).await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Returns a loopback port that nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn spawn_redis(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("failed to start redis-server; scripts/test.sh installs it")
}

async fn wait_for_redis(port: u16) {
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    for _ in 0..100 {
        if let Ok(mut connection) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server on port {port} did not respond within 5 seconds");
}
