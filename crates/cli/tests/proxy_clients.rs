//! Real client programs against the proxy, used the way people use them: `redis-cli` one-shot
//! commands, `--pipe` mass insertion, `--scan`, `--bigkeys`, `-r`, `--eval`; and redis-py's
//! ordinary API (skipped with a note when the `redis` Python package is not installed; install
//! it with `pip install redis`).

mod proxy_common;

use std::collections::BTreeSet;
use std::time::Duration;

use proxy_common::{encode, have_program, port_of, run_with_input, DumpOnPanic, Phases, Resp, Sandbox};

fn sandbox() -> &'static Sandbox {
    Sandbox::shared("proxy_clients")
}

/// `redis-cli -h HOST -p PORT args...` with `stdin`; (exit code, stdout, stderr).
fn cli(sb: &Sandbox, args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let port = port_of(&sb.proxy);
    let mut all = vec!["-h", "127.0.0.1", "-p", port.as_str()];
    all.extend_from_slice(args);
    run_with_input("redis-cli", &all, stdin, Duration::from_secs(60))
}

fn cli_out(sb: &Sandbox, args: &[&str]) -> String {
    let (code, out, err) = cli(sb, args, b"");
    assert_eq!(code, Some(0), "redis-cli {args:?} failed: {out}{err}");
    out
}

#[test]
fn redis_cli_ordinary_use() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("redis_cli_ordinary_use");
    assert!(have_program("redis-cli", &["--version"]), "redis-cli is not installed (apt-get install redis-tools)");

    p.phase("one-shot commands");
    assert_eq!(cli_out(sb, &["ping"]), "PONG\n");
    assert_eq!(cli_out(sb, &["set", "e2e-cli:a", "1"]), "OK\n");
    assert_eq!(cli_out(sb, &["get", "e2e-cli:a"]), "1\n");
    assert_eq!(cli_out(sb, &["--no-raw", "get", "e2e-cli:a"]), "\"1\"\n");
    assert_eq!(cli_out(sb, &["mset", "e2e-cli:x", "10", "e2e-cli:y", "20", "e2e-cli:z", "30"]), "OK\n");
    assert_eq!(cli_out(sb, &["mget", "e2e-cli:z", "e2e-cli:none", "e2e-cli:x"]), "30\n\n10\n");
    assert_eq!(cli_out(sb, &["hset", "e2e-cli:h", "f1", "v1", "f2", "v2"]), "2\n");
    assert_eq!(cli_out(sb, &["hgetall", "e2e-cli:h"]), "f1\nv1\nf2\nv2\n");
    assert_eq!(cli_out(sb, &["-r", "50", "incr", "e2e-cli:counter"]).lines().last(), Some("50"));
    assert_eq!(cli_out(sb, &["del", "e2e-cli:x", "e2e-cli:y", "e2e-cli:z", "e2e-cli:none"]), "3\n");
    let out = cli_out(sb, &["config", "get", "maxmemory"]);
    assert!(out.starts_with("ERR CONFIG GET is not supported by the zedis proxy"), "{out}");
    let out = cli_out(sb, &["info", "server"]);
    assert!(out.contains("redis_version:"), "{out}");

    p.phase("--eval with a key and an argument");
    let script = std::env::temp_dir().join(format!("zedis-e2e-{}.lua", std::process::id()));
    std::fs::write(&script, "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])").unwrap();
    let out = cli_out(sb, &["--eval", script.to_str().unwrap(), "e2e-cli:evald", ",", "from-lua"]);
    let _ = std::fs::remove_file(&script);
    assert_eq!(out, "from-lua\n");

    p.phase("--bigkeys walks the keyspace with SCAN through the proxy");
    let out = cli_out(sb, &["--bigkeys"]);
    assert!(out.contains("Biggest   hash found") && out.contains("Sampled"), "{out}");
}

#[test]
fn redis_cli_pipe_mass_insertion_and_scan() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("redis_cli_pipe_mass_insertion_and_scan");
    let keys: Vec<String> = (0..2000).map(|i| format!("e2e-cli-pipe:{i}")).collect();
    let mut input = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        input.extend(encode(&["SET", k, &format!("value-{i}")]));
    }
    p.phase("cat 2,000 SETs | redis-cli --pipe");
    let (code, out, err) = cli(sb, &["--pipe"], &input);
    assert_eq!(code, Some(0), "redis-cli --pipe failed:\n{out}\n{err}");
    assert!(out.contains("errors: 0, replies: 2000"), "redis-cli --pipe output:\n{out}\n{err}");

    p.phase("every key is there with its value");
    let mut c = sb.raw();
    let mut args = vec!["MGET".to_string()];
    args.extend(keys.iter().cloned());
    let got = c.cmd(&args);
    let want = Resp::Array((0..2000).map(|i| Resp::bulk(format!("value-{i}"))).collect());
    assert!(got == want, "MGET of the 2,000 piped keys differs");

    p.phase("--pipe counts errors: 999 good commands and one refused");
    let mut input = Vec::new();
    for i in 0..999 {
        input.extend(encode(&["INCR", &format!("e2e-cli-pipe:ctr:{}", i % 10)]));
    }
    input.extend(encode(&["CONFIG", "GET", "maxmemory"]));
    let (code, out, err) = cli(sb, &["--pipe"], &input);
    assert!(out.contains("errors: 1, replies: 1000"), "redis-cli --pipe output ({code:?}):\n{out}\n{err}");

    p.phase("redis-cli --scan --pattern lists every key");
    let out = cli_out(sb, &["--scan", "--pattern", "e2e-cli-pipe:*"]);
    // Other tests of this file write meanwhile (a backend rehash may repeat a key), so this
    // compares sets; proxy_scan.rs checks "exactly once" on a quiet sandbox.
    let unique: BTreeSet<&str> = out.lines().filter(|l| !l.contains(":ctr:")).collect();
    let want: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(unique, want, "redis-cli --scan --pattern e2e-cli-pipe:*");
    let counters = out.lines().filter(|l| l.contains(":ctr:")).collect::<BTreeSet<_>>().len();
    assert_eq!(counters, 10);
}

