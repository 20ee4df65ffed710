//! One child server process: spawning with the right process attributes, signals, reaping,
//! its log file and the readiness loop shared by every server kind.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::LOG_TAIL_LINES;
use crate::{Result, TestkitError};

/// How often readiness (and exit) is polled.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long [`ServerProcess::stop`] waits after SIGTERM before it sends SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// A server process we spawned, with its log file. Dropping it kills the process (SIGKILL)
/// and reaps it.
pub(crate) struct ServerProcess {
    /// Human name used in logs and errors, e.g. `redis-server` or `zookeeper node 2`.
    name: String,
    program: OsString,
    log_path: PathBuf,
    /// `Some` while the process may be running (spawned and not reaped yet).
    child: Option<Child>,
}

impl ServerProcess {
    pub(crate) fn new(name: impl Into<String>, program: impl Into<OsString>, log_path: PathBuf) -> ServerProcess {
        ServerProcess { name: name.into(), program: program.into(), log_path, child: None }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Spawns the program with `args` in `cwd`, stdout and stderr appended to the log file.
    /// Returns the length the log file had before the spawn, so the caller can look at just
    /// this run's output.
    ///
    /// The child is supervised as [`spawn_supervised`] says (own process group, killed with
    /// the parent), whatever thread calls this.
    pub(crate) fn spawn(&mut self, args: &[OsString], cwd: &Path) -> Result<u64> {
        debug_assert!(self.child.is_none(), "spawn while a child is still owned");
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        let offset = log.metadata()?.len();
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = spawn_supervised(command).map_err(|source| TestkitError::Spawn {
            server: self.name.clone(),
            program: self.program.to_string_lossy().into_owned(),
            source,
        })?;
        tracing::info!(server = %self.name, pid = child.id(), log = %self.log_path.display(), "spawned");
        self.child = Some(child);
        Ok(offset)
    }

    /// The pid while the process is owned and not reaped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Reaps the process if it has exited, returning its exit status.
    pub(crate) fn reap_if_exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                tracing::info!(server = %self.name, pid = child.id(), %status, "exited");
                self.child = None;
                Some(status)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(server = %self.name, error = %e, "try_wait failed; treating the process as gone");
                self.child = None;
                None
            }
        }
    }

    /// True if the process is spawned and has not exited.
    pub(crate) fn is_running(&mut self) -> bool {
        self.reap_if_exited();
        self.child.is_some()
    }

    /// SIGSTOP, and waits (up to 2 s) until the kernel reports the process stopped: `kill`
    /// returns before every thread of a busy process has actually stopped.
    pub(crate) fn stop_and_wait(&self) {
        self.signal(libc::SIGSTOP);
        let Some(child) = &self.child else { return };
        let tasks = format!("/proc/{}/task", child.id());
        // The state is the field after the parenthesised command name; every thread must be 'T'.
        let thread_stopped = |stat: std::path::PathBuf| {
            std::fs::read_to_string(stat)
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['T', 't'])))
                .unwrap_or(true)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let all_stopped = match std::fs::read_dir(&tasks) {
                Ok(entries) => entries.flatten().all(|e| thread_stopped(e.path().join("stat"))),
                Err(_) => true,
            };
            if all_stopped {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Sends `signal` to the process group of the child (which includes e.g. a forked redis
    /// BGSAVE child). Does nothing if there is no child. The child is not reaped before the
    /// caller does it, so its pid (and group id) cannot have been reused.
    pub(crate) fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            let pgid = child.id() as libc::pid_t;
            // SAFETY: plain syscall on a process group we created and have not reaped.
            let rc = unsafe { libc::kill(-pgid, signal) };
            if rc != 0 {
                // The group can be gone while the leader is an unreaped zombie; fall back.
                // SAFETY: as above, the pid is ours and not reaped.
                unsafe { libc::kill(pgid, signal) };
            }
        }
    }

    /// Sends SIGKILL without waiting; pair with [`ServerProcess::kill9`] to reap.
    pub(crate) fn send_kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// SIGKILL and reap. The process is stopped afterwards.
    pub(crate) fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            match child.wait() {
                Ok(status) => tracing::info!(server = %self.name, pid, %status, "killed (SIGKILL)"),
                Err(e) => tracing::warn!(server = %self.name, pid, error = %e, "wait after SIGKILL failed"),
            }
        }
    }

    /// SIGTERM (plus SIGCONT in case it is stopped), wait up to `grace`, then SIGKILL; reaps.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.child.is_none() {
            return;
        }
        self.signal(libc::SIGTERM);
        self.signal(libc::SIGCONT);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                tracing::info!(server = %self.name, "stopped (SIGTERM)");
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        tracing::warn!(server = %self.name, ?grace, "did not exit after SIGTERM; sending SIGKILL");
        self.kill9();
    }

    /// The whole log file, lossily decoded; empty if it cannot be read.
    pub(crate) fn log(&self) -> String {
        self.log_since(0)
    }

    /// Current length of the log file in bytes (0 if it cannot be read).
    pub(crate) fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log_path).map_or(0, |m| m.len())
    }

    /// The log from byte `offset` on.
    pub(crate) fn log_since(&self, offset: u64) -> String {
        let mut bytes = Vec::new();
        let read = File::open(&self.log_path).and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_to_end(&mut bytes)
        });
        match read {
            Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// Polls `probe` every [`POLL_INTERVAL`] until it succeeds, the process exits, or
    /// `deadline` passes. `timeout` is only reported in the error. `log_offset` (from
    /// [`ServerProcess::spawn`]) selects this run's part of the log for the error.
    pub(crate) fn wait_ready(
        &mut self,
        addr: &str,
        deadline: Instant,
        timeout: Duration,
        log_offset: u64,
        mut probe: impl FnMut() -> std::result::Result<(), String>,
    ) -> Result<()> {
        loop {
            if let Some(status) = self.reap_if_exited() {
                return Err(self.not_ready(addr, format!("process exited early ({status})"), log_offset));
            }
            if self.child.is_none() {
                return Err(self.not_ready(addr, "process is not running".into(), log_offset));
            }
            let last = match probe() {
                Ok(()) => {
                    tracing::info!(server = %self.name, addr, pid = self.pid(), "ready");
                    return Ok(());
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let reason = format!("no answer within {timeout:?} (last probe: {last})");
                return Err(self.not_ready(addr, reason, log_offset));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// A [`TestkitError::NotReady`] carrying the tail of this run's log.
    pub(crate) fn not_ready(&self, addr: &str, reason: String, log_offset: u64) -> TestkitError {
        let log = self.log_since(log_offset);
        let log_tail =
            if log.trim().is_empty() { "(the log is empty)".to_string() } else { tail_lines(&log, LOG_TAIL_LINES) };
        tracing::warn!(server = %self.name, addr, %reason, "not ready");
        TestkitError::NotReady {
            server: self.name.clone(),
            addr: addr.to_string(),
            reason,
            log_path: self.log_path.clone(),
            log_tail,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerProcess")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("pid", &self.pid())
            .field("log", &self.log_path)
            .finish()
    }
}

/// A request to the spawner thread.
struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns `command` from a thread that never exits, because `PR_SET_PDEATHSIG` fires when
/// the forking *thread* exits. If that thread cannot be created, spawns from the caller's
/// thread (the children then die with it; see [`ServerProcess::spawn`]).
/// Spawns `command` as a supervised child: its own process group (a Ctrl-C on the parent's
/// terminal reaches only the parent, which then stops its children in order) and, on Linux,
/// `PR_SET_PDEATHSIG = SIGKILL`, so it dies if the parent dies without cleaning up. The kernel
/// sends that signal when the *thread* that forked the child exits, so the fork is done on a
/// thread that lives as long as the process: callers may spawn from any thread.
///
/// Used for the servers of this crate and for any other child a test, a benchmark or the
/// sandbox starts (controllers, proxies, sentinels, ...).
pub fn spawn_supervised(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (setpgid, prctl, getppid); it does not allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
    }
    spawn_from_long_lived_thread(command)
}

fn spawn_from_long_lived_thread(mut command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let thread = thread::Builder::new().name("zedis-testkit-spawner".into()).spawn(move || {
            for mut request in rx {
                let _ = request.reply.send(request.command.spawn());
            }
        });
        match thread {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no spawner thread; servers die with the thread that starts them");
                None
            }
        }
    });
    let Some(spawner) = spawner else {
        return command.spawn();
    };
    let (reply, answer) = mpsc::channel();
    if let Err(mpsc::SendError(request)) = spawner.send(SpawnRequest { command, reply }) {
        command = request.command;
        return command.spawn();
    }
    answer.recv().unwrap_or_else(|_| Err(io::Error::other("the spawner thread is gone")))
}

/// The last `n` lines of `text`.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let tail = tail_lines(&text, 3);
        assert_eq!(tail, "line 98\nline 99\nline 100");
        assert_eq!(tail_lines("a\nb", 60), "a\nb");
        assert_eq!(tail_lines("", 60), "");
    }

    #[test]
    fn spawn_failure_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::new("nothing", "/nonexistent/zedis-testkit-program", dir.path().join("log"));
        let err = p.spawn(&[], dir.path()).unwrap_err();
        assert!(matches!(err, TestkitError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("zedis-testkit-program"), "{err}");
    }

    #[test]
    fn early_exit_reports_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::new("sh", "/bin/sh", dir.path().join("log"));
        let offset = p.spawn(&["-c".into(), "echo about to fail; exit 3".into()], dir.path()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let err =
            p.wait_ready("127.0.0.1:1", deadline, Duration::from_secs(10), offset, || Err("no".into())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("about to fail"), "{text}");
        assert!(text.contains("exited early"), "{text}");
        assert!(!p.is_running());
    }

    #[test]
    fn children_outlive_the_thread_that_started_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut p = thread::spawn(move || {
            let mut p = ServerProcess::new("sleep", "/bin/sleep", log);
            p.spawn(&["30".into()], Path::new("/")).unwrap();
            p
        })
        .join()
        .unwrap();
        // Were the death signal tied to the (now finished) starting thread, the child would
        // be dying; give it a moment to do so.
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            assert!(p.is_running(), "the child died with the thread that started it");
            thread::sleep(POLL_INTERVAL);
        }
        p.kill9();
    }

    #[test]
    fn stop_and_kill_reap_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = ServerProcess::new("sleep", "/bin/sleep", dir.path().join("log"));
        p.spawn(&["30".into()], dir.path()).unwrap();
        assert!(p.is_running());
        p.stop(STOP_GRACE);
        assert!(!p.is_running());
        assert_eq!(p.pid(), None);
        p.spawn(&["30".into()], dir.path()).unwrap();
        p.kill9();
        assert!(!p.is_running());
    }
}
