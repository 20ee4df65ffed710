//! `zedis up` end to end: it reaches `ready`, writes sandbox.json, fails over a killed master,
//! and on SIGTERM stops every child and exits 0 with nothing left listening.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn zedis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zedis"))
}

fn listening(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).is_ok()
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: zedis\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn status(zk: &str) -> serde_json::Value {
    let out = zedis().args(["--zk", zk, "status", "--json"]).output().unwrap();
    assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sandbox_comes_up_fails_over_and_stops_clean() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox_dir = dir.path().join("sb");
    let zk_port = zedis_testkit::free_port().unwrap();
    let zk = format!("127.0.0.1:{zk_port}");
    eprintln!("phase: zedis up");
    let mut child = zedis()
        .args(["up", "--dir", sandbox_dir.to_str().unwrap(), "--groups", "2", "--replicas", "1"])
        .args(["--zk-port", &zk_port.to_string(), "--redis-port", "0", "--proxy-port", "0", "--admin-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[up] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("zedis up never printed ready");
        if line.contains("ready") {
            break;
        }
    }

    eprintln!("phase: sandbox.json lists every endpoint");
    let sandbox: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox_dir.join("sandbox.json")).unwrap()).unwrap();
    assert_eq!(sandbox["zookeeper"]["addr"], zk.as_str());
    let groups = sandbox["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let mut redis_addrs = Vec::new();
    for g in groups {
        redis_addrs.push(g["master"]["addr"].as_str().unwrap().to_string());
        for r in g["replicas"].as_array().unwrap() {
            redis_addrs.push(r["addr"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(redis_addrs.len(), 4);
    let s = status(&zk);
    assert_eq!(s["epoch"], 1);
    assert_eq!(s["proxies"][0]["epoch"], 1, "the proxy is registered with the epoch it applied: {s}");
    assert_eq!(s["groups"][0]["master"], groups[0]["master"]["addr"]);

    eprintln!("phase: the proxy routes cross-slot MSET/MGET/DEL over both groups");
    let proxy = sandbox["proxy"]["addr"].as_str().expect("sandbox.json names the proxy").to_string();
    let mut pc = redis::Client::open(format!("redis://{proxy}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("key:{i}")).collect();
    let mut mset = redis::cmd("MSET");
    for k in &keys {
        mset.arg(k).arg(format!("v-{k}"));
    }
    let _: () = mset.query(&mut pc).unwrap();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).arg("missing").query(&mut pc).unwrap();
    assert_eq!(values.len(), 51);
    for (k, v) in keys.iter().zip(&values) {
        assert_eq!(v.as_deref(), Some(format!("v-{k}").as_str()));
    }
    assert_eq!(values[50], None);
    let deleted: i64 = redis::cmd("DEL").arg(&keys[..10]).query(&mut pc).unwrap();
    assert_eq!(deleted, 10);
    let size: i64 = redis::cmd("DBSIZE").query(&mut pc).unwrap();
    assert_eq!(size, 40);

    eprintln!("phase: /metrics counts those commands");
    let admin = sandbox["admin"]["addr"].as_str().expect("sandbox.json names the admin endpoint").to_string();
    let metrics = http_get(&admin, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for line in
        ["zedis_proxy_command_calls_total{command=\"mset\"} 1", "zedis_proxy_command_calls_total{command=\"mget\"} 1"]
    {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("zedis_proxy_command_duration_seconds_bucket{command=\"del\",le=\"+Inf\"} 1"),
        "{metrics}"
    );

    eprintln!("phase: kill -9 of group 1's master gives a new writable master within 5 s");
    let old = groups[0]["master"]["addr"].as_str().unwrap().to_string();
    let replica = groups[0]["replicas"][0]["addr"].as_str().unwrap().to_string();
    let pid = groups[0]["master"]["pid"].as_i64().unwrap() as i32;
    // SAFETY: the pid is a redis-server child of the sandbox this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let killed = Instant::now();
    loop {
        let s = status(&zk);
        if s["groups"][0]["master"] == replica.as_str() {
            assert!(s["epoch"].as_u64().unwrap() >= 2);
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(5), "no failover within 5 s: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = redis::Client::open(format!("redis://{replica}/")).unwrap();
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
    let reply: String = redis::cmd("SET").arg("after-failover").arg("1").query(&mut conn).unwrap();
    assert_eq!(reply, "OK");
    eprintln!("failover took {:?} to show in status", killed.elapsed());

    eprintln!("phase: SIGTERM stops everything and exits 0");
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "zedis up did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "zedis up exited with {code}");
    for addr in redis_addrs.iter().filter(|a| **a != old).chain([&zk, &proxy]) {
        assert!(!listening(addr), "{addr} still listening after zedis up stopped");
    }
    let controllers = sandbox["controllers"].as_array().unwrap();
    for c in controllers {
        let pid = c["pid"].as_i64().unwrap() as i32;
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "controller {pid} still running");
    }
}
