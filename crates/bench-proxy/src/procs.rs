//! Child processes the benchmark starts itself (the zedis controller and proxy, nutcracker,
//! redis-benchmark) and the CPU-time counters it reads: `/proc/PID/stat` for long-running
//! servers, `getrusage(RUSAGE_CHILDREN)` for a finished redis-benchmark, `/proc/stat` for the
//! whole machine.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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

/// A child process, SIGKILLed and reaped on drop, and (on Linux) killed by the kernel if the
/// benchmark dies without running destructors.
pub struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` with stdin closed and stdout/stderr appended to `log_path`.
    ///
    /// Call this from the main thread: `PR_SET_PDEATHSIG` fires when the *thread* that forked
    /// the child exits, and the benchmark's main thread lives as long as the benchmark.
    pub fn spawn(name: &str, command: Command, log_path: &Path) -> Result<ChildProcess> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let err = log.try_clone()?;
        ChildProcess::spawn_with(name, command, Stdio::from(log), Stdio::from(err), log_path)
    }

    /// Spawns `command` with stdout and stderr going where the caller says; `log_path` is what
    /// errors show.
    pub fn spawn_with(
        name: &str,
        mut command: Command,
        stdout: Stdio,
        stderr: Stdio,
        log_path: &Path,
    ) -> Result<ChildProcess> {
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let program = command.get_program().to_owned();
        let child =
            zedis_testkit::spawn_supervised(command).with_context(|| format!("cannot start {name} ({program:?})"))?;
        Ok(ChildProcess { name: name.to_string(), child, log_path: log_path.to_path_buf() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("{} exited ({status}); {}", self.name, self.log_tail()),
        }
    }

    /// Waits until the process exits, for at most `timeout`; kills it after that.
    pub fn wait_deadline(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if let Err(e) = check_interrupted() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(e);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("{} did not finish within {:?}; killed it. {}", self.name, timeout, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(5));
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

/// Clock ticks per second of `/proc` times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU time of a process (all its threads, living and dead), in clock ticks.
pub fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name is in parentheses and may hold spaces; the fields after it are
    // state (3), ppid (4), ... utime (14), stime (15).
    let rest = text.rsplit_once(')').map(|(_, r)| r).with_context(|| format!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields.get(n - 3).and_then(|f| f.parse().ok()).with_context(|| format!("no field {n} in {path}"))
    };
    Ok(field(14)? + field(15)?)
}

/// Busy and total clock ticks of the whole machine (all CPUs) from `/proc/stat`.
pub fn machine_ticks() -> Result<(u64, u64)> {
    let text = fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = text.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let idle = get(3) + get(4);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Ok((busy, busy + idle))
}

/// User + system CPU time of every reaped child so far, in microseconds.
pub fn children_cpu_us() -> u64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Context switches (voluntary and involuntary) of all living threads of a process.
pub fn process_context_switches(pid: u32) -> Result<u64> {
    let mut total = 0;
    let dir = format!("/proc/{pid}/task");
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {dir}"))? {
        let status = entry?.path().join("status");
        // A thread may exit between the listing and the read.
        let Ok(text) = fs::read_to_string(&status) else { continue };
        for line in text.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok(total)
}
