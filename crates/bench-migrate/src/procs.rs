//! Process plumbing: SIGINT/SIGTERM turned into errors (so every drop runs and stops the
//! children), the working directory, short `zedis` CLI runs, log tails and wall-clock time.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// How many lines of a log an error shows.
const TAIL_LINES: usize = 20;

/// Turns SIGINT and SIGTERM into [`check_interrupted`] errors.
pub fn install_signal_handlers() {
    zedis_testkit::interrupt::install();
}

/// Fails once SIGINT or SIGTERM has arrived.
pub fn check_interrupted() -> Result<()> {
    if zedis_testkit::interrupt::interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d` in small steps, failing early on SIGINT / SIGTERM.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupted()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Wall-clock microseconds since the Unix epoch (the controller's events are in wall-clock
/// milliseconds, and this machine's clock is the one both read).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The working directory: temporary, or kept with `--keep-dir`.
pub struct WorkDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub fn create(prefix: &str, keep: bool) -> Result<WorkDir> {
        let temp = tempfile::Builder::new().prefix(prefix).tempdir().context("cannot create a temporary directory")?;
        if keep {
            Ok(WorkDir { path: temp.keep(), _temp: None })
        } else {
            Ok(WorkDir { path: temp.path().to_path_buf(), _temp: Some(temp) })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Runs `zedis --zk ZK ARGS` to completion (supervised like every other child) and returns
/// its stdout; fails with its stderr when it exits non-zero.
pub fn zedis_cli(zedis: &Path, zk: &str, args: &[&str]) -> Result<String> {
    let mut command = Command::new(zedis);
    command
        .args(["--zk", zk, "--zk-timeout-ms", "3000"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ZEDIS_LOG")
        .env_remove("ZEDIS_CLUSTER")
        .env_remove("ZEDIS_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = zedis_testkit::spawn_supervised(command).with_context(|| format!("cannot run {}", zedis.display()))?;
    let out = child.wait_with_output().with_context(|| format!("zedis {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("`zedis {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `log PATH, last lines: ...`, for error messages.
pub fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n  ");
    format!("log {}, last lines:\n  {tail}", path.display())
}

/// Online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_: io::Error| "?".into())
}
