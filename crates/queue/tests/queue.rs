//! Queues and topics against a real `redis-server`: push/pop/ack, redelivery after a
//! consumer is `kill -9`ed mid-message, dead letters after N deliveries, stats, retries,
//! group recreation, and the topic's at-most-once delivery.
//!
//! The kill test runs this very test binary as the doomed consumer: with `CHILD_URL` set,
//! `child_consumer_mode` pops one message, prints its id and blocks until killed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use zedis_queue::{Message, Queue, QueueError, QueueOptions, Topic};
use zedis_testkit::RedisServer;

const CHILD_URL: &str = "ZEDIS_QUEUE_TEST_CHILD_URL";
const CHILD_QUEUE: &str = "ZEDIS_QUEUE_TEST_CHILD_QUEUE";
const CHILD_VT_MS: &str = "ZEDIS_QUEUE_TEST_CHILD_VT_MS";

/// How long any wait in these tests may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

fn phase(test: &str, what: &str) {
    eprintln!("[{test}] phase: {what}");
}

fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("redis-server did not start: {e}"))
}

async fn conn(url: &str) -> ConnectionManager {
    zedis_queue::connect(url).await.unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn opts(vt_ms: u64, max_deliveries: u32) -> QueueOptions {
    QueueOptions { visibility_timeout: Duration::from_millis(vt_ms), max_deliveries, ..QueueOptions::default() }
}

/// Pops for `consumer` until something comes, for at most [`DEADLINE`].
async fn pop_until_some(q: &Queue, consumer: &str, what: &str) -> Vec<Message> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = q.pop(consumer, 10).await.expect("pop");
        if !got.is_empty() {
            return got;
        }
        assert!(Instant::now() < deadline, "timed out after {DEADLINE:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn push_pop_ack() {
    let t = "push_pop_ack";
    let server = redis();
    let q = Queue::open(conn(&server.url()).await, "jobs", QueueOptions::default()).await.expect("open");
    // Opening again is fine (the group exists: BUSYGROUP).
    Queue::open(conn(&server.url()).await, "jobs", QueueOptions::default()).await.expect("open twice");

    phase(t, "push three messages");
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = q.push(format!("job {i}").as_bytes(), &headers(&[("n", &i.to_string())])).await.expect("push");
        ids.push(id);
    }

    phase(t, "pop in order, two then one, then nothing");
    let first = q.pop("w1", 2).await.expect("pop");
    assert_eq!(first.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids[..2].to_vec());
    assert_eq!(first[0].payload, b"job 0");
    assert_eq!(first[1].headers, headers(&[("n", "1")]));
    assert!(first.iter().all(|m| m.deliveries == 1), "{first:?}");
    let second = q.pop("w2", 10).await.expect("pop");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, ids[2]);
    assert!(q.pop("w1", 10).await.expect("pop").is_empty(), "nothing left to deliver");
    assert!(q.pop("w1", 0).await.expect("pop 0").is_empty());

    let s = q.stats().await.expect("stats");
    assert_eq!((s.length, s.pending, s.waiting, s.consumers), (3, 3, 0, 2), "{s:?}");

    phase(t, "ack all; acked messages are deleted; acking again counts nothing");
    assert_eq!(q.ack(&ids).await.expect("ack"), 3);
    assert_eq!(q.ack(&ids).await.expect("ack again"), 0);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.length, s.pending, s.waiting), (0, 0, 0), "{s:?}");
    assert!(q.pop("w1", 10).await.expect("pop").is_empty());

    phase(t, "bad input is a clear error, not a panic");
    assert!(matches!(q.ack(&["nope"]).await, Err(QueueError::BadId(_))));
    assert!(matches!(q.pop("has space", 1).await, Err(QueueError::BadName { .. })));
    let err = Queue::open(conn(&server.url()).await, "a{b}", QueueOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("hash tag"), "{err}");
}

