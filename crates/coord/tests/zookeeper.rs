//! coord against a real ZooKeeper: compare-and-set, election order, the request queue and the
//! bounded event history.

use std::time::Duration;

use zedis_coord::{
    Candidate, ClusterPaths, CoordError, EventLog, RequestError, RequestQueue, TopologyStore, Zk, ZkOptions,
};
use zedis_testkit::ZkServer;
use zedis_topology::{now_ms, AdminOp, ClusterSettings, Event, EventKind, GroupSpec, Outcome, Server, Topology};

async fn connect(zk: &ZkServer) -> Zk {
    let mut options = ZkOptions::new(zk.connect_string());
    options.session_timeout = Duration::from_secs(2);
    Zk::connect(&options).await.expect("connect to ZooKeeper")
}

fn topology() -> Topology {
    let spec = GroupSpec { servers: vec![Server::new("127.0.0.1:1"), Server::new("127.0.0.1:2")] };
    Topology::new("t", &[spec], ClusterSettings::default()).unwrap()
}

#[tokio::test]
async fn topology_is_created_once_and_written_by_compare_and_set() {
    let server = ZkServer::start().expect("start ZooKeeper");
    let zk = connect(&server).await;
    let store = TopologyStore::new(zk, ClusterPaths::new("/zedis", "t").unwrap());
    eprintln!("phase: no cluster yet");
    assert!(matches!(store.read().await, Err(CoordError::NoCluster { .. })));
    eprintln!("phase: create, then create again");
    store.create(&topology()).await.unwrap();
    assert!(matches!(store.create(&topology()).await, Err(CoordError::ClusterExists { .. })));
    eprintln!("phase: two writers from the same version; exactly one wins");
    let read = store.read().await.unwrap();
    let a = read.value.set_priority("127.0.0.1:2", 5).unwrap();
    let b = read.value.set_priority("127.0.0.1:2", 9).unwrap();
    let first = store.write(&a, read.version).await;
    let second = store.write(&b, read.version).await;
    assert!(first.is_ok());
    assert!(matches!(second, Err(CoordError::Conflict { .. })), "{second:?}");
    let now = store.read().await.unwrap();
    assert_eq!(now.value.epoch, 2);
    assert_eq!(now.value.group(1).unwrap().server("127.0.0.1:2").unwrap().priority, 5);
    assert_eq!(store.clusters().await.unwrap(), vec!["t".to_string()]);
}

#[tokio::test]
async fn election_follows_join_order_and_hands_over_on_resign_and_session_end() {
    let server = ZkServer::start().expect("start ZooKeeper");
    let dir = "/zedis/clusters/t/controllers/election";
    let zk1 = connect(&server).await;
    let zk2 = connect(&server).await;
    let zk3 = connect(&server).await;
    let c1 = Candidate::join(&zk1, dir, b"one").await.unwrap();
    let c2 = Candidate::join(&zk2, dir, b"two").await.unwrap();
    let c3 = Candidate::join(&zk3, dir, b"three").await.unwrap();
    assert!(c1.sequence() < c2.sequence() && c2.sequence() < c3.sequence());
    eprintln!("phase: the first joiner leads");
    c1.wait_for_leadership().await.unwrap();
    assert!(!c2.is_leader().await.unwrap());
    let leader = zedis_coord::election::current_leader(&zk3, dir).await.unwrap();
    assert_eq!(leader.as_deref(), Some(&b"one"[..]));
    eprintln!("phase: resign hands over to the next in line only");
    c1.resign().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), c2.wait_for_leadership()).await.expect("c2 leads").unwrap();
    assert!(!c3.is_leader().await.unwrap());
    eprintln!("phase: closing c2's session hands over to c3");
    drop(c2);
    drop(zk2);
    tokio::time::timeout(Duration::from_secs(10), c3.wait_for_leadership()).await.expect("c3 leads").unwrap();
}

#[tokio::test]
async fn requests_time_out_without_a_leader_and_return_the_leaders_outcome() {
    let server = ZkServer::start().expect("start ZooKeeper");
    let zk = connect(&server).await;
    let paths = ClusterPaths::new("/zedis", "t").unwrap();
    let queue = RequestQueue::new(zk.clone(), &paths);
    eprintln!("phase: nobody answers");
    let op = AdminOp::SetPriority { addr: "h:1".into(), priority: 1 };
    let err = queue.submit(op.clone(), "test", Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(err, RequestError::NoLeader(_)), "{err}");
    assert!(queue.pending().await.unwrap().is_empty(), "a withdrawn request must not linger");
    eprintln!("phase: a stand-in leader takes and completes it");
    let leader_queue = RequestQueue::new(zk.clone(), &paths);
    let leader = tokio::spawn(async move {
        loop {
            if let Some(p) = leader_queue.pending().await.unwrap().into_iter().next() {
                let taken = leader_queue.take(&p, "leader", 1).await.unwrap();
                let outcome = Outcome {
                    ok: true,
                    message: "done".into(),
                    epoch: Some(7),
                    by: "leader".into(),
                    time_ms: now_ms(),
                };
                leader_queue.complete(&taken, outcome).await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let outcome = queue.submit(op, "test", Duration::from_secs(10)).await.unwrap();
    assert_eq!((outcome.ok, outcome.epoch, outcome.message.as_str()), (true, Some(7), "done"));
    leader.await.unwrap();
    assert!(queue.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn event_history_is_bounded_and_ordered() {
    let server = ZkServer::start().expect("start ZooKeeper");
    let zk = connect(&server).await;
    let paths = ClusterPaths::new("/zedis", "t").unwrap();
    zk.ensure_path(&paths.events()).await.unwrap();
    let log = EventLog::new(zk, &paths).with_limit(5);
    for i in 0..8 {
        log.append(&Event::new(EventKind::Configured, i, "test", format!("event {i}"))).await.unwrap();
    }
    let events = log.recent(100).await.unwrap();
    let epochs: Vec<u64> = events.iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, vec![3, 4, 5, 6, 7]);
}

#[tokio::test]
async fn unreachable_zookeeper_is_a_clear_error_within_the_timeout() {
    let port = zedis_testkit::free_port().unwrap();
    let mut options = ZkOptions::new(format!("127.0.0.1:{port}"));
    options.connect_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = Zk::connect(&options).await.unwrap_err();
    assert!(matches!(err, CoordError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("unreachable"));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
