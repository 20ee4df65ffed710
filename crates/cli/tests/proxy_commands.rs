//! The proxy end to end, command family by command family, through a 2-group `zedis up`
//! sandbox shared by the tests of this file (each test uses its own keys): exact replies for
//! strings, bitmaps, hashes, lists, sets, sorted sets, HyperLogLog, geo, streams, generic key
//! commands and scripts; CROSSSLOT for multi-key commands whose keys are in different slots;
//! keys land on the group that owns their slot; MGET/MSET/DEL/EXISTS/UNLINK/TOUCH split over
//! both groups with exact merging; a 10,000-command pipeline; the commands the proxy answers
//! itself; refused and malformed commands with Redis's exact texts.

mod proxy_common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_common::{check, show, DumpOnPanic, Phases, RawConn, Resp, Sandbox, CROSSSLOT};
use redis::Value;

fn sandbox() -> &'static Sandbox {
    Sandbox::shared("proxy_commands")
}

/// A key in a different group (hence a different slot) than `key`.
fn far_key(sb: &Sandbox, key: &str, prefix: &str) -> String {
    let g = sb.group_of(key.as_bytes());
    sb.keys_in_group(prefix, 1 - g, 1).remove(0)
}

fn int(c: &mut RawConn, args: &[&str]) -> i64 {
    let r = c.cmd(args);
    r.as_int().unwrap_or_else(|| panic!("{args:?}: expected an integer, got {r}"))
}

#[test]
fn strings() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("strings");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-str}}{s}");
    let (a, b, n, s, x, y, z) = (k("a"), k("b"), k("n"), k("s"), k("x"), k("y"), k("z"));
    let far = far_key(sb, &a, "e2e-str-far");

    p.phase("SET with EX/PX/NX/XX/GET, GET, GETSET, GETDEL, GETEX");
    check(&mut c, &["SET", &a, "hello", "EX", "100"], "+OK");
    let ttl = int(&mut c, &["TTL", &a]);
    assert!((95..=100).contains(&ttl), "TTL after SET EX 100: {ttl}");
    check(&mut c, &["SET", &a, "other", "NX"], "nil");
    check(&mut c, &["GET", &a], "hello");
    check(&mut c, &["SET", &a, "world", "XX", "GET"], "hello");
    check(&mut c, &["TTL", &a], ":-1");
    check(&mut c, &["SET", &b, "v", "XX"], "nil");
    check(&mut c, &["GET", &b], "nil");
    check(&mut c, &["SET", &b, "v", "PX", "100000"], "+OK");
    let pttl = int(&mut c, &["PTTL", &b]);
    assert!((90_000..=100_000).contains(&pttl), "PTTL after SET PX 100000: {pttl}");
    check(&mut c, &["GETSET", &a, "third"], "world");
    check(&mut c, &["GETDEL", &a], "third");
    check(&mut c, &["EXISTS", &a], ":0");
    check(&mut c, &["GETDEL", &a], "nil");
    check(&mut c, &["SET", &n, "10"], "+OK");
    check(&mut c, &["GETEX", &n, "EX", "50"], "10");
    let ttl = int(&mut c, &["TTL", &n]);
    assert!((45..=50).contains(&ttl), "TTL after GETEX EX 50: {ttl}");
    check(&mut c, &["GETEX", &n, "PERSIST"], "10");
    check(&mut c, &["TTL", &n], ":-1");

    p.phase("APPEND, STRLEN, SETRANGE, GETRANGE, counters");
    check(&mut c, &["APPEND", &s, "abc"], ":3");
    check(&mut c, &["APPEND", &s, "def"], ":6");
    check(&mut c, &["STRLEN", &s], ":6");
    check(&mut c, &["SETRANGE", &s, "1", "XY"], ":6");
    check(&mut c, &["GETRANGE", &s, "0", "-1"], "aXYdef");
    check(&mut c, &["GETRANGE", &s, "-3", "-1"], "def");
    check(&mut c, &["INCR", &n], ":11");
    check(&mut c, &["INCRBY", &n, "5"], ":16");
    check(&mut c, &["DECR", &n], ":15");
    check(&mut c, &["DECRBY", &n, "5"], ":10");
    check(&mut c, &["INCRBYFLOAT", &n, "1.5"], "11.5");
    check(&mut c, &["INCR", &s], "-ERR value is not an integer or out of range");
    check(&mut c, &["SETNX", &x, "1"], ":1");
    check(&mut c, &["SETNX", &x, "2"], ":0");
    check(&mut c, &["SETEX", &y, "30", "sv"], "+OK");
    check(&mut c, &["PSETEX", &z, "30000", "pv"], "+OK");
    check(&mut c, &["MGET", &x, &y, &z], "[1, sv, pv]");

    p.phase("MSETNX: same slot through hash tags, CROSSSLOT otherwise");
    let (m1, m2, m3) = (k("m1"), k("m2"), k("m3"));
    check(&mut c, &["MSETNX", &m1, "1", &m2, "2"], ":1");
    check(&mut c, &["MSETNX", &m2, "3", &m3, "4"], ":0");
    check(&mut c, &["MGET", &m1, &m2, &m3], "[1, 2, nil]");
    check(&mut c, &["MSETNX", &m3, "1", &far, "2"], CROSSSLOT);
    check(&mut c, &["EXISTS", &m3, &far], ":0");

    p.phase("LCS on one slot, CROSSSLOT otherwise");
    let (l1, l2) = (k("l1"), k("l2"));
    check(&mut c, &["MSET", &l1, "ohmytext", &l2, "mynewtext"], "+OK");
    check(&mut c, &["LCS", &l1, &l2], "mytext");
    check(&mut c, &["LCS", &l1, &l2, "LEN"], ":6");
    check(&mut c, &["LCS", &l1, &far], CROSSSLOT);
    // Still usable after the errors.
    check(&mut c, &["GET", &l1], "ohmytext");
}

#[test]
fn bitmaps() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("bitmaps");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-bit}}{s}");
    let (b, s, b1, b2, dst, bf) = (k("b"), k("s"), k("b1"), k("b2"), k("dst"), k("bf"));
    let far = far_key(sb, &b, "e2e-bit-far");

    p.phase("SETBIT, GETBIT, BITCOUNT, BITPOS");
    check(&mut c, &["SETBIT", &b, "7", "1"], ":0");
    check(&mut c, &["SETBIT", &b, "7", "1"], ":1");
    check(&mut c, &["GETBIT", &b, "7"], ":1");
    check(&mut c, &["GETBIT", &b, "100"], ":0");
    check(&mut c, &["SET", &s, "foobar"], "+OK");
    check(&mut c, &["BITCOUNT", &s], ":26");
    check(&mut c, &["BITCOUNT", &s, "1", "1"], ":6");
    c.send(&proxy_common::encode(&[b"SET".as_slice(), s.as_bytes(), b"\xff\xf0\x00"]));
    assert_eq!(c.read(), Resp::ok());
    check(&mut c, &["BITPOS", &s, "0"], ":12");
    check(&mut c, &["BITPOS", &b, "1"], ":7");

    p.phase("BITOP on one slot, CROSSSLOT otherwise");
    check(&mut c, &["MSET", &b1, "abc", &b2, "abd"], "+OK");
    check(&mut c, &["BITOP", "AND", &dst, &b1, &b2], ":3");
    check(&mut c, &["GET", &dst], "ab`");
    check(&mut c, &["BITOP", "OR", &dst, &b1, &b2], ":3");
    check(&mut c, &["GET", &dst], "abg");
    check(&mut c, &["BITOP", "XOR", &dst, &b1, &b2], ":3");
    check(&mut c, &["GET", &dst], "\\x00\\x00\\x07");
    check(&mut c, &["BITOP", "AND", &dst, &b1, &far], CROSSSLOT);
    check(&mut c, &["BITOP", "AND", &far, &b1, &b2], CROSSSLOT);

    p.phase("BITFIELD and BITFIELD_RO");
    check(
        &mut c,
        &["BITFIELD", &bf, "SET", "u8", "0", "200", "GET", "u8", "0", "INCRBY", "u8", "0", "100"],
        "[:0, :200, :44]",
    );
    check(&mut c, &["BITFIELD", &bf, "OVERFLOW", "SAT", "INCRBY", "u8", "0", "300"], "[:255]");
    check(&mut c, &["BITFIELD_RO", &bf, "GET", "u8", "0"], "[:255]");
}