/// Not a test on its own: the doomed consumer of `killed_consumer_message_is_redelivered`,
/// run in a child process. Does nothing unless `CHILD_URL` is set.
#[tokio::test]
async fn child_consumer_mode() {
    let Ok(url) = std::env::var(CHILD_URL) else { return };
    let name = std::env::var(CHILD_QUEUE).expect("queue name for the child");
    let vt: u64 = std::env::var(CHILD_VT_MS).ok().and_then(|v| v.parse().ok()).expect("visibility timeout");
    let q = Queue::open(conn(&url).await, &name, opts(vt, 5)).await.expect("child: open");
    let got = q.pop("doomed", 1).await.expect("child: pop");
    let id = &got.first().expect("child: a message to pop").id;
    let mut out = std::io::stdout();
    writeln!(out, "popped {id}").and_then(|_| out.flush()).expect("child: stdout");
    // "Work" on it until killed; if the parent dies first, stdin closes and we leave.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[tokio::test]
async fn killed_consumer_message_is_redelivered() {
    let t = "killed_consumer";
    let server = redis();
    let vt = Duration::from_millis(2000);
    let q = Queue::open(conn(&server.url()).await, "work", opts(vt.as_millis() as u64, 5)).await.expect("open");
    let id = q.push(b"important", &headers(&[("k", "v")])).await.expect("push");

    phase(t, "a child process pops the message, then is kill -9ed before acking");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["child_consumer_mode", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, server.url())
        .env(CHILD_QUEUE, "work")
        .env(CHILD_VT_MS, vt.as_millis().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child consumer");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may have written "test child_consumer_mode ... " on the same line.
            if let Some((_, id)) = line.split_once("popped ") {
                let _ = tx.send(id.trim().to_string());
            }
        }
    });
    let popped = rx.recv_timeout(DEADLINE).expect("the child reports the message it popped");
    let seen = Instant::now();
    assert_eq!(popped, id);
    child.kill().expect("kill -9 the child"); // SIGKILL on Unix
    let status = child.wait().expect("reap the child");
    assert!(!status.success(), "the child was killed: {status:?}");

    phase(t, "another consumer gets it after the visibility timeout, delivery count 2");
    let got = pop_until_some(&q, "rescuer", "the killed consumer's message").await;
    let waited = seen.elapsed();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].payload, b"important");
    assert_eq!(got[0].headers, headers(&[("k", "v")]));
    assert_eq!(got[0].deliveries, 2);
    // The child popped before we saw its line, so allow it a generous head start.
    assert!(waited >= vt / 2, "redelivered after {waited:?}, before the visibility timeout {vt:?}");
    let s = q.stats().await.expect("stats");
    assert_eq!((s.pending, s.consumers, s.oldest_pending_deliveries), (1, 2, Some(2)), "{s:?}");
    assert_eq!(q.ack(&[id]).await.expect("ack"), 1);
    eprintln!("[{t}] redelivered {waited:?} after the child reported it");
}

#[tokio::test]
async fn dead_letter_after_max_deliveries_and_requeue() {
    let t = "dead_letter";
    let server = redis();
    let q = Queue::open(conn(&server.url()).await, "flaky", opts(150, 3)).await.expect("open");
    let id = q.push(b"poison", &headers(&[("attempt", "x")])).await.expect("push");
    let healthy = q.push(b"fine", &BTreeMap::new()).await.expect("push");

    phase(t, "three deliveries without an ack");
    let first = q.pop("c1", 10).await.expect("pop");
    assert_eq!(first.len(), 2);
    assert_eq!(q.ack(&[&healthy]).await.expect("ack the healthy one"), 1);
    for want in 2..=3 {
        let got = pop_until_some(&q, &format!("c{want}"), "a redelivery").await;
        assert_eq!((got[0].id.as_str(), got[0].deliveries), (id.as_str(), want), "{got:?}");
    }

    phase(t, "the next reclaim moves it to the dead letters instead of a 4th delivery");
    let deadline = Instant::now() + DEADLINE;
    let dead = loop {
        let got = q.pop("c4", 10).await.expect("pop");
        assert!(got.is_empty(), "no 4th delivery: {got:?}");
        let dead = q.dead_letters(10).await.expect("dead letters");
        if !dead.is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "timed out waiting for the dead letter");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!((d.original_id.as_str(), d.deliveries), (id.as_str(), 3));
    assert_eq!(d.payload, b"poison");
    assert_eq!(d.headers, headers(&[("attempt", "x")]));
    assert!(d.reason.contains("3 deliveries"), "{}", d.reason);
    assert!(d.time_ms > 0);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.length, s.pending, s.dead_letters), (0, 0, 1), "{s:?}");

    phase(t, "requeue: a new message, delivery count starting again");
    let new_ids = q.requeue_dead(&[&d.id]).await.expect("requeue");
    assert_eq!(new_ids.len(), 1);
    assert_eq!(q.requeue_dead(&[&d.id]).await.expect("requeue again"), Vec::<String>::new());
    let got = q.pop("c5", 10).await.expect("pop");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id.as_str(), got[0].deliveries), (new_ids[0].as_str(), 1));
    assert_eq!(got[0].payload, b"poison");
    assert_eq!(got[0].headers, headers(&[("attempt", "x")]));
    assert_eq!(q.ack(&new_ids).await.expect("ack"), 1);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.length, s.pending, s.dead_letters), (0, 0, 0), "{s:?}");
}

