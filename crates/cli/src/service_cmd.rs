//! `zedis service ...`: register an instance, list and watch a service, run the Redis mirror.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use zedis_recipes::discovery::{
    Discovery, DiscoveryOptions, MirrorOptions, RegistrationState, ServiceInstance, DEFAULT_WEIGHT,
};

use crate::common::{stop_signal, Global};

/// How long a stopping command waits for its session to close (so ZooKeeper deletes what it
/// holds at once rather than after the session timeout).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Register an instance of a service and keep it registered until this process stops.
    ///
    /// Prints one line once registered. Ctrl-C or SIGTERM deregister it at once; if the process
    /// is killed, the instance vanishes when its ZooKeeper session times out
    /// (`--session-timeout-ms`). After a session expiry (a long network partition) it registers
    /// again by itself in a new session.
    Register(RegisterArgs),
    /// List the live instances of a service.
    List(ListArgs),
    /// Print the instances of a service now and again after every change, until Ctrl-C.
    Watch(WatchArgs),
    /// Mirror every service into Redis until Ctrl-C, for clients in any language.
    ///
    /// Each service becomes the hash `zedis:services:<service>` (field = instance id, value =
    /// the instance's JSON record), kept equal to ZooKeeper; every change is published as JSON
    /// on the channel of the same name. Prints a line containing `ready` after the first full
    /// sync.
    Mirror(MirrorArgs),
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Service name (letters, digits, '-', '_', '.').
    pub name: String,
    /// Where clients reach this instance: HOST:PORT, or [IPV6]:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: String,
    /// Instance id, unique within the service [default: --addr with ':' as '-', e.g. 10.0.0.7-8080].
    #[arg(long)]
    pub id: Option<String>,
    /// Relative share of traffic for weighted picking (0: none while others have weight).
    #[arg(long, default_value_t = DEFAULT_WEIGHT)]
    pub weight: u32,
    /// Metadata entry KEY=VALUE; repeat for more (e.g. --meta zone=a --meta version=2).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Register as disabled: listed, but never picked.
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Service name.
    pub name: String,
    /// Print a JSON array of instance records.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Service name.
    pub name: String,
    /// Print one JSON document per line: {"service": NAME, "instances": [...]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// Redis to mirror into: a URL (redis://[:PASSWORD@]HOST:PORT[/DB]) or HOST:PORT.
    /// `--redis-password` applies when the URL has no password.
    #[arg(long, env = "ZEDIS_MIRROR_REDIS", value_name = "URL")]
    pub redis: String,
    /// Full resync period, which repairs changes made to Redis behind the mirror's back
    /// (FLUSHALL, hand edits).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub resync_interval_ms: u64,
}

pub async fn run(global: &Global, cmd: ServiceCommand) -> Result<()> {
    match cmd {
        ServiceCommand::Register(args) => register(global, args).await,
        ServiceCommand::List(args) => list(global, args).await,
        ServiceCommand::Watch(args) => watch(global, args).await,
        ServiceCommand::Mirror(args) => mirror(global, args).await,
    }
}

async fn connect(global: &Global) -> Result<Discovery> {
    Ok(Discovery::connect(global.zk_options(), DiscoveryOptions { root: global.root.clone() }).await?)
}

/// Checks a service name before anything is contacted, for a clear one-line error.
fn check_service(name: &str) -> Result<()> {
    Ok(zedis_coord::paths::check_name("service", name)?)
}

async fn register(global: &Global, args: RegisterArgs) -> Result<()> {
    let instance = instance_from_args(&args)?;
    let signal = stop_signal()?;
    tokio::pin!(signal);
    let discovery = connect(global).await?;
    let registration = discovery.register(instance.clone()).await.context("cannot register")?;
    let mut generation = match registration.state() {
        RegistrationState::Registered { generation, session_id } => {
            println!(
                "registered {}/{} at {} (weight {}{}, session {session_id:#x})",
                instance.name,
                instance.id,
                instance.endpoint(),
                instance.weight,
                if instance.enabled { "" } else { ", disabled" },
            );
            generation
        }
        other => bail!("registration is not in place: {other:?}"),
    };
    let mut states = registration.watch_state();
    loop {
        tokio::select! {
            () = &mut signal => break,
            changed = states.changed() => {
                if changed.is_err() {
                    bail!("the registration of {}/{} ended", instance.name, instance.id);
                }
                let state = states.borrow_and_update().clone();
                match state {
                    RegistrationState::Registered { generation: g, session_id } if g != generation => {
                        generation = g;
                        println!("registered {}/{} again in a new session {session_id:#x}", instance.name, instance.id);
                    }
                    RegistrationState::Pending { reason } => {
                        tracing::warn!(service = %instance.name, id = %instance.id, %reason, "not registered right now; retrying");
                    }
                    _ => {}
                }
            }
        }
    }
    match tokio::time::timeout(CLOSE_TIMEOUT, registration.deregister()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "cannot deregister; the instance goes with the session"),
        Err(_) => tracing::warn!("deregistration timed out; the instance goes with the session"),
    }
    discovery.close(CLOSE_TIMEOUT).await;
    Ok(())
}

