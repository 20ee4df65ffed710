//! Blocking commands, publish/subscribe and transactions through the proxy, as a Redis user
//! expects them. Ignored until the proxy implements them: run with
//! `cargo test -p zedis-cli --test proxy_pending -- --ignored`.
//!
//! Blocking tests run one at a time (they watch the masters' `blocked_clients`), so that a
//! test knows its own command is the one blocked before it wakes it up.

mod proxy_common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use proxy_common::{check, redis_conn, wait_until, DumpOnPanic, Phases, RawConn, Resp, Sandbox, CROSSSLOT};

fn sandbox() -> &'static Sandbox {
    Sandbox::shared("proxy_pending")
}

/// Serialises the tests that watch `blocked_clients`.
static BLOCKING: Mutex<()> = Mutex::new(());

fn blocking_lock() -> std::sync::MutexGuard<'static, ()> {
    BLOCKING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until group `g`'s master reports `n` blocked clients.
fn wait_blocked(sb: &Sandbox, g: usize, n: u64) {
    let master = sb.groups[g].master.clone();
    wait_until(Duration::from_secs(5), &format!("{n} client(s) blocked on group {}", g + 1), || {
        let mut m = redis_conn(&master, Duration::from_secs(2))?;
        let info: String = redis::cmd("INFO").arg("clients").query(&mut m).map_err(|e| e.to_string())?;
        let blocked: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("no blocked_clients in INFO")?;
        if blocked == n {
            Ok(())
        } else {
            Err(format!("blocked_clients:{blocked}"))
        }
    });
}

/// Sends `args` on a new connection from another thread; the reply and how long it took.
fn in_background(addr: &str, args: &[&str]) -> std::thread::JoinHandle<(Resp, Duration)> {
    let mut c = RawConn::connect(addr);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = c.cmd(&args);
        (r, t.elapsed())
    })
}

// ---- publish / subscribe ----

/// Reads one push message and renders it.
fn next_message(c: &mut RawConn) -> String {
    c.read().to_string()
}

#[test]
fn subscribe_receives_publishes_on_channels_of_both_groups() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("subscribe_receives_publishes_on_channels_of_both_groups");
    // Channel names whose hash slots fall on different groups (plain channels are global, the
    // proxy must deliver whatever group it relays them through).
    let ch1 = sb.keys_in_group("e2e-chan", 0, 1).remove(0);
    let ch2 = sb.keys_in_group("e2e-chan", 1, 1).remove(0);
    let mut sub = sb.raw();
    let mut publisher = sb.raw();

    p.phase("SUBSCRIBE two channels");
    sub.send(&proxy_common::encode(&["SUBSCRIBE", &ch1, &ch2]));
    assert_eq!(next_message(&mut sub), format!("[subscribe, {ch1}, :1]"));
    assert_eq!(next_message(&mut sub), format!("[subscribe, {ch2}, :2]"));

    p.phase("PUBLISH from another connection reaches the subscriber, in order");
    for (ch, msg) in [(&ch1, "hello"), (&ch2, "world")] {
        let r = publisher.cmd(&["PUBLISH", ch, msg]);
        assert!(r.as_int().is_some_and(|n| n >= 1), "PUBLISH {ch}: {r}");
        assert_eq!(next_message(&mut sub), format!("[message, {ch}, {msg}]"));
    }
    for i in 0..100 {
        publisher.send(&proxy_common::encode(&["PUBLISH", &ch1, &format!("m{i}")]));
    }
    for i in 0..100 {
        assert!(publisher.read().as_int().is_some());
        assert_eq!(next_message(&mut sub), format!("[message, {ch1}, m{i}]"));
    }
    let r = publisher.cmd(&["PUBSUB", "NUMSUB", &ch1]);
    let n = r.as_array().and_then(|a| a.get(1)?.as_int());
    assert!(n.is_some_and(|n| n >= 1), "PUBSUB NUMSUB {ch1}: {r}");

    p.phase("in subscribed mode: PING answers, other commands are refused");
    check(&mut sub, &["PING"], "[pong, ]");
    check(
        &mut sub,
        &["GET", "x"],
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
    );

    p.phase("UNSUBSCRIBE from everything, then ordinary commands work again");
    sub.send(&proxy_common::encode(&["UNSUBSCRIBE"]));
    // Redis does not specify the order; the counts go 1 then 0.
    let first = next_message(&mut sub);
    let second = next_message(&mut sub);
    let a = [format!("[unsubscribe, {ch1}, :1]"), format!("[unsubscribe, {ch2}, :0]")];
    let b = [format!("[unsubscribe, {ch2}, :1]"), format!("[unsubscribe, {ch1}, :0]")];
    assert!(
        [first.clone(), second.clone()] == a || [first.clone(), second.clone()] == b,
        "UNSUBSCRIBE replies: {first} {second}"
    );
    check(&mut sub, &["SET", "e2e-pubsub:after", "1"], "+OK");
    check(&mut sub, &["GET", "e2e-pubsub:after"], "1");
    let r = publisher.cmd(&["PUBLISH", &ch1, "nobody"]);
    assert!(r.as_int().is_some(), "PUBLISH after UNSUBSCRIBE: {r}");
    check(&mut sub, &["PING"], "+PONG");
}

