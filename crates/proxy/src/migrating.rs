//! Commands on a migrating slot. Stock Redis has no `ASK` redirection outside cluster mode,
//! so the servers enforce where each key lives (ARCHITECTURE.md, "Slot migration"): every
//! command goes to the source wrapped in [`GUARD`], which runs it unless the source's marker
//! says the slot is moving out and the keys are not there; then to the target, wrapped the same
//! way with the target's back marker (set only while cancelling); and when the target sends it
//! back, plainly to the source. A key is served by whichever server holds it, and neither
//! server creates a key of the slot while its marker is set, so every key lives in one place.
//!
//! The hop decisions are the pure [`decide`], tested with a table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use zedis_resp::{Frame, Request};
use zedis_topology::Slot;

use crate::backend::{BackendError, Lane, Reply, ServerPool};
use crate::route_table::{MigrationRoute, RouteTable};
use crate::state::ProxyState;

/// Runs the command where its keys are. `KEYS`: the command's keys; `ARGV[1]`: the marker,
/// `ARGV[2]`: the set of keys held while they are copied in chunks, `ARGV[3]`: flags (`w` the
/// command may write, `3` the client speaks RESP3), `ARGV[4..]`: the command itself. Errors of
/// the command come back as they are (`pcall`).
pub const GUARD: &str = r#"
if string.find(ARGV[3], '3', 1, true) then redis.setresp(3) end
if redis.call('EXISTS', ARGV[1]) == 1 then
  local here = 0
  for i = 1, #KEYS do here = here + redis.call('EXISTS', KEYS[i]) end
  if here == 0 then return redis.error_reply('ZEDISASK keys not here') end
  if string.find(ARGV[3], 'w', 1, true) then
    for i = 1, #KEYS do
      if redis.call('SISMEMBER', ARGV[2], KEYS[i]) == 1 then return redis.error_reply('ZEDISHELD key is being moved') end
    end
  end
  if here < #KEYS then return redis.error_reply('ZEDISSPLIT keys in two places') end
end
return redis.pcall(unpack(ARGV, 4))
"#;

/// Lua's `unpack` stops near 8000 values: longer commands wait until the slot has moved.
const MAX_WRAPPED_ARGS: usize = 7000;

/// Where a hop sends the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// The source, through the guard with its out marker.
    Source,
    /// The target, through the guard with its back marker.
    Target,
    /// The source, plainly: the target sent the command back while cancelling.
    SourcePlain,
}

/// What a guarded server answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The keys are not here: ask the other side.
    Ask,
    /// A key is being copied in chunks: writes wait.
    Held,
    /// Some keys are here, some are not.
    Split,
    /// The command ran (its own reply or error).
    Ran,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Deliver,
    Next(Hop),
    /// Try again shortly (from the source).
    Wait,
    /// Move the keys present at this hop's server to the other side, then try again.
    Pull,
}

/// The next step after `hop` answered `answer`.
pub fn decide(hop: Hop, answer: Answer) -> Step {
    match (hop, answer) {
        (_, Answer::Ran) | (Hop::SourcePlain, _) => Step::Deliver,
        (Hop::Source, Answer::Ask) => Step::Next(Hop::Target),
        (Hop::Target, Answer::Ask) => Step::Next(Hop::SourcePlain),
        (Hop::Source | Hop::Target, Answer::Held) => Step::Wait,
        (Hop::Source | Hop::Target, Answer::Split) => Step::Pull,
    }
}

pub fn classify(reply: &[u8]) -> Answer {
    if !reply.starts_with(b"-ZEDIS") {
        return Answer::Ran;
    }
    if reply.starts_with(b"-ZEDISASK") {
        Answer::Ask
    } else if reply.starts_with(b"-ZEDISHELD") {
        Answer::Held
    } else if reply.starts_with(b"-ZEDISSPLIT") {
        Answer::Split
    } else {
        Answer::Ran
    }
}

/// `EVAL GUARD numkeys keys.. marker held flags command..`.
pub fn wrap(req: &Request, keys: &[usize], marker: &[u8], held: &[u8], write: bool, resp3: bool) -> Bytes {
    let flags = match (write, resp3) {
        (true, true) => "w3",
        (true, false) => "w",
        (false, true) => "3",
        (false, false) => "-",
    };
    let numkeys = keys.len().to_string();
    let mut args: Vec<&[u8]> = Vec::with_capacity(req.len() + keys.len() + 6);
    args.extend([b"EVAL".as_slice(), GUARD.as_bytes(), numkeys.as_bytes()]);
    for &i in keys {
        args.push(req.arg(i).unwrap_or_default());
    }
    args.extend([marker, held, flags.as_bytes()]);
    args.extend(req.args());
    Request::from_args(args).into_raw()
}

/// Whether a command can go through the guard at all (scripts cannot run scripts, `WATCH`,
/// and the like; Lua cannot unpack very long commands).
pub fn wrappable(spec: &crate::command_table::CommandSpec, req: &Request) -> bool {
    !spec.flags.contains(crate::command_table::CommandFlags::NOSCRIPT) && req.len() <= MAX_WRAPPED_ARGS
}

