//! CPU time and peak memory of a process, read from `/proc`.

use anyhow::Context;

/// Clock ticks per second of `utime` and `stime` in `/proc/PID/stat`.
// NOTE: 100 on every Linux build for x86_64 and arm64 (USER_HZ); not read
// from sysconf.
const TICKS_PER_SECOND: f64 = 100.0;

/// Returns the CPU time, user plus system, that process `pid` has used.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("failed to read /proc/{pid}/stat"))?;
    // The command name in parentheses may contain spaces, so fields are
    // counted after its closing parenthesis: utime and stime are the 12th
    // and 13th fields there.
    let after_name = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no command name in /proc/PID/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let field = fields
            .get(index)
            .context("too few fields in /proc/PID/stat")?;
        Ok(field.parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// Resets the peak resident set size of `pid`, so that [`peak_rss_bytes`]
/// measures from now on.
pub fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("failed to reset the peak memory of process {pid}"))
}

/// Returns the peak resident set size (`VmHWM`) of `pid`.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("failed to read /proc/{pid}/status"))?;
    let line = text
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/PID/status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("empty VmHWM line")?
        .parse()?;
    Ok(kib * 1024)
}