#[test]
fn hashes() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("hashes");
    let mut c = sb.raw();
    // One hash on each group.
    let hashes = [sb.keys_in_group("e2e-hash", 0, 1).remove(0), sb.keys_in_group("e2e-hash", 1, 1).remove(0)];
    for h in &hashes {
        p.phase(&format!(
            "HSET/HGET/HMGET/HINCRBY*/HDEL/HGETALL/HSCAN on {h} (group {})",
            sb.group_of(h.as_bytes()) + 1
        ));
        let h = h.as_str();
        check(&mut c, &["HSET", h, "f1", "v1", "f2", "v2", "f3", "3"], ":3");
        check(&mut c, &["HSET", h, "f1", "v1"], ":0");
        check(&mut c, &["HGET", h, "f1"], "v1");
        check(&mut c, &["HGET", h, "nope"], "nil");
        check(&mut c, &["HMGET", h, "f1", "nope", "f2"], "[v1, nil, v2]");
        check(&mut c, &["HINCRBY", h, "f3", "4"], ":7");
        check(&mut c, &["HINCRBYFLOAT", h, "f3", "0.5"], "7.5");
        check(&mut c, &["HLEN", h], ":3");
        check(&mut c, &["HEXISTS", h, "f1"], ":1");
        check(&mut c, &["HEXISTS", h, "nope"], ":0");
        check(&mut c, &["HDEL", h, "f2", "nope"], ":1");
        check(&mut c, &["HSETNX", h, "f1", "x"], ":0");
        check(&mut c, &["HSETNX", h, "f4", "x"], ":1");
        check(&mut c, &["HSTRLEN", h, "f1"], ":2");
        check(&mut c, &["HGETALL", h], "[f1, v1, f3, 7.5, f4, x]");
        check(&mut c, &["HKEYS", h], "[f1, f3, f4]");
        check(&mut c, &["HVALS", h], "[v1, 7.5, x]");
        let field = c.cmd(&["HRANDFIELD", h]).as_text().expect("HRANDFIELD gives a field");
        assert!(["f1", "f3", "f4"].contains(&field.as_str()), "HRANDFIELD gave {field}");
        check(&mut c, &["HINCRBY", h, "f1", "1"], "-ERR hash value is not an integer");
        check(&mut c, &["GET", h], "-WRONGTYPE Operation against a key holding the wrong kind of value");
    }

    p.phase("HSCAN of a 300-field hash sees every field once");
    let big = format!("{}:big", hashes[1]);
    let mut args = vec!["HSET".to_string(), big.clone()];
    for i in 0..300 {
        args.push(format!("field{i}"));
        args.push(i.to_string());
    }
    assert_eq!(c.cmd(&args), Resp::Int(300));
    let mut seen = HashMap::new();
    let mut cursor = "0".to_string();
    loop {
        let r = c.cmd(&["HSCAN", &big, &cursor, "COUNT", "50"]);
        let [next, items] = r.as_array().expect("HSCAN array") else { panic!("HSCAN reply {r}") };
        for pair in items.as_array().expect("HSCAN items").chunks(2) {
            *seen.entry(pair[0].as_text().unwrap()).or_insert(0) += 1;
            assert_eq!(pair[0].as_text().unwrap(), format!("field{}", pair[1].as_text().unwrap()));
        }
        cursor = next.as_text().unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|n| *n == 1), "HSCAN returned a field twice");
}

#[test]
fn lists() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("lists");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-list}}{s}");
    let (a, b, x, y) = (k("a"), k("b"), k("x"), k("y"));
    let far = far_key(sb, &a, "e2e-list-far");

    p.phase("push, range, LPOS, LINDEX, LSET, LINSERT, LREM, LTRIM");
    check(&mut c, &["RPUSH", &a, "1", "2", "3", "4", "5"], ":5");
    check(&mut c, &["LPUSH", &a, "0"], ":6");
    check(&mut c, &["LRANGE", &a, "0", "-1"], "[0, 1, 2, 3, 4, 5]");
    check(&mut c, &["LPOS", &a, "3"], ":3");
    check(&mut c, &["LPOS", &a, "9"], "nil");
    check(&mut c, &["RPUSH", &a, "3"], ":7");
    check(&mut c, &["LPOS", &a, "3", "RANK", "2"], ":6");
    check(&mut c, &["LPOS", &a, "3", "COUNT", "0"], "[:3, :6]");
    check(&mut c, &["LINDEX", &a, "2"], "2");
    check(&mut c, &["LLEN", &a], ":7");
    check(&mut c, &["LSET", &a, "0", "zero"], "+OK");
    check(&mut c, &["LINSERT", &a, "BEFORE", "3", "2.5"], ":8");
    check(&mut c, &["LREM", &a, "1", "2.5"], ":1");
    check(&mut c, &["LTRIM", &a, "0", "4"], "+OK");
    check(&mut c, &["LRANGE", &a, "0", "-1"], "[zero, 1, 2, 3, 4]");
    check(&mut c, &["LPUSHX", &x, "v"], ":0");

    p.phase("LMOVE / RPOPLPUSH on one slot, CROSSSLOT otherwise");
    check(&mut c, &["LMOVE", &a, &b, "LEFT", "RIGHT"], "zero");
    check(&mut c, &["RPOPLPUSH", &a, &b], "4");
    // RPOPLPUSH pushes on the head of the destination.
    check(&mut c, &["LRANGE", &b, "0", "-1"], "[4, zero]");
    check(&mut c, &["LMOVE", &a, &far, "LEFT", "RIGHT"], CROSSSLOT);
    check(&mut c, &["RPOPLPUSH", &far, &a], CROSSSLOT);
    check(&mut c, &["LRANGE", &a, "0", "-1"], "[1, 2, 3]");

    p.phase("LMPOP, LPOP, RPOP");
    check(&mut c, &["LMPOP", "2", &x, &a, "LEFT", "COUNT", "2"], &format!("[{a}, [1, 2]]"));
    check(&mut c, &["LMPOP", "2", &x, &y, "LEFT"], "nil*");
    check(&mut c, &["LMPOP", "2", &x, &far, "LEFT"], CROSSSLOT);
    check(&mut c, &["LPOP", &a], "3");
    check(&mut c, &["RPOP", &a], "nil");
    check(&mut c, &["EXISTS", &a], ":0");
    check(&mut c, &["RPOP", &b, "2"], "[zero, 4]");
}

#[test]
fn sets() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("sets");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-set}}{s}");
    let (s1, s2, s3, s4, s5) = (k("s1"), k("s2"), k("s3"), k("s4"), k("s5"));
    let far = far_key(sb, &s1, "e2e-set-far");
    let sorted = |c: &mut RawConn, args: &[&str]| -> Vec<String> {
        let r = c.cmd(args);
        let mut v: Vec<String> =
            r.as_array().unwrap_or_else(|| panic!("{args:?}: {r}")).iter().map(|m| m.as_text().unwrap()).collect();
        v.sort();
        v
    };

    p.phase("SADD, SINTER/SUNION/SDIFF and their STORE forms on one slot");
    check(&mut c, &["SADD", &s1, "a", "b", "c", "d"], ":4");
    check(&mut c, &["SADD", &s2, "c", "d", "e"], ":3");
    assert_eq!(sorted(&mut c, &["SINTER", &s1, &s2]), ["c", "d"]);
    assert_eq!(sorted(&mut c, &["SUNION", &s1, &s2]), ["a", "b", "c", "d", "e"]);
    assert_eq!(sorted(&mut c, &["SDIFF", &s1, &s2]), ["a", "b"]);
    check(&mut c, &["SUNIONSTORE", &s3, &s1, &s2], ":5");
    check(&mut c, &["SINTERSTORE", &s4, &s1, &s2], ":2");
    check(&mut c, &["SDIFFSTORE", &s5, &s1, &s2], ":2");
    assert_eq!(sorted(&mut c, &["SMEMBERS", &s5]), ["a", "b"]);
    check(&mut c, &["SMISMEMBER", &s1, "a", "x", "c"], "[:1, :0, :1]");
    check(&mut c, &["SINTERCARD", "2", &s1, &s2], ":2");
    check(&mut c, &["SINTERCARD", "2", &s1, &s2, "LIMIT", "1"], ":1");
    check(&mut c, &["SISMEMBER", &s1, "a"], ":1");
    check(&mut c, &["SMOVE", &s1, &s2, "a"], ":1");
    check(&mut c, &["SCARD", &s2], ":4");
    check(&mut c, &["SREM", &s2, "e", "zz"], ":1");
    let m = c.cmd(&["SRANDMEMBER", &s1]).as_text().unwrap();
    assert!(["b", "c", "d"].contains(&m.as_str()), "SRANDMEMBER gave {m}");
    let popped = sorted(&mut c, &["SPOP", &s3, "2"]);
    assert_eq!(popped.len(), 2);
    assert!(popped.iter().all(|m| ["a", "b", "c", "d", "e"].contains(&m.as_str())), "{popped:?}");
    check(&mut c, &["SCARD", &s3], ":3");

    p.phase("CROSSSLOT for sets in different slots");
    check(&mut c, &["SINTER", &s1, &far], CROSSSLOT);
    check(&mut c, &["SUNIONSTORE", &s3, &s1, &far], CROSSSLOT);
    check(&mut c, &["SUNIONSTORE", &far, &s1, &s2], CROSSSLOT);
    check(&mut c, &["SINTERCARD", "2", &s1, &far], CROSSSLOT);
    check(&mut c, &["SMOVE", &s1, &far, "b"], CROSSSLOT);
    check(&mut c, &["SCARD", &s1], ":3");
}

