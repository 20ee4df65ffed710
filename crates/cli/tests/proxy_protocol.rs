//! The proxy's client protocol over raw sockets: malformed and oversized requests get Redis's
//! exact `Protocol error` and the connection is closed, while the proxy keeps serving new
//! connections; inline commands as typed in telnet; binary-safe keys and values; large values;
//! a request trickling in byte by byte; a half-closed client still gets its replies; many
//! concurrent connections.

mod proxy_common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use proxy_common::{check, encode, DumpOnPanic, Phases, RawConn, Resp, Sandbox};

fn sandbox() -> &'static Sandbox {
    Sandbox::shared("proxy_protocol")
}

/// Sends `bytes` on a new connection to `addr`; returns what came back until the close (or
/// 5 s) and whether the connection was closed.
fn exchange(addr: &str, bytes: &[u8]) -> (String, bool) {
    let mut c = RawConn::connect(addr);
    // A write error (reset because the peer closed first) is fine: what was read counts.
    let _ = c.stream().try_clone().unwrap().write_all(bytes);
    let (out, closed) = c.read_to_close(Duration::from_secs(5));
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The proxy still serves: a new connection answers PING and a GET.
fn proxy_lives(sb: &Sandbox) {
    let mut c = sb.raw();
    check(&mut c, &["PING"], "+PONG");
    check(&mut c, &["SET", "e2e-proto:alive", "yes"], "+OK");
    check(&mut c, &["GET", "e2e-proto:alive"], "yes");
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(sb.proxy_pid, 0) }, 0, "the proxy process is gone");
}

/// Malformed requests: the reply must be exactly Redis's (sent the same bytes directly), and
/// both close the connection.
#[test]
fn malformed_requests_get_redis_errors_and_close() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("malformed_requests_get_redis_errors_and_close");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad bulk length", b"*1\r\n$x\r\n".to_vec(), "-ERR Protocol error: invalid bulk length\r\n"),
        ("negative bulk length", b"*1\r\n$-1\r\n".to_vec(), "-ERR Protocol error: invalid bulk length\r\n"),
        ("bulk above 512 MB", b"*1\r\n$600000000\r\n".to_vec(), "-ERR Protocol error: invalid bulk length\r\n"),
        (
            "bulk of 512 MB + 1",
            b"*2\r\n$3\r\nSET\r\n$536870913\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        ("bad multibulk length", b"*x\r\n".to_vec(), "-ERR Protocol error: invalid multibulk length\r\n"),
        ("huge multibulk length", b"*3000000000\r\n".to_vec(), "-ERR Protocol error: invalid multibulk length\r\n"),
        ("not a bulk", b"*1\r\n+PING\r\n".to_vec(), "-ERR Protocol error: expected '$', got '+'\r\n"),
        ("unbalanced quotes", b"SET \"a b\r\n".to_vec(), "-ERR Protocol error: unbalanced quotes in request\r\n"),
        ("unbalanced single quotes", b"SET 'a b\r\n".to_vec(), "-ERR Protocol error: unbalanced quotes in request\r\n"),
        ("100 KB inline without newline", vec![b'a'; 100 * 1024], "-ERR Protocol error: too big inline request\r\n"),
        (
            "100 KB multibulk count",
            [b"*".as_slice(), &[b'1'; 100 * 1024]].concat(),
            "-ERR Protocol error: too big mbulk count string\r\n",
        ),
        (
            "100 KB bulk count",
            [b"*1\r\n$".as_slice(), &[b'1'; 100 * 1024]].concat(),
            "-ERR Protocol error: too big bulk count string\r\n",
        ),
        (
            "replies before the error come first",
            b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\nPING\r\n".to_vec(),
            "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    let direct = sb.groups[0].master.clone();
    for (what, bytes, want) in &cases {
        p.phase(what);
        let (got, closed) = exchange(&sb.proxy, bytes);
        assert_eq!(got, *want, "{what}: reply");
        assert!(closed, "{what}: the proxy must close the connection after a protocol error");
        let (from_redis, _) = exchange(&direct, bytes);
        assert_eq!(got, from_redis, "{what}: the proxy's reply differs from Redis's");
        proxy_lives(sb);
    }
}

#[test]
fn incomplete_requests_wait_for_the_rest() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("incomplete_requests_wait_for_the_rest");
    p.phase("a request that trickles in byte by byte is answered once complete");
    let mut c = sb.raw();
    let bytes = encode(&["SET", "e2e-proto:trickle", "slowly but surely"]);
    let mut w = c.stream().try_clone().unwrap();
    for b in &bytes {
        w.write_all(&[*b]).unwrap();
        // Pacing the writer (not synchronisation): every byte arrives in its own segment.
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.read(), Resp::ok());
    check(&mut c, &["GET", "e2e-proto:trickle"], "slowly but surely");

    p.phase("a declared 512 MB bulk is accepted as a header; the proxy waits for the data, without answering");
    let mut c = sb.raw();
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nonly a few bytes");
    let (got, closed) = c.read_to_close(Duration::from_millis(500));
    assert!(
        got.is_empty() && !closed,
        "no reply to an incomplete request: {:?} closed={closed}",
        String::from_utf8_lossy(&got)
    );
    drop(c);
    proxy_lives(sb);
}