/// Builds the instance from the flags, refusing bad ones with one-line errors.
fn instance_from_args(args: &RegisterArgs) -> Result<ServiceInstance> {
    check_service(&args.name)?;
    let (host, port) = parse_host_port(&args.addr)?;
    let id = args.id.clone().unwrap_or_else(|| default_id(&host, port));
    let mut instance = ServiceInstance::new(&args.name, id, host, port).with_weight(args.weight);
    instance.enabled = !args.disabled;
    for entry in &args.meta {
        let (key, value) = parse_meta(entry)?;
        instance.metadata.insert(key, value);
    }
    instance.validate()?;
    Ok(instance)
}

/// `HOST:PORT` or `[IPV6]:PORT` → (host without brackets, port).
fn parse_host_port(addr: &str) -> Result<(String, u16)> {
    let bad = |why: &str| anyhow!("bad --addr {addr:?}: {why} (expected HOST:PORT)");
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(|| bad("unclosed '['"))?,
        None if host.contains(':') => return Err(bad("put an IPv6 address in brackets")),
        None => host,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("no host"));
    }
    let port: u16 = port.parse().map_err(|_| bad("the port must be a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    Ok((host.to_string(), port))
}

/// `KEY=VALUE` → (key, value); the value may contain '='.
fn parse_meta(entry: &str) -> Result<(String, String)> {
    match entry.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => bail!("bad --meta {entry:?}: expected KEY=VALUE with a non-empty KEY"),
    }
}

/// The id of an instance registered without `--id`: its endpoint as a valid name, so a
/// restarted process takes its old registration over instead of adding a second one.
fn default_id(host: &str, port: u16) -> String {
    let host: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    format!("{host}-{port}")
}

async fn list(global: &Global, args: ListArgs) -> Result<()> {
    check_service(&args.name)?;
    let discovery = connect(global).await?;
    let instances = discovery.instances(&args.name).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&instances)?);
    } else if instances.is_empty() {
        println!("no live instances of {}", args.name);
    } else {
        print!("{}", table(&instances, now_millis()));
    }
    discovery.close(CLOSE_TIMEOUT).await;
    Ok(())
}

