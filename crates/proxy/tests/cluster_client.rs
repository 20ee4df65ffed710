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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_a_redis_crate_connection() {
    let zk_server = ZkServer::start().expect("start ZooKeeper");
    let a = RedisServer::start().expect("start redis a");
    let b = RedisServer::start().expect("start redis b");
    let topo = Topology::new(
        "c2",
        &[GroupSpec { servers: vec![Server::new(a.addr())] }, GroupSpec { servers: vec![Server::new(b.addr())] }],
        ClusterSettings::default(),
    )
    .unwrap();
    let zk = Zk::connect(&ZkOptions::new(zk_server.connect_string())).await.unwrap();
    TopologyStore::new(zk, ClusterPaths::new("/zedis", "c2").unwrap()).create(&topo).await.unwrap();
    let mut conn = Cluster::connect(ClusterOptions::new(&zk_server.connect_string(), "c2")).await.unwrap();

    eprintln!("phase: commands and typed replies");
    let _: () = redis::cmd("SET").arg("alpha").arg("1").query_async(&mut conn).await.unwrap();
    let n: i64 = redis::cmd("INCRBY").arg("alpha").arg(41).query_async(&mut conn).await.unwrap();
    assert_eq!(n, 42);
    let on_a = key_slot(b"alpha") <= 8191;
    assert_eq!(direct_get(if on_a { &a } else { &b }, "alpha").as_deref(), Some("42"));

    eprintln!("phase: an error reply is an error");
    let err = redis::cmd("INCR").arg("nope").arg("extra").query_async::<i64>(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("wrong number of arguments"), "{err}");

    eprintln!("phase: a pipeline across groups keeps its order");
    let mut pipe = redis::pipe();
    for i in 0..20 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
    }
    for i in 0..20 {
        pipe.cmd("GET").arg(format!("p{i}"));
    }
    let values: Vec<i64> = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(values, (0..20).collect::<Vec<i64>>());

    eprintln!("phase: an atomic pipeline on one slot is a transaction");
    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{t}x")
        .cmd("INCRBY")
        .arg("{t}y")
        .arg(5)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((x, y), (1, 5));

    eprintln!("phase: scripts run by sha, loaded on demand");
    let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let v: i64 = script.key("counter").arg(7).invoke_async(&mut conn).await.unwrap();
    assert_eq!(v, 7);
    let v: i64 = script.key("counter").arg(7).invoke_async(&mut conn).await.unwrap();
    assert_eq!(v, 14);

    eprintln!("phase: a lone MULTI is refused with a reason");
    let err = redis::cmd("MULTI").query_async::<()>(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("atomic pipeline"), "{err}");
}
