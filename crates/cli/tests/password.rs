//! Redis servers with `requirepass`: the CLI and the controller authenticate, replicas get
//! `masterauth`, and a failover works as without a password.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zedis_testkit::{RedisOptions, RedisServer, ZkServer};

const PASSWORD: &str = "s3cret";

fn zedis(zk: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zedis"));
    cmd.args(["--zk", zk, "--cluster", "pw"]);
    cmd
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn authed(server: &RedisServer) -> redis::Connection {
    let url = format!("redis://:{PASSWORD}@{}/", server.addr());
    redis::Client::open(url).unwrap().get_connection_with_timeout(Duration::from_secs(2)).unwrap()
}

fn info(server: &RedisServer) -> String {
    redis::cmd("INFO").arg("replication").query(&mut authed(server)).unwrap_or_default()
}

fn wait_until(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn master_of_group_1(zk: &str) -> String {
    let out = zedis(zk).args(["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["groups"][0]["master"].as_str().unwrap_or_default().to_string()
}

#[test]
fn password_protected_servers_replicate_and_fail_over() {
    let zk = ZkServer::start().expect("start ZooKeeper");
    let zk_addr = zk.connect_string();
    let fast = RedisOptions { extra_args: vec!["--repl-diskless-sync-delay".into(), "0".into()], ..Default::default() };
    let mut m = RedisServer::start_with(fast.clone()).expect("start master");
    let r = RedisServer::start_with(fast).expect("start replica");
    for s in [&m, &r] {
        let client = redis::Client::open(s.url()).unwrap();
        let mut c = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
        let _: () = redis::cmd("CONFIG").arg("SET").arg("requirepass").arg(PASSWORD).query(&mut c).unwrap();
    }
    let group = format!("{},{}", m.addr(), r.addr());

    eprintln!("phase: without the password, create names the authentication problem");
    let out = zedis(&zk_addr).args(["cluster", "create", "--group", &group]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("auth"), "{err}");

    eprintln!("phase: with the password, create and a controller set up replication");
    let out =
        zedis(&zk_addr).args(["--redis-password", PASSWORD, "cluster", "create", "--group", &group]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _controller = KillOnDrop(
        zedis(&zk_addr)
            .args(["--redis-password", PASSWORD, "--session-timeout-ms", "2000", "controller", "--id", "pw-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the replica's link to the master", Duration::from_secs(15), || {
        info(&r).contains("master_link_status:up")
    });
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut authed(&m)).unwrap();
    // Replication is asynchronous: only a write the replica has is expected to survive.
    wait_until("the write to reach the replica", Duration::from_secs(10), || {
        redis::cmd("GET").arg("k").query::<Option<String>>(&mut authed(&r)).ok().flatten().as_deref() == Some("v")
    });

    eprintln!("phase: kill -9 of the master promotes the replica");
    m.kill9();
    wait_until("the replica to be the master in the topology", Duration::from_secs(10), || {
        master_of_group_1(&zk_addr) == r.addr()
    });
    wait_until("the replica to run as master", Duration::from_secs(10), || info(&r).contains("role:master"));
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut authed(&r)).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}
