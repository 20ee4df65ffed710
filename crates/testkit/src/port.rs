//! Free loopback ports, never handed out twice by one process.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::Mutex;

use crate::{Result, TestkitError};

/// Every port this process has handed out. Ports stay in the set for the life of the process,
/// so a server that was stopped and is restarted on "its" port never finds another test's
/// server there.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Lowest port we pick ourselves below the kernel's ephemeral range.
const OWN_RANGE_START: u16 = 10_000;
/// Random probes in our own range before falling back to the kernel's choice.
const OWN_RANGE_ATTEMPTS: usize = 100;
/// Kernel-chosen probes before giving up.
const KERNEL_ATTEMPTS: usize = 100;

/// Returns a TCP port that is free on 127.0.0.1 right now and that this process has not
/// handed out before.
///
/// The port is picked at random *below* the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, usually from 32768) and checked by binding it.
/// Ports in the ephemeral range are also used as the local end of outgoing connections, so a
/// server restarted on such a port could find it taken by some client socket; ports below the
/// range do not have that problem. If no such port is found (or the range is unknown) this
/// falls back to binding `127.0.0.1:0` and taking the kernel's choice.
///
/// Another process can still take the port between this call and the server's bind; the
/// `start` functions retry on a new port when that happens and the caller did not fix it.
pub fn free_port() -> Result<u16> {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

    if let Some(end) = ephemeral_range_start() {
        if end > OWN_RANGE_START + 1000 {
            let span = u64::from(end - OWN_RANGE_START);
            for _ in 0..OWN_RANGE_ATTEMPTS {
                let port = OWN_RANGE_START + (random_u64() % span) as u16;
                if !handed.contains(&port) && is_free(port) {
                    handed.insert(port);
                    return Ok(port);
                }
            }
        }
    }

    let mut last_error = String::from("every port the kernel offered was already handed out");
    for _ in 0..KERNEL_ATTEMPTS {
        match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) if !handed.contains(&addr.port()) => {
                handed.insert(addr.port());
                return Ok(addr.port());
            }
            Ok(_) => {}
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(TestkitError::NoFreePort(last_error))
}

/// True if `port` can be bound on 127.0.0.1 now. Binding also fails if something listens on
/// 0.0.0.0 with that port.
fn is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The first port of the kernel's ephemeral range, if it can be read.
fn ephemeral_range_start() -> Option<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A random number from std's per-process random hash keys, no extra dependency needed.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_unique_and_bindable() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().expect("free port")).collect();
        let unique: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        for port in ports.iter().take(20) {
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, *port)).expect("port is bindable");
        }
    }

    #[test]
    fn random_numbers_differ() {
        let a: BTreeSet<u64> = (0..50).map(|_| random_u64()).collect();
        assert!(a.len() > 45);
    }
}
