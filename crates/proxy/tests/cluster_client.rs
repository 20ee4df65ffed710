//! `zedis_proxy::Cluster` against real ZooKeeper and Redis: commands go straight to the group
//! that owns the key's slot, multi-key commands split, and a new topology epoch is followed.

use std::time::{Duration, Instant};

use zedis_coord::{ClusterPaths, TopologyStore, Zk, ZkOptions};
use zedis_proxy::{Cluster, ClusterError, ClusterOptions};
use zedis_testkit::{RedisServer, ZkServer};
use zedis_topology::{key_slot, ClusterSettings, GroupSpec, Server, Topology};

fn direct_get(server: &RedisServer, key: &str) -> Option<String> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
    redis::cmd("GET").arg(key).query(&mut conn).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_slot_splits_and_follows_new_epochs() {
    let zk_server = ZkServer::start().expect("start ZooKeeper");
    let a = RedisServer::start().expect("start redis a");
    let b = RedisServer::start().expect("start redis b");
    let topo = Topology::new(
        "c1",
        &[GroupSpec { servers: vec![Server::new(a.addr())] }, GroupSpec { servers: vec![Server::new(b.addr())] }],
        ClusterSettings::default(),
    )
    .unwrap();
    let zk = Zk::connect(&ZkOptions::new(zk_server.connect_string())).await.unwrap();
    let store = TopologyStore::new(zk, ClusterPaths::new("/zedis", "c1").unwrap());
    store.create(&topo).await.unwrap();

    eprintln!("phase: a missing cluster is a clear error");
    let missing = Cluster::connect(ClusterOptions::new(&zk_server.connect_string(), "nope")).await;
    assert!(matches!(missing, Err(ClusterError::Coord(_))), "{:?}", missing.err());

    eprintln!("phase: keys land on the group that owns their slot");
    let cluster = Cluster::connect(ClusterOptions::new(&zk_server.connect_string(), "c1")).await.unwrap();
    assert_eq!(cluster.epoch(), 1);
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for k in &keys {
        cluster.set(k, format!("v-{k}")).await.unwrap();
    }
    for k in &keys {
        let on_a = key_slot(k.as_bytes()) <= 8191;
        let (owner, other) = if on_a { (&a, &b) } else { (&b, &a) };
        assert_eq!(direct_get(owner, k).as_deref(), Some(format!("v-{k}").as_str()), "{k} on its owner");
        assert_eq!(direct_get(other, k), None, "{k} only on its owner");
        assert_eq!(cluster.get(k).await.unwrap().as_deref(), Some(format!("v-{k}").as_bytes()));
    }

    eprintln!("phase: MGET and DEL split over both groups");
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    let values = cluster.query(&mget).await.unwrap();
    let values = values.as_array().unwrap();
    assert_eq!(values.len(), keys.len());
    for (k, v) in keys.iter().zip(values) {
        assert_eq!(v.as_bytes().map(|b| b.to_vec()), Some(format!("v-{k}").into_bytes()));
    }
    let err = cluster.query(["SINTER", "k1", "k2"]).await;
    assert!(matches!(&err, Err(ClusterError::Reply(m)) if m.starts_with("CROSSSLOT")), "{err:?}");

    eprintln!("phase: a new epoch moves slots 0-8191 to group 2; the client follows it");
    let current = store.read().await.unwrap();
    let mut next = current.value.clone();
    next.slots.assign(0, 8191, 2);
    next.epoch += 1;
    store.write(&next, current.version).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.epoch() != next.epoch {
        assert!(Instant::now() < deadline, "the client never applied epoch {}", next.epoch);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let k = keys.iter().find(|k| key_slot(k.as_bytes()) <= 8191).unwrap();
    cluster.set(k, "moved").await.unwrap();
    assert_eq!(direct_get(&b, k).as_deref(), Some("moved"));
}
