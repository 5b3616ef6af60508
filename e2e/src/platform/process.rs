//! Child processes that the suite starts, stops and restarts, each with its
//! output appended to one log file in the run's artifacts.
//!
//! Every child gets an empty environment plus `PATH`, `HOME` and the
//! variables the suite sets, so settings of the calling shell (a stray
//! `DATABASE_URL` or `OTEL_*`) cannot leak in. Each started process is also
//! listed in `pids` in the artifacts folder, as `PID EXECUTABLE`, so that
//! `e2e/run.sh` can end what a killed driver left behind.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run: the executable, its arguments and its environment.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short name for messages and the log file, such as `order-svc`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// A started child process.
pub struct Managed {
    pub spec: Spec,
    pub log_path: PathBuf,
    pids_path: PathBuf,
    child: Option<Child>,
}

impl Spec {
    pub fn new(name: &str, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, value: impl Into<String>) -> Self {
        self.args.push(value.into());
        self
    }

    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Builds the command with the clean environment described above.
    pub fn command(&self) -> Command {
        Command::from(self.std_command())
    }

    /// Same as [`Spec::command`], for places that cannot await.
    pub fn std_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args).env_clear();
        // A process group of its own keeps a Ctrl-C in the terminal from
        // reaching the child, so the driver stops children in order.
        command.process_group(0);
        for name in ["PATH", "HOME"] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command
    }

    /// Runs the command to completion, with its output appended to
    /// `log_path`, and fails unless it exits with status 0 within `timeout`.
    pub async fn run_to_end(&self, log_path: &Path, timeout: Duration) -> anyhow::Result<()> {
        let log = open_log(log_path, &format!("run {}", self.describe()))?;
        let mut command = self.command();
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("failed to start {}", self.program.display()))?;
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                let _ = child.kill().await;
                bail!(
                    "{} did not finish within {} s (log: {})",
                    self.name,
                    timeout.as_secs(),
                    log_path.display()
                );
            }
        };
        if !status.success() {
            bail!(
                "{} exited with {status}; its output is in {}:\n{}",
                self.name,
                log_path.display(),
                tail(log_path, 15)
            );
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in &self.args {
            text.push(' ');
            text.push_str(arg);
        }
        text
    }
}

impl Managed {
    /// Starts `spec` with its output appended to `ARTIFACTS/NAME.log`.
    pub fn start(spec: Spec, artifacts: &Path) -> anyhow::Result<Self> {
        let mut managed = Self {
            log_path: artifacts.join(format!("{}.log", spec.name)),
            pids_path: artifacts.join("pids"),
            spec,
            child: None,
        };
        managed.spawn()?;
        Ok(managed)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = open_log(&self.log_path, &format!("start {}", self.spec.describe()))?;
        let mut command = self.spec.command();
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("failed to start {}", self.spec.program.display()))?;
        if let Some(pid) = child.id() {
            record_pid(&self.pids_path, pid, &self.spec.program)?;
        }
        self.child = Some(child);
        Ok(())
    }

    /// Returns the process id while the process is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Returns true after [`Managed::stop`], until the process is started
    /// again.
    pub fn is_stopped(&self) -> bool {
        self.child.is_none()
    }

    /// Fails when the process has already exited, with the end of its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is stopped", self.spec.name);
        };
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited with {status}; the end of {}:\n{}",
                self.spec.name,
                self.log_path.display(),
                tail(&self.log_path, 15)
            );
        }
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit, and kills the process when it
    /// is still running after 10 s. Does nothing when it is already stopped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.stop_with(Signal::SIGTERM).await
    }

    /// Sends `signal` and waits for the exit, as [`Managed::stop`] does.
    pub async fn stop_with(&mut self, signal: Signal) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let pid = Pid::from_raw(i32::try_from(pid).context("process id out of range")?);
            // The process may have exited on its own since, and then there is
            // nothing to signal.
            let _ = kill(pid, signal);
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                status.with_context(|| format!("failed to wait for {}", self.spec.name))?;
            }
            Err(_) => {
                child.kill().await?;
                bail!(
                    "{} did not exit within {} s of {signal}, so it was killed",
                    self.spec.name,
                    STOP_TIMEOUT.as_secs()
                );
            }
        }
        Ok(())
    }

    /// Starts the process again after [`Managed::stop`].
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is still running", self.spec.name);
        }
        self.spawn()
    }

    /// Waits until a line of the log, written after byte `from`, satisfies
    /// `matches`, and returns that line.
    pub async fn wait_for_line(
        &mut self,
        from: u64,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = read_from(&self.log_path, from)?;
            if let Some(line) = text.lines().find(|line| matches(line)) {
                return Ok(line.to_owned());
            }
            self.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} wrote no matching log line within {} s; the end of {}:\n{}",
                    self.spec.name,
                    timeout.as_secs(),
                    self.log_path.display(),
                    tail(&self.log_path, 10)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Current size of the log, to pass as `from` to [`Managed::wait_for_line`].
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log_path).map_or(0, |metadata| metadata.len())
    }
}

/// Opens a log file for appending and writes a header line that separates
/// this start from earlier ones.
pub fn open_log(path: &Path, header: &str) -> anyhow::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    writeln!(file, "### e2e: {header}")?;
    Ok(file)
}

/// Appends `PID EXECUTABLE` to the pids file that `e2e/run.sh` reads. The
/// executable is the one the process runs, read from `/proc`, which can
/// differ from `program` (Debian's `redis-server` is a link to
/// `redis-check-rdb`).
pub fn record_pid(pids_path: &Path, pid: u32, program: &Path) -> anyhow::Result<()> {
    let program = std::fs::read_link(format!("/proc/{pid}/exe"))
        .or_else(|_| std::fs::canonicalize(program))
        .unwrap_or_else(|_| program.to_owned());
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(pids_path)
        .with_context(|| format!("failed to open {}", pids_path.display()))?;
    writeln!(file, "{pid} {}", program.display())?;
    Ok(())
}

/// Appends a temporary folder to `temp-dirs` in the artifacts folder, so
/// that `e2e/run.sh` deletes it when the driver dies before it could.
pub fn record_temp_dir(artifacts: &Path, folder: &Path) -> anyhow::Result<()> {
    let path = artifacts.join("temp-dirs");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    writeln!(file, "{}", folder.display())?;
    Ok(())
}

fn read_from(path: &Path, from: u64) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[start..]).into_owned())
}

/// Returns the last `count` lines of a log file, indented, for error messages.
pub fn tail(path: &Path, count: usize) -> String {
    let text = std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(count);
    lines[start..]
        .iter()
        .map(|line| format!("        | {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
