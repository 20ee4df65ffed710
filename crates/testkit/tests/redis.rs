//! redis-server lifecycle: start, readiness, stop, restart, kill -9, SIGSTOP, errors.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{eventually, init_tracing, inline_command, process_exists, refuses};
use tracing::info;
use zedis_testkit::{free_port, RedisOptions, RedisServer, TestkitError};

#[test]
fn start_answers_then_stop_frees_the_port() {
    init_tracing();
    info!("phase: start");
    let mut redis = RedisServer::start().expect("redis-server starts");
    assert_eq!(redis.addr(), format!("127.0.0.1:{}", redis.port()));
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/", redis.port()));
    assert!(redis.ping(Duration::from_secs(1)));
    assert!(redis.is_running());
    assert!(redis.pid().is_some());
    assert!(redis.log().contains("Ready to accept connections"), "{}", redis.log());
    assert!(format!("{redis:?}").contains(&redis.addr()));

    info!("phase: stop");
    let pid = redis.pid().unwrap();
    redis.stop();
    assert!(!redis.is_running());
    assert_eq!(redis.pid(), None);
    assert!(!process_exists(pid), "pid {pid} still exists after stop");
    assert!(refuses(&redis.addr()));
    assert!(!redis.ping(Duration::from_millis(200)));
}

#[test]
fn restart_keeps_port_and_dir() {
    init_tracing();
    info!("phase: start");
    let mut redis = RedisServer::start().expect("redis-server starts");
    let (port, dir, pid) = (redis.port(), redis.dir().to_path_buf(), redis.pid());

    info!("phase: restart while running");
    redis.restart().expect("restart");
    assert_eq!(redis.port(), port);
    assert_eq!(redis.dir(), dir);
    assert_ne!(redis.pid(), pid);
    assert!(redis.ping(Duration::from_secs(1)));

    info!("phase: restart after kill -9");
    redis.kill9();
    assert!(refuses(&redis.addr()));
    redis.restart().expect("restart after kill -9");
    assert_eq!(redis.port(), port);
    assert!(redis.ping(Duration::from_secs(1)));
}

#[test]
fn kill9_makes_the_port_refuse_connections() {
    init_tracing();
    let mut redis = RedisServer::start().expect("redis-server starts");
    let pid = redis.pid().unwrap();
    info!(pid, "phase: kill -9");
    redis.kill9();
    assert!(!redis.is_running());
    assert!(!process_exists(pid), "pid {pid} not reaped");
    assert!(refuses(&redis.addr()));
    redis.kill9(); // a second kill is a no-op
    redis.stop(); // and so is stopping a dead server
}

#[test]
fn sigstop_freezes_and_sigcont_recovers() {
    init_tracing();
    let redis = RedisServer::start().expect("redis-server starts");
    info!("phase: SIGSTOP");
    redis.sigstop();
    assert!(!redis.ping(Duration::from_millis(300)), "a stopped server answered PING");
    info!("phase: SIGCONT");
    redis.sigcont();
    assert!(eventually(Duration::from_secs(5), || redis.ping(Duration::from_millis(300))), "no PONG after SIGCONT");
}

#[test]
fn bad_extra_arg_reports_the_log() {
    init_tracing();
    let opts = RedisOptions { extra_args: vec!["--no-such-option".into()], ..Default::default() };
    let err = RedisServer::start_with(opts).expect_err("redis-server must refuse an unknown option");
    let text = err.to_string();
    info!(%text, "phase: got the expected error");
    assert!(matches!(err, TestkitError::NotReady { .. }), "{err:?}");
    assert!(text.contains("no-such-option"), "{text}");
    assert!(text.contains("Bad directive"), "{text}");
    assert!(text.contains("exited early"), "{text}");
    assert!(!err.is_address_in_use());
}

#[test]
fn extra_args_are_applied() {
    init_tracing();
    let opts = RedisOptions { extra_args: vec!["--maxmemory".into(), "10mb".into()], ..Default::default() };
    let redis = RedisServer::start_with(opts).expect("redis-server starts");
    let reply = inline_command(&redis.addr(), "CONFIG GET maxmemory", "10485760", Duration::from_secs(2));
    assert!(reply.contains("10485760"), "{reply:?}");
}

#[test]
fn fixed_dir_and_port_are_used_and_kept() {
    init_tracing();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("nested").join("redis");
    let port = free_port().unwrap();
    let opts = RedisOptions { port: Some(port), dir: Some(dir.clone()), ..Default::default() };
    let redis = RedisServer::start_with(opts).expect("redis-server starts");
    assert_eq!(redis.port(), port);
    assert_eq!(redis.dir(), dir);
    let addr = redis.addr();
    info!("phase: drop");
    drop(redis);
    assert!(refuses(&addr));
    assert!(dir.join("redis.log").exists(), "a caller's dir is kept");
}

#[test]
fn temporary_dir_is_removed_on_drop() {
    init_tracing();
    let redis = RedisServer::start().expect("redis-server starts");
    let dir = redis.dir().to_path_buf();
    assert!(dir.join("redis.log").exists());
    drop(redis);
    assert!(!dir.exists());
}

#[test]
fn a_taken_fixed_port_is_an_error() {
    init_tracing();
    let port = free_port().unwrap();
    let _holder = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let opts = RedisOptions { port: Some(port), ..Default::default() };
    let err = RedisServer::start_with(opts).expect_err("the port is taken");
    assert!(err.is_address_in_use(), "{err}");
}