/// The human listing: one row per instance.
fn table(instances: &[ServiceInstance], now_ms: u64) -> String {
    let rows: Vec<[String; 6]> = instances
        .iter()
        .map(|i| {
            [
                i.id.clone(),
                i.endpoint(),
                i.weight.to_string(),
                if i.enabled { "yes" } else { "no" }.to_string(),
                // 0: written by a client that does not say when.
                if i.registered_at == 0 { "-".to_string() } else { age(now_ms.saturating_sub(i.registered_at)) },
                i.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    let header = ["ID", "ADDRESS", "WEIGHT", "ENABLED", "UP", "METADATA"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for row in &rows {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

/// `12s`, `5m`, `3h`, `2d`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Serialize)]
struct WatchLine<'a> {
    service: &'a str,
    instances: &'a [ServiceInstance],
}

/// One line describing the instance set.
fn watch_line(service: &str, instances: &[ServiceInstance], json: bool) -> String {
    if json {
        return serde_json::to_string(&WatchLine { service, instances }).unwrap_or_default();
    }
    let list: Vec<String> = instances
        .iter()
        .map(|i| format!("{}={}{}", i.id, i.endpoint(), if i.enabled { "" } else { "(disabled)" }))
        .collect();
    format!("{service}: {} live [{}]", instances.len(), list.join(" "))
}

async fn watch(global: &Global, args: WatchArgs) -> Result<()> {
    check_service(&args.name)?;
    let signal = stop_signal()?;
    tokio::pin!(signal);
    let discovery = connect(global).await?;
    let cache = discovery.cache(&args.name)?;
    let mut changes = cache.changes();
    tokio::select! {
        () = cache.ready() => {}
        () = &mut signal => return Ok(()),
    }
    let mut shown = changes.borrow_and_update().instances.clone();
    println!("{}", watch_line(&args.name, &shown, args.json));
    let mut connected = true;
    loop {
        tokio::select! {
            () = &mut signal => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    bail!("stopped following {}", args.name);
                }
                let view = changes.borrow_and_update().clone();
                if view.connected != connected {
                    connected = view.connected;
                    if !connected {
                        tracing::warn!(service = %args.name, "ZooKeeper connection lost; the instances shown may be stale");
                    }
                }
                // Only the instance set matters here, not connection flaps.
                if view.instances != shown {
                    shown = view.instances;
                    println!("{}", watch_line(&args.name, &shown, args.json));
                }
            }
        }
    }
    drop(changes);
    drop(cache);
    discovery.close(CLOSE_TIMEOUT).await;
    Ok(())
}

async fn mirror(global: &Global, args: MirrorArgs) -> Result<()> {
    let signal = stop_signal()?;
    tokio::pin!(signal);
    let redis = crate::common::redis_manager(global, &args.redis).await?;
    let discovery = connect(global).await?;
    let mirror = discovery
        .mirror(redis, MirrorOptions { resync_interval: Duration::from_millis(args.resync_interval_ms.max(100)) });
    let mut status = mirror.status();
    // Boxed so it can be dropped (stopping the mirror) before the session is closed.
    let mut running = Box::pin(mirror.run());
    let mut announced = false;
    loop {
        tokio::select! {
            () = &mut signal => break,
            () = &mut running => bail!("the mirror stopped"),
            changed = status.changed() => {
                if changed.is_err() {
                    bail!("the mirror stopped");
                }
                let s = status.borrow_and_update().clone();
                if !announced && s.full_resyncs >= 1 {
                    announced = true;
                    let root = if global.root == "/" { "" } else { global.root.trim_end_matches('/') };
                    println!("mirroring {root}/services into {} (hashes zedis:services:<name>): ready", args.redis);
                }
                // Errors are logged by the mirror itself, where they are retried.
            }
        }
    }
    drop(running);
    discovery.close(CLOSE_TIMEOUT).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        let ok: &[(&str, (&str, u16))] = &[
            ("127.0.0.1:8080", ("127.0.0.1", 8080)),
            ("api.internal:1", ("api.internal", 1)),
            ("[::1]:6379", ("::1", 6379)),
        ];
        for (input, (host, port)) in ok {
            assert_eq!(parse_host_port(input).unwrap(), (host.to_string(), *port), "{input}");
        }
        for bad in ["", "host", ":80", "host:", "host:0", "host:65536", "host:x", "::1:80", "[::1:80", "a b:1"] {
            let err = parse_host_port(bad).unwrap_err().to_string();
            assert!(err.starts_with("bad --addr"), "{bad}: {err}");
        }
    }

    #[test]
    fn meta() {
        assert_eq!(parse_meta("zone=a").unwrap(), ("zone".into(), "a".into()));
        assert_eq!(parse_meta("q=a=b").unwrap(), ("q".into(), "a=b".into()));
        assert_eq!(parse_meta("empty=").unwrap(), ("empty".into(), String::new()));
        for bad in ["novalue", "=v", " =v"] {
            assert!(parse_meta(bad).unwrap_err().to_string().starts_with("bad --meta"), "{bad}");
        }
    }

    #[test]
    fn default_ids_are_valid_names() {
        assert_eq!(default_id("10.0.0.7", 8080), "10.0.0.7-8080");
        assert_eq!(default_id("::1", 80), "__1-80");
        assert!(zedis_coord::paths::check_name("id", &default_id("fe80::1%eth0", 1)).is_ok());
    }

    #[test]
    fn human_output() {
        let a = ServiceInstance { registered_at: 1_000, ..ServiceInstance::new("api", "a", "10.0.0.1", 80) }
            .with_metadata("zone", "z1");
        let b = ServiceInstance::new("api", "bb", "::1", 81).with_enabled(false).with_weight(5);
        let t = table(&[a.clone(), b.clone()], 61_000);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID  ADDRESS      WEIGHT  ENABLED  UP  METADATA");
        assert_eq!(lines[1], "a   10.0.0.1:80  100     yes      1m  zone=z1");
        assert_eq!(lines[2], "bb  [::1]:81     5       no       -");
        assert_eq!(watch_line("api", &[a, b], false), "api: 2 live [a=10.0.0.1:80 bb=[::1]:81(disabled)]");
        assert_eq!(watch_line("api", &[], true), r#"{"service":"api","instances":[]}"#);
    }
}
