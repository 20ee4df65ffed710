//! Keyspace-wide commands through the proxy on a sandbox of its own (so every total is
//! exact): 5,000 keys over both groups; a full SCAN (COUNT 100) returns every key exactly once,
//! also with MATCH and TYPE; KEYS, DBSIZE and INFO keyspace are the sums over the groups;
//! FLUSHALL empties every group.

mod proxy_common;

use std::collections::HashMap;

use proxy_common::{check, RawConn, Resp, Sandbox};

/// A full SCAN loop: returns every key with how often it was returned, and the number of calls.
fn full_scan(c: &mut RawConn, extra: &[&str]) -> (HashMap<String, usize>, usize) {
    let mut seen = HashMap::new();
    let mut cursor = "0".to_string();
    for calls in 1..=100_000 {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let r = c.cmd(&args);
        let Some([next, batch]) = r.as_array().and_then(|a| <&[Resp; 2]>::try_from(a).ok()) else {
            panic!("SCAN {cursor}: {r}")
        };
        for k in batch.as_array().unwrap_or_else(|| panic!("SCAN batch: {r}")) {
            *seen.entry(k.as_text().expect("key")).or_insert(0) += 1;
        }
        cursor = next.as_text().expect("cursor");
        assert!(cursor.parse::<u64>().is_ok(), "SCAN cursor must be a number: {cursor}");
        if cursor == "0" {
            return (seen, calls);
        }
    }
    panic!("SCAN never returned cursor 0");
}

#[test]
fn scan_keys_dbsize_info_over_5000_keys() {
    let sb = Sandbox::start("proxy_scan");
    let mut c = sb.raw();
    let keys: Vec<String> = (0..5000).map(|i| format!("scan:{i}")).collect();

    sb.phase("write 5,000 keys with cross-slot MSETs of 500");
    for chunk in keys.chunks(500) {
        let mut args = vec!["MSET".to_string()];
        for k in chunk {
            args.push(k.clone());
            args.push(format!("v-{k}"));
        }
        assert_eq!(c.cmd(&args), Resp::ok());
    }
    let mut per_master = Vec::new();
    for g in 0..2 {
        let n: i64 = redis::cmd("DBSIZE").query(&mut sb.master_conn(g)).unwrap();
        let want = keys.iter().filter(|k| sb.group_of(k.as_bytes()) == g).count();
        assert_eq!(n as usize, want, "group {} holds exactly the keys of its slots", g + 1);
        per_master.push(n);
    }
    assert!(per_master.iter().all(|n| *n > 1000), "keys spread over both groups: {per_master:?}");

    sb.phase("DBSIZE, KEYS and INFO keyspace are sums over the groups");
    check(&mut c, &["DBSIZE"], ":5000");
    let r = c.cmd(&["KEYS", "*"]);
    let mut all: Vec<String> = r.as_array().expect("KEYS array").iter().map(|k| k.as_text().unwrap()).collect();
    all.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(all, want, "KEYS * lists every key once");
    let r = c.cmd(&["KEYS", "scan:12*"]);
    let mut some: Vec<String> = r.as_array().unwrap().iter().map(|k| k.as_text().unwrap()).collect();
    some.sort();
    let mut want_some: Vec<String> = keys.iter().filter(|k| k.starts_with("scan:12")).cloned().collect();
    want_some.sort();
    assert_eq!(some, want_some, "KEYS scan:12*");
    let info = c.cmd(&["INFO", "keyspace"]).as_text().unwrap();
    assert!(info.contains("db0:keys=5000,"), "INFO keyspace: {info}");

    sb.phase("a full SCAN (COUNT 100) returns every key exactly once");
    let (seen, calls) = full_scan(&mut c, &["COUNT", "100"]);
    let missing: Vec<&String> = keys.iter().filter(|k| !seen.contains_key(*k)).collect();
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let extra: Vec<&String> = seen.keys().filter(|k| !k.starts_with("scan:")).collect();
    assert!(missing.is_empty(), "SCAN missed {} keys, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert!(
        twice.is_empty(),
        "SCAN returned {} keys more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert!(extra.is_empty(), "SCAN returned unknown keys {extra:?}");
    assert_eq!(seen.len(), 5000);
    // COUNT is a hint; with 5,000 keys in 2 groups, about 50 calls (a group's last call may be short).
    assert!((40..=200).contains(&calls), "{calls} SCAN calls for 5,000 keys at COUNT 100");

    sb.phase("SCAN with MATCH and with TYPE");
    let (seen, _) = full_scan(&mut c, &["MATCH", "scan:4*", "COUNT", "100"]);
    let want: Vec<&String> = keys.iter().filter(|k| k.starts_with("scan:4")).collect();
    assert_eq!(seen.len(), want.len(), "SCAN MATCH scan:4*");
    assert!(want.iter().all(|k| seen.get(*k) == Some(&1)), "SCAN MATCH returns each matching key once");
    for i in 0..30 {
        check(&mut c, &["HSET", &format!("scanh:{i}"), "f", "v"], ":1");
    }
    let (hashes, _) = full_scan(&mut c, &["COUNT", "100", "TYPE", "hash"]);
    let mut hashes: Vec<String> = hashes.into_keys().collect();
    hashes.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("scanh:{i}")).collect();
    want.sort();
    assert_eq!(hashes, want, "SCAN TYPE hash");
    check(&mut c, &["DBSIZE"], ":5030");

    sb.phase("SCAN cursors that the proxy did not hand out are refused");
    check(&mut c, &["SCAN", "notanumber"], "-ERR invalid cursor");
    // Group 0 does not exist (ids start at 1); a made-up cursor naming a missing group is refused.
    let r = c.cmd(&["SCAN", &((5u64 << 10) | 999).to_string()]);
    assert!(r.is_error(), "SCAN with a cursor naming no group: {r}");

    sb.phase("RANDOMKEY, DEL of everything through the split path, FLUSHALL");
    let k = c.cmd(&["RANDOMKEY"]).as_text().expect("a key");
    check(&mut c, &["EXISTS", &k], ":1");
    let mut del = vec!["DEL".to_string()];
    del.extend(keys[..2500].iter().cloned());
    assert_eq!(c.cmd(&del), Resp::Int(2500));
    check(&mut c, &["DBSIZE"], ":2530");
    check(&mut c, &["FLUSHALL"], "+OK");
    check(&mut c, &["DBSIZE"], ":0");
    for g in 0..2 {
        let n: i64 = redis::cmd("DBSIZE").query(&mut sb.master_conn(g)).unwrap();
        assert_eq!(n, 0, "group {} is empty after FLUSHALL", g + 1);
    }
    check(&mut c, &["RANDOMKEY"], "nil");
    let (seen, _) = full_scan(&mut c, &["COUNT", "100"]);
    assert!(seen.is_empty(), "SCAN of an empty keyspace: {seen:?}");
    check(&mut c, &["KEYS", "*"], "[]");
}
