//! Real `redis-server` and ZooKeeper processes for tests and for the `zedis up` sandbox.
//!
//! Every server runs on a free `127.0.0.1` port (or one the caller fixes), in its own
//! directory (a temporary one deleted on drop, or one the caller chooses and keeps), with its
//! output in a log file there. `start` returns only once the server answers (redis: `PING` →
//! `+PONG`; ZooKeeper: `srvr` → `Mode: standalone`, or leader/follower for every ensemble
//! node), or an error whose `Display` ends with the tail of the server's log. Nothing here
//! panics on a server failure: tests `.expect()` the result, the sandbox reports it.
//!
//! ```no_run
//! use zedis_testkit::{RedisServer, ZkEnsemble, ZkServer};
//!
//! let redis = RedisServer::start().expect("redis-server starts");
//! let zk = ZkServer::start().expect("zookeeper starts");
//! let mut ensemble = ZkEnsemble::start(3).expect("ensemble starts");
//! println!("{} {} {}", redis.url(), zk.connect_string(), ensemble.connect_string());
//! ensemble.kill9(0);
//! ensemble.restart(0).expect("node 1 rejoins");
//! ```
//!
//! # Processes
//!
//! Each child is in its own process group (a Ctrl-C on the terminal reaches only the parent,
//! which stops its children in order) and, on Linux, has `PR_SET_PDEATHSIG = SIGKILL` so it
//! dies with its parent even if the parent is killed without running any destructor. The
//! kernel sends that signal when the **thread** that forked the child exits, not the
//! process; so every fork is done by one internal thread that lives as long as the process,
//! and servers may be started from any thread (a test thread, `spawn_blocking`, ...) without
//! dying when that thread ends. Drop sends SIGKILL and reaps, so nothing is left listening
//! after a test, even one that panicked.
//!
//! # Programs
//!
//! - `redis-server` from `PATH`, or `$ZEDIS_REDIS_SERVER`.
//! - `java` from `PATH`, or `$ZEDIS_JAVA`, with the class path `$ZEDIS_ZK_CLASSPATH` or, by
//!   default, Debian's `/usr/share/java/{zookeeper.jar,slf4j-log4j12.jar,log4j-1.2.jar}`
//!   (see `ZkServer` for why not `/usr/share/java/*`).
//!
//! # Ports
//!
//! [`free_port`] never hands out the same port twice in one process. When the caller did not
//! fix the port and the server finds it taken anyway (another process won the race), `start`
//! retries on a new port, up to three times.

#[cfg(not(unix))]
compile_error!("zedis-testkit spawns and signals Unix processes; it only builds on Unix");

mod dir;
mod ensemble;
mod error;
pub mod interrupt;
mod port;
mod process;
mod redis;
mod zookeeper;

pub use ensemble::ZkEnsemble;
pub use error::{Result, TestkitError, LOG_TAIL_LINES};
pub use port::free_port;
pub use process::spawn_supervised;
pub use redis::{redis_ping, RedisOptions, RedisServer, REDIS_DEFAULT_READY_TIMEOUT};
pub use zookeeper::{four_letter_word, ZkOptions, ZkServer, ZK_DEFAULT_READY_TIMEOUT, ZK_DEFAULT_TICK_MS};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn assert<T: std::error::Error + Send + Sync + 'static>() {}
        assert::<TestkitError>();
        fn assert_send<T: Send>() {}
        assert_send::<RedisServer>();
        assert_send::<ZkServer>();
        assert_send::<ZkEnsemble>();
    }
}