/// What the migration path needs to know of the command.
pub struct Guarded {
    pub slot: Slot,
    pub req: Request,
    pub keys: Vec<usize>,
    pub write: bool,
    pub wrappable: bool,
    pub lane: Lane,
}

fn error(msg: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.len() + 3);
    zedis_resp::write_error(&mut out, msg);
    out.freeze()
}

fn reply_bytes(reply: Reply) -> Bytes {
    match reply {
        Ok(bytes) => bytes,
        Err(e) => error(&format!("ERR {e}")),
    }
}

/// Sends `request` (with a `WAIT` after it when `wait` is set) and awaits the reply and the
/// number of replicas `WAIT` counted.
async fn roundtrip(
    pool: &ServerPool,
    lane: Lane,
    request: Bytes,
    wait: Option<(u32, Duration)>,
    timeout: Duration,
) -> (Reply, Option<i64>) {
    let mut rxs = match wait {
        Some((replicas, w)) => {
            pool.send_all(lane, vec![request, crate::dispatch::wait_request(replicas, w)]).await.into_iter()
        }
        None => vec![pool.send(lane, request).await].into_iter(),
    };
    let t = timeout + wait.map(|w| w.1).unwrap_or_default();
    let reply = match rxs.next() {
        Some(rx) => match tokio::time::timeout(t, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(BackendError::Lost(pool.addr().to_string())),
            Err(_) => Err(BackendError::Lost(format!("{} (no answer within {t:?})", pool.addr()))),
        },
        None => Err(BackendError::Lost(pool.addr().to_string())),
    };
    let confirmed = match rxs.next() {
        Some(rx) => Some(match tokio::time::timeout(t, rx).await {
            Ok(Ok(Ok(b))) => Frame::parse(&b).ok().flatten().and_then(|(f, _)| f.as_integer()).unwrap_or(0),
            _ => 0,
        }),
        None => None,
    };
    (reply, confirmed)
}

/// `MIGRATE host port "" 0 timeout [AUTH pw] KEYS k..` of the command's keys, to `to`.
fn migrate_request(to: &str, password: Option<&str>, keys: impl Iterator<Item = Bytes>, timeout: Duration) -> Bytes {
    let (host, port) = zedis_topology::split_addr(to).unwrap_or((to, 6379));
    let mut args: Vec<Bytes> = vec![
        Bytes::from_static(b"MIGRATE"),
        Bytes::copy_from_slice(host.as_bytes()),
        Bytes::from(port.to_string()),
        Bytes::new(),
        Bytes::from_static(b"0"),
        Bytes::from(timeout.as_millis().to_string()),
    ];
    if let Some(pw) = password {
        args.push(Bytes::from_static(b"AUTH"));
        args.push(Bytes::from(pw.to_string()));
    }
    args.push(Bytes::from_static(b"KEYS"));
    args.extend(keys);
    Request::from_args(args.iter().map(|a| a.as_ref())).into_raw()
}

