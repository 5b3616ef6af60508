//! A private Redis server on its own port, with a password as in
//! production, and a minimal client for the few commands the checks send.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::process::{Managed, Spec};

pub struct Redis {
    pub port: u16,
    password: String,
    pub process: Managed,
}

impl Redis {
    /// Starts `redis-server` as a cache only: no snapshots and no
    /// append-only file, as the gateway's cache documentation requires.
    pub async fn start(port: u16, data_dir: &Path, artifacts: &Path) -> anyhow::Result<Self> {
        let password = uuid::Uuid::new_v4().simple().to_string();
        let spec = Spec::new("redis", "redis-server")
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(data_dir.display().to_string())
            .arg("--requirepass")
            .arg(password.clone());
        let mut redis = Self {
            port,
            password,
            process: Managed::start(spec, artifacts)?,
        };
        redis.wait_ready().await?;
        Ok(redis)
    }

    /// URL for the gateway's `REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}/0", self.password, self.port)
    }

    /// Starts the server again after it was stopped.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.process.start_again()?;
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(reply) = self.command(&["PING"]).await
                && reply == "+PONG"
            {
                return Ok(());
            }
            self.process.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "redis-server did not answer PING within 15 s (log: {})",
                    self.process.log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one command after AUTH and returns the first line of the reply,
    /// such as `+PONG` or `:12`.
    pub async fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let stream = tokio::time::timeout(
            Duration::from_secs(2),
            TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        .context("connecting to Redis timed out")??;
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);

        writer.write_all(&encode(&["AUTH", &self.password])).await?;
        writer.write_all(&encode(args)).await?;
        let auth = read_line(&mut reader).await?;
        if auth != "+OK" {
            bail!("Redis rejected AUTH: {auth}");
        }
        read_line(&mut reader).await
    }
}

/// Encodes a command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        bytes.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    bytes
}

async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> anyhow::Result<String> {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line))
        .await
        .context("Redis did not reply within 2 s")??;
    Ok(line.trim_end().to_owned())
}