/// Redis: once SUBSCRIBE's confirmation is read, the subscription is in place, so a PUBLISH
/// sent afterwards (from any connection) reaches the subscriber.
#[test]
fn a_confirmed_subscription_receives_the_next_publish() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("a_confirmed_subscription_receives_the_next_publish");
    let mut publisher = sb.raw();
    p.phase("100 times: SUBSCRIBE on a new connection, read the confirmation, PUBLISH at once");
    let mut missed = Vec::new();
    for i in 0..100 {
        let ch = format!("e2e-confirmed:{i}");
        let mut sub = sb.raw();
        sub.send(&proxy_common::encode(&["SUBSCRIBE", &ch]));
        assert_eq!(next_message(&mut sub), format!("[subscribe, {ch}, :1]"));
        let receivers = publisher.cmd(&["PUBLISH", &ch, "first"]);
        if receivers != Resp::Int(1) {
            missed.push(format!("{ch}: PUBLISH right after the confirmation reached {receivers} subscribers"));
            continue;
        }
        assert_eq!(next_message(&mut sub), format!("[message, {ch}, first]"));
    }
    assert!(
        missed.is_empty(),
        "{} of 100 publishes missed a confirmed subscriber: {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
}

#[test]
fn psubscribe_receives_pattern_messages() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("psubscribe_receives_pattern_messages");
    let mut sub = sb.raw();
    let mut publisher = sb.raw();
    p.phase("PSUBSCRIBE e2e-news.*");
    sub.send(&proxy_common::encode(&["PSUBSCRIBE", "e2e-news.*"]));
    assert_eq!(next_message(&mut sub), "[psubscribe, e2e-news.*, :1]");
    for ch in ["e2e-news.tech", "e2e-news.sport", "e2e-news.x{1}", "e2e-news.y{2}"] {
        let r = publisher.cmd(&["PUBLISH", ch, "flash"]);
        assert!(r.as_int().is_some_and(|n| n >= 1), "PUBLISH {ch}: {r}");
        assert_eq!(next_message(&mut sub), format!("[pmessage, e2e-news.*, {ch}, flash]"));
    }
    let r = publisher.cmd(&["PUBLISH", "e2e-other", "not for us"]);
    assert!(r.as_int().is_some());
    check(&mut sub, &["PUNSUBSCRIBE", "e2e-news.*"], "[punsubscribe, e2e-news.*, :0]");
    check(&mut sub, &["PING"], "+PONG");
}

