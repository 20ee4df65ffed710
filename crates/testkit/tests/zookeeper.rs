//! ZooKeeper lifecycle: standalone start/restart, a three-node ensemble losing a node.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{eventually, init_tracing, refuses};
use tracing::info;
use zedis_testkit::{four_letter_word, free_port, ZkEnsemble, ZkOptions, ZkServer};

#[test]
fn standalone_answers_srvr_and_restarts_on_the_same_port() {
    init_tracing();
    info!("phase: start");
    let opts =
        ZkOptions { min_session_timeout_ms: Some(400), max_session_timeout_ms: Some(10_000), ..Default::default() };
    let mut zk = ZkServer::start_with(opts).expect("zookeeper starts");
    let port = zk.port();
    assert_eq!(zk.connect_string(), format!("127.0.0.1:{port}"));
    let srvr = zk.four_letter_word("srvr").expect("srvr");
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    assert_eq!(zk.mode().as_deref(), Some("standalone"));
    let conf = four_letter_word(&zk.connect_string(), "conf", Duration::from_secs(2)).expect("conf");
    assert!(conf.contains("minSessionTimeout=400"), "{conf}");
    assert!(conf.contains("maxSessionTimeout=10000"), "{conf}");
    assert!(conf.contains("tickTime=200"), "{conf}");
    assert!(zk.log().contains("clientPortAddress is 127.0.0.1"), "the log is captured:\n{}", zk.log());

    info!("phase: kill -9");
    zk.kill9();
    assert!(refuses(&zk.connect_string()));
    assert_eq!(zk.mode(), None);

    info!("phase: restart");
    zk.restart().expect("restart");
    assert_eq!(zk.port(), port);
    assert_eq!(zk.mode().as_deref(), Some("standalone"));

    info!("phase: SIGSTOP / SIGCONT");
    zk.sigstop();
    assert!(four_letter_word(&zk.connect_string(), "srvr", Duration::from_millis(300)).is_err());
    zk.sigcont();
    assert!(eventually(Duration::from_secs(10), || zk.mode().is_some()));

    info!("phase: stop");
    zk.stop();
    assert!(!zk.is_running());
    assert!(refuses(&zk.connect_string()));
}

#[test]
fn standalone_on_a_taken_fixed_port_is_an_error() {
    init_tracing();
    let port = free_port().unwrap();
    let _holder = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let opts = ZkOptions { port: Some(port), ..Default::default() };
    let err = ZkServer::start_with(opts).expect_err("the port is taken");
    assert!(err.is_address_in_use(), "{err}");
}

#[test]
fn ensemble_survives_losing_its_leader() {
    init_tracing();
    info!("phase: start 3 nodes");
    let mut ens = ZkEnsemble::start(3).expect("ensemble starts");
    assert_eq!(ens.len(), 3);
    let expected: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", ens.port(i))).collect();
    assert_eq!(ens.connect_string(), expected.join(","));
    let modes = ens.modes();
    info!(?modes, "modes");
    assert_eq!(modes.iter().filter(|m| m.as_deref() == Some("leader")).count(), 1, "{modes:?}");
    assert_eq!(modes.iter().filter(|m| m.as_deref() == Some("follower")).count(), 2, "{modes:?}");
    assert_eq!(ens.node(1).myid(), Some(2));

    let leader = ens.leader().expect("a leader");
    info!(leader, "phase: kill -9 the leader");
    let killed_pid = ens.pid(leader);
    ens.kill9(leader);
    assert_eq!(ens.pid(leader), None);
    assert!(killed_pid.is_some());
    assert!(refuses(&ens.node(leader).connect_string()));

    info!("phase: the others elect a new leader");
    let reelected = eventually(Duration::from_secs(20), || {
        let modes = ens.modes();
        let survivors: Vec<_> =
            modes.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, m)| m.clone()).collect();
        survivors.iter().all(|m| matches!(m.as_deref(), Some("leader" | "follower")))
            && survivors.iter().filter(|m| m.as_deref() == Some("leader")).count() == 1
    });
    assert!(reelected, "no new leader: {:?}", ens.modes());
    ens.wait_ready().expect("running nodes are ready");

    info!("phase: the old leader rejoins");
    ens.restart(leader).expect("restart the killed node");
    assert!(matches!(ens.node(leader).mode().as_deref(), Some("leader" | "follower")));
    assert!(ens.nodes().iter().all(|n| n.pid().is_some()));
}