/// Runs a command of a migrating slot to its reply (never longer than the migration wait).
pub async fn run(state: Arc<ProxyState>, g: Guarded) -> Bytes {
    let deadline = Instant::now() + state.options.migration_wait.max(state.options.request_timeout);
    let timeout = state.options.request_timeout;
    let replicated = match state.options.durability {
        crate::options::Durability::Replicated { replicas, timeout } if g.write => Some((replicas, timeout)),
        _ => None,
    };
    let mut backoff = Duration::from_millis(2);
    loop {
        let routes = state.routes.load_full();
        let Some(m) = routes.migration_for(g.slot) else {
            return settled(&state, &routes, &g, replicated).await;
        };
        if g.wrappable {
            match attempt(&state, &routes, m, &g, replicated, timeout).await {
                Attempt::Done(bytes) => return bytes,
                Attempt::Again => {}
            }
        }
        if Instant::now() + backoff > deadline {
            return error(&format!(
                "TRYAGAIN slot {} is being migrated (migration {}) and the command could not run within {:?}; retry it",
                g.slot, m.id, state.options.migration_wait
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

enum Attempt {
    Done(Bytes),
    Again,
}

async fn attempt(
    state: &ProxyState,
    routes: &RouteTable,
    m: &MigrationRoute,
    g: &Guarded,
    replicated: Option<(u32, Duration)>,
    timeout: Duration,
) -> Attempt {
    let (source, target) = (&routes.groups[m.source], &routes.groups[m.target]);
    let mut hop = Hop::Source;
    loop {
        let (group, request) = match hop {
            Hop::Source => (source, wrap(&g.req, &g.keys, &m.out_marker, &m.held, g.write, g.lane.resp3)),
            Hop::Target => (target, wrap(&g.req, &g.keys, &m.back_marker, &m.held, g.write, g.lane.resp3)),
            Hop::SourcePlain => (source, g.req.raw().clone()),
        };
        let (reply, confirmed) = roundtrip(&group.master, g.lane, request, replicated, timeout).await;
        let answer = match &reply {
            Ok(bytes) => classify(bytes),
            Err(_) => Answer::Ran,
        };
        match decide(hop, answer) {
            Step::Deliver => {
                return Attempt::Done(deliver(
                    state,
                    group.id,
                    group.master.id(),
                    g.write,
                    reply,
                    confirmed,
                    replicated,
                ))
            }
            Step::Next(next) => hop = next,
            Step::Wait => return Attempt::Again,
            Step::Pull => {
                let to = if hop == Hop::Source { target } else { source };
                let keys = g.keys.iter().map(|&i| Bytes::copy_from_slice(g.req.arg(i).unwrap_or_default()));
                let request =
                    migrate_request(to.master.addr(), state.options.backend.password.as_deref(), keys, timeout);
                let (reply, _) = roundtrip(&group.master, g.lane, request, None, timeout).await;
                if let Ok(b) = &reply {
                    if b.first() == Some(&b'-') {
                        tracing::warn!(reply = %String::from_utf8_lossy(b).trim_end(), "moving a command's keys to one side failed");
                    }
                }
                return Attempt::Again;
            }
        }
    }
}

/// The reply of a command that ran on group `group` (master pool `pool`): refused if it wrote
/// and that server is no longer the group's master, or if `WAIT` did not confirm it.
fn deliver(
    state: &ProxyState,
    group: u32,
    pool: u64,
    write: bool,
    reply: Reply,
    confirmed: Option<i64>,
    replicated: Option<(u32, Duration)>,
) -> Bytes {
    let failed = matches!(&reply, Ok(b) if b.first() == Some(&b'-')) || reply.is_err();
    if write && !failed {
        let routes = state.routes.load();
        if !routes.groups.iter().any(|g| g.id == group && g.master.id() == pool) {
            return crate::fence::error(crate::fence::REFUSED);
        }
        if let (Some((replicas, wait)), Some(n)) = (replicated, confirmed) {
            if n < i64::from(replicas) {
                return error(&format!(
                    "NOREPLICAS the write reached the master but {n} of {replicas} replicas confirmed it within {wait:?}; it may not survive a failover"
                ));
            }
        }
    }
    reply_bytes(reply)
}

/// The slot finished migrating meanwhile: straight to its owner.
async fn settled(state: &ProxyState, routes: &RouteTable, g: &Guarded, replicated: Option<(u32, Duration)>) -> Bytes {
    let Some(group) = routes.group_for(g.slot) else {
        return error("CLUSTERDOWN Hash slot not served");
    };
    let (reply, confirmed) =
        roundtrip(&group.master, g.lane, g.req.raw().clone(), replicated, state.options.request_timeout).await;
    deliver(state, group.id, group.master.id(), g.write, reply, confirmed, replicated)
}

/// Waits (at most the migration wait) until `slot` is not migrating; false on timeout. For
/// what cannot go through the guard: blocking commands, transactions.
pub async fn wait_settled(state: &ProxyState, slot: Slot) -> bool {
    let deadline = Instant::now() + state.options.migration_wait;
    let mut backoff = Duration::from_millis(5);
    while state.routes.load().migration_for(slot).is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(100));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops() {
        use Answer as A;
        use Hop as H;
        let table: &[(H, A, Step)] = &[
            (H::Source, A::Ran, Step::Deliver),
            (H::Source, A::Ask, Step::Next(H::Target)),
            (H::Source, A::Held, Step::Wait),
            (H::Source, A::Split, Step::Pull),
            (H::Target, A::Ran, Step::Deliver),
            (H::Target, A::Ask, Step::Next(H::SourcePlain)),
            (H::Target, A::Held, Step::Wait),
            (H::Target, A::Split, Step::Pull),
            (H::SourcePlain, A::Ran, Step::Deliver),
            (H::SourcePlain, A::Ask, Step::Deliver),
        ];
        for (hop, answer, want) in table {
            assert_eq!(decide(*hop, *answer), *want, "{hop:?} {answer:?}");
        }
    }

    #[test]
    fn answers() {
        let table: &[(&[u8], Answer)] = &[
            (b"-ZEDISASK keys not here\r\n", Answer::Ask),
            (b"-ZEDISHELD key is being moved\r\n", Answer::Held),
            (b"-ZEDISSPLIT keys in two places\r\n", Answer::Split),
            (b"-ERR wrong type\r\n", Answer::Ran),
            (b"-ZEDISX\r\n", Answer::Ran),
            (b"$5\r\nZEDIS\r\n", Answer::Ran),
            (b"+OK\r\n", Answer::Ran),
        ];
        for (reply, want) in table {
            assert_eq!(classify(reply), *want, "{}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn wrapping_keeps_the_command_after_the_guard_arguments() {
        let req = Request::from_args([b"SET".as_slice(), b"k", b"v"]);
        let raw = wrap(&req, &[1], b"m", b"h", true, false);
        let (frame, _) = Frame::parse(&raw).unwrap().unwrap();
        let args: Vec<Vec<u8>> = frame.as_array().unwrap().iter().map(|f| f.as_bytes().unwrap().to_vec()).collect();
        let want: Vec<&[u8]> = vec![b"EVAL", GUARD.as_bytes(), b"1", b"k", b"m", b"h", b"w", b"SET", b"k", b"v"];
        assert_eq!(args, want.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
    }
}
