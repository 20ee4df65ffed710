//! `FencedResource` against a real redis-server: the highest token wins, stale writes are
//! refused and change nothing, and a delayed holder's late write is refused after a newer
//! holder wrote.

use redis::aio::ConnectionManager;
use redis::Value;
use zedis_recipes::{FenceError, FencedResource};
use zedis_testkit::RedisServer;

async fn connect(server: &RedisServer) -> ConnectionManager {
    let client = redis::Client::open(server.url()).expect("redis url");
    ConnectionManager::new(client).await.expect("connect to redis")
}

async fn get(conn: &mut ConnectionManager, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(conn).await.expect("GET")
}

fn set<'a>(key: &'a str, value: &'a str) -> [&'a [u8]; 3] {
    [b"SET", key.as_bytes(), value.as_bytes()]
}

#[tokio::test]
async fn higher_and_equal_tokens_pass_lower_ones_are_refused() {
    let server = RedisServer::start().expect("start redis");
    let mut conn = connect(&server).await;
    let fenced = FencedResource::new(conn.clone(), "orders").expect("resource");
    let key = fenced.data_key("state");
    assert_eq!(fenced.highest().await.expect("highest"), None, "no token before the first write");

    eprintln!("phase: the first token passes and is recorded");
    assert_eq!(fenced.execute(5, &set(&key, "five")).await.expect("token 5"), Value::Okay);
    assert_eq!(fenced.highest().await.expect("highest"), Some(5));

    eprintln!("phase: a higher token passes");
    fenced.execute(7, &set(&key, "seven")).await.expect("token 7");
    assert_eq!(fenced.highest().await.expect("highest"), Some(7));

    eprintln!("phase: the same holder writes again with the same token");
    fenced.execute(7, &set(&key, "seven again")).await.expect("equal token passes");
    assert_eq!(get(&mut conn, &key).await.as_deref(), Some("seven again"));

    eprintln!("phase: a lower token is refused and changes nothing");
    let err = fenced.execute(6, &set(&key, "six")).await.expect_err("token 6 is stale");
    assert!(matches!(err, FenceError::Stale { token: 6, highest: 7, .. }), "{err}");
    assert_eq!(get(&mut conn, &key).await.as_deref(), Some("seven again"), "data unchanged");
    assert_eq!(fenced.highest().await.expect("highest"), Some(7), "highest unchanged");

    eprintln!("phase: check() records without a command, and refuses stale tokens alike");
    fenced.check(9).await.expect("check 9");
    assert_eq!(fenced.highest().await.expect("highest"), Some(9));
    assert!(fenced.check(8).await.expect_err("check 8").is_stale());
    assert!(fenced.execute(8, &set(&key, "eight")).await.expect_err("token 8 after check 9").is_stale());

    eprintln!("phase: replies of any shape come back: nil, integers, arrays");
    assert_eq!(fenced.execute(9, &["GET", &fenced.data_key("missing")]).await.expect("GET"), Value::Nil);
    let list = fenced.data_key("list");
    assert_eq!(fenced.execute(9, &["RPUSH", &list, "a", "b"]).await.expect("RPUSH"), Value::Int(2));
    let range = fenced.execute_cmd(9, redis::cmd("LRANGE").arg(&list).arg(0).arg(-1)).await.expect("LRANGE");
    assert_eq!(range, Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::BulkString(b"b".to_vec())]));
}

#[tokio::test]
async fn tokens_are_exact_over_the_whole_u64_range() {
    let server = RedisServer::start().expect("start redis");
    let conn = connect(&server).await;
    let fenced = FencedResource::new(conn, "big").expect("resource");
    // Above 2^53 a double cannot tell these apart; the script compares them exactly.
    let high = (1u64 << 53) + 1;
    fenced.check(high).await.expect("2^53 + 1");
    assert!(fenced.check(high - 1).await.expect_err("2^53 is stale").is_stale());
    fenced.check(u64::MAX).await.expect("u64::MAX");
    assert_eq!(fenced.highest().await.expect("highest"), Some(u64::MAX));
    let err = fenced.check(u64::MAX - 1).await.expect_err("stale");
    assert!(matches!(err, FenceError::Stale { token, highest: u64::MAX, .. } if token == u64::MAX - 1), "{err}");
    // Shorter decimal strings are smaller numbers, whatever their first digit.
    let other = FencedResource::new(connect(&server).await, "lengths").expect("resource");
    other.check(10).await.expect("10");
    assert!(other.check(9).await.expect_err("9 < 10").is_stale());
}