#[test]
fn sorted_sets() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("sorted_sets");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-zset}}{s}");
    let (z, y, u, i, rs, nope) = (k("z"), k("y"), k("u"), k("i"), k("rs"), k("nope"));
    let far = far_key(sb, &z, "e2e-zset-far");

    p.phase("ZADD and its NX/XX/CH/GT/LT/INCR variants");
    check(&mut c, &["ZADD", &z, "1", "a", "2", "b", "3", "c"], ":3");
    check(&mut c, &["ZADD", &z, "NX", "5", "a", "4", "d"], ":1");
    check(&mut c, &["ZSCORE", &z, "a"], "1");
    check(&mut c, &["ZADD", &z, "XX", "CH", "10", "a", "7", "new"], ":1");
    check(&mut c, &["ZSCORE", &z, "new"], "nil");
    check(&mut c, &["ZADD", &z, "GT", "CH", "1", "b"], ":0");
    check(&mut c, &["ZADD", &z, "LT", "CH", "1", "b"], ":1");
    check(&mut c, &["ZADD", &z, "INCR", "5", "c"], "8");
    check(&mut c, &["ZADD", &z, "NX", "XX", "1", "a"], "-ERR XX and NX options at the same time are not compatible");

    p.phase("ZRANGE by rank, BYSCORE, REV, LIMIT; ranks and counts");
    check(&mut c, &["ZRANGE", &z, "0", "-1", "WITHSCORES"], "[b, 1, d, 4, c, 8, a, 10]");
    check(&mut c, &["ZRANGE", &z, "2", "9", "BYSCORE"], "[d, c]");
    check(&mut c, &["ZRANGE", &z, "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "0", "2"], "[a, c]");
    check(&mut c, &["ZRANGE", &z, "(10", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2"], "[d, b]");
    check(&mut c, &["ZRANGE", &z, "0", "-1", "REV"], "[a, c, d, b]");
    check(&mut c, &["ZRANGEBYSCORE", &z, "(1", "8"], "[d, c]");
    check(&mut c, &["ZREVRANGE", &z, "0", "0", "WITHSCORES"], "[a, 10]");
    check(&mut c, &["ZRANK", &z, "c"], ":2");
    check(&mut c, &["ZREVRANK", &z, "c"], ":1");
    check(&mut c, &["ZCOUNT", &z, "2", "9"], ":2");
    check(&mut c, &["ZINCRBY", &z, "2", "b"], "3");
    check(&mut c, &["ZMSCORE", &z, "a", "nope"], "[10, nil]");
    check(&mut c, &["ZCARD", &z], ":4");

    p.phase("ZUNIONSTORE / ZINTERSTORE / ZRANGESTORE on one slot, CROSSSLOT otherwise");
    check(&mut c, &["ZADD", &y, "1", "a", "7", "x"], ":2");
    check(&mut c, &["ZUNIONSTORE", &u, "2", &z, &y, "WEIGHTS", "1", "2"], ":5");
    check(&mut c, &["ZRANGE", &u, "0", "-1", "WITHSCORES"], "[b, 3, d, 4, c, 8, a, 12, x, 14]");
    check(&mut c, &["ZINTERSTORE", &i, "2", &z, &y], ":1");
    check(&mut c, &["ZRANGE", &i, "0", "-1", "WITHSCORES"], "[a, 11]");
    check(&mut c, &["ZRANGESTORE", &rs, &z, "0", "1"], ":2");
    check(&mut c, &["ZRANGE", &rs, "0", "-1"], "[b, d]");
    check(&mut c, &["ZUNIONSTORE", &u, "2", &z, &far], CROSSSLOT);
    check(&mut c, &["ZUNIONSTORE", &far, "2", &z, &y], CROSSSLOT);
    check(&mut c, &["ZRANGESTORE", &far, &z, "0", "1"], CROSSSLOT);
    check(&mut c, &["ZUNION", "2", &z, &far], CROSSSLOT);

    p.phase("ZMPOP, ZRANDMEMBER, ZPOPMAX");
    check(&mut c, &["ZMPOP", "2", &nope, &z, "MIN", "COUNT", "2"], &format!("[{z}, [[b, 3], [d, 4]]]"));
    check(&mut c, &["ZMPOP", "1", &nope, "MIN"], "nil*");
    check(&mut c, &["ZMPOP", "2", &z, &far, "MIN"], CROSSSLOT);
    let r = c.cmd(&["ZRANDMEMBER", &y, "-5"]);
    let members = r.as_array().unwrap_or_else(|| panic!("ZRANDMEMBER -5: {r}"));
    assert_eq!(members.len(), 5, "{r}");
    assert!(members.iter().all(|m| matches!(m.as_text().as_deref(), Some("a" | "x"))), "{r}");
    let r = c.cmd(&["ZRANDMEMBER", &y, "2", "WITHSCORES"]);
    let mut pairs: Vec<String> = r.as_array().unwrap().iter().map(|m| m.as_text().unwrap()).collect();
    pairs.sort();
    assert_eq!(pairs, ["1", "7", "a", "x"]);
    check(&mut c, &["ZPOPMAX", &z], "[a, 10]");
    check(&mut c, &["ZRANGE", &z, "0", "-1"], "[c]");
}

#[test]
fn hyperloglog() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("hyperloglog");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-hll}}{s}");
    let (h1, h2, h3) = (k("h1"), k("h2"), k("h3"));
    let far = far_key(sb, &h1, "e2e-hll-far");
    p.phase("PFADD, PFCOUNT of one and several keys, PFMERGE");
    check(&mut c, &["PFADD", &h1, "a", "b", "c", "d"], ":1");
    check(&mut c, &["PFADD", &h1, "a"], ":0");
    check(&mut c, &["PFADD", &h2, "c", "d", "e", "f"], ":1");
    check(&mut c, &["PFCOUNT", &h1], ":4");
    check(&mut c, &["PFCOUNT", &h1, &h2], ":6");
    check(&mut c, &["PFMERGE", &h3, &h1, &h2], "+OK");
    check(&mut c, &["PFCOUNT", &h3], ":6");
    check(&mut c, &["PFCOUNT", &h1, &far], CROSSSLOT);
    check(&mut c, &["PFMERGE", &far, &h1], CROSSSLOT);
    check(&mut c, &["PFMERGE", &h3, &far], CROSSSLOT);
}

