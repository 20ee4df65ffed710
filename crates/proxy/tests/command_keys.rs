//! The command table against a real `redis-server`: key positions against `COMMAND GETKEYS`, `numkeys`, arity and
//! unknown-command errors against the server's own replies, and the generated table against `COMMAND`. Plus a
//! property test (no server) that no request makes the table code panic.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use zedis_proxy::command_table::{
    all_commands, check_arity, commands, keys, lookup_full_name, policy, resolve, shard_channels, BeginSearch,
    CommandSpec, FindKeys, KeyError, REDIS_VERSION,
};
use zedis_resp::Request;
use zedis_testkit::RedisServer;

// ---------------------------------------------------------------------------------------------------------------
// A minimal RESP2 client.

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn str(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Int(i) => i.to_string(),
            other => panic!("not a string: {other:?}"),
        }
    }

    fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(a)) => a,
            other => panic!("not an array: {other:?}"),
        }
    }

    fn strings(&self) -> Vec<String> {
        self.array().iter().map(Reply::str).collect()
    }
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to redis-server");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        assert!(line.ends_with(b"\r\n"), "truncated reply {line:?}");
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        match line[0] {
            b'+' => Reply::Simple(body),
            b'-' => Reply::Error(body),
            b':' => Reply::Int(body.parse().unwrap()),
            b'$' => {
                let n: i64 = body.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0; n as usize + 2];
                std::io::Read::read_exact(&mut self.reader, &mut buf).unwrap();
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            b'*' => {
                let n: i64 = body.parse().unwrap();
                if n < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..n).map(|_| self.read()).collect()))
            }
            other => panic!("unexpected RESP type byte {other}"),
        }
    }
}

fn start() -> (RedisServer, Client) {
    let server = RedisServer::start().expect("redis-server starts");
    let client = Client::connect(&server.addr());
    (server, client)
}

// ---------------------------------------------------------------------------------------------------------------
// Samples.

const SHA: &str = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"; // SHA1 of "return 1"

