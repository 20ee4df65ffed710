//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Once;
use std::time::{Duration, Instant};

/// Logs to the test's captured output; `RUST_LOG` overrides the default `info`.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().init();
    });
}

/// Polls `check` every 20 ms until it is true; false if `timeout` passes first.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True if a TCP connect to `addr` is refused (nothing listens there).
pub fn refuses(addr: &str) -> bool {
    match TcpStream::connect(addr) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

/// Sends one inline command and returns whatever arrives within `timeout` once `want` is seen.
pub fn inline_command(addr: &str, command: &str, want: &str, timeout: Duration) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&reply).contains(want) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// True if a process with this pid exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}