#[test]
fn ssubscribe_and_spublish_go_to_the_slot_owner() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("ssubscribe_and_spublish_go_to_the_slot_owner");
    let mut sub = sb.raw();
    let mut publisher = sb.raw();
    for g in 0..2 {
        let ch = sb.keys_in_group("e2e-shard", g, 1).remove(0);
        p.phase(&format!("SSUBSCRIBE {ch} (group {}) and SPUBLISH to it", g + 1));
        sub.send(&proxy_common::encode(&["SSUBSCRIBE", &ch]));
        assert_eq!(next_message(&mut sub), format!("[ssubscribe, {ch}, :1]"));
        check(&mut publisher, &["SPUBLISH", &ch, "shard-msg"], ":1");
        assert_eq!(next_message(&mut sub), format!("[smessage, {ch}, shard-msg]"));
        // The shard channel lives on the slot's master.
        let mut m = redis_conn(&sb.groups[g].master, Duration::from_secs(2)).unwrap();
        let chans: Vec<String> = redis::cmd("PUBSUB").arg("SHARDCHANNELS").query(&mut m).unwrap();
        assert!(chans.contains(&ch), "group {} lists {ch}: {chans:?}", g + 1);
        check(&mut sub, &["SUNSUBSCRIBE", &ch], &format!("[sunsubscribe, {ch}, :0]"));
    }
    let a = sb.keys_in_group("e2e-shard", 0, 1).remove(0);
    let b = sb.keys_in_group("e2e-shard", 1, 1).remove(0);
    check(&mut sub, &["SSUBSCRIBE", &a, &b], CROSSSLOT);
    check(&mut sub, &["PING"], "+PONG");
}

// ---- blocking commands ----

#[test]
fn blpop_is_woken_by_an_lpush_from_another_client() {
    let _serial = blocking_lock();
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("blpop_is_woken_by_an_lpush_from_another_client");
    let list = sb.keys_in_group("e2e-blpop", 1, 1).remove(0);
    p.phase("BLPOP list 10 blocks");
    let waiter = in_background(&sb.proxy, &["BLPOP", &list, "10"]);
    wait_blocked(sb, 1, 1);
    p.phase("meanwhile other clients are served at once");
    let mut other = sb.raw();
    let t = Instant::now();
    for i in 0..50 {
        check(&mut other, &["SET", &format!("e2e-blpop:other{i}"), "x"], "+OK");
    }
    assert!(t.elapsed() < Duration::from_secs(2), "50 SETs took {:?} while a BLPOP was blocked", t.elapsed());
    p.phase("LPUSH from another client wakes it");
    check(&mut other, &["LPUSH", &list, "wake-up"], ":1");
    let (r, took) = waiter.join().unwrap();
    assert_eq!(r.to_string(), format!("[{list}, wake-up]"));
    assert!(took < Duration::from_secs(9), "BLPOP returned only after {took:?}");
    check(&mut other, &["LLEN", &list], ":0");
}

#[test]
fn blpop_times_out_with_nil() {
    let _serial = blocking_lock();
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("blpop_times_out_with_nil");
    let mut c = sb.raw();
    p.phase("BLPOP on an empty list with a 0.5 s timeout");
    let t = Instant::now();
    check(&mut c, &["BLPOP", "e2e-blpop:empty", "0.5"], "nil*");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "BLPOP 0.5 took {took:?}");
    p.phase("the connection is usable after the timeout; BLPOP of a non-empty list returns at once");
    check(&mut c, &["RPUSH", "{e2e-bl}full", "a", "b"], ":2");
    check(&mut c, &["BLPOP", "{e2e-bl}empty", "{e2e-bl}full", "5"], "[{e2e-bl}full, a]");
    check(&mut c, &["BLPOP", "{e2e-bl}empty", "e2e-bl-elsewhere", "5"], CROSSSLOT);
    check(&mut c, &["PING"], "+PONG");
}

