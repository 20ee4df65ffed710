//! A `zedis` process in the background for the CLI tests, its stdout and stderr in files in
//! the test directory; woken and SIGKILLed on drop (and killed with the test process).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Harness, ZEDIS};

pub struct Background {
    pub name: String,
    pub child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    /// `zedis --zk <the harness's ZooKeeper> GLOBAL... ARGS...`.
    pub fn spawn_with(h: &Harness, name: &str, global: &[&str], args: &[&str]) -> Background {
        let out = h.dir.path().join(format!("{name}.out"));
        let err = h.dir.path().join(format!("{name}.err"));
        let zk = h.zk.connect_string();
        let mut cmd = Command::new(ZEDIS);
        cmd.args(["--zk", zk.as_str()])
            .args(global)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("ZEDIS_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"));
        // SAFETY: prctl is async-signal-safe; the process dies with the test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn zedis: {e}"));
        h.phase(&format!("started {name} (pid {}): zedis {}", child.id(), args.join(" ")));
        Background { name: name.to_string(), child, out, err }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the exit code (`None`: killed by a signal).
    pub fn wait(&mut self, h: &Harness, timeout: Duration) -> Option<i32> {
        let name = self.name.clone();
        h.wait_until(timeout, &format!("{name} exits"), || match self.child.try_wait() {
            Ok(Some(status)) => Ok(status.code()),
            Ok(None) => Err("still running".to_string()),
            Err(e) => Err(format!("wait: {e}")),
        })
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self, h: &Harness) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait(h, Duration::from_secs(10))
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Asserts that the process exited cleanly: code 0 and no panic report on stderr.
    pub fn assert_clean_exit(&mut self, h: &Harness) {
        assert_eq!(self.wait(h, Duration::from_secs(10)), Some(0), "{}", self.describe());
        assert!(!self.stderr().contains("panicked"), "{}", self.describe());
    }

    pub fn describe(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}: stdout:\n{}\nstderr:\n{}", self.name, read(&self.out), read(&self.err))
    }

    /// Waits until stdout has a line for which `check` is true; returns that line.
    pub fn wait_line(&self, h: &Harness, timeout: Duration, what: &str, check: impl Fn(&str) -> bool) -> String {
        h.wait_until(timeout, what, || {
            self.stdout().lines().find(|l| check(l)).map(str::to_string).ok_or_else(|| self.describe())
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} ----", self.describe());
        }
        // A frozen process must be woken to die cleanly; SIGKILL works either way.
        self.signal(libc::SIGCONT);
        self.kill9();
    }
}
