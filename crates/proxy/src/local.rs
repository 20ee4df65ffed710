//! Commands the proxy answers itself: connection state, INFO, HELLO, ...

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use zedis_resp::{Frame, Request};

use crate::command_table::LocalKind;
use crate::dispatch::{ClientState, Pending};
use crate::merge;
use crate::state::ProxyState;

fn ready(resp3: bool, frame: Frame) -> Pending {
    Pending::Ready(merge::encode_for(&frame, resp3))
}

fn err(msg: &str) -> Pending {
    ready(false, Frame::error(msg))
}

fn bulk(s: impl Into<Bytes>) -> Frame {
    Frame::bulk(s.into())
}

fn client_info(state: &ProxyState, client: &ClientState) -> String {
    let name = client.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
    let resp = if client.resp3 { 3 } else { 2 };
    format!(
        "id={} addr={} laddr={} name={} db=0 resp={resp} user={} lib=zedis-proxy",
        client.id, client.peer, state.options.listen, name, client.user
    )
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

pub async fn reply(state: &Arc<ProxyState>, client: &mut ClientState, kind: LocalKind, req: Request) -> Pending {
    let r3 = client.resp3;
    match kind {
        LocalKind::Ping if req.len() > 2 => err("ERR wrong number of arguments for 'ping' command"),
        LocalKind::Ping => match req.arg_bytes(1) {
            None => ready(r3, Frame::simple("PONG")),
            Some(msg) => ready(r3, bulk(msg)),
        },
        LocalKind::Echo => ready(r3, bulk(req.arg_bytes(1).unwrap_or_default())),
        LocalKind::Quit => Pending::close_with(Bytes::from_static(b"+OK\r\n")),
        LocalKind::Select => match req.arg(1).and_then(|a| std::str::from_utf8(a).ok()).map(|a| a.parse::<i64>()) {
            Some(Ok(0)) => ready(r3, Frame::ok()),
            Some(Ok(_)) => err("ERR DB index is out of range"),
            _ => err("ERR value is not an integer or out of range"),
        },
        LocalKind::ReadOnly | LocalKind::ReadWrite => ready(r3, Frame::ok()),
        LocalKind::Reset => {
            client.name = None;
            client.resp3 = false;
            client.role = state.options.auth.initial_role();
            client.user = "default".into();
            client.tx = None;
            client.pinned = None;
            client.subs = None;
            ready(r3, Frame::simple("RESET"))
        }
        LocalKind::Auth if req.len() > 3 => err("ERR syntax error"),
        LocalKind::Auth => {
            let (user, password) = match req.len() {
                2 => (None, req.arg(1).unwrap_or_default()),
                _ => (req.arg(1), req.arg(2).unwrap_or_default()),
            };
            let user = user.map(|u| String::from_utf8_lossy(u).into_owned());
            match state.options.auth.check(user.as_deref(), &String::from_utf8_lossy(password)) {
                Ok(role) => {
                    client.role = Some(role);
                    client.user = user.unwrap_or_else(|| "default".into());
                    ready(r3, Frame::ok())
                }
                Err(e) => err(e),
            }
        }
        LocalKind::AclWhoami => ready(r3, bulk(client.user.clone())),
        LocalKind::ClientId => ready(r3, Frame::Integer(client.id as i64)),
        LocalKind::ClientSetName => {
            let name = req.arg_bytes(2).unwrap_or_default();
            if !valid_client_name(&name) {
                return err("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            client.name = if name.is_empty() { None } else { Some(name) };
            ready(r3, Frame::ok())
        }
        LocalKind::ClientGetName => ready(r3, client.name.clone().map(bulk).unwrap_or(Frame::Null)),
        LocalKind::ClientInfo => ready(r3, bulk(format!("{}\n", client_info(state, client)))),
        LocalKind::ClientList => ready(r3, bulk(format!("{}\n", client_info(state, client)))),
        LocalKind::ClientReply => {
            if req.arg_eq_ignore_case(2, b"ON") {
                ready(r3, Frame::ok())
            } else {
                err("ERR CLIENT REPLY OFF|SKIP is not supported by the zedis proxy")
            }
        }
        LocalKind::Hello => hello(state, client, &req),
        LocalKind::Info => info(state, client.lane(), &req).await,
        LocalKind::Command => {
            // The backends are Redis with the same command set: let one of them describe it.
            let routes = state.routes.load();
            match routes.groups.first() {
                Some(g) => Pending::Backend(
                    g.master.send(client.lane(), req.into_raw()).await,
                    state.options.request_timeout,
                    None,
                ),
                None => err("CLUSTERDOWN no topology yet"),
            }
        }
    }
}

fn hello(state: &ProxyState, client: &mut ClientState, req: &Request) -> Pending {
    let mut i = 1;
    let mut proto = None;
    if let Some(v) = req.arg(1) {
        match std::str::from_utf8(v).ok().and_then(|v| v.parse::<i64>().ok()) {
            Some(p @ (2 | 3)) => proto = Some(p == 3),
            Some(_) => return err("NOPROTO unsupported protocol version"),
            None => return err("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    while i < req.len() {
        if req.arg_eq_ignore_case(i, b"SETNAME") && i + 1 < req.len() {
            let name = req.arg_bytes(i + 1).unwrap_or_default();
            if !valid_client_name(&name) {
                return err("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            client.name = Some(name);
            i += 2;
        } else if req.arg_eq_ignore_case(i, b"AUTH") && i + 2 < req.len() {
            let user = String::from_utf8_lossy(req.arg(i + 1).unwrap_or_default()).into_owned();
            let password = String::from_utf8_lossy(req.arg(i + 2).unwrap_or_default()).into_owned();
            match state.options.auth.check(Some(&user), &password) {
                Ok(role) => {
                    client.role = Some(role);
                    client.user = user;
                }
                Err(e) => return err(e),
            }
            i += 3;
        } else {
            return err(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(req.arg(i).unwrap_or_default())
            ));
        }
    }
    if client.role.is_none() {
        return err(crate::auth::NOAUTH);
    }
    if let Some(resp3) = proto {
        client.resp3 = resp3;
    }
    let fields = vec![
        bulk("server"),
        bulk("zedis"),
        bulk("version"),
        bulk(crate::command_table::REDIS_VERSION),
        bulk("proto"),
        Frame::Integer(if client.resp3 { 3 } else { 2 }),
        bulk("id"),
        Frame::Integer(client.id as i64),
        bulk("mode"),
        bulk("proxy"),
        bulk("role"),
        bulk("master"),
        bulk("modules"),
        Frame::Array(Vec::new()),
    ];
    if client.resp3 {
        let pairs = fields.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
        ready(true, Frame::Map(pairs))
    } else {
        ready(false, Frame::Array(fields))
    }
}

/// `INFO [section ...]`: the proxy's own sections, with the keyspace summed over the groups.
async fn info(state: &Arc<ProxyState>, lane: crate::backend::Lane, req: &Request) -> Pending {
    let wanted: Vec<String> = req.args().skip(1).map(|a| String::from_utf8_lossy(a).to_lowercase()).collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
    let want = move |s: &str| all || wanted.iter().any(|w| w == s);
    let routes = state.routes.load();
    let mut keyspace = Vec::new();
    if want("keyspace") {
        for g in &routes.groups {
            keyspace.push(g.master.send(lane, Request::from_args(["INFO", "keyspace"]).into_raw()).await);
        }
    }
    let state = state.clone();
    let epoch = routes.epoch;
    let groups = routes.groups.len();
    Pending::Deferred(Box::pin(async move {
        let m = &state.metrics;
        let mut text = String::new();
        if want("server") {
            text.push_str(&format!(
                "# Server\r\nredis_version:{}\r\nzedis_version:{}\r\nredis_mode:proxy\r\nprocess_id:{}\r\ntcp_port:{}\r\n\r\n",
                crate::command_table::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                state.options.listen.rsplit(':').next().unwrap_or("")
            ));
        }
        if want("clients") {
            text.push_str(&format!("# Clients\r\nconnected_clients:{}\r\n\r\n", m.clients.load(Ordering::Relaxed)));
        }
        if want("stats") {
            text.push_str(&format!(
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\n\r\n",
                m.clients_total.load(Ordering::Relaxed),
                m.commands(),
                m.rejected_clients.load(Ordering::Relaxed)
            ));
        }
        if want("cluster") {
            text.push_str(&format!("# Cluster\r\ntopology_epoch:{epoch}\r\ngroups:{groups}\r\n\r\n"));
        }
        if !keyspace.is_empty() {
            let (mut keys, mut expires) = (0u64, 0u64);
            for rx in keyspace {
                let Ok(Ok(Ok(bytes))) =
                    tokio::time::timeout(state.options.request_timeout, rx).await.map(|r| r.map_err(|_| ()))
                else {
                    continue;
                };
                let Ok(Some((frame, _))) = Frame::parse(&bytes) else { continue };
                let Some(body) = frame.as_bytes() else { continue };
                let (k, e) = parse_keyspace(&String::from_utf8_lossy(body));
                keys += k;
                expires += e;
            }
            text.push_str("# Keyspace\r\n");
            if keys > 0 {
                text.push_str(&format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n"));
            }
        }
        let mut out = BytesMut::new();
        bulk(text).encode(&mut out, false);
        out.freeze()
    }))
}

/// `keys` and `expires` of `db0` in an `INFO keyspace` text.
pub fn parse_keyspace(text: &str) -> (u64, u64) {
    let Some(line) = text.lines().find(|l| l.starts_with("db0:")) else { return (0, 0) };
    let field = |name: &str| {
        line[4..]
            .split(',')
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.trim().parse().ok())
    };
    (field("keys").unwrap_or(0), field("expires").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_lines() {
        assert_eq!(parse_keyspace("# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=0\r\n"), (12, 3));
        assert_eq!(parse_keyspace("# Keyspace\r\n"), (0, 0));
        assert_eq!(parse_keyspace("db0:garbage"), (0, 0));
    }
}