#[test]
fn geo() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("geo");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-geo}}{s}");
    let (g, dst, d2) = (k("g"), k("dst"), k("d2"));
    let far = far_key(sb, &g, "e2e-geo-far");
    p.phase("GEOADD, GEODIST, GEOPOS, GEOHASH, GEOSEARCH");
    check(&mut c, &["GEOADD", &g, "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"], ":2");
    check(&mut c, &["GEODIST", &g, "Palermo", "Catania", "km"], "166.2742");
    check(&mut c, &["GEODIST", &g, "Palermo", "Nowhere"], "nil");
    let pos = show(&mut c, &["GEOPOS", &g, "Palermo"]);
    assert!(pos.starts_with("[[13.3613") && pos.contains(", 38.1155"), "GEOPOS: {pos}");
    check(&mut c, &["GEOHASH", &g, "Palermo", "Catania"], "[sqc8b49rny0, sqdtr74hyu0]");
    check(&mut c, &["GEOSEARCH", &g, "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"], "[Catania, Palermo]");
    check(
        &mut c,
        &["GEOSEARCH", &g, "FROMMEMBER", "Palermo", "BYBOX", "400", "400", "km", "ASC", "WITHDIST"],
        "[[Palermo, 0.0000], [Catania, 166.2742]]",
    );
    p.phase("GEOSEARCHSTORE / GEORADIUS STORE on one slot, CROSSSLOT otherwise");
    check(&mut c, &["GEOSEARCHSTORE", &dst, &g, "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"], ":2");
    check(&mut c, &["ZRANGE", &dst, "0", "-1"], "[Palermo, Catania]");
    check(&mut c, &["GEOSEARCHSTORE", &far, &g, "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"], CROSSSLOT);
    check(&mut c, &["GEORADIUS", &g, "15", "37", "200", "km", "STORE", &d2], ":2");
    check(&mut c, &["GEORADIUS", &g, "15", "37", "200", "km", "STORE", &far], CROSSSLOT);
    check(&mut c, &["ZCARD", &d2], ":2");
}

#[test]
fn streams() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("streams");
    let mut c = sb.raw();
    let s = "{e2e-xs}s".to_string();
    let far = far_key(sb, &s, "e2e-xs-far");

    p.phase("XADD, XLEN, XRANGE, XREVRANGE");
    check(&mut c, &["XADD", &s, "1-1", "f", "v1"], "1-1");
    check(&mut c, &["XADD", &s, "2-1", "f", "v2"], "2-1");
    check(&mut c, &["XADD", &s, "3-1", "f", "v3"], "3-1");
    let auto = c.cmd(&["XADD", &s, "*", "f", "v4"]).as_text().expect("XADD * gives an id");
    let (ms, seq) = auto.split_once('-').expect("id is ms-seq");
    assert!(ms.parse::<u64>().unwrap() > 1_600_000_000_000 && seq.parse::<u64>().is_ok(), "auto id {auto}");
    check(
        &mut c,
        &["XADD", &s, "1-0", "f", "old"],
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item",
    );
    check(&mut c, &["XLEN", &s], ":4");
    check(&mut c, &["XRANGE", &s, "-", "+", "COUNT", "3"], "[[1-1, [f, v1]], [2-1, [f, v2]], [3-1, [f, v3]]]");
    check(&mut c, &["XREVRANGE", &s, "+", "-", "COUNT", "1"], &format!("[[{auto}, [f, v4]]]"));

    p.phase("consumer groups: XGROUP CREATE, XREADGROUP (no BLOCK), XACK, XPENDING, XCLAIM, XAUTOCLAIM");
    check(&mut c, &["XGROUP", "CREATE", &s, "g", "0"], "+OK");
    check(&mut c, &["XGROUP", "CREATE", &s, "g", "0"], "-BUSYGROUP Consumer Group name already exists");
    check(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "c1", "COUNT", "2", "STREAMS", &s, ">"],
        &format!("[[{s}, [[1-1, [f, v1]], [2-1, [f, v2]]]]]"),
    );
    check(&mut c, &["XACK", &s, "g", "1-1"], ":1");
    check(&mut c, &["XACK", &s, "g", "1-1"], ":0");
    check(&mut c, &["XPENDING", &s, "g"], "[:1, 2-1, 2-1, [[c1, 1]]]");
    check(&mut c, &["XCLAIM", &s, "g", "c2", "0", "2-1", "JUSTID"], "[2-1]");
    let r = c.cmd(&["XPENDING", &s, "g", "-", "+", "10"]);
    let entry = &r.as_array().unwrap_or_else(|| panic!("XPENDING extended: {r}"))[0];
    let e = entry.as_array().unwrap();
    assert_eq!((e[0].to_string().as_str(), e[1].to_string().as_str()), ("2-1", "c2"), "{r}");
    check(&mut c, &["XAUTOCLAIM", &s, "g", "c3", "0", "0-0", "COUNT", "5", "JUSTID"], "[0-0, [2-1], []]");
    let r = c.cmd(&["XINFO", "GROUPS", &s]);
    let fields =
        r.as_array().and_then(|g| g.first()?.as_array()).unwrap_or_else(|| panic!("XINFO GROUPS: {r}")).to_vec();
    let get = |name: &str| {
        fields.chunks(2).find(|p| p[0].as_text().as_deref() == Some(name)).map(|p| p[1].to_string()).unwrap_or_default()
    };
    assert_eq!((get("name"), get("consumers"), get("pending")), ("g".into(), ":3".into(), ":1".into()), "{r}");

    p.phase("XINFO STREAM, XTRIM, XDEL, XREAD (no BLOCK)");
    let r = c.cmd(&["XINFO", "STREAM", &s]);
    let fields = r.as_array().unwrap_or_else(|| panic!("XINFO STREAM: {r}"));
    let get = |name: &str| {
        fields.chunks(2).find(|p| p[0].as_text().as_deref() == Some(name)).map(|p| p[1].to_string()).unwrap()
    };
    assert_eq!(get("length"), ":4", "{r}");
    assert_eq!(get("groups"), ":1", "{r}");
    assert_eq!(get("last-generated-id"), auto, "{r}");
    check(&mut c, &["XTRIM", &s, "MAXLEN", "3"], ":1");
    check(&mut c, &["XDEL", &s, "3-1", "9-9"], ":1");
    check(&mut c, &["XLEN", &s], ":2");
    check(
        &mut c,
        &["XREAD", "COUNT", "5", "STREAMS", &s, "0"],
        &format!("[[{s}, [[2-1, [f, v2]], [{auto}, [f, v4]]]]]"),
    );
    check(&mut c, &["XREAD", "COUNT", "5", "STREAMS", &s, &far, "0", "0"], CROSSSLOT);
    check(&mut c, &["XGROUP", "DESTROY", &s, "g"], ":1");
}