#[test]
fn blmove_bzpopmin_and_xread_block_are_woken() {
    let _serial = blocking_lock();
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("blmove_bzpopmin_and_xread_block_are_woken");
    let g = sb.group_of(b"{e2e-bw}");
    let mut other = sb.raw();

    p.phase("BLMOVE src dst LEFT RIGHT woken by RPUSH src");
    let waiter = in_background(&sb.proxy, &["BLMOVE", "{e2e-bw}src", "{e2e-bw}dst", "LEFT", "RIGHT", "10"]);
    wait_blocked(sb, g, 1);
    check(&mut other, &["RPUSH", "{e2e-bw}src", "moved"], ":1");
    assert_eq!(waiter.join().unwrap().0.to_string(), "moved");
    check(&mut other, &["LRANGE", "{e2e-bw}dst", "0", "-1"], "[moved]");
    check(&mut other, &["BLMOVE", "{e2e-bw}src", "e2e-bw-elsewhere", "LEFT", "RIGHT", "1"], CROSSSLOT);

    p.phase("BZPOPMIN woken by ZADD");
    let waiter = in_background(&sb.proxy, &["BZPOPMIN", "{e2e-bw}z", "10"]);
    wait_blocked(sb, g, 1);
    check(&mut other, &["ZADD", "{e2e-bw}z", "1", "m"], ":1");
    assert_eq!(waiter.join().unwrap().0.to_string(), "[{e2e-bw}z, m, 1]");

    p.phase("XREAD BLOCK woken by XADD, and XREAD BLOCK timing out");
    let waiter = in_background(&sb.proxy, &["XREAD", "BLOCK", "10000", "STREAMS", "{e2e-bw}s", "$"]);
    wait_blocked(sb, g, 1);
    check(&mut other, &["XADD", "{e2e-bw}s", "5-1", "f", "v"], "5-1");
    assert_eq!(waiter.join().unwrap().0.to_string(), "[[{e2e-bw}s, [[5-1, [f, v]]]]]");
    let t = Instant::now();
    check(&mut other, &["XREAD", "BLOCK", "300", "STREAMS", "{e2e-bw}s", "$"], "nil*");
    assert!(t.elapsed() >= Duration::from_millis(250), "XREAD BLOCK 300 returned after {:?}", t.elapsed());
    check(
        &mut other,
        &["XREADGROUP", "GROUP", "nogroup", "c", "BLOCK", "100", "STREAMS", "{e2e-bw}s", ">"],
        "-NOGROUP No such key '{e2e-bw}s' or consumer group 'nogroup' in XREADGROUP with GROUP option",
    );
}

#[test]
fn a_client_that_disconnects_while_blocked_leaves_nothing_blocked() {
    let _serial = blocking_lock();
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("a_client_that_disconnects_while_blocked_leaves_nothing_blocked");
    let g = sb.group_of(b"e2e-gone:list");
    p.phase("BLPOP with no timeout, then the client hangs up");
    let mut c = sb.raw();
    c.send(&proxy_common::encode(&["BLPOP", "e2e-gone:list", "0"]));
    wait_blocked(sb, g, 1);
    drop(c);
    wait_blocked(sb, g, 0);
    p.phase("an LPUSH afterwards stays in the list (nobody popped it)");
    let mut other = sb.raw();
    check(&mut other, &["LPUSH", "e2e-gone:list", "kept"], ":1");
    check(&mut other, &["LRANGE", "e2e-gone:list", "0", "-1"], "[kept]");
}

// ---- transactions ----

#[test]
fn multi_exec_on_one_slot() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("multi_exec_on_one_slot");
    let mut c = sb.raw();
    p.phase("MULTI, queued commands on one slot, EXEC");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["SET", "{e2e-tx}a", "1"], "+QUEUED");
    check(&mut c, &["INCR", "{e2e-tx}a"], "+QUEUED");
    check(&mut c, &["GET", "{e2e-tx}missing"], "+QUEUED");
    check(&mut c, &["LPUSH", "{e2e-tx}a", "x"], "+QUEUED");
    check(&mut c, &["EXEC"], "[+OK, :2, nil, -WRONGTYPE Operation against a key holding the wrong kind of value]");
    check(&mut c, &["GET", "{e2e-tx}a"], "2");

    p.phase("the same through redis-rs' atomic pipeline");
    let mut conn = sb.conn();
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{e2e-tx}a")
        .cmd("INCRBY")
        .arg("{e2e-tx}b")
        .arg(10)
        .query(&mut conn)
        .unwrap();
    assert_eq!((a, b), (3, 10));

    p.phase("MULTI misuse: nested MULTI, EXEC and DISCARD without MULTI");
    check(&mut c, &["EXEC"], "-ERR EXEC without MULTI");
    check(&mut c, &["DISCARD"], "-ERR DISCARD without MULTI");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["MULTI"], "-ERR MULTI calls can not be nested");
    check(&mut c, &["DISCARD"], "+OK");
}