const REDIS_PY_SCRIPT: &str = r#"
import sys, redis
host, port, protocol = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kwargs = dict(host=host, port=port, decode_responses=True, socket_timeout=10)
if protocol != "default":
    kwargs["protocol"] = int(protocol)
r = redis.Redis(**kwargs)
fails = []
def check(what, got, want):
    if got != want:
        fails.append(f"{what}: got {got!r:.400}, want {want!r:.400}")

check("ping", r.ping(), True)
check("set", r.set("e2e-py:a", "1"), True)
check("get", r.get("e2e-py:a"), "1")
check("get missing", r.get("e2e-py:missing"), None)
check("set nx", r.set("e2e-py:a", "2", nx=True), None)
check("incr", r.incr("e2e-py:n"), 1)
check("incrby", r.incrby("e2e-py:n", 41), 42)
keys = [f"e2e-py:k{i}" for i in range(100)]
check("mset", r.mset({k: f"v{i}" for i, k in enumerate(keys)}), True)
check("mget", r.mget(keys + ["e2e-py:missing"]), [f"v{i}" for i in range(100)] + [None])
check("exists", r.exists(*keys), 100)
check("hset", r.hset("e2e-py:h", mapping={"name": "zedis", "kind": "proxy"}), 2)
check("hgetall", r.hgetall("e2e-py:h"), {"name": "zedis", "kind": "proxy"})
check("expire", r.expire("e2e-py:a", 100), True)
ttl = r.ttl("e2e-py:a")
if not 95 <= ttl <= 100:
    fails.append(f"ttl: {ttl}")
check("persist", r.persist("e2e-py:a"), True)
check("ttl after persist", r.ttl("e2e-py:a"), -1)

pipe = r.pipeline(transaction=False)
for i in range(500):
    pipe.set(f"e2e-py:p{i}", i)
for i in range(500):
    pipe.get(f"e2e-py:k{i % 100}")
res = pipe.execute()
check("pipeline sets", res[:500], [True] * 500)
check("pipeline gets", res[500:], [f"v{i % 100}" for i in range(500)])

pipe = r.pipeline(transaction=False)
for i in range(200):
    pipe.incr("e2e-py:counter")
check("pipelined INCRs of one key come back 1..200 in order", pipe.execute(), list(range(1, 201)))

seen = list(r.scan_iter(match="e2e-py:p*", count=100))
# Other tests write meanwhile (a backend rehash may repeat a key): compare sets here.
check("scan_iter finds every key", sorted(set(seen)), sorted(f"e2e-py:p{i}" for i in range(500)))
check("delete", r.delete(*[f"e2e-py:p{i}" for i in range(500)]), 500)
check("dbsize is an int", isinstance(r.dbsize(), int), True)
info = r.info()
check("info has redis_version", "redis_version" in info, True)
check("client_setname", r.client_setname("e2e-py"), True)
check("client_getname", r.client_getname(), "e2e-py")
try:
    r.config_get("maxmemory")
    fails.append("config_get should fail")
except redis.ResponseError as e:
    check("config_get error", str(e).startswith("CONFIG GET is not supported by the zedis proxy"), True)
check("still usable after an error", r.get("e2e-py:n"), "42")

for f in fails:
    print("FAIL", f)
print("DONE", len(fails), "failures")
"#;

fn redis_py_available() -> bool {
    let ok = have_program("python3", &["-c", "import redis"]);
    if !ok {
        eprintln!(
            "SKIPPED: the redis Python package is not installed (`pip install redis`); \
             the redis-py checks did not run"
        );
    }
    ok
}

fn run_redis_py(sb: &Sandbox, protocol: &str) -> String {
    let port = port_of(&sb.proxy);
    // Each protocol's run gets its own keys: the two tests share a sandbox and run in parallel.
    let script = REDIS_PY_SCRIPT.replace("e2e-py:", &format!("e2e-py-{protocol}:"));
    let (code, out, err) =
        run_with_input("python3", &["-", "127.0.0.1", &port, protocol], script.as_bytes(), Duration::from_secs(60));
    assert_eq!(code, Some(0), "the redis-py script failed:\n{out}\n{err}");
    out
}

#[test]
fn redis_py_ordinary_use() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    let p = Phases::new("redis_py_ordinary_use");
    if !redis_py_available() {
        return;
    }
    p.phase("redis-py (RESP2): set/get/mget/pipeline/scan_iter/hset/hgetall/incr/expire/ttl");
    let out = run_redis_py(sb, "2");
    assert!(out.contains("DONE 0 failures"), "redis-py through the proxy:\n{out}");
}

/// Recent redis-py (8.x) speaks RESP3 by default (`HELLO 3` on connect): the proxy's RESP3
/// clients get replies from backend connections that speak RESP3 too.
#[test]
fn redis_py_default_protocol() {
    let sb = sandbox();
    let _d = DumpOnPanic(sb);
    if !redis_py_available() {
        return;
    }
    let out = run_redis_py(sb, "default");
    assert!(out.contains("DONE 0 failures"), "redis-py with its default protocol:\n{out}");
}