#[test]
fn generic_key_commands() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("generic_key_commands");
    let mut c = sb.raw();
    let k = |s: &str| format!("{{e2e-keys}}{s}");
    let (a, b, cc, d, e, l, sorted, h, st) =
        (k("a"), k("b"), k("c"), k("d"), k("e"), k("l"), k("sorted"), k("h"), k("st"));
    let far = far_key(sb, &a, "e2e-keys-far");

    p.phase("EXPIRE, PEXPIRE, EXPIREAT, TTL, PTTL, PERSIST, EXPIRETIME");
    check(&mut c, &["SET", &a, "v"], "+OK");
    check(&mut c, &["EXPIRE", &a, "100"], ":1");
    let ttl = int(&mut c, &["TTL", &a]);
    assert!((95..=100).contains(&ttl), "TTL {ttl}");
    check(&mut c, &["PEXPIRE", &a, "200000"], ":1");
    let pttl = int(&mut c, &["PTTL", &a]);
    assert!((190_000..=200_000).contains(&pttl), "PTTL {pttl}");
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1000;
    check(&mut c, &["EXPIREAT", &a, &at.to_string()], ":1");
    check(&mut c, &["EXPIRETIME", &a], &format!(":{at}"));
    check(&mut c, &["PEXPIRETIME", &a], &format!(":{}", at * 1000));
    check(&mut c, &["EXPIRE", &a, "50", "GT"], ":0");
    check(&mut c, &["PERSIST", &a], ":1");
    check(&mut c, &["PERSIST", &a], ":0");
    check(&mut c, &["TTL", &a], ":-1");
    check(&mut c, &["EXPIRETIME", &a], ":-1");
    check(&mut c, &["TTL", &k("missing")], ":-2");
    check(&mut c, &["EXPIRE", &k("missing"), "10"], ":0");

    p.phase("TYPE and OBJECT ENCODING");
    check(&mut c, &["RPUSH", &l, "3", "1", "2"], ":3");
    check(&mut c, &["HSET", &h, "f", "v"], ":1");
    check(&mut c, &["XADD", &st, "1-1", "f", "v"], "1-1");
    check(&mut c, &["TYPE", &a], "+string");
    check(&mut c, &["TYPE", &l], "+list");
    check(&mut c, &["TYPE", &h], "+hash");
    check(&mut c, &["TYPE", &st], "+stream");
    check(&mut c, &["TYPE", &k("missing")], "+none");
    check(&mut c, &["SET", &b, "12345"], "+OK");
    check(&mut c, &["OBJECT", "ENCODING", &b], "int");
    check(&mut c, &["OBJECT", "ENCODING", &a], "embstr");
    check(&mut c, &["SET", &cc, &"x".repeat(100)], "+OK");
    check(&mut c, &["OBJECT", "ENCODING", &cc], "raw");
    check(&mut c, &["OBJECT", "ENCODING", &k("missing")], "nil");

    p.phase("DUMP / RESTORE (binary payload through the proxy)");
    let dump = match c.cmd(&["DUMP", &h]) {
        Resp::Bulk(b) => b,
        other => panic!("DUMP gave {other}"),
    };
    let restore = |c: &mut RawConn, key: &str, extra: &[&str]| {
        let mut args: Vec<Vec<u8>> = vec![b"RESTORE".to_vec(), key.as_bytes().to_vec(), b"0".to_vec(), dump.clone()];
        args.extend(extra.iter().map(|a| a.as_bytes().to_vec()));
        c.send(&proxy_common::encode(&args));
        c.read().to_string()
    };
    assert_eq!(restore(&mut c, &d, &[]), "+OK");
    check(&mut c, &["HGETALL", &d], "[f, v]");
    assert_eq!(restore(&mut c, &d, &[]), "-BUSYKEY Target key name already exists.");
    assert_eq!(restore(&mut c, &d, &["REPLACE"]), "+OK");
    check(&mut c, &["DEL", &d], ":1");

    p.phase("COPY, RENAME, RENAMENX on one slot, CROSSSLOT otherwise");
    check(&mut c, &["COPY", &a, &d], ":1");
    check(&mut c, &["COPY", &a, &d], ":0");
    check(&mut c, &["COPY", &b, &d, "REPLACE"], ":1");
    check(&mut c, &["GET", &d], "12345");
    check(&mut c, &["COPY", &a, &far], CROSSSLOT);
    check(
        &mut c,
        &["COPY", &a, &d, "DB", "1"],
        "-ERR COPY is not supported by the zedis proxy: only database 0 exists behind the proxy",
    );
    check(&mut c, &["RENAME", &d, &e], "+OK");
    check(&mut c, &["GET", &e], "12345");
    check(&mut c, &["EXISTS", &d], ":0");
    check(&mut c, &["RENAMENX", &e, &a], ":0");
    check(&mut c, &["RENAMENX", &e, &d], ":1");
    check(&mut c, &["RENAME", &k("missing"), &e], "-ERR no such key");
    check(&mut c, &["RENAME", &d, &far], CROSSSLOT);
    check(&mut c, &["RENAMENX", &far, &d], CROSSSLOT);
    check(&mut c, &["GET", &d], "12345");

    p.phase("SORT, SORT_RO, SORT ... STORE");
    check(&mut c, &["SORT", &l], "[1, 2, 3]");
    check(&mut c, &["SORT", &l, "DESC", "LIMIT", "0", "2"], "[3, 2]");
    check(&mut c, &["SORT_RO", &l, "ALPHA"], "[1, 2, 3]");
    check(&mut c, &["SORT", &l, "STORE", &sorted], ":3");
    check(&mut c, &["LRANGE", &sorted, "0", "-1"], "[1, 2, 3]");
    check(&mut c, &["SORT", &l, "STORE", &far], CROSSSLOT);

    p.phase("RANDOMKEY names a key (that it exists is checked in proxy_scan.rs, without concurrent deletes)");
    let key = c.cmd(&["RANDOMKEY"]);
    assert!(key.as_text().is_some(), "RANDOMKEY with keys present: {key}");

    p.phase("MOVE is refused");
    check(
        &mut c,
        &["MOVE", &a, "1"],
        "-ERR MOVE is not supported by the zedis proxy: only database 0 exists behind the proxy",
    );

    p.phase("SCAN with MATCH / COUNT / TYPE over both groups");
    let strings: Vec<String> = (0..60).map(|i| format!("e2e-keys-scan:{i}")).collect();
    let hashes: Vec<String> = (0..12).map(|i| format!("e2e-keys-scan:h{i}")).collect();
    assert!(
        strings.iter().any(|k| sb.group_of(k.as_bytes()) == 0)
            && strings.iter().any(|k| sb.group_of(k.as_bytes()) == 1)
    );
    let mut mset = vec!["MSET".to_string()];
    for s in &strings {
        mset.push(s.clone());
        mset.push("v".into());
    }
    assert_eq!(c.cmd(&mset), Resp::ok());
    for h in &hashes {
        check(&mut c, &["HSET", h, "f", "v"], ":1");
    }
    let scan = |c: &mut RawConn, extra: &[&str]| -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = "0".to_string();
        for _ in 0..10_000 {
            let mut args = vec!["SCAN", cursor.as_str()];
            args.extend_from_slice(extra);
            let r = c.cmd(&args);
            let [next, batch] = r.as_array().unwrap_or_else(|| panic!("SCAN: {r}")) else { panic!("SCAN: {r}") };
            keys.extend(batch.as_array().unwrap().iter().map(|k| k.as_text().unwrap()));
            cursor = next.as_text().unwrap();
            if cursor == "0" {
                return keys;
            }
        }
        panic!("SCAN did not finish");
    };
    // Other tests write meanwhile: a backend rehash may legitimately repeat a key, so compare
    // sets here (proxy_scan.rs checks "exactly once" on a quiet sandbox).
    let mut all = scan(&mut c, &["MATCH", "e2e-keys-scan:*", "COUNT", "20"]);
    all.sort();
    all.dedup();
    let mut want: Vec<String> = strings.iter().chain(&hashes).cloned().collect();
    want.sort();
    assert_eq!(all, want, "SCAN MATCH returned every key");
    let mut only_hashes = scan(&mut c, &["MATCH", "e2e-keys-scan:*", "COUNT", "20", "TYPE", "hash"]);
    only_hashes.sort();
    only_hashes.dedup();
    let mut want_hashes = hashes.clone();
    want_hashes.sort();
    assert_eq!(only_hashes, want_hashes, "SCAN TYPE hash");
    check(&mut c, &["SCAN", "abc"], "-ERR invalid cursor");
}

#[test]
fn scripts() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("scripts");
    let mut c = sb.raw();
    let k1 = sb.keys_in_group("e2e-script", 0, 1).remove(0);
    let k2 = sb.keys_in_group("e2e-script", 1, 1).remove(0);
    p.phase("EVAL routes by its keys; CROSSSLOT across slots");
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])";
    check(&mut c, &["EVAL", script, "1", &k1, "one"], "one");
    check(&mut c, &["EVAL", script, "1", &k2, "two"], "two");
    check(&mut c, &["EVAL", "return 42", "0"], ":42");
    check(&mut c, &["EVAL", script, "2", &k1, &k2, "x"], CROSSSLOT);
    check(&mut c, &["MGET", &k1, &k2], "[one, two]");
    let mut m1 = sb.master_conn(0);
    let mut m2 = sb.master_conn(1);
    let on1: Option<String> = redis::cmd("GET").arg(&k1).query(&mut m1).unwrap();
    let on2: Option<String> = redis::cmd("GET").arg(&k2).query(&mut m2).unwrap();
    assert_eq!((on1.as_deref(), on2.as_deref()), (Some("one"), Some("two")), "EVAL ran on the owning groups");

    p.phase("SCRIPT LOAD reaches every group, so EVALSHA works for keys of any group");
    let body = "return redis.call('INCR', KEYS[1])";
    let sha = c.cmd(&["SCRIPT", "LOAD", body]).as_text().expect("SCRIPT LOAD gives the sha");
    assert_eq!(sha.len(), 40);
    check(&mut c, &["SCRIPT", "EXISTS", &sha, &"0".repeat(40)], "[:1, :0]");
    for m in [&mut m1, &mut m2] {
        let exists: Vec<i64> = redis::cmd("SCRIPT").arg("EXISTS").arg(&sha).query(m).unwrap();
        assert_eq!(exists, [1], "the script is loaded on every master");
    }
    let c1 = format!("{k1}:n");
    let c2 = format!("{k2}:n");
    check(&mut c, &["EVALSHA", &sha, "1", &c1], ":1");
    check(&mut c, &["EVALSHA", &sha, "1", &c2], ":1");
    check(&mut c, &["EVALSHA", &sha, "1", &c2], ":2");
    check(&mut c, &["EVALSHA", &"0".repeat(40), "0"], "-NOSCRIPT No matching script. Please use EVAL.");
}

