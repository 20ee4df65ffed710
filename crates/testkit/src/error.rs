//! The error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while starting or managing a server.
///
/// Errors are returned, never panicked, because the `zedis up` sandbox uses this crate too.
/// Tests usually `.expect()` them; the `Display` text of [`TestkitError::NotReady`] carries the
/// tail of the server's log so the failure explains itself.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The server's program could not be spawned (not installed, not executable, ...).
    #[error("failed to spawn {server} ({program}): {source}")]
    Spawn {
        /// Which server, e.g. `redis-server` or `zookeeper node 2`.
        server: String,
        /// The program that was executed.
        program: String,
        /// The spawn error.
        #[source]
        source: io::Error,
    },

    /// The server did not answer its readiness probe before the deadline, or exited early.
    #[error(
        "{server} at {addr} not ready: {reason}\n\
         --- last {tail_lines} lines of {log_path} ---\n{log_tail}\n--- end of log ---",
        log_path = log_path.display(),
        tail_lines = LOG_TAIL_LINES
    )]
    NotReady {
        /// Which server, e.g. `redis-server` or `zookeeper node 2`.
        server: String,
        /// The address that was probed, `127.0.0.1:PORT`.
        addr: String,
        /// Why it is not ready: the process exited early (with its status), or no answer
        /// within the ready timeout (with the last probe's error).
        reason: String,
        /// The log file of the server.
        log_path: PathBuf,
        /// The last lines of that log file.
        log_tail: String,
    },

    /// No free loopback port could be found.
    #[error("no free port on 127.0.0.1: {0}")]
    NoFreePort(String),

    /// Any other I/O error (creating directories, writing config files, ...).
    #[error("testkit I/O error: {0}")]
    Io(#[from] io::Error),
}

/// How many lines of a server's log a [`TestkitError::NotReady`] carries.
pub const LOG_TAIL_LINES: usize = 60;

/// The crate's result type.
pub type Result<T> = std::result::Result<T, TestkitError>;

impl TestkitError {
    /// True if the server exited because its port was already taken, which is worth a retry
    /// on a new port when the caller did not fix the port.
    pub fn is_address_in_use(&self) -> bool {
        match self {
            TestkitError::NotReady { log_tail, .. } => mentions_address_in_use(log_tail),
            TestkitError::Io(e) => e.kind() == io::ErrorKind::AddrInUse,
            _ => false,
        }
    }
}

/// True if a piece of server log reports a bind failure (redis and Java word it the same way).
pub(crate) fn mentions_address_in_use(log: &str) -> bool {
    log.contains("Address already in use")
}