#[test]
fn multi_with_keys_of_different_slots_aborts() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("multi_with_keys_of_different_slots_aborts");
    let mut c = sb.raw();
    let a = sb.keys_in_group("e2e-txx", 0, 1).remove(0);
    let b = sb.keys_in_group("e2e-txx", 1, 1).remove(0);
    p.phase("a key of another slot inside MULTI: CROSSSLOT, then EXECABORT");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["SET", &a, "1"], "+QUEUED");
    check(&mut c, &["SET", &b, "1"], CROSSSLOT);
    check(&mut c, &["EXEC"], "-EXECABORT Transaction discarded because of previous errors.");
    check(&mut c, &["MGET", &a, &b], "[nil, nil]");
    p.phase("an unknown command inside MULTI aborts it too, as in Redis");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["SET", &a, "1"], "+QUEUED");
    check(&mut c, &["NOSUCHCOMMAND"], "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: ");
    check(&mut c, &["EXEC"], "-EXECABORT Transaction discarded because of previous errors.");
    check(&mut c, &["EXISTS", &a], ":0");
    check(&mut c, &["PING"], "+PONG");
}

#[test]
fn watch_detects_a_change_by_another_client() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("watch_detects_a_change_by_another_client");
    let mut c = sb.raw();
    let mut other = sb.raw();
    check(&mut c, &["SET", "{e2e-watch}k", "0"], "+OK");
    p.phase("WATCH, another client changes the key, EXEC returns nil");
    check(&mut c, &["WATCH", "{e2e-watch}k"], "+OK");
    check(&mut other, &["SET", "{e2e-watch}k", "other"], "+OK");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["SET", "{e2e-watch}k", "mine"], "+QUEUED");
    check(&mut c, &["EXEC"], "nil*");
    check(&mut c, &["GET", "{e2e-watch}k"], "other");
    p.phase("WATCH without interference: EXEC runs");
    check(&mut c, &["WATCH", "{e2e-watch}k"], "+OK");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["SET", "{e2e-watch}k", "mine"], "+QUEUED");
    check(&mut c, &["EXEC"], "[+OK]");
    check(&mut other, &["GET", "{e2e-watch}k"], "mine");
    p.phase("UNWATCH forgets the watch");
    check(&mut c, &["WATCH", "{e2e-watch}k"], "+OK");
    check(&mut c, &["UNWATCH"], "+OK");
    check(&mut other, &["SET", "{e2e-watch}k", "again"], "+OK");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["GET", "{e2e-watch}k"], "+QUEUED");
    check(&mut c, &["EXEC"], "[again]");
    p.phase("WATCH of keys in different slots is refused");
    let a = sb.keys_in_group("e2e-watchx", 0, 1).remove(0);
    let b = sb.keys_in_group("e2e-watchx", 1, 1).remove(0);
    check(&mut c, &["WATCH", &a, &b], CROSSSLOT);
}

#[test]
fn discard_drops_the_queued_commands() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("discard_drops_the_queued_commands");
    let mut c = sb.raw();
    p.phase("MULTI, SET, DISCARD: nothing written; the connection works normally after");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["SET", "{e2e-discard}k", "v"], "+QUEUED");
    check(&mut c, &["DISCARD"], "+OK");
    check(&mut c, &["GET", "{e2e-discard}k"], "nil");
    check(&mut c, &["SET", "e2e-discard-other-slot", "v"], "+OK");
    check(&mut c, &["GET", "e2e-discard-other-slot"], "v");
}