#[test]
fn keys_land_on_the_group_owning_their_slot() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("keys_land_on_the_group_owning_their_slot");
    let mut c = sb.conn();
    let mut masters = [sb.master_conn(0), sb.master_conn(1)];
    let mut keys: Vec<Vec<u8>> = [
        "e2e-place:foo",
        "e2e-place:bar",
        "{e2e-place-user1000}.following",
        "{e2e-place-user1000}.followers",
        "e2e-place:a{b}c",
        "e2e-place:{}x",
        "e2e-place:x{",
        "e2e-place:}{",
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    keys.push(b"e2e-place:bin\x00\r\n\xff".to_vec());
    keys.extend(sb.keys_in_group("e2e-place", 0, 4).into_iter().map(String::into_bytes));
    keys.extend(sb.keys_in_group("e2e-place", 1, 4).into_iter().map(String::into_bytes));
    assert_eq!(
        zedis_topology::key_slot(b"{e2e-place-user1000}.following"),
        zedis_topology::key_slot(b"e2e-place-user1000"),
        "hash tags pick the slot"
    );
    p.phase(&format!("SET {} keys through the proxy, then look on each master directly", keys.len()));
    for (i, k) in keys.iter().enumerate() {
        let _: () = redis::cmd("SET").arg(k).arg(format!("placed-{i}")).query(&mut c).unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        let owner = sb.group_of(k);
        for (g, m) in masters.iter_mut().enumerate() {
            let v: Option<String> = redis::cmd("GET").arg(k).query(m).unwrap();
            if g == owner {
                assert_eq!(
                    v,
                    Some(format!("placed-{i}")),
                    "{} must be on group {} (its slot's owner)",
                    k.escape_ascii(),
                    g + 1
                );
            } else {
                assert_eq!(v, None, "{} must not be on group {}", k.escape_ascii(), g + 1);
            }
        }
    }
}

#[test]
fn split_commands_over_both_groups() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("split_commands_over_both_groups");
    let mut c = sb.conn();
    let keys: Vec<String> = (0..200).map(|i| format!("e2e-split:{i}")).collect();
    let per_group: Vec<usize> =
        (0..2).map(|g| keys.iter().filter(|k| sb.group_of(k.as_bytes()) == g).count()).collect();
    assert!(per_group.iter().all(|n| *n >= 50), "200 keys should spread over both groups: {per_group:?}");
    let value = |i: usize| format!("v-{i}-\r\n\0-binary");

    p.phase(&format!("MSET 200 keys ({per_group:?} per group)"));
    let mut mset = redis::cmd("MSET");
    for (i, k) in keys.iter().enumerate() {
        mset.arg(k).arg(value(i));
    }
    let ok: String = mset.query(&mut c).unwrap();
    assert_eq!(ok, "OK");
    for g in 0..2 {
        let mine: Vec<&String> = keys.iter().filter(|k| sb.group_of(k.as_bytes()) == g).collect();
        let others: Vec<&String> = keys.iter().filter(|k| sb.group_of(k.as_bytes()) != g).collect();
        let mut m = sb.master_conn(g);
        let n: i64 = redis::cmd("EXISTS").arg(&mine).query(&mut m).unwrap();
        assert_eq!(n as usize, mine.len(), "group {} holds all its keys", g + 1);
        let n: i64 = redis::cmd("EXISTS").arg(&others).query(&mut m).unwrap();
        assert_eq!(n, 0, "group {} holds none of the other group's keys", g + 1);
    }

    p.phase("MGET with missing keys and duplicates, in the client's order");
    let mut asked = Vec::new();
    let mut want = Vec::new();
    for i in 0..200 {
        asked.push(keys[i].clone());
        want.push(Some(value(i)));
        if i % 10 == 0 {
            asked.push(format!("e2e-split:missing:{i}"));
            want.push(None);
            asked.push(keys[i / 2].clone());
            want.push(Some(value(i / 2)));
            asked.push(keys[i].clone());
            want.push(Some(value(i)));
        }
    }
    let got: Vec<Option<String>> = redis::cmd("MGET").arg(&asked).query(&mut c).unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "MGET position {i} ({})", asked[i]);
    }
    let one_group: Vec<&String> = keys.iter().filter(|k| sb.group_of(k.as_bytes()) == 1).take(3).collect();
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(one_group[0])
        .arg(one_group[1])
        .arg(one_group[0])
        .arg("e2e-split:none")
        .query(&mut c)
        .unwrap();
    let idx = |k: &String| keys.iter().position(|x| x == k).unwrap();
    assert_eq!(
        got,
        [Some(value(idx(one_group[0]))), Some(value(idx(one_group[1]))), Some(value(idx(one_group[0]))), None]
    );

    p.phase("EXISTS and TOUCH count every key (duplicates count twice, as in Redis)");
    let n: i64 = redis::cmd("EXISTS").arg(&keys).arg("e2e-split:missing").arg(&keys[..5]).query(&mut c).unwrap();
    assert_eq!(n, 205);
    let n: i64 = redis::cmd("TOUCH").arg(&keys).arg("e2e-split:missing").query(&mut c).unwrap();
    assert_eq!(n, 200);

    p.phase("DEL counts exactly: missing keys and repeated keys count once");
    let n: i64 = redis::cmd("DEL")
        .arg(&keys[..100])
        .arg("e2e-split:missing")
        .arg(&keys[0])
        .arg(&keys[57])
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 100);
    let n: i64 = redis::cmd("EXISTS").arg(&keys).query(&mut c).unwrap();
    assert_eq!(n, 100);
    let n: i64 = redis::cmd("DEL").arg(&keys[..100]).query(&mut c).unwrap();
    assert_eq!(n, 0);

    p.phase("UNLINK the rest");
    let n: i64 = redis::cmd("UNLINK").arg(&keys[100..]).arg("e2e-split:missing").query(&mut c).unwrap();
    assert_eq!(n, 100);
    let got: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
    assert!(got.iter().all(Option::is_none), "every key gone");
    for g in 0..2 {
        let mut m = sb.master_conn(g);
        let n: i64 = redis::cmd("EXISTS").arg(&keys).query(&mut m).unwrap();
        assert_eq!(n, 0, "group {} still holds some keys", g + 1);
    }

    p.phase("MSET with an odd number of arguments and a WRONGTYPE part");
    let mut raw = sb.raw();
    check(&mut raw, &["MSET", &keys[0], "1", &keys[1]], "-ERR wrong number of arguments for 'mset' command");
    let list = sb.keys_in_group("e2e-split-list", 1, 1).remove(0);
    let plain = sb.keys_in_group("e2e-split-plain", 0, 1).remove(0);
    check(&mut raw, &["RPUSH", &list, "x"], ":1");
    check(&mut raw, &["SET", &plain, "p"], "+OK");
    check(&mut raw, &["MGET", &plain, &list], "[p, nil]");
    check(&mut raw, &["EXISTS", &plain, &list], ":2");
    check(&mut raw, &["DEL", &plain, &list], ":2");
}

