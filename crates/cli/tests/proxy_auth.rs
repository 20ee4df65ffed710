//! Authentication at the proxy and towards the backends, with a real ZooKeeper, two Redis
//! groups of one server each and `zedis proxy` child processes (no controller: the topology's
//! masters are as created):
//!
//! - a proxy with `--password` (the `default` user, admin) and users `ro` (read), `rw` (write)
//!   and `adm` (admin): what an unauthenticated client may run, `AUTH` / `HELLO AUTH` /
//!   `RESET` / `ACL WHOAMI`, and which commands each role may run, in and out of `MULTI`;
//! - Redis servers with `requirepass`: a proxy with the right `--backend-password` serves every
//!   kind of connection (shared, blocking, subscription, transaction) on both groups; with a
//!   wrong or no backend password, requests fail at once with an error that says why.

mod common;
mod proxy_common;
mod proxy_faults_common;

use std::time::{Duration, Instant};

use common::Harness;
use proxy_common::{encode, Resp};
use proxy_faults_common::{server_client, server_values, Client, ProxyProc};

const ADMIN_PW: &str = "adm1n-pw";
const BACKEND_PW: &str = "s3cret";
const NOAUTH: &str = "-NOAUTH Authentication required.";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.";

fn noperm(cmd: &str) -> String {
    format!("-NOPERM this user has no permissions to run the '{cmd}' command")
}

fn proxy(h: &Harness, id: &str, args: &[&str]) -> ProxyProc {
    let p = ProxyProc::spawn(&h.zk.connect_string(), &h.cluster, h.dir.path(), id, &[], args);
    h.phase(&format!("proxy {id} on {}", p.addr));
    p
}

/// ZooKeeper, two single-server groups, and a proxy with a password and three users.
fn secured(test: &str) -> (Harness, ProxyProc) {
    let h = Harness::start(test, &[1, 1]);
    h.create_cluster(&[]);
    let p = proxy(
        &h,
        "auth",
        &["--password", ADMIN_PW, "--user", "ro:ro-pw:read", "--user", "rw:rw-pw:write", "--user", "adm:adm-pw:admin"],
    );
    p.wait_epoch(1, &[ADMIN_PW], Duration::from_secs(10));
    (h, p)
}