/// Requests across every family; key names are distinct within a request so that names identify positions.
fn samples() -> Vec<Vec<&'static str>> {
    let s: &[&[&str]] = &[
        // Strings.
        &["GET", "k"],
        &["SET", "k", "v"],
        &["SET", "k", "v", "EX", "10", "GET"],
        &["SETNX", "k", "v"],
        &["SETEX", "k", "10", "v"],
        &["PSETEX", "k", "10", "v"],
        &["GETSET", "k", "v"],
        &["GETDEL", "k"],
        &["GETEX", "k", "EX", "5"],
        &["GETRANGE", "k", "0", "1"],
        &["SETRANGE", "k", "0", "v"],
        &["APPEND", "k", "v"],
        &["STRLEN", "k"],
        &["INCR", "k"],
        &["INCRBY", "k", "2"],
        &["INCRBYFLOAT", "k", "1.5"],
        &["DECRBY", "k", "2"],
        &["MGET", "a", "b", "c"],
        &["MSET", "a", "1", "b", "2"],
        &["MSETNX", "a", "1", "b", "2", "c", "3"],
        &["LCS", "a", "b", "LEN"],
        &["SUBSTR", "k", "0", "1"],
        // Bitmaps.
        &["SETBIT", "k", "1", "1"],
        &["GETBIT", "k", "1"],
        &["BITCOUNT", "k", "0", "-1"],
        &["BITPOS", "k", "1"],
        &["BITOP", "AND", "d", "a", "b"],
        &["BITOP", "NOT", "d", "a"],
        &["BITFIELD", "k", "GET", "u8", "0"],
        &["BITFIELD", "k", "SET", "u8", "0", "1", "INCRBY", "u8", "0", "1"],
        &["BITFIELD_RO", "k", "GET", "u8", "0"],
        // Hashes.
        &["HSET", "h", "f", "v", "g", "w"],
        &["HSETNX", "h", "f", "v"],
        &["HGET", "h", "f"],
        &["HMGET", "h", "f", "g"],
        &["HMSET", "h", "f", "v"],
        &["HDEL", "h", "f", "g"],
        &["HEXISTS", "h", "f"],
        &["HGETALL", "h"],
        &["HKEYS", "h"],
        &["HLEN", "h"],
        &["HINCRBY", "h", "f", "1"],
        &["HSTRLEN", "h", "f"],
        &["HRANDFIELD", "h", "2", "WITHVALUES"],
        &["HSCAN", "h", "0", "COUNT", "10"],
        // Lists.
        &["LPUSH", "l", "a", "b"],
        &["RPUSHX", "l", "a"],
        &["LPOP", "l"],
        &["RPOP", "l", "2"],
        &["LLEN", "l"],
        &["LRANGE", "l", "0", "-1"],
        &["LINDEX", "l", "0"],
        &["LSET", "l", "0", "v"],
        &["LINSERT", "l", "BEFORE", "a", "b"],
        &["LREM", "l", "0", "a"],
        &["LTRIM", "l", "0", "1"],
        &["LPOS", "l", "a", "RANK", "1"],
        &["LMOVE", "a", "b", "LEFT", "RIGHT"],
        &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"],
        &["RPOPLPUSH", "a", "b"],
        &["BRPOPLPUSH", "a", "b", "0"],
        &["BLPOP", "a", "b", "0"],
        &["BRPOP", "a", "b", "c", "1.5"],
        &["LMPOP", "2", "a", "b", "LEFT", "COUNT", "2"],
        &["LMPOP", "1", "a", "RIGHT"],
        &["BLMPOP", "0", "2", "a", "b", "RIGHT"],
        // Sets.
        &["SADD", "s", "a", "b"],
        &["SREM", "s", "a"],
        &["SMEMBERS", "s"],
        &["SISMEMBER", "s", "a"],
        &["SMISMEMBER", "s", "a", "b"],
        &["SCARD", "s"],
        &["SPOP", "s", "2"],
        &["SRANDMEMBER", "s", "-2"],
        &["SMOVE", "a", "b", "m"],
        &["SINTER", "a", "b", "c"],
        &["SINTERSTORE", "d", "a", "b"],
        &["SUNION", "a", "b"],
        &["SUNIONSTORE", "d", "a"],
        &["SDIFF", "a", "b"],
        &["SDIFFSTORE", "d", "a", "b"],
        &["SINTERCARD", "2", "a", "b", "LIMIT", "1"],
        &["SSCAN", "s", "0", "MATCH", "*"],
        // Sorted sets.
        &["ZADD", "z", "1", "a", "2", "b"],
        &["ZINCRBY", "z", "1", "a"],
        &["ZSCORE", "z", "a"],
        &["ZMSCORE", "z", "a", "b"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZRANGESTORE", "d", "z", "0", "-1"],
        &["ZREVRANGE", "z", "0", "-1"],
        &["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "0", "1"],
        &["ZRANK", "z", "a"],
        &["ZREM", "z", "a", "b"],
        &["ZCARD", "z"],
        &["ZCOUNT", "z", "0", "1"],
        &["ZLEXCOUNT", "z", "-", "+"],
        &["ZPOPMIN", "z", "2"],
        &["BZPOPMIN", "a", "b", "0"],
        &["BZPOPMAX", "a", "0.5"],
        &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
        &["ZINTERSTORE", "d", "2", "a", "b", "AGGREGATE", "MAX"],
        &["ZDIFFSTORE", "d", "2", "a", "b"],
        &["ZUNION", "2", "a", "b", "WITHSCORES"],
        &["ZINTER", "3", "a", "b", "c"],
        &["ZDIFF", "2", "a", "b"],
        &["ZINTERCARD", "2", "a", "b", "LIMIT", "3"],
        &["ZMPOP", "2", "a", "b", "MIN"],
        &["BZMPOP", "0", "2", "a", "b", "MAX", "COUNT", "2"],
        &["ZRANDMEMBER", "z", "2"],
        &["ZSCAN", "z", "0"],
        &["ZREMRANGEBYRANK", "z", "0", "1"],
        // HyperLogLog.
        &["PFADD", "h", "a", "b"],
        &["PFCOUNT", "a", "b"],
        &["PFMERGE", "d", "a", "b"],
        // Geo.
        &["GEOADD", "g", "0", "0", "m"],
        &["GEODIST", "g", "a", "b", "km"],
        &["GEOHASH", "g", "a"],
        &["GEOPOS", "g", "a"],
        &["GEORADIUS", "g", "0", "0", "1", "km"],
        &["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "d"],
        &["GEORADIUS", "g", "0", "0", "1", "km", "STOREDIST", "d"],
        &["GEORADIUS", "g", "0", "0", "1", "km", "WITHDIST", "COUNT", "5", "STORE", "d", "STOREDIST", "e"],
        &["GEORADIUSBYMEMBER", "g", "m", "1", "km", "STORE", "d"],
        &["GEORADIUSBYMEMBER", "g", "m", "1", "km", "ASC"],
        &["GEORADIUS_RO", "g", "0", "0", "1", "km"],
        &["GEORADIUSBYMEMBER_RO", "g", "m", "1", "km"],
        &["GEOSEARCH", "g", "FROMMEMBER", "m", "BYRADIUS", "1", "km"],
        &["GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "0", "0", "BYBOX", "1", "1", "km", "STOREDIST"],
        // Streams.
        &["XADD", "s", "*", "f", "v"],
        &["XLEN", "s"],
        &["XRANGE", "s", "-", "+", "COUNT", "1"],
        &["XREVRANGE", "s", "+", "-"],
        &["XDEL", "s", "1-1"],
        &["XTRIM", "s", "MAXLEN", "10"],
        &["XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0"],
        &["XREAD", "BLOCK", "10", "STREAMS", "a", "$"],
        &["XREAD", "STREAMS", "streams", "0"],
        &["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "a", "b", ">", ">"],
        &["XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "0", "STREAMS", "a", ">"],
        &["XACK", "s", "g", "1-1", "1-2"],
        &["XCLAIM", "s", "g", "c", "0", "1-1", "JUSTID"],
        &["XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT", "10"],
        &["XPENDING", "s", "g", "-", "+", "10"],
        &["XSETID", "s", "1-1"],
        &["XINFO", "STREAM", "s", "FULL"],
        &["XINFO", "GROUPS", "s"],
        &["XINFO", "CONSUMERS", "s", "g"],
        &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"],
        &["XGROUP", "SETID", "s", "g", "$"],
        &["XGROUP", "DESTROY", "s", "g"],
        &["XGROUP", "CREATECONSUMER", "s", "g", "c"],
        &["XGROUP", "DELCONSUMER", "s", "g", "c"],
        // Keys.
        &["DEL", "a", "b"],
        &["UNLINK", "a", "b", "c"],
        &["EXISTS", "a", "b"],
        &["TOUCH", "a"],
        &["TYPE", "k"],
        &["EXPIRE", "k", "10", "NX"],
        &["PEXPIRE", "k", "10"],
        &["EXPIREAT", "k", "10"],
        &["PEXPIREAT", "k", "10"],
        &["EXPIRETIME", "k"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["PERSIST", "k"],
        &["RENAME", "a", "b"],
        &["RENAMENX", "a", "b"],
        &["COPY", "a", "b", "REPLACE"],
        &["COPY", "a", "b", "DB", "1"],
        &["OBJECT", "ENCODING", "k"],
        &["OBJECT", "FREQ", "k"],
        &["OBJECT", "IDLETIME", "k"],
        &["OBJECT", "REFCOUNT", "k"],
        &["DUMP", "k"],
        &["RESTORE", "k", "0", "x", "REPLACE"],
        &["MIGRATE", "h", "1", "k", "0", "5"],
        &["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"],
        &["MIGRATE", "h", "1", "", "0", "5", "COPY", "AUTH", "keys", "KEYS", "a", "b"],
        &["SORT", "k"],
        &["SORT", "k", "BY", "w_*", "GET", "#", "STORE", "d"],
        &["SORT", "k", "LIMIT", "0", "1", "STORE", "d"],
        &["SORT", "k", "STORE", "d", "STORE", "e"],
        &["SORT_RO", "k", "BY", "w_*"],
        &["MOVE", "k", "1"],
        &["MEMORY", "USAGE", "k", "SAMPLES", "5"],
        &["WATCH", "a", "b"],
        // Scripting.
        &["EVAL", "return 1", "2", "a", "b", "arg"],
        &["EVAL", "return 1", "0", "arg"],
        &["EVALSHA", SHA, "1", "a"],
        &["EVAL_RO", "return 1", "1", "a"],
        &["EVALSHA_RO", SHA, "2", "a", "b"],
        &["FCALL", "f", "1", "a", "x"],
        &["FCALL_RO", "f", "2", "a", "b"],
        &["FCALL", "f", "0"],
        // Pub/sub (channels are not keys).
        &["PUBLISH", "c", "m"],
        &["SPUBLISH", "c", "m"],
        &["SUBSCRIBE", "a", "b"],
        &["PSUBSCRIBE", "p*"],
        &["SSUBSCRIBE", "a"],
        &["PUBSUB", "CHANNELS"],
        &["PUBSUB", "NUMSUB", "a"],
        // Server and connection: no keys.
        &["PING"],
        &["ECHO", "x"],
        &["TIME"],
        &["INFO", "server"],
        &["DBSIZE"],
        &["KEYS", "*"],
        &["SCAN", "0", "MATCH", "k*"],
        &["RANDOMKEY"],
        &["FLUSHDB"],
        &["CONFIG", "GET", "maxmemory"],
        &["CLIENT", "LIST"],
        &["CLIENT", "SETNAME", "x"],
        &["SELECT", "0"],
        &["HELLO", "3"],
        &["AUTH", "pw"],
        &["MULTI"],
        &["EXEC"],
        &["SCRIPT", "LOAD", "return 1"],
        &["SCRIPT", "EXISTS", SHA],
        &["FUNCTION", "LIST"],
        &["LASTSAVE"],
        &["LOLWUT"],
        &["COMMAND", "COUNT"],
        &["SHUTDOWN", "NOSAVE"],
        &["WAIT", "1", "0"],
        &["ACL", "WHOAMI"],
        &["DEBUG", "SLEEP", "0"],
        &["REPLICAOF", "NO", "ONE"],
        &["CLUSTER", "INFO"],
        &["MONITOR"],
        &["SWAPDB", "0", "1"],
        &["ROLE"],
        &["RESET"],
        &["QUIT"],
    ];
    s.iter().map(|v| v.to_vec()).collect()
}

/// Requests with a `numkeys` the command refuses; the server runs them (nothing blocks: every one fails).
fn bad_numkeys() -> Vec<Vec<&'static str>> {
    let mut out: Vec<Vec<&'static str>> = Vec::new();
    let prefixes: &[&[&str]] = &[
        &["EVAL", "return 1"],
        &["EVAL_RO", "return 1"],
        &["EVALSHA", SHA],
        &["EVALSHA_RO", SHA],
        &["FCALL", "f"],
        &["FCALL_RO", "f"],
        &["ZUNIONSTORE", "d"],
        &["ZINTERSTORE", "d"],
        &["ZDIFFSTORE", "d"],
        &["ZUNION"],
        &["ZINTER"],
        &["ZDIFF"],
        &["ZINTERCARD"],
        &["SINTERCARD"],
        &["LMPOP"],
        &["ZMPOP"],
        &["BLMPOP", "0.01"],
        &["BZMPOP", "0.01"],
    ];
    for p in prefixes {
        let tail: &[&str] = match p[0] {
            "LMPOP" | "BLMPOP" => &["LEFT"],
            "ZMPOP" | "BZMPOP" => &["MIN"],
            _ => &[],
        };
        for (n, rest) in [
            ("x", &["a", "b"][..]),
            ("-1", &["a", "b"]),
            ("0", &["a", "b"]),
            ("3", &["a"]),
            ("5", &["a", "b"]),
            ("1x", &["a"]),
            ("01", &["a"]),
            ("+1", &["a"]),
            ("9223372036854775808", &["a"]),
        ] {
            let mut args = p.to_vec();
            args.push(n);
            args.extend_from_slice(rest);
            args.extend_from_slice(tail);
            out.push(args);
        }
    }
    out.push(vec!["EVALSHA", "abc", "x"]);
    out.push(vec!["EVALSHA_RO", "abc", "-1"]);
    out
}

fn load_function(c: &mut Client) {
    let code = "#!lua name=zedislib\n\
                redis.register_function{function_name='f', callback=function(k, a) return #k end, flags={'no-writes'}}";
    let r = c.call(&["FUNCTION", "LOAD", "REPLACE", code]);
    assert_eq!(r, Reply::Bulk(Some(b"zedislib".to_vec())));
    assert_eq!(c.call(&["SCRIPT", "LOAD", "return 1"]).str(), SHA);
}

// ---------------------------------------------------------------------------------------------------------------
// Tests against the server.

#[test]
fn keys_match_command_getkeys() {
    eprintln!("phase: start redis-server");
    let (_server, mut c) = start();
    let samples = samples();
    assert!(samples.len() >= 150, "{} samples", samples.len());
    eprintln!("phase: compare {} samples with COMMAND GETKEYS", samples.len());
    let mut keyed = 0;
    for args in &samples {
        let req = Request::from_args(args);
        let spec = resolve(&req).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        check_arity(spec, req.len()).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let ours = keys(spec, &req).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let ours: Vec<String> =
            ours.iter().map(|&i| String::from_utf8_lossy(req.arg(i).unwrap()).into_owned()).collect();
        let _ = policy(spec, &req);
        let mut cmd = vec!["COMMAND", "GETKEYS"];
        cmd.extend_from_slice(args);
        match c.call(&cmd) {
            Reply::Array(Some(list)) => {
                let theirs: Vec<String> = list.iter().map(Reply::str).collect();
                assert_eq!(ours, theirs, "{args:?}");
                keyed += usize::from(!theirs.is_empty());
            }
            // GETKEYS needs at least one argument after the command name; one-word commands have no keys.
            Reply::Error(e)
                if args.len() == 1 && e == "ERR wrong number of arguments for 'command|getkeys' command" =>
            {
                assert!(ours.is_empty(), "{args:?}");
            }
            Reply::Error(e) if e == "ERR The command has no key arguments" => {
                assert!(ours.is_empty(), "{args:?}: Redis says no keys, we say {ours:?}");
            }
            other => panic!("{args:?}: unexpected GETKEYS reply {other:?}"),
        }
    }
    assert!(keyed >= 120, "{keyed} keyed samples");
}

#[test]
fn invalid_requests_match_the_server() {
    eprintln!("phase: start redis-server");
    let (_server, mut c) = start();
    load_function(&mut c);

    eprintln!("phase: bad numkeys");
    for args in bad_numkeys() {
        let req = Request::from_args(&args);
        let spec = resolve(&req).unwrap();
        check_arity(spec, req.len()).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let ours: Result<Vec<usize>, KeyError> = keys(spec, &req).map(|k| k.to_vec());
        match c.call(&args) {
            Reply::Error(e) => assert_eq!(ours, Err(error_of(&e)), "{args:?}: Redis says {e}"),
            // The server accepted the numkeys: then so must we (e.g. "3" with enough arguments).
            other => assert!(ours.is_ok(), "{args:?}: Redis replied {other:?}, we said {ours:?}"),
        }
    }

    eprintln!("phase: GETKEYS on requests the command rejects");
    for args in [
        &["MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a"][..],
        &["XREAD", "COUNT", "1", "STREAMS", "a"],
        &["ZUNION", "0", "a"],
        &["EVAL", "s", "5", "a"],
    ] {
        let req = Request::from_args(args);
        let spec = resolve(&req).unwrap();
        let mut cmd = vec!["COMMAND", "GETKEYS"];
        cmd.extend_from_slice(args);
        let theirs = c.call(&cmd);
        let ours = keys(spec, &req);
        // Redis finds no keys (an error, or an empty list) and neither do we, or we say why.
        assert!(matches!(theirs, Reply::Error(_)) || theirs == Reply::Array(Some(vec![])), "{args:?}: {theirs:?}");
        assert!(ours.as_ref().map_or(true, |k| k.is_empty()), "{args:?}: Redis: {theirs:?}, we: {ours:?}");
    }

    eprintln!("phase: unknown commands and arity");
    let long = "x".repeat(300);
    let cases: Vec<Vec<&str>> = vec![
        vec!["FOOBAR", "a", "b"],
        vec!["nope"],
        vec!["nope", "abc", &long, "tail"],
        vec![&long],
        vec!["CONFIG", "FOO"],
        vec!["object", "nosuch", "k"],
        vec!["GET"],
        vec!["GET", "a", "b"],
        vec!["config"],
        vec!["config", "get"],
        vec!["MEMORY", "USAGE"],
        vec!["xinfo", "stream"],
        vec!["CLIENT", "KILL"],
        vec!["MSET", "a"],
        vec!["XREAD", "STREAMS", "a"],
    ];
    for args in cases {
        let req = Request::from_args(&args);
        let ours = match resolve(&req) {
            Err(e) => e.to_string(),
            Ok(spec) => check_arity(spec, req.len()).expect_err("arity should fail").to_string(),
        };
        match c.call(&args) {
            Reply::Error(e) => assert_eq!(ours, e, "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

fn error_of(text: &str) -> KeyError {
    let all = [
        KeyError::NotAnInteger,
        KeyError::BadNumberOfKeys,
        KeyError::NegativeKeys,
        KeyError::TooManyKeys,
        KeyError::NumkeysNotPositive,
        KeyError::Syntax,
        KeyError::NoScript,
    ];
    if let Some(e) = all.into_iter().find(|e| e.to_string() == text) {
        return e;
    }
    for spec in all_commands() {
        if KeyError::NoInputKeys(spec.name).to_string() == text {
            return KeyError::NoInputKeys(spec.name);
        }
    }
    panic!("no KeyError says {text:?}")
}

/// The committed table is what the installed Redis says (when it is the version the table was made from).
#[test]
fn table_matches_command_output() {
    eprintln!("phase: start redis-server");
    let (_server, mut c) = start();
    let info = c.call(&["INFO", "server"]).str();
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string();
    if version != REDIS_VERSION {
        eprintln!("skipped: redis-server is {version}, the table was generated from {REDIS_VERSION}");
        return;
    }
    eprintln!("phase: compare COMMAND with the table");
    let reply = c.call(&["COMMAND"]);
    let entries = reply.array();
    assert_eq!(entries.len(), commands().len());
    let mut seen = 0;
    for e in entries {
        seen += compare(e);
    }
    assert_eq!(seen, all_commands().count());
    assert_eq!(c.call(&["COMMAND", "COUNT"]).int(), commands().len() as i64);
}

fn compare(entry: &Reply) -> usize {
    let e = entry.array();
    let name = e[0].str();
    let spec: &CommandSpec = lookup_full_name(name.as_bytes()).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(spec.name, name);
    assert_eq!(i64::from(spec.arity), e[1].int(), "{name}");
    assert_eq!(spec.flags.names().collect::<Vec<_>>(), e[2].strings(), "{name}");
    assert_eq!([spec.first_key, spec.last_key, spec.step].map(i64::from), [e[3].int(), e[4].int(), e[5].int()]);
    let acl: Vec<String> = spec.acl.names().map(|n| format!("@{n}")).collect();
    let mut theirs = e[6].strings();
    theirs.sort();
    let mut ours = acl;
    ours.sort();
    assert_eq!(ours, theirs, "{name}");
    assert_eq!(spec.tips.to_vec(), e[7].strings(), "{name}");
    let specs = e[8].array();
    assert_eq!(spec.key_specs.len(), specs.len(), "{name}");
    for (ks, r) in spec.key_specs.iter().zip(specs) {
        let flags = get(r, "flags").strings();
        assert_eq!(ks.flags.names().collect::<Vec<_>>(), flags, "{name}");
        assert_eq!(ks.notes, get_opt(r, "notes").map(Reply::str).unwrap_or_default(), "{name}");
        let bs = get(r, "begin_search");
        let bs_spec = get(bs, "spec");
        let begin = match get(bs, "type").str().as_str() {
            "index" => BeginSearch::Index(get(bs_spec, "index").int() as i32),
            "keyword" => {
                let BeginSearch::Keyword { keyword, start_from } = ks.begin_search else {
                    panic!("{name}: {:?}", ks.begin_search)
                };
                assert_eq!(keyword, get(bs_spec, "keyword").str(), "{name}");
                assert_eq!(i64::from(start_from), get(bs_spec, "startfrom").int(), "{name}");
                ks.begin_search
            }
            _ => BeginSearch::Unknown,
        };
        assert_eq!(ks.begin_search, begin, "{name}");
        let fk = get(r, "find_keys");
        let fk_spec = get(fk, "spec");
        let find = match get(fk, "type").str().as_str() {
            "range" => FindKeys::Range {
                last_key: get(fk_spec, "lastkey").int() as i32,
                key_step: get(fk_spec, "keystep").int() as i32,
                limit: get(fk_spec, "limit").int() as i32,
            },
            "keynum" => FindKeys::Keynum {
                keynum_idx: get(fk_spec, "keynumidx").int() as i32,
                first_key: get(fk_spec, "firstkey").int() as i32,
                key_step: get(fk_spec, "keystep").int() as i32,
            },
            _ => FindKeys::Unknown,
        };
        assert_eq!(ks.find_keys, find, "{name}");
    }
    let subs = e[9].array();
    assert_eq!(spec.subcommands.len(), subs.len(), "{name}");
    1 + subs.iter().map(compare).sum::<usize>()
}

/// The value of `key` in a RESP2 map (a flat array of key, value, ...).
fn get_opt<'a>(map: &'a Reply, key: &str) -> Option<&'a Reply> {
    map.array().chunks(2).find(|kv| kv[0].str() == key).map(|kv| &kv[1])
}

fn get<'a>(map: &'a Reply, key: &str) -> &'a Reply {
    get_opt(map, key).unwrap_or_else(|| panic!("no {key} in {map:?}"))
}

// ---------------------------------------------------------------------------------------------------------------
// No server: nothing panics, whatever the arguments.

fn arg_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0", "1", "2", "3", "-1", "-2", "x", "", "STREAMS", "streams", "STORE", "STOREDIST", "KEYS", "BLOCK",
            "COUNT", "GROUP", "NOACK", "LIMIT", "GET", "BY", "AUTH", "AUTH2", "DB", "LEFT", "MIN", "$", ">",
            "9223372036854775807", "9223372036854775808", "-9223372036854775808", "4294967297",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
    ]
}

fn request_strategy() -> impl Strategy<Value = (&'static CommandSpec, Vec<Vec<u8>>)> {
    let specs: Vec<&'static CommandSpec> = all_commands().collect();
    (prop::sample::select(specs), any::<bool>(), prop::collection::vec(arg_strategy(), 0..12)).prop_map(
        |(spec, lower, rest)| {
            let mut args = Vec::new();
            let case = |s: &str| if lower { s.to_ascii_lowercase() } else { s.to_string() };
            match spec.parent {
                Some(p) => {
                    args.push(case(p).into_bytes());
                    args.push(case(spec.token).into_bytes());
                }
                None => args.push(case(spec.token).into_bytes()),
            }
            args.extend(rest);
            (spec, args)
        },
    )
}

fn check(spec: &CommandSpec, req: &Request) -> Result<(), TestCaseError> {
    let _ = check_arity(spec, req.len());
    if let Ok(k) = keys(spec, req) {
        prop_assert!(k.iter().all(|&i| i > 0 && i < req.len()), "{:?} -> {:?}", req, k);
    }
    prop_assert!(shard_channels(spec, req).iter().all(|&i| i > 0 && i < req.len()));
    let _ = policy(spec, req);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn nothing_panics((spec, args) in request_strategy()) {
        let req = Request::from_args(&args);
        // The spec the name was taken from, and (for a container given a random word) what the name resolves to.
        check(spec, &req)?;
        match resolve(&req) {
            Ok(resolved) => {
                prop_assert!(spec.is_container() || std::ptr::eq(resolved, spec));
                check(resolved, &req)?;
            }
            Err(e) => prop_assert!(spec.is_container(), "{:?}: {}", req, e),
        }
    }

    #[test]
    fn arbitrary_requests_never_panic(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..6)) {
        let req = Request::from_args(&args);
        if let Ok(spec) = resolve(&req) {
            let _ = check_arity(spec, req.len());
            let _ = keys(spec, &req);
            let _ = policy(spec, &req);
        }
    }
}