#[test]
fn pipeline_of_10000_commands() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("pipeline_of_10000_commands");
    let mut c = sb.conn();
    let key = |i: usize| format!("e2e-pipe:{i}");
    let counter = |i: usize| format!("e2e-pipe:ctr:{}", i % 7);
    let mut pipe = redis::pipe();
    let mut want = Vec::with_capacity(10_000);
    let mut counters = [0i64; 7];
    for i in 0..10_000 {
        match i % 4 {
            0 => {
                pipe.cmd("SET").arg(key(i)).arg(format!("val-{i}"));
                want.push(Value::Okay);
            }
            1 => {
                pipe.cmd("GET").arg(key(i - 1));
                want.push(Value::BulkString(format!("val-{}", i - 1).into_bytes()));
            }
            2 => {
                pipe.cmd("INCR").arg(counter(i));
                counters[i % 7] += 1;
                want.push(Value::Int(counters[i % 7]));
            }
            _ => {
                // Keys of many slots, one of them not written yet (nil) and one repeated.
                pipe.cmd("MGET").arg(key(i - 3)).arg(key(i + 1)).arg(key(i / 2 / 4 * 4)).arg(key(i - 3));
                let v = |j: usize| Value::BulkString(format!("val-{j}").into_bytes());
                want.push(Value::Array(vec![v(i - 3), Value::Nil, v(i / 2 / 4 * 4), v(i - 3)]));
            }
        }
    }
    p.phase("sending 10,000 commands in one pipeline");
    let started = std::time::Instant::now();
    let got: Vec<Value> = pipe.query(&mut c).unwrap();
    p.phase(&format!("10,000 replies in {:?}", started.elapsed()));
    assert_eq!(got.len(), want.len());
    let wrong: Vec<String> = got
        .iter()
        .zip(&want)
        .enumerate()
        .filter(|(_, (g, w))| g != w)
        .map(|(i, (g, w))| format!("reply {i}: got {g:?}, want {w:?}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of 10,000 replies wrong; the first ones:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(5)].join("\n")
    );

    p.phase("the same over a raw socket: written by one thread while another reads");
    let mut raw = sb.raw();
    let mut bytes = Vec::new();
    for i in 0..10_000 {
        bytes.extend(proxy_common::encode(&["GET", &key(i / 4 * 4)]));
    }
    let mut writer = raw.stream().try_clone().unwrap();
    let t = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &bytes).map_err(|e| e.to_string()));
    for i in 0..10_000 {
        assert_eq!(raw.read(), Resp::bulk(format!("val-{}", i / 4 * 4)), "raw pipeline reply {i}");
    }
    t.join().unwrap().unwrap();
}

