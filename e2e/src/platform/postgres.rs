//! A private PostgreSQL cluster in a temporary folder, on its own port.
//!
//! `initdb` and `pg_ctl` come from the newest `/usr/lib/postgresql/*/bin`.
//! PostgreSQL refuses to run as root, so when the suite runs as root the
//! server commands run as the `postgres` user through `runuser`, and the
//! cluster folder belongs to that user. The server listens on 127.0.0.1
//! only, with trust authentication, because nothing else can reach it and
//! the cluster is deleted at the end of the run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::unistd::{Uid, User};

use super::process::{Spec, record_pid, record_temp_dir, tail};

/// Folder of the server binaries, `/usr/lib/postgresql/VERSION/bin`.
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    /// Owner of the server processes when the suite runs as root.
    run_as: Option<String>,
    cluster: PathBuf,
    log_path: PathBuf,
    artifacts_log: PathBuf,
    running: bool,
    _folder: tempfile::TempDir,
}

impl Postgres {
    /// Creates the cluster with `initdb` and starts it with `pg_ctl`.
    pub async fn start(port: u16, artifacts: &Path) -> anyhow::Result<Self> {
        let bin = newest_bin_dir()?;
        let folder = tempfile::Builder::new()
            .prefix("lintas-e2e-postgres-")
            .tempdir()
            .context("failed to create a folder for the PostgreSQL cluster")?;
        record_temp_dir(artifacts, folder.path())?;
        let cluster = folder.path().join("cluster");
        std::fs::create_dir(&cluster)?;

        let run_as = if Uid::effective().is_root() {
            let user = User::from_name("postgres")?
                .context("the suite runs as root and there is no postgres user to run PostgreSQL as; install the postgresql package")?;
            // The temporary folder is 0700 and belongs to root; the server
            // must be able to reach the cluster folder inside it.
            std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755))?;
            std::os::unix::fs::chown(&cluster, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .context("failed to give the cluster folder to the postgres user")?;
            Some(user.name)
        } else {
            None
        };

        let mut postgres = Self {
            port,
            log_path: cluster.join("server.log"),
            artifacts_log: artifacts.join("postgres.log"),
            bin,
            run_as,
            cluster,
            running: false,
            _folder: folder,
        };
        postgres.init(artifacts).await?;
        postgres.start_server(artifacts).await?;
        Ok(postgres)
    }

    /// Base URL of a database on this server.
    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database.
    pub async fn create_database(&self, name: &str, artifacts: &Path) -> anyhow::Result<()> {
        let spec = Spec::new("createdb", self.bin.join("createdb"))
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg("--username=postgres")
            .arg(name);
        spec.run_to_end(
            &artifacts.join("postgres-setup.log"),
            Duration::from_secs(30),
        )
        .await
        .with_context(|| format!("failed to create database {name}"))
    }

    /// Collects the planner's statistics of every table of `database`, as
    /// autovacuum does a while after the tables change.
    pub async fn analyze(&self, database: &str, artifacts: &Path) -> anyhow::Result<()> {
        let spec = Spec::new("vacuumdb", self.bin.join("vacuumdb"))
            .arg("--analyze-only")
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg("--username=postgres")
            .arg(format!("--dbname={database}"));
        spec.run_to_end(
            &artifacts.join("postgres-setup.log"),
            Duration::from_secs(60),
        )
        .await
        .with_context(|| format!("failed to analyze database {database}"))
    }

    /// Stops the server (fast shutdown) and copies its log to the artifacts.
    pub async fn stop(&mut self, artifacts: &Path) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let spec = self
            .server_command("pg_ctl")
            .arg("stop")
            .arg("--pgdata")
            .arg(self.data_dir().display().to_string())
            .arg("--mode=fast")
            .arg("--wait")
            .arg("--timeout=30");
        let result = spec
            .run_to_end(
                &artifacts.join("postgres-setup.log"),
                Duration::from_secs(40),
            )
            .await;
        self.running = false;
        self.copy_log();
        result
    }

    async fn init(&self, artifacts: &Path) -> anyhow::Result<()> {
        let spec = self
            .server_command("initdb")
            .arg("--pgdata")
            .arg(self.data_dir().display().to_string())
            .arg("--username=postgres")
            .arg("--auth=trust")
            .arg("--encoding=UTF8")
            .arg("--no-locale")
            .arg("--no-sync");
        spec.run_to_end(
            &artifacts.join("postgres-setup.log"),
            Duration::from_secs(120),
        )
        .await
        .context("initdb failed")
    }

    async fn start_server(&mut self, artifacts: &Path) -> anyhow::Result<()> {
        // fsync=off: the cluster is thrown away after the run, and the
        // setting saves seconds of disk flushes on a slow CI disk.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.cluster.display()
        );
        let spec = self
            .server_command("pg_ctl")
            .arg("start")
            .arg("--pgdata")
            .arg(self.data_dir().display().to_string())
            .arg("--log")
            .arg(self.log_path.display().to_string())
            .arg("--options")
            .arg(options)
            .arg("--wait")
            .arg("--timeout=60");
        let result = spec
            .run_to_end(
                &artifacts.join("postgres-setup.log"),
                Duration::from_secs(70),
            )
            .await;
        if let Err(error) = result {
            self.copy_log();
            bail!(
                "pg_ctl start failed: {error:#}\nthe end of the server log:\n{}",
                tail(&self.log_path, 15)
            );
        }
        self.running = true;
        self.record_postmaster_pid(artifacts)?;
        Ok(())
    }

    /// Lists the server's process in the pids file, so that `e2e/run.sh`
    /// stops it when the driver dies before [`Postgres::stop`].
    fn record_postmaster_pid(&self, artifacts: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .context("failed to read postmaster.pid")?;
        let pid: u32 = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .context("postmaster.pid does not start with a process id")?;
        record_pid(&artifacts.join("pids"), pid, &self.bin.join("postgres"))
    }

    fn data_dir(&self) -> PathBuf {
        self.cluster.join("data")
    }

    /// Builds the command of a server binary, run as the postgres user when
    /// the suite runs as root.
    fn server_command(&self, program: &str) -> Spec {
        let executable = self.bin.join(program);
        match &self.run_as {
            Some(user) => Spec::new("postgres-setup", "runuser")
                .arg(format!("--user={user}"))
                .arg("--")
                .arg(executable.display().to_string()),
            None => Spec::new("postgres-setup", executable),
        }
    }

    fn copy_log(&self) {
        if let Err(error) = std::fs::copy(&self.log_path, &self.artifacts_log) {
            eprintln!(
                "failed to copy the PostgreSQL log {}: {error}",
                self.log_path.display()
            );
        }
    }
}

impl Drop for Postgres {
    /// Last resort when [`Postgres::stop`] was not reached: an immediate
    /// shutdown, so the temporary folder can be deleted.
    fn drop(&mut self) {
        if self.running {
            let spec = self
                .server_command("pg_ctl")
                .arg("stop")
                .arg("--pgdata")
                .arg(self.data_dir().display().to_string())
                .arg("--mode=immediate");
            let _ = spec.std_command().status();
            self.copy_log();
        }
    }
}

/// Returns the bin folder of the newest PostgreSQL version installed.
fn newest_bin_dir() -> anyhow::Result<PathBuf> {
    let entries = std::fs::read_dir(INSTALL_ROOT).with_context(|| {
        format!("{INSTALL_ROOT} is missing: install the postgresql package (e2e/run.sh does)")
    })?;
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).with_context(|| {
        format!("no {INSTALL_ROOT}/VERSION/bin/initdb found: install the postgresql package")
    })
}