#[tokio::test]
async fn stats_retry_and_extend() {
    let t = "stats";
    let server = redis();
    let vt = Duration::from_millis(1500);
    let q = Queue::open(conn(&server.url()).await, "stats", opts(vt.as_millis() as u64, 5)).await.expect("open");
    let empty = q.stats().await.expect("stats");
    assert_eq!((empty.length, empty.pending, empty.waiting, empty.consumers), (0, 0, 0, 0), "{empty:?}");
    assert!(empty.group_exists && empty.oldest_pending_id.is_none(), "{empty:?}");

    phase(t, "5 pushed, 2 + 1 popped by two consumers, 1 acked");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(q.push(format!("m{i}").as_bytes(), &BTreeMap::new()).await.expect("push"));
    }
    let a = q.pop("a", 2).await.expect("pop");
    let b = q.pop("b", 1).await.expect("pop");
    assert_eq!((a.len(), b.len()), (2, 1));
    assert_eq!(q.ack(&[a[0].id.clone()]).await.expect("ack"), 1);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.length, s.pending, s.waiting, s.consumers, s.dead_letters), (4, 2, 2, 2, 0), "{s:?}");
    assert_eq!(s.oldest_pending_id.as_deref(), Some(ids[1].as_str()), "{s:?}");
    assert_eq!(s.oldest_pending_deliveries, Some(1));
    assert_eq!(s.last_delivered_id.as_deref(), Some(ids[2].as_str()));

    phase(t, "nack makes a message visible at once, delivery count kept");
    assert_eq!(q.nack("a", &[b[0].id.clone()]).await.expect("nack of another's message"), 0);
    assert_eq!(q.nack("b", &[b[0].id.clone()]).await.expect("nack"), 1);
    let got = q.pop("c", 1).await.expect("pop");
    assert_eq!((got[0].id.as_str(), got[0].deliveries), (b[0].id.as_str(), 2), "{got:?}");

    phase(t, "extend keeps a slow handler's message from being reclaimed");
    let held = a[1].id.clone();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = q.stats().await.expect("stats");
        if s.oldest_pending_id.as_deref() == Some(held.as_str()) && s.oldest_pending_idle_ms >= Some(1000) {
            break;
        }
        assert!(Instant::now() < deadline, "message never went idle: {s:?}");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(q.extend("a", &[&held]).await.expect("extend"), 1);
    // Just extended: idle restarts from 0, well below the 1.5 s timeout, so no reclaim.
    let got = q.pop("d", 10).await.expect("pop");
    assert!(got.iter().all(|m| m.id != held), "extended message reclaimed: {got:?}");
    assert_eq!(q.ack(&ids).await.expect("ack the rest"), 4);
}

#[tokio::test]
async fn a_deleted_stream_gets_its_group_back() {
    let server = redis();
    let mut c = conn(&server.url()).await;
    let q = Queue::open(c.clone(), "gone", QueueOptions::default()).await.expect("open");
    let _: i64 = redis::cmd("DEL").arg(&q.keys().stream).query_async(&mut c).await.expect("DEL");
    let s = q.stats().await.expect("stats of a missing stream");
    assert!(!s.group_exists, "{s:?}");
    assert!(q.pop("w", 1).await.expect("pop recreates the group").is_empty());
    let id = q.push(b"again", &BTreeMap::new()).await.expect("push");
    assert_eq!(q.pop("w", 1).await.expect("pop")[0].id, id);
}

async fn next(sub: &mut zedis_queue::Subscription) -> Option<Vec<u8>> {
    tokio::time::timeout(DEADLINE, sub.next()).await.expect("a message within the deadline")
}

#[tokio::test]
async fn topic_is_at_most_once() {
    let t = "topic";
    let server = redis();
    let client = redis::Client::open(server.url()).expect("client");
    let mut c = conn(&server.url()).await;
    let topic = Topic::new("news").expect("topic");

    phase(t, "published with no subscriber: nobody gets it, ever");
    assert_eq!(topic.publish(&mut c, b"early").await.expect("publish"), 0);

    phase(t, "a subscriber sees only what is published after it subscribed");
    let mut sub = topic.subscribe(&client).await.expect("subscribe");
    assert_eq!(topic.publish(&mut c, b"late").await.expect("publish"), 1);
    assert_eq!(topic.publish(&mut c, b"later").await.expect("publish"), 1);
    assert_eq!(next(&mut sub).await.as_deref(), Some(&b"late"[..]), "the early message was never stored");
    assert_eq!(next(&mut sub).await.as_deref(), Some(&b"later"[..]));

    phase(t, "a subscriber that is down misses messages");
    drop(sub);
    // Publish until Redis has seen the unsubscribe (the count drops to 0): polling, not a sleep.
    let deadline = Instant::now() + DEADLINE;
    while topic.publish(&mut c, b"missed").await.expect("publish") != 0 {
        assert!(Instant::now() < deadline, "the dropped subscriber never went away");
        tokio::time::sleep(POLL).await;
    }
    let mut sub = topic.subscribe(&client).await.expect("subscribe again");
    assert_eq!(topic.publish(&mut c, b"back").await.expect("publish"), 1);
    assert_eq!(next(&mut sub).await.as_deref(), Some(&b"back"[..]), "nothing published while down is seen");
}