fn connect(addr: &str) -> Client {
    Client::connect(addr, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `args` and returns the reply rendered as `proxy_common::check` does.
fn show(c: &mut Client, args: &[&str]) -> String {
    c.call(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).to_string()
}

#[track_caller]
fn check(c: &mut Client, args: &[&str], want: &str) {
    assert_eq!(show(c, args), want, "reply to {args:?}");
}

/// A connection authenticated as `user` (`default` uses the one-argument AUTH).
fn login(addr: &str, user: &str, password: &str) -> Client {
    let mut c = connect(addr);
    if user == "default" {
        check(&mut c, &["AUTH", password], "+OK");
    } else {
        check(&mut c, &["AUTH", user, password], "+OK");
    }
    c
}

/// `(from, to, group id)` slot ranges from `status --json`.
fn slot_ranges(h: &Harness) -> Vec<(u16, u16, u64)> {
    let st = h.status();
    st["slots"]
        .as_array()
        .unwrap_or_else(|| panic!("status has no slots: {st}"))
        .iter()
        .map(|r| {
            (
                r["from"].as_u64().unwrap_or(0) as u16,
                r["to"].as_u64().unwrap_or(0) as u16,
                r["group"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The id of the group that owns `key`.
fn group_of(ranges: &[(u16, u16, u64)], key: &str) -> u64 {
    let slot = zedis_topology::key_slot(key.as_bytes());
    ranges
        .iter()
        .find(|(f, t, _)| (*f..=*t).contains(&slot))
        .map(|r| r.2)
        .unwrap_or_else(|| panic!("slot {slot} unowned"))
}

#[test]
fn unauthenticated_clients_get_noauth_until_they_authenticate() {
    let (h, p) = secured("auth-noauth");
    let mut c = connect(&p.addr);

    h.phase("before AUTH every command but AUTH, HELLO AUTH, QUIT and RESET gets NOAUTH");
    for args in [
        &["GET", "na:k"][..],
        &["SET", "na:k", "v"],
        &["PING"],
        &["INFO"],
        &["ACL", "WHOAMI"],
        &["MGET", "na:a", "na:b"],
        &["SCAN", "0"],
        &["SUBSCRIBE", "na:ch"],
        &["PUBLISH", "na:ch", "m"],
        &["MULTI"],
        &["FLUSHALL"],
        &["CLIENT", "SETNAME", "x"],
        &["HELLO", "2"],
    ] {
        check(&mut c, args, NOAUTH);
    }

    h.phase("wrong passwords and unknown users get WRONGPASS, and stay unauthenticated");
    check(&mut c, &["AUTH", "nope"], WRONGPASS);
    check(&mut c, &["AUTH", "default", "nope"], WRONGPASS);
    check(&mut c, &["AUTH", "ro", "rw-pw"], WRONGPASS);
    check(&mut c, &["AUTH", "ghost", ADMIN_PW], WRONGPASS);
    check(&mut c, &["AUTH", "a", "b", "c"], "-ERR syntax error");
    check(&mut c, &["HELLO", "2", "AUTH", "rw", "nope"], WRONGPASS);
    check(&mut c, &["GET", "na:k"], NOAUTH);

    h.phase("a pipeline: the commands before AUTH are refused, the ones after it run");
    let mut batch = encode(&["SET", "na:k", "early"]);
    batch.extend(encode(&["AUTH", ADMIN_PW]));
    batch.extend(encode(&["SET", "na:k", "late"]));
    batch.extend(encode(&["GET", "na:k"]));
    batch.extend(encode(&["ACL", "WHOAMI"]));
    c.send_raw(&batch);
    let replies: Vec<String> = (0..5).map(|_| c.read().expect("pipelined reply").to_string()).collect();
    assert_eq!(replies, [NOAUTH, "+OK", "+OK", "late", "default"]);

    h.phase("a failed AUTH keeps the current user (as Redis)");
    check(&mut c, &["AUTH", "rw", "nope"], WRONGPASS);
    check(&mut c, &["ACL", "WHOAMI"], "default");
    check(&mut c, &["GET", "na:k"], "late");

    h.phase("RESET drops the authentication");
    check(&mut c, &["RESET"], "+RESET");
    check(&mut c, &["GET", "na:k"], NOAUTH);
    check(&mut c, &["ACL", "WHOAMI"], NOAUTH);

    h.phase("HELLO 2 AUTH user password authenticates and answers the HELLO reply");
    let hello = c.call(&["HELLO", "2", "AUTH", "ro", "ro-pw"]).expect("HELLO");
    let fields = hello.as_array().unwrap_or_else(|| panic!("HELLO answered {hello}"));
    let text: Vec<String> = fields.iter().filter_map(Resp::as_text).collect();
    assert!(text.windows(2).any(|w| w[0] == "server" && w[1] == "zedis"), "HELLO answered {hello}");
    assert!(fields.windows(2).any(|w| w[0] == Resp::bulk("proto") && w[1] == Resp::Int(2)), "HELLO answered {hello}");
    check(&mut c, &["ACL", "WHOAMI"], "ro");
    check(&mut c, &["GET", "na:k"], "late");
    check(&mut c, &["AUTH", "default", ADMIN_PW], "+OK");
    check(&mut c, &["ACL", "WHOAMI"], "default");
    check(&mut c, &["AUTH", "adm", "adm-pw"], "+OK");
    check(&mut c, &["ACL", "WHOAMI"], "adm");

    h.phase("QUIT works unauthenticated: +OK, then the proxy closes the connection");
    let mut q = connect(&p.addr);
    check(&mut q, &["QUIT"], "+OK");
    let after = q.read();
    assert!(after.is_err(), "the connection should be closed after QUIT, got {after:?}");
    let mut r = connect(&p.addr);
    check(&mut r, &["RESET"], "+RESET");
    check(&mut r, &["GET", "na:k"], NOAUTH);
}

#[test]
fn roles_limit_what_each_user_may_run() {
    let (h, p) = secured("auth-roles");
    let ranges = slot_ranges(&h);
    let keys: Vec<String> = (0..20).map(|i| format!("ro:{i}")).collect();
    let groups: std::collections::BTreeSet<u64> = keys.iter().map(|k| group_of(&ranges, k)).collect();
    assert_eq!(groups.len(), 2, "the keys should span both groups");

    h.phase("rw (write): writes on both groups, no FLUSHALL/FLUSHDB");
    let mut rw = login(&p.addr, "rw", "rw-pw");
    check(&mut rw, &["ACL", "WHOAMI"], "rw");
    for k in &keys {
        check(&mut rw, &["SET", k, &format!("v-{k}")], "+OK");
    }
    check(&mut rw, &["MSET", "ro:m1", "1", "ro:m2", "2"], "+OK");
    check(&mut rw, &["DEL", "ro:m1", "ro:m2"], ":2");
    check(&mut rw, &["INCR", "ro:n"], ":1");
    check(&mut rw, &["PUBLISH", "ro:nobody", "m"], ":0");
    check(&mut rw, &["FLUSHALL"], &noperm("flushall"));
    check(&mut rw, &["FLUSHDB"], &noperm("flushdb"));
    check(&mut rw, &["MULTI"], "+OK");
    check(&mut rw, &["SET", "ro:tx", "1"], "+QUEUED");
    check(&mut rw, &["FLUSHALL"], &noperm("flushall"));
    check(&mut rw, &["EXEC"], "-EXECABORT Transaction discarded because of previous errors.");
    check(&mut rw, &["GET", "ro:tx"], "nil");

    h.phase("ro (read): reads, SCAN and SUBSCRIBE; every write is NOPERM");
    let mut ro = login(&p.addr, "ro", "ro-pw");
    check(&mut ro, &["ACL", "WHOAMI"], "ro");
    check(&mut ro, &["GET", "ro:3"], "v-ro:3");
    let mget: Vec<&str> = std::iter::once("MGET").chain(keys.iter().map(String::as_str)).collect();
    let want: Vec<String> = keys.iter().map(|k| format!("v-{k}")).collect();
    assert_eq!(show(&mut ro, &mget), format!("[{}]", want.join(", ")), "MGET across both groups");
    check(&mut ro, &["EXISTS", "ro:1", "ro:2", "ro:none"], ":2");
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..1000 {
        let reply = ro.call(&["SCAN", &cursor, "MATCH", "ro:*", "COUNT", "100"]).unwrap();
        let parts = reply.as_array().unwrap_or_else(|| panic!("SCAN answered {reply}"));
        cursor = parts[0].as_text().unwrap();
        seen.extend(parts[1].as_array().unwrap().iter().filter_map(Resp::as_text));
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "SCAN did not finish");
    assert!(keys.iter().all(|k| seen.contains(k)), "SCAN as ro saw {seen:?}");
    for (args, cmd) in [
        (&["SET", "ro:1", "x"][..], "set"),
        (&["DEL", "ro:1"], "del"),
        (&["MSET", "ro:1", "x", "ro:2", "x"], "mset"),
        (&["INCR", "ro:n"], "incr"),
        (&["EXPIRE", "ro:1", "10"], "expire"),
        (&["PUBLISH", "ro:ch", "m"], "publish"),
        (&["FLUSHALL"], "flushall"),
        (&["FLUSHDB"], "flushdb"),
    ] {
        check(&mut ro, args, &noperm(cmd));
    }
    check(&mut ro, &["GET", "ro:1"], "v-ro:1");

    h.phase("ro: a NOPERM inside MULTI makes EXEC abort");
    check(&mut ro, &["MULTI"], "+OK");
    check(&mut ro, &["GET", "ro:1"], "+QUEUED");
    check(&mut ro, &["SET", "ro:1", "x"], &noperm("set"));
    check(&mut ro, &["EXEC"], "-EXECABORT Transaction discarded because of previous errors.");
    check(&mut ro, &["GET", "ro:1"], "v-ro:1");
    check(&mut ro, &["MULTI"], "+OK");
    check(&mut ro, &["GET", "ro:1"], "+QUEUED");
    check(&mut ro, &["EXEC"], "[v-ro:1]");

    h.phase("ro may SUBSCRIBE and receives what rw publishes");
    let mut sub = login(&p.addr, "ro", "ro-pw");
    check(&mut sub, &["SUBSCRIBE", "ro:news"], "[subscribe, ro:news, :1]");
    check(&mut rw, &["PUBLISH", "ro:news", "hello"], ":1");
    assert_eq!(sub.read().expect("message").to_string(), "[message, ro:news, hello]");

    h.phase("adm and the default user may FLUSHALL / FLUSHDB");
    let mut adm = login(&p.addr, "adm", "adm-pw");
    check(&mut adm, &["ACL", "WHOAMI"], "adm");
    check(&mut adm, &["FLUSHALL"], "+OK");
    check(&mut ro, &["GET", "ro:1"], "nil");
    check(&mut rw, &["SET", "ro:again", "1"], "+OK");
    let mut def = login(&p.addr, "default", ADMIN_PW);
    check(&mut def, &["FLUSHDB"], "+OK");
    check(&mut def, &["FLUSHALL"], "+OK");
    check(&mut ro, &["GET", "ro:again"], "nil");
    check(&mut def, &["DBSIZE"], ":0");
}

/// Scripts run whatever Redis commands they contain: a `read` user must not be able to write
/// through `EVAL` (Redis ACLs put EVAL in `@scripting`, outside `@read`).
/// `command_table::may_write` counts scripts and functions as writes (only their `_RO`
/// variants are reads), so `auth::permitted` refuses them to a read user.
#[test]
fn a_read_user_cannot_write_through_a_script() {
    let (h, p) = secured("auth-eval");
    let mut ro = login(&p.addr, "ro", "ro-pw");
    let reply = show(&mut ro, &["EVAL", "return redis.call('set', KEYS[1], ARGV[1])", "1", "ev:k", "written"]);
    let mut rw = login(&p.addr, "rw", "rw-pw");
    let value = show(&mut rw, &["GET", "ev:k"]);
    h.phase(&format!("ro's EVAL answered {reply}; ev:k is now {value}"));
    assert!(reply.starts_with("-NOPERM"), "a read user ran a writing script: {reply}; ev:k = {value}");
    assert_eq!(value, "nil");
}

/// Backends with `requirepass`: the proxy authenticates every kind of backend connection
/// with `--backend-password`; with a wrong or missing one, clients get a prompt error.
#[test]
fn backends_with_requirepass() {
    let h = Harness::start("auth-backend", &[1, 1]);
    let servers = [h.addr(0, 0), h.addr(1, 0)];
    h.phase("set requirepass on both servers");
    for s in &servers {
        let mut c = server_client(s, None).unwrap();
        check(&mut c, &["CONFIG", "SET", "requirepass", BACKEND_PW], "+OK");
        let mut anon = server_client(s, None).unwrap();
        check(&mut anon, &["GET", "x"], NOAUTH);
    }
    // The CLI's server check cannot authenticate to Redis, hence --no-check.
    h.zedis_ok(&["cluster", "create", "--group", &servers[0], "--group", &servers[1], "--no-check"]);
    let ranges = slot_ranges(&h);
    let keys: Vec<String> = (0..20).map(|i| format!("bp:{i}")).collect();

    h.phase("a proxy with the right --backend-password serves both groups");
    let p = proxy(&h, "good", &["--backend-password", BACKEND_PW]);
    p.wait_epoch(1, &[], Duration::from_secs(10));
    let mut c = connect(&p.addr);
    for k in &keys {
        check(&mut c, &["SET", k, &format!("v-{k}")], "+OK");
    }
    for k in &keys {
        check(&mut c, &["GET", k], &format!("v-{k}"));
    }
    let mget: Vec<&str> = std::iter::once("MGET").chain(keys.iter().map(String::as_str)).collect();
    let want: Vec<String> = keys.iter().map(|k| format!("v-{k}")).collect();
    assert_eq!(show(&mut c, &mget), format!("[{}]", want.join(", ")), "MGET across both groups");
    for (g, server) in servers.iter().enumerate() {
        let mine: Vec<String> = keys.iter().filter(|k| group_of(&ranges, k) == g as u64 + 1).cloned().collect();
        assert!(!mine.is_empty(), "no key of group {}", g + 1);
        let values = server_values(server, Some(BACKEND_PW), &mine).unwrap();
        assert!(values.iter().all(Option::is_some), "group {} server {server} lacks its keys: {values:?}", g + 1);
    }

    h.phase("blocking, transaction and subscription connections authenticate too");
    check(&mut c, &["BLPOP", "bp:empty", "0.1"], "nil*");
    check(&mut c, &["RPUSH", "bp:list", "x"], ":1");
    check(&mut c, &["BLPOP", "bp:list", "1"], "[bp:list, x]");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["INCR", "bp:tx"], "+QUEUED");
    check(&mut c, &["INCR", "bp:tx"], "+QUEUED");
    check(&mut c, &["EXEC"], "[:1, :2]");
    check(&mut c, &["WATCH", "bp:tx"], "+OK");
    check(&mut c, &["MULTI"], "+OK");
    check(&mut c, &["SET", "bp:tx", "w"], "+QUEUED");
    check(&mut c, &["EXEC"], "[+OK]");
    let mut sub = connect(&p.addr);
    check(&mut sub, &["SUBSCRIBE", "bp:ch0", "bp:ch1", "bp:ch2"], "[subscribe, bp:ch0, :1]");
    assert_eq!(sub.read().unwrap().to_string(), "[subscribe, bp:ch1, :2]");
    assert_eq!(sub.read().unwrap().to_string(), "[subscribe, bp:ch2, :3]");
    for ch in ["bp:ch0", "bp:ch1", "bp:ch2"] {
        check(&mut c, &["PUBLISH", ch, "hi"], ":1");
        assert_eq!(sub.read().unwrap().to_string(), format!("[message, {ch}, hi]"));
    }
    check(&mut c, &["DBSIZE"], ":21");

    h.phase("a proxy with a wrong --backend-password fails fast with an error that says why");
    let bad = proxy(&h, "bad", &["--backend-password", "wrong"]);
    bad.wait_epoch(1, &[], Duration::from_secs(10));
    let mut b = connect(&bad.addr);
    for args in [&["GET", "bp:1"][..], &["SET", "bp:1", "x"], &["MGET", "bp:1", "bp:2", "bp:3"], &["DBSIZE"]] {
        for _ in 0..3 {
            let t = Instant::now();
            let reply = show(&mut b, args);
            let took = t.elapsed();
            assert!(
                reply.starts_with('-') && (reply.contains("AUTH") || reply.contains("unreachable")),
                "{args:?} through a proxy with a wrong backend password answered {reply}"
            );
            assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
            eprintln!("    {args:?} -> {reply} ({:.0} ms)", took.as_secs_f64() * 1000.0);
        }
    }

    h.phase("a proxy without a backend password passes the servers' NOAUTH on");
    let none = proxy(&h, "none", &[]);
    none.wait_epoch(1, &[], Duration::from_secs(10));
    let mut n = connect(&none.addr);
    let t = Instant::now();
    let reply = show(&mut n, &["GET", "bp:1"]);
    assert!(reply.starts_with("-NOAUTH"), "GET through a proxy without the backend password answered {reply}");
    assert!(t.elapsed() < Duration::from_secs(3));
    check(&mut c, &["GET", "bp:1"], "v-bp:1");
}
