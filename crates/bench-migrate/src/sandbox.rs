//! The zedis side: `zedis up --groups 2 --replicas 0` (ZooKeeper, two Redis masters, a
//! controller and a proxy, all on free loopback ports) as one supervised child, its
//! addresses from `sandbox.json`, and the `zedis` CLI against it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::procs::{check_interrupted, log_tail, zedis_cli};

/// How long `zedis up` may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// A running sandbox; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Sandbox {
    child: Option<Child>,
    zedis: PathBuf,
    /// `DIR/sb`: `zedis up`'s directory (data, logs, `sandbox.json`).
    pub dir: PathBuf,
    stderr_log: PathBuf,
    pub zk: String,
    pub proxy: String,
    pub proxy_pid: u32,
    /// `(group id, master address)`.
    pub masters: Vec<(u32, String)>,
    /// `(from, to, group)` slot ranges at start.
    pub slots: Vec<(u16, u16, u32)>,
}

impl Sandbox {
    /// Starts `zedis up` in `work/sb` and returns once it printed `ready` and wrote
    /// `sandbox.json`.
    pub fn start(zedis: &Path, work: &Path, timeout: Duration) -> Result<Sandbox> {
        let dir = work.join("sb");
        let stderr_log = work.join("up.stderr");
        let stderr = File::create(&stderr_log).with_context(|| format!("cannot create {}", stderr_log.display()))?;
        let mut command = Command::new(zedis);
        command
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .args(["--groups", "2", "--replicas", "0", "--zk-port", "0", "--redis-port", "0"])
            .args(["--proxy-port", "0", "--admin-port", "0", "--ready-timeout", &timeout.as_secs().to_string()])
            .env_remove("RUST_LOG")
            .env_remove("ZEDIS_LOG")
            .env_remove("ZEDIS_ZK")
            .env_remove("ZEDIS_CLUSTER")
            .env_remove("ZEDIS_ROOT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child =
            zedis_testkit::spawn_supervised(command).with_context(|| format!("cannot start {} up", zedis.display()))?;
        let stdout = child.stdout.take().context("zedis up has no stdout")?;
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the sandbox's whole life (it prints little after `ready`).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut sandbox = Sandbox {
            child: Some(child),
            zedis: zedis.to_path_buf(),
            dir,
            stderr_log,
            zk: String::new(),
            proxy: String::new(),
            proxy_pid: 0,
            masters: Vec::new(),
            slots: Vec::new(),
        };
        let deadline = Instant::now() + timeout + Duration::from_secs(5);
        let mut out = String::new();
        loop {
            check_interrupted()?;
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                    if line.contains("ready") {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    sandbox.check_running()?;
                    bail!("zedis up closed its output before `ready`:\n{out}{}", log_tail(&sandbox.stderr_log));
                }
            }
            sandbox.check_running()?;
            if Instant::now() > deadline {
                bail!("zedis up printed no `ready` within {timeout:?}:\n{out}{}", log_tail(&sandbox.stderr_log));
            }
        }
        sandbox.read_addresses()?;
        Ok(sandbox)
    }

    fn read_addresses(&mut self) -> Result<()> {
        let path = self.dir.join("sandbox.json");
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: Value = serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
        let text = |v: &Value| v.as_str().map(str::to_string);
        self.zk = text(&json["zookeeper"]["addr"]).context("sandbox.json: no zookeeper.addr")?;
        self.proxy = text(&json["proxy"]["addr"]).context("sandbox.json: no proxy.addr")?;
        self.proxy_pid = json["proxy"]["pid"].as_u64().unwrap_or(0) as u32;
        for g in json["groups"].as_array().context("sandbox.json: no groups")? {
            let id = g["id"].as_u64().context("sandbox.json: a group without id")? as u32;
            let master = text(&g["master"]["addr"]).context("sandbox.json: a group without master.addr")?;
            self.masters.push((id, master));
        }
        let status: Value = serde_json::from_str(&self.cli(&["status", "--json"])?).context("status --json")?;
        for r in status["slots"].as_array().context("status --json has no slots")? {
            let n = |k: &str| r[k].as_u64().with_context(|| format!("status --json: slot range without {k}"));
            self.slots.push((n("from")? as u16, n("to")? as u16, n("group")? as u32));
        }
        Ok(())
    }

    /// `zedis --zk ZK ARGS`'s stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        zedis_cli(&self.zedis, &self.zk, args)
    }

    /// The master of group `id`.
    pub fn master(&self, id: u32) -> Result<&str> {
        self.masters.iter().find(|(g, _)| *g == id).map(|(_, a)| a.as_str()).with_context(|| format!("no group {id}"))
    }

    /// Fails if `zedis up` has exited, or on SIGINT / SIGTERM.
    pub fn check_running(&mut self) -> Result<()> {
        check_interrupted()?;
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!("zedis up exited ({status}); {}", log_tail(&self.stderr_log));
            }
        }
        Ok(())
    }

    /// The tails of the controller's and the proxy's logs, for error messages.
    pub fn log_tails(&self) -> String {
        format!("{}\n{}", log_tail(&self.dir.join("ctl-1.log")), log_tail(&self.dir.join("proxy-1.log")))
    }

    /// SIGTERM to `zedis up` (it stops its children in order), SIGKILL after a grace.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}
