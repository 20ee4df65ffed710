//! `--read-from replica-preferred`: read-only commands are served by fresh replicas, writes by
//! masters; with the replicas gone, reads fall back to the masters.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: signalling a child we spawned.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

fn conn(addr: &str) -> redis::Connection {
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

fn get_calls(addr: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg("commandstats").query(&mut conn(addr)).unwrap();
    text.lines()
        .find(|l| l.starts_with("cmdstat_get:"))
        .and_then(|l| l.split(&[':', ',', '='][..]).nth(2))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reads_go_to_fresh_replicas_and_fall_back_to_masters() {
    let dir = tempfile::tempdir().unwrap();
    let sb = dir.path().join("sb");
    let zk_port = zedis_testkit::free_port().unwrap();
    let zk = format!("127.0.0.1:{zk_port}");
    let mut up = Command::new(env!("CARGO_BIN_EXE_zedis"))
        .args([
            "up",
            "--dir",
            sb.to_str().unwrap(),
            "--groups",
            "1",
            "--replicas",
            "1",
            "--zk-port",
            &zk_port.to_string(),
        ])
        .args(["--redis-port", "0", "--proxy-port", "0", "--admin-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(up.stdout.take().unwrap());
    let _up = KillOnDrop(up);
    for line in lines.lines() {
        if line.unwrap().contains("ready") {
            break;
        }
    }
    let sandbox: serde_json::Value = serde_json::from_slice(&std::fs::read(sb.join("sandbox.json")).unwrap()).unwrap();
    let master = sandbox["groups"][0]["master"]["addr"].as_str().unwrap().to_string();
    let replica = sandbox["groups"][0]["replicas"][0]["addr"].as_str().unwrap().to_string();
    let replica_pid = sandbox["groups"][0]["replicas"][0]["pid"].as_i64().unwrap() as i32;

    eprintln!("phase: a proxy with --read-from replica-preferred");
    let port = zedis_testkit::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let _proxy = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_zedis"))
            .args([
                "--zk",
                &zk,
                "proxy",
                "--listen",
                &listen,
                "--read-from",
                "replica-preferred",
                "--max-lag-secs",
                "5",
                "--id",
                "rf",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the proxy to answer", || {
        redis::Client::open(format!("redis://{listen}/"))
            .unwrap()
            .get_connection_with_timeout(Duration::from_millis(200))
            .is_ok()
    });
    let mut p = conn(&listen);
    let _: () = redis::cmd("SET").arg("rf:k").arg("v").query(&mut p).unwrap();
    wait_until("the write to reach the replica", || {
        redis::cmd("GET").arg("rf:k").query::<Option<String>>(&mut conn(&replica)).ok().flatten().as_deref()
            == Some("v")
    });

    eprintln!("phase: GETs are served by the replica once it is known to be fresh");
    let r_start = get_calls(&replica);
    wait_until("a GET served by the replica", || {
        let v: Option<String> = redis::cmd("GET").arg("rf:k").query(&mut p).unwrap();
        assert_eq!(v.as_deref(), Some("v"));
        get_calls(&replica) > r_start
    });
    let (m0, r0) = (get_calls(&master), get_calls(&replica));
    for _ in 0..50 {
        let v: Option<String> = redis::cmd("GET").arg("rf:k").query(&mut p).unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }
    assert!(get_calls(&replica) >= r0 + 50, "replica served the reads");
    assert_eq!(get_calls(&master), m0, "the master served none of them");

    eprintln!("phase: writes still go to the master");
    let _: () = redis::cmd("SET").arg("rf:k2").arg("w").query(&mut p).unwrap();
    let on_master: Option<String> = redis::cmd("GET").arg("rf:k2").query(&mut conn(&master)).unwrap();
    assert_eq!(on_master.as_deref(), Some("w"));

    eprintln!("phase: with the replica frozen, reads fall back to the master");
    // SAFETY: the pid is a redis-server of the sandbox this test started.
    unsafe {
        libc::kill(replica_pid, libc::SIGSTOP);
    }
    let m1 = get_calls(&master);
    wait_until("a GET served by the master", || {
        let v: Result<Option<String>, _> = redis::cmd("GET").arg("rf:k").query(&mut p);
        matches!(v, Ok(Some(ref s)) if s == "v") && get_calls(&master) > m1
    });
    // SAFETY: as above.
    unsafe {
        libc::kill(replica_pid, libc::SIGCONT);
    }
}