#[test]
fn inline_commands_as_typed_in_telnet() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("inline_commands_as_typed_in_telnet");
    let mut c = sb.raw();
    // One command per round trip: each reply is read before the next line is typed.
    let mut line = |text: &str| -> Resp {
        c.send(text.as_bytes());
        c.read()
    };
    p.phase("SET/GET/PING/ECHO inline, with quotes, escapes and bare \\n line ends");
    assert_eq!(line("SET e2e-inline:a b\r\n"), Resp::ok());
    assert_eq!(line("GET e2e-inline:a\r\n"), Resp::bulk("b"));
    assert_eq!(line("set e2e-inline:a \"hello world\"\r\n"), Resp::ok());
    assert_eq!(line("get e2e-inline:a\r\n"), Resp::bulk("hello world"));
    assert_eq!(line("SET e2e-inline:a \"\\x41b\\n\"\n"), Resp::ok());
    assert_eq!(line("GET e2e-inline:a\n"), Resp::bulk("Ab\n"));
    assert_eq!(line("SET e2e-inline:a 'single quoted' \r\n"), Resp::ok());
    assert_eq!(line("GET e2e-inline:a\r\n"), Resp::bulk("single quoted"));
    assert_eq!(line("   PING   \r\n"), Resp::Simple("PONG".into()));
    assert_eq!(line("\r\n\r\nPING\r\n"), Resp::Simple("PONG".into()));
    assert_eq!(line("ECHO \"a b\"\r\n"), Resp::bulk("a b"));
    assert_eq!(line("MSET e2e-inline:x 1 e2e-inline:y 2\r\n"), Resp::ok());
    assert_eq!(
        line("MGET e2e-inline:x e2e-inline:y e2e-inline:z\r\n"),
        Resp::Array(vec![Resp::bulk("1"), Resp::bulk("2"), Resp::Nil])
    );
    assert_eq!(line("NOSUCHCMD a\r\n"), Resp::err("ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' "));
    p.phase("inline and RESP requests mixed on one connection");
    c.send(b"PING\r\n");
    c.send(&encode(&["ECHO", "resp"]));
    c.send(b"ECHO inline\r\n");
    assert_eq!(c.read(), Resp::Simple("PONG".into()));
    assert_eq!(c.read(), Resp::bulk("resp"));
    assert_eq!(c.read(), Resp::bulk("inline"));
}

