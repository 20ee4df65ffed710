//! A client that pipelines requests for a 100 KB value and never reads the replies must not
//! grow the proxy's memory without bound: once `max_pipeline` (1024) replies wait for the
//! client, the proxy stops reading its requests, TCP fills up and the client's writes block.
//! Meanwhile other clients are served at once, and when the flooding client goes away its
//! session ends and its memory is released to the allocator.

mod proxy_common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy_common::{check, encode, wait_until, Resp, Sandbox};

const VALUE_LEN: usize = 100 * 1024;
/// How long the flood may last at most, blocked or not.
const FLOOD_LIMIT: Duration = Duration::from_secs(20);
/// A write that blocks this long means the proxy stopped reading: the point of the test.
const BLOCKED_WRITE: Duration = Duration::from_secs(2);

/// The bound on the proxy's resident memory above its baseline while one client floods it.
///
/// What the proxy legitimately holds for a client that does not read: up to `max_pipeline`
/// (1024) replies waiting in the session's queue, each a 100 KB GET reply, i.e. ~100 MiB,
/// plus its 64 KiB write batch, the request read buffer (16 KiB+) and allocator slack.
/// Measured: ~100 MiB above a ~12 MiB baseline. 200 MiB leaves room for allocator
/// fragmentation while catching unbounded growth: without backpressure the flood below would
/// queue thousands of 100 KB replies per second (gigabytes within the flood's 20 s).
const RSS_BOUND_KIB: u64 = 200 * 1024;

fn connected_clients(sb: &Sandbox) -> Result<u64, String> {
    let mut c = sb.raw();
    let info = c.cmd(&["INFO", "clients"]).as_text().ok_or("INFO clients is not text")?;
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no connected_clients in {info}"))
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_proxy_without_bound() {
    let sb = Sandbox::start("proxy_backpressure");
    let mut c = sb.raw();
    let value = vec![b'v'; VALUE_LEN];
    c.send(&encode(&[b"SET".as_slice(), b"bigkey", &value]));
    assert_eq!(c.read(), Resp::ok());
    check(&mut c, &["STRLEN", "bigkey"], &format!(":{VALUE_LEN}"));
    let clients_before = connected_clients(&sb).expect("INFO clients");
    let baseline = sb.proxy_rss_kib();
    sb.phase(&format!("baseline: proxy RSS {} MiB, {clients_before} clients", baseline / 1024));

    sb.phase("flood: pipelined `GET bigkey` on one connection that never reads");
    let flood = TcpStream::connect(&sb.proxy).unwrap();
    flood.set_write_timeout(Some(BLOCKED_WRITE)).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut flood = flood.try_clone().unwrap();
        let sent = sent.clone();
        let done = done.clone();
        std::thread::spawn(move || -> &'static str {
            let chunk: Vec<u8> = (0..1000).flat_map(|_| encode(&["GET", "bigkey"])).collect();
            let started = Instant::now();
            let why = loop {
                if started.elapsed() > FLOOD_LIMIT {
                    break "time limit reached without ever blocking";
                }
                match flood.write_all(&chunk) {
                    Ok(()) => {
                        sent.fetch_add(1000, Ordering::Relaxed);
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        break "blocked";
                    }
                    Err(_) => break "connection error",
                }
            };
            done.store(true, Ordering::SeqCst);
            why
        })
    };

    // Sample the proxy's memory and another client's PING latency while the flood runs, and
    // for 2 s after its writes blocked (memory must not keep growing then either).
    let mut ping = sb.raw();
    let mut peak = baseline;
    let mut worst_ping = Duration::ZERO;
    let mut samples = 0;
    let mut after_block: Option<Instant> = None;
    loop {
        let rss = sb.proxy_rss_kib();
        peak = peak.max(rss);
        assert!(
            rss < baseline + RSS_BOUND_KIB,
            "proxy RSS {} MiB exceeds baseline {} MiB + {} MiB after {} requests sent",
            rss / 1024,
            baseline / 1024,
            RSS_BOUND_KIB / 1024,
            sent.load(Ordering::Relaxed)
        );
        let t = Instant::now();
        check(&mut ping, &["PING"], "+PONG");
        worst_ping = worst_ping.max(t.elapsed());
        samples += 1;
        if done.load(Ordering::SeqCst) {
            let since = *after_block.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let why = writer.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    sb.phase(&format!(
        "flood stopped ({why}) after {sent} requests; proxy RSS peak {} MiB (baseline {} MiB); worst PING {worst_ping:?} over {samples} samples",
        peak / 1024,
        baseline / 1024
    ));
    assert_eq!(why, "blocked", "the proxy must stop reading a client that does not read its replies");
    // 1024 queued replies are ~100 MiB: the proxy did hold them (else the test proves nothing).
    assert!(peak > baseline + 50 * 1024, "expected the proxy to hold ~100 MiB of replies, peak {} MiB", peak / 1024);
    // Generous for a loaded 2-core machine; a client stuck behind the flood would wait seconds.
    assert!(worst_ping < Duration::from_secs(1), "another client's PING took {worst_ping:?} during the flood");
    let mut other = sb.raw();
    check(&mut other, &["STRLEN", "bigkey"], &format!(":{VALUE_LEN}"));

    sb.phase("the flooding client goes away: its session ends");
    drop(flood);
    wait_until(Duration::from_secs(10), "the flooding session is closed", || {
        let n = connected_clients(&sb)?;
        // `clients_before` counted `c` and the connection INFO itself uses; since then `ping`
        // and `other` were opened.
        if n <= clients_before + 2 {
            Ok(())
        } else {
            Err(format!("{n} clients connected, {clients_before} before the flood"))
        }
    });
    let after = sb.proxy_rss_kib();
    sb.phase(&format!("proxy RSS after the flood: {} MiB", after / 1024));
    assert!(
        after <= peak + 8 * 1024,
        "memory grew after the flooding client left: {} MiB > peak {} MiB",
        after / 1024,
        peak / 1024
    );
    check(&mut other, &["PING"], "+PONG");
}