#[test]
fn pipelined_commands_on_one_key_run_in_order() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("pipelined_commands_on_one_key_run_in_order");
    let key = "e2e-order:k";
    let mut raw = sb.raw();
    let mut bytes = Vec::new();
    for i in 0..2000 {
        bytes.extend(proxy_common::encode(&["SET", key, &i.to_string()]));
        bytes.extend(proxy_common::encode(&["GET", key]));
    }
    p.phase("2,000 x (SET k i; GET k) written at once; each GET must see its SET");
    let mut writer = raw.stream().try_clone().unwrap();
    let t = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &bytes).map_err(|e| e.to_string()));
    let mut wrong = Vec::new();
    for i in 0..2000 {
        assert_eq!(raw.read(), Resp::ok());
        let got = raw.read();
        if got != Resp::bulk(i.to_string()) {
            wrong.push(format!("GET after SET {i} gave {got}"));
        }
    }
    t.join().unwrap().unwrap();
    assert!(
        wrong.is_empty(),
        "{} of 2,000 GETs did not see the SET just before them on the same connection; first: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn local_connection_commands() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("local_connection_commands");
    let mut c = sb.raw();

    p.phase("PING, ECHO, SELECT");
    check(&mut c, &["PING"], "+PONG");
    check(&mut c, &["PING", "hello world"], "hello world");
    check(&mut c, &["ECHO", "a b\r\nc"], "a b\\r\\nc");
    check(&mut c, &["SELECT", "0"], "+OK");
    check(&mut c, &["SELECT", "1"], "-ERR DB index is out of range");
    check(&mut c, &["SELECT", "x"], "-ERR value is not an integer or out of range");

    p.phase("CLIENT SETNAME / GETNAME / ID");
    check(&mut c, &["CLIENT", "GETNAME"], "nil");
    check(&mut c, &["CLIENT", "SETNAME", "e2e-name"], "+OK");
    check(&mut c, &["CLIENT", "GETNAME"], "e2e-name");
    check(
        &mut c,
        &["CLIENT", "SETNAME", "bad name"],
        "-ERR Client names cannot contain spaces, newlines or special characters.",
    );
    check(&mut c, &["CLIENT", "GETNAME"], "e2e-name");
    let id1 = int(&mut c, &["CLIENT", "ID"]);
    let mut other = sb.raw();
    let id2 = int(&mut other, &["CLIENT", "ID"]);
    assert!(id1 > 0 && id2 > 0 && id1 != id2, "client ids {id1} {id2}");
    check(&mut other, &["CLIENT", "GETNAME"], "nil");
    let info = c.cmd(&["CLIENT", "INFO"]).as_text().unwrap();
    assert!(info.contains(&format!("id={id1} ")) && info.contains("name=e2e-name"), "CLIENT INFO: {info}");

    p.phase("HELLO 2 works, an unknown protocol is refused with NOPROTO (RESP3 is covered by redis-py)");
    let hello = c.cmd(&["HELLO", "2"]);
    let fields = hello.as_array().unwrap_or_else(|| panic!("HELLO 2: {hello}"));
    let get = |name: &str| fields.chunks(2).find(|p| p[0].as_text().as_deref() == Some(name)).map(|p| p[1].to_string());
    assert_eq!(get("proto").as_deref(), Some(":2"), "{hello}");
    assert_eq!(get("id").as_deref(), Some(format!(":{id1}").as_str()), "{hello}");
    assert!(get("version").is_some(), "{hello}");
    let r = c.cmd(&["HELLO", "4"]);
    assert!(r.as_error().is_some_and(|e| e.starts_with("NOPROTO")), "HELLO 4: {r}");
    check(&mut c, &["PING"], "+PONG");
    let r = c.cmd(&["HELLO", "2", "SETNAME", "via-hello"]);
    assert!(r.as_array().is_some(), "HELLO 2 SETNAME: {r}");
    check(&mut c, &["CLIENT", "GETNAME"], "via-hello");
    check(&mut c, &["HELLO", "x"], "-ERR Protocol version is not an integer or out of range");

    p.phase("INFO: server section and the keyspace summed over the groups");
    let info = c.cmd(&["INFO"]).as_text().expect("INFO is a bulk string");
    assert!(info.contains("# Server\r\n") && info.contains("redis_version:"), "INFO: {info}");
    assert!(info.contains("# Keyspace\r\n"), "INFO: {info}");
    // Other tests write and delete meanwhile, so the exact sum is checked in proxy_scan.rs.
    check(&mut c, &["SET", "e2e-local:info", "x"], "+OK");
    let keyspace = c.cmd(&["INFO", "keyspace"]).as_text().unwrap();
    let keys: u64 = keyspace
        .lines()
        .find_map(|l| l.strip_prefix("db0:keys="))
        .and_then(|v| v.split(',').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no db0 line in INFO keyspace: {keyspace}"));
    assert!(keys > 0, "INFO keyspace: {keyspace}");
    let server = c.cmd(&["INFO", "server"]).as_text().unwrap();
    assert!(server.contains("redis_version:") && !server.contains("# Keyspace"), "INFO server: {server}");

    p.phase("COMMAND COUNT / INFO / GETKEYS / DOCS, TIME, DBSIZE");
    let n = int(&mut c, &["COMMAND", "COUNT"]);
    assert!(n > 200, "COMMAND COUNT {n}");
    let r = c.cmd(&["COMMAND", "INFO", "GET"]);
    let get = &r.as_array().unwrap_or_else(|| panic!("COMMAND INFO GET: {r}"))[0];
    let get = get.as_array().unwrap_or_else(|| panic!("COMMAND INFO GET: {r}"));
    assert_eq!((get[0].to_string(), get[1].to_string()), ("get".to_string(), ":2".to_string()), "{r}");
    check(&mut c, &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"], "[a, b]");
    let docs = c.cmd(&["COMMAND", "DOCS", "GET"]);
    assert!(docs.to_string().contains("summary"), "COMMAND DOCS GET: {docs}");
    let r = c.cmd(&["TIME"]);
    let t = r.as_array().unwrap_or_else(|| panic!("TIME: {r}"));
    let secs: u64 = t[0].as_text().unwrap().parse().unwrap();
    let micros: u64 = t[1].as_text().unwrap().parse().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(secs.abs_diff(now) < 60 && micros < 1_000_000, "TIME {r} vs now {now}");
    assert!(int(&mut c, &["DBSIZE"]) > 0);

    p.phase("AUTH, RESET, READONLY");
    let r = c.cmd(&["AUTH", "secret"]);
    assert!(r.is_error(), "AUTH without users configured: {r}");
    check(&mut c, &["READONLY"], "+OK");
    check(&mut c, &["RESET"], "+RESET");
    check(&mut c, &["CLIENT", "GETNAME"], "nil");

    p.phase("QUIT answers OK and closes the connection");
    c.send(&proxy_common::encode(&["QUIT"]));
    c.send(&proxy_common::encode(&["PING"]));
    let (bytes, closed) = c.read_to_close(Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&bytes), "+OK\r\n", "nothing after QUIT's reply");
    assert!(closed, "the proxy closes the connection after QUIT");
    check(&mut other, &["PING"], "+PONG");
}

#[test]
fn refused_unknown_and_malformed_commands() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("refused_unknown_and_malformed_commands");
    let mut c = sb.raw();
    let mut direct = RawConn::connect(&sb.groups[0].master);

    p.phase("administrative commands are refused with an error naming the command; the connection stays usable");
    let refused: &[(&[&str], &str)] = &[
        (&["CONFIG", "GET", "maxmemory"], "CONFIG GET"),
        (&["CONFIG", "SET", "maxmemory", "1"], "CONFIG SET"),
        (&["SHUTDOWN"], "SHUTDOWN"),
        (&["SHUTDOWN", "NOSAVE"], "SHUTDOWN"),
        (&["REPLICAOF", "NO", "ONE"], "REPLICAOF"),
        (&["SLAVEOF", "127.0.0.1", "1"], "SLAVEOF"),
        (&["DEBUG", "SLEEP", "0"], "DEBUG"),
        (&["MONITOR"], "MONITOR"),
        (&["CLUSTER", "INFO"], "CLUSTER INFO"),
        (&["CLUSTER", "SLOTS"], "CLUSTER SLOTS"),
        (&["WAIT", "1", "0"], "WAIT"),
        (&["BGSAVE"], "BGSAVE"),
        (&["FLUSHALL", "x", "y"], ""),
        (&["SWAPDB", "0", "1"], "SWAPDB"),
        (&["ACL", "LIST"], "ACL LIST"),
        (&["CLIENT", "KILL", "ID", "1"], "CLIENT KILL"),
        (&["CLIENT", "PAUSE", "100"], "CLIENT PAUSE"),
        (&["FAILOVER"], "FAILOVER"),
        (&["SLOWLOG", "GET"], "SLOWLOG GET"),
        (&["LATENCY", "LATEST"], "LATENCY LATEST"),
        (&["MODULE", "LIST"], "MODULE LIST"),
        (&["MIGRATE", "127.0.0.1", "1", "k", "0", "100"], "MIGRATE"),
    ];
    for (args, name) in refused {
        let r = c.cmd(args);
        let e = r.as_error().unwrap_or_else(|| panic!("{args:?} should be refused, got {r}"));
        if name.is_empty() {
            continue;
        }
        assert!(e.starts_with(&format!("ERR {name} is not supported by the zedis proxy: ")), "{args:?}: {e}");
        check(&mut c, &["PING"], "+PONG");
    }
    // Nothing reached the servers: both masters still run as masters, with their settings.
    for g in 0..2 {
        let mut m = sb.master_conn(g);
        let role: Vec<Value> = redis::cmd("ROLE").query(&mut m).unwrap();
        assert_eq!(role[0], Value::BulkString(b"master".to_vec()), "group {} master after the refused commands", g + 1);
    }

    p.phase("unknown commands and wrong arity: Redis's exact texts");
    let same_as_redis: &[&[&str]] = &[
        &["FOOBAR"],
        &["FOOBAR", "a", "b"],
        &["foobar", "x y", "z"],
        &["GET"],
        &["GET", "a", "b"],
        &["SET", "k"],
        &["HSET", "h", "f"],
        &["XADD"],
        &["ZADD", "z"],
        &["OBJECT"],
        &["OBJECT", "NOPE"],
        &["CLIENT", "NOPE"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "EX", "notanumber"],
        &["SET", "k", "v", "NX", "XX"],
        &["EXPIRE", "k", "x"],
        &["ZRANGE", "k", "0", "1", "BADARG"],
        &["PING", "a", "b"],
        &["ECHO"],
        &["ECHO", "a", "b"],
        &["SELECT"],
        &["SELECT", "0", "1"],
        &["CLIENT", "SETNAME"],
        &["CLIENT", "GETNAME", "x"],
        // Key positions the proxy must find (or reject) the way Redis does.
        &["EVAL", "return 1", "5", "a"],
        &["EVAL", "return 1", "-1"],
        &["EVAL", "return 1", "x", "a"],
        &["EVALSHA", "abc", "2", "a"],
        &["ZUNIONSTORE", "{z}d", "3", "{z}a", "{z}b"],
        &["ZUNIONSTORE", "{z}d", "0", "{z}a"],
        &["ZINTER", "0", "a"],
        &["LMPOP", "0", "a", "LEFT"],
        &["SINTERCARD", "0", "a"],
        &["SINTERCARD", "3", "{s}a", "{s}b"],
        &["ZMPOP", "-1", "a", "MIN"],
        &["XREAD", "STREAMS", "a"],
        &["XREAD", "STREAMS", "{x}a", "{x}b", "0"],
        &["XREAD", "COUNT", "x", "STREAMS", "a", "0"],
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a"],
        &["GEORADIUS", "k", "0", "0", "1", "km", "STORE"],
        &["SORT", "k", "STORE"],
        &["SORT", "k", "LIMIT", "0"],
        &["BITOP", "AND", "d"],
        &["BITOP", "NOPE", "{b}d", "{b}a"],
        &["BITFIELD", "k", "GET"],
        &["OBJECT", "ENCODING"],
        &["MEMORY", "USAGE"],
        &["XINFO", "STREAM"],
        &["XGROUP", "CREATE", "s"],
        &["MSETNX", "a"],
        &["MSETNX", "{m}a", "1", "{m}b"],
        &["SET", "", "v", "PX", "0"],
        &["COPY", "a"],
        &["RENAME", "a"],
        &["LCS", "a"],
        &["PFCOUNT"],
        &["SCAN"],
        &["SCAN", "0", "COUNT", "0"],
        &["SCAN", "0", "MATCH"],
        &["KEYS"],
        &["DBSIZE", "x"],
        &["RANDOMKEY", "x"],
        &["FLUSHALL", "x", "y"],
        &["SCRIPT", "EXISTS"],
        &["SCRIPT", "LOAD"],
        &["TIME", "x"],
        &["COMMAND", "GETKEYS"],
        &["COMMAND", "GETKEYS", "GET"],
        &["HELLO", "4"],
        &["HELLO", "2", "SETNAME"],
    ];
    let mut differ = Vec::new();
    for args in same_as_redis {
        let via_proxy = c.cmd(args);
        let from_redis = direct.cmd(args);
        if !from_redis.is_error() {
            differ.push(format!("{args:?}: not an error on Redis ({from_redis}), fix the test"));
        } else if via_proxy != from_redis {
            differ.push(format!("{args:?}: proxy {via_proxy} / redis {from_redis}"));
        }
    }
    assert!(differ.is_empty(), "the proxy's replies differ from Redis's:\n{}", differ.join("\n"));
    check(&mut c, &["FOOBAR", "a", "b"], "-ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' ");
    check(&mut c, &["GET"], "-ERR wrong number of arguments for 'get' command");
    check(&mut c, &["PING"], "+PONG");
}

#[test]
fn randomkey_returns_keys_of_every_group() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("randomkey_returns_keys_of_every_group");
    let mut c = sb.raw();
    for g in 0..2 {
        for k in sb.keys_in_group("e2e-random", g, 20) {
            check(&mut c, &["SET", &k, "x"], "+OK");
        }
    }
    p.phase("80 RANDOMKEY calls with keys on both groups");
    let mut seen = [0usize; 2];
    for _ in 0..80 {
        let k = c.cmd(&["RANDOMKEY"]).as_text().expect("a key");
        seen[sb.group_of(k.as_bytes())] += 1;
    }
    // A random group's key each time: all 80 from one group has probability 2^-79.
    assert!(seen[0] > 0 && seen[1] > 0, "RANDOMKEY only ever returned keys of one group: {seen:?} per group");
}