#[tokio::test]
async fn resources_are_fenced_independently() {
    let server = RedisServer::start().expect("start redis");
    let conn = connect(&server).await;
    let a = FencedResource::new(conn.clone(), "a").expect("resource");
    let b = FencedResource::new(conn.clone(), "b").expect("resource");
    a.check(100).await.expect("a at 100");
    b.execute(1, &set(&b.data_key("x"), "1")).await.expect("b's token 1 is not compared with a's");
    assert_eq!(a.highest().await.expect("highest"), Some(100));
    assert_eq!(b.highest().await.expect("highest"), Some(1));
}

#[tokio::test]
async fn a_delayed_holders_late_write_is_refused() {
    let server = RedisServer::start().expect("start redis");
    let mut conn = connect(&server).await;
    let holder_a = FencedResource::new(connect(&server).await, "account").expect("resource");
    let holder_b = FencedResource::new(connect(&server).await, "account").expect("resource");
    let balance = holder_a.data_key("balance");

    eprintln!("phase: A holds the lock with token 5 and writes");
    holder_a.execute(5, &set(&balance, "100")).await.expect("A writes with 5");

    eprintln!("phase: A pauses; its lock passes to B with token 7; B writes");
    holder_b.execute(7, &set(&balance, "70")).await.expect("B writes with 7");

    eprintln!("phase: A wakes up and writes with its old token");
    let err = holder_a.execute(5, &set(&balance, "150")).await.expect_err("A's token is stale");
    match err {
        FenceError::Stale { ref resource, token, highest } => {
            assert_eq!((resource.as_str(), token, highest), ("account", 5, 7));
        }
        other => panic!("expected Stale, got {other}"),
    }
    assert_eq!(get(&mut conn, &balance).await.as_deref(), Some("70"), "B's write stands");
    holder_b.execute(7, &["INCRBY", &balance, "5"]).await.expect("B keeps writing");
    assert_eq!(get(&mut conn, &balance).await.as_deref(), Some("75"));
}

#[tokio::test]
async fn failed_commands_and_bad_records_are_errors_not_passes() {
    let server = RedisServer::start().expect("start redis");
    let mut conn = connect(&server).await;
    let fenced = FencedResource::new(conn.clone(), "r").expect("resource");
    let list = fenced.data_key("list");
    let _: () = redis::cmd("RPUSH").arg(&list).arg("x").query_async(&mut conn).await.expect("RPUSH");

    eprintln!("phase: a command that fails (WRONGTYPE) does not record its token");
    let err = fenced.execute(4, &["INCR", &list]).await.expect_err("INCR on a list fails");
    assert!(matches!(err, FenceError::Redis { .. }), "{err}");
    assert_eq!(fenced.highest().await.expect("highest"), None, "nothing recorded");

    eprintln!("phase: the script reloads itself after SCRIPT FLUSH (EVALSHA falls back)");
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.expect("SCRIPT FLUSH");
    fenced.check(4).await.expect("check after flush");

    eprintln!("phase: a record that is not a token is reported, not trusted");
    let _: () = redis::cmd("SET").arg(fenced.fence_key()).arg("garbage").query_async(&mut conn).await.expect("SET");
    assert!(matches!(fenced.check(5).await, Err(FenceError::Redis { .. })));
    assert!(matches!(fenced.highest().await, Err(FenceError::Corrupt { .. })));

    eprintln!("phase: an empty command is refused before anything is sent");
    let empty: [&str; 0] = [];
    assert!(matches!(fenced.execute(5, &empty).await, Err(FenceError::InvalidCommand(_))));
}