#[test]
fn binary_safe_keys_and_values() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("binary_safe_keys_and_values");
    let mut c = sb.raw();
    let every_byte: Vec<u8> = (0..=255u8).collect();
    p.phase("a key and a value holding every byte value, CRLF and NUL included");
    let key = [b"e2e-bin:".as_slice(), &every_byte].concat();
    let value = [every_byte.as_slice(), b"\r\n$5\r\n*1\r\n", &every_byte].concat();
    c.send(&encode(&[b"SET".as_slice(), &key, &value]));
    assert_eq!(c.read(), Resp::ok());
    c.send(&encode(&[b"GET".as_slice(), &key]));
    assert_eq!(c.read(), Resp::Bulk(value.clone()));
    let owner = sb.group_of(&key);
    let mut m = sb.master_conn(owner);
    let direct: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut m).unwrap();
    assert_eq!(direct, value, "stored byte for byte on the owning master");
    p.phase("empty key and empty value");
    check(&mut c, &["SET", "", ""], "+OK");
    check(&mut c, &["GET", ""], "");
    check(&mut c, &["STRLEN", ""], ":0");
    check(&mut c, &["DEL", ""], ":1");
}

#[test]
fn large_values() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("large_values");
    let mut c = sb.raw();
    let big: Vec<u8> = (0..20 * 1024 * 1024).map(|i: usize| (i % 251) as u8).collect();
    p.phase("a 20 MB value through SET and GET");
    let started = Instant::now();
    c.send(&encode(&[b"SET".as_slice(), b"e2e-big:one", &big]));
    assert_eq!(c.read(), Resp::ok());
    c.send(&encode(&[b"GET".as_slice(), b"e2e-big:one"]));
    assert!(c.read() == Resp::Bulk(big.clone()), "the 20 MB value came back changed");
    p.phase(&format!("20 MB round trip in {:?}", started.elapsed()));

    p.phase("MGET of two 5 MB values on different groups");
    let k1 = sb.keys_in_group("e2e-big", 0, 1).remove(0);
    let k2 = sb.keys_in_group("e2e-big", 1, 1).remove(0);
    let v1 = vec![b'1'; 5 * 1024 * 1024];
    let v2 = vec![b'2'; 5 * 1024 * 1024];
    c.send(&encode(&[b"MSET".as_slice(), k1.as_bytes(), &v1, k2.as_bytes(), &v2]));
    assert_eq!(c.read(), Resp::ok());
    c.send(&encode(&["MGET", &k2, "e2e-big:none", &k1]));
    assert!(c.read() == Resp::Array(vec![Resp::Bulk(v2), Resp::Nil, Resp::Bulk(v1)]), "MGET of 5 MB values");
    check(&mut c, &["DEL", "e2e-big:one", &k1, &k2], ":3");
}

#[test]
fn half_closed_client_gets_its_replies() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("half_closed_client_gets_its_replies");
    p.phase("requests, then shutdown(write): the replies still arrive, then EOF");
    let mut c = sb.raw();
    c.send(b"PING\r\n");
    c.send(&encode(&["ECHO", "bye"]));
    c.stream().shutdown(Shutdown::Write).unwrap();
    let (out, closed) = c.read_to_close(Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&out), "+PONG\r\n$3\r\nbye\r\n");
    assert!(closed, "the proxy closes after the client's EOF once the replies are out");
}

#[test]
fn many_concurrent_connections() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("many_concurrent_connections");
    p.phase("200 connections at once, each writing and reading its own keys");
    let addr = sb.proxy.clone();
    let threads: Vec<_> = (0..200)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = RawConn::connect(&addr);
                for i in 0..20 {
                    let k = format!("e2e-many:{t}:{i}");
                    let v = format!("{t}-{i}");
                    if c.cmd(&["SET", &k, &v]) != Resp::ok() {
                        return Err(format!("SET {k} failed"));
                    }
                    let got = c.cmd(&["GET", &k]);
                    if got != Resp::bulk(&v) {
                        return Err(format!("GET {k}: {got}"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    let errors: Vec<String> = threads.into_iter().filter_map(|t| t.join().unwrap().err()).collect();
    assert!(errors.is_empty(), "{} connections failed: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    let mut c = sb.raw();
    let info = c.cmd(&["INFO", "clients"]).as_text().unwrap();
    assert!(info.contains("connected_clients:"), "INFO clients: {info}");
}
