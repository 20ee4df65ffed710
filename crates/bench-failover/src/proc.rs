//! Child processes the benchmark starts itself (the zedis controller, `redis-sentinel`):
//! output in a log file, SIGKILL and reaped on drop, and (on Linux) killed by the kernel if
//! the benchmark dies without running destructors.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

/// How many lines of a log an error shows.
const TAIL_LINES: usize = 20;

pub struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` with stdin closed and stdout/stderr appended to `log_path`, supervised
    /// by [`zedis_testkit::spawn_supervised`] (own process group, killed with the benchmark).
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> Result<ChildProcess> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        command.stdin(Stdio::null()).stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        let program = command.get_program().to_owned();
        let child =
            zedis_testkit::spawn_supervised(command).with_context(|| format!("cannot start {name} ({program:?})"))?;
        Ok(ChildProcess { name: name.to_string(), child, log_path: log_path.to_path_buf() })
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!("{} exited ({status}); {}", self.name, self.log_tail()),
        }
    }

    /// `log PATH, last lines: ...`, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = File::open(path).and_then(io::read_to_string).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n  ");
    format!("log {}, last lines:\n  {tail}", path.display())
}
