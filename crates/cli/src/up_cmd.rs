//! `zedis up`: the local sandbox. Starts ZooKeeper, Redis groups and controllers as child
//! processes under `--dir`, creates the cluster, waits until replication is up, prints the
//! endpoints and `ready`, and on SIGINT/SIGTERM stops every child and exits 0.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use zedis_coord::{EventLog, LeaderRecord, TopologyStore};
use zedis_testkit::{RedisOptions, RedisServer, ZkOptions, ZkServer};
use zedis_topology::{ClusterSettings, Event, EventKind, GroupSpec, Server, Topology};

use crate::common::Global;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Directory for data, logs and sandbox.json (wiped of a previous sandbox's data).
    #[arg(long, default_value = ".zedis")]
    pub dir: PathBuf,
    /// Number of Redis groups.
    #[arg(long, default_value_t = 2)]
    pub groups: usize,
    /// Replicas per group.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Number of controller processes.
    #[arg(long, default_value_t = 1)]
    pub controllers: usize,
    /// ZooKeeper client port (the default matches `--zk`'s, so other commands find it); 0
    /// picks a free port.
    #[arg(long, default_value_t = 2181)]
    pub zk_port: u16,
    /// First Redis port; servers take consecutive ports. 0 picks free ports.
    #[arg(long, default_value_t = 7001)]
    pub redis_port: u16,
    /// Port of the proxy; 0 picks a free port.
    #[arg(long, default_value_t = 6380)]
    pub proxy_port: u16,
    /// Port of the HTTP endpoint (`/metrics`, `/healthz`); 0 picks a free port.
    #[arg(long, default_value_t = 8380)]
    pub admin_port: u16,
    /// Give up if the sandbox is not ready within this many seconds.
    #[arg(long, default_value_t = 60)]
    pub ready_timeout: u64,
}

struct Controller {
    id: String,
    child: Child,
    log: PathBuf,
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Removes what a previous sandbox left, but never a directory that is not ours.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let ours = dir.join("sandbox.json").exists();
        let empty = fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !ours && !empty {
            bail!("{} exists and holds no zedis sandbox; pass an empty or new --dir", dir.display());
        }
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                fs::remove_dir_all(&path).with_context(|| format!("cannot clean {}", path.display()))?;
            } else {
                fs::remove_file(&path).with_context(|| format!("cannot clean {}", path.display()))?;
            }
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

fn spawn_controller(global: &Global, zk: &str, dir: &Path, n: usize) -> Result<Controller> {
    let id = format!("ctl-{n}");
    spawn_role(global, zk, dir, id, &["controller"])
}

fn spawn_proxy(global: &Global, zk: &str, dir: &Path, listen: &str, metrics: &str) -> Result<Controller> {
    spawn_role(global, zk, dir, "proxy-1".to_string(), &["proxy", "--listen", listen, "--metrics-listen", metrics])
}

/// Starts `zedis <role args> --id ID` as a child, logging to `DIR/ID.log`.
fn spawn_role(global: &Global, zk: &str, dir: &Path, id: String, role: &[&str]) -> Result<Controller> {
    let log = dir.join(format!("{id}.log"));
    let out = fs::File::create(&log)?;
    let exe = std::env::current_exe().context("cannot find the zedis executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(["--zk", zk, "--cluster", &global.cluster, "--root", &global.root, "--log", "info"])
        .args(["--session-timeout-ms", &global.session_timeout_ms.to_string()])
        .args(role)
        .args(["--id", &id])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // Own process group and killed with the sandbox, even after `kill -9` of it.
    let child = zedis_testkit::spawn_supervised(cmd).with_context(|| format!("cannot start {id}"))?;
    Ok(Controller { id, child, log })
}

fn stop_controller(c: &mut Controller) {
    let pid = c.child.id() as i32;
    // SAFETY: signalling a child we started and have not reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.child.kill();
    let _ = c.child.wait();
}

/// The proxy answers and routes with the cluster's topology.
async fn proxy_ready(addr: &str, epoch: u64) -> bool {
    let Ok(mut conn) = zedis_controller::server_ops::ServerConn::connect(addr, Duration::from_secs(1)).await else {
        return false;
    };
    let Ok(info) = conn.info(&["cluster"]).await else { return false };
    info.lines().any(|l| {
        l.trim().strip_prefix("topology_epoch:").and_then(|e| e.parse::<u64>().ok()).is_some_and(|e| e >= epoch)
    })
}

/// Every replica reports its link to its group's master up, and there is a leader.
async fn replication_ready(global: &Global, zk: &zedis_coord::Zk, topology: &Topology) -> bool {
    let Ok(paths) = global.paths() else { return false };
    if !matches!(LeaderRecord::read(zk, &paths).await, Ok(Some(_))) {
        return false;
    }
    // The proxy has registered (with the epoch it applied).
    if !matches!(zk.children(&paths.proxies()).await, Ok(p) if !p.is_empty()) {
        return false;
    }
    for g in &topology.groups {
        for r in g.replicas() {
            let Ok(mut conn) = zedis_controller::server_ops::ServerConn::connect(&r.addr, Duration::from_secs(1)).await
            else {
                return false;
            };
            let Ok(info) = conn.info(&["replication"]).await else { return false };
            let mut obs = zedis_topology::ServerObservation::default();
            zedis_controller::info::observe_info(&info, &mut obs);
            if !(obs.link_up && obs.master.as_deref() == Some(g.master.as_str())) {
                return false;
            }
        }
    }
    true
}

pub fn run(global: &Global, args: UpArgs) -> Result<()> {
    if args.groups == 0 {
        bail!("--groups must be at least 1");
    }
    if args.controllers == 0 {
        bail!("--controllers must be at least 1");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            crate::controller_cmd::wait_for_signal().await;
            stop.store(true, Ordering::SeqCst);
        });
    }
    let dir = args.dir.clone();
    prepare_dir(&dir)?;
    let dir = dir.canonicalize()?;

    // Ports first, so a clash is reported before anything starts.
    let per_group = 1 + args.replicas;
    let total = args.groups * per_group;
    let proxy_port = if args.proxy_port == 0 { zedis_testkit::free_port()? } else { args.proxy_port };
    if !port_free(proxy_port) {
        bail!("port {proxy_port} is in use; pass another --proxy-port (or 0 for a free port)");
    }
    let admin_port = if args.admin_port == 0 { zedis_testkit::free_port()? } else { args.admin_port };
    if !port_free(admin_port) {
        bail!("port {admin_port} is in use; pass another --admin-port (or 0 for a free port)");
    }
    let zk_port = if args.zk_port == 0 { zedis_testkit::free_port()? } else { args.zk_port };
    if !port_free(zk_port) {
        bail!("port {zk_port} is in use; pass another --zk-port (or 0 for a free port), and --zk for later commands");
    }
    let redis_ports: Vec<Option<u16>> = if args.redis_port == 0 {
        vec![None; total]
    } else {
        let last = args.redis_port as usize + total - 1;
        if last > u16::MAX as usize {
            bail!("--redis-port {} leaves no room for {total} servers", args.redis_port);
        }
        let ports: Vec<u16> = (0..total).map(|i| args.redis_port + i as u16).collect();
        if let Some(p) = ports.iter().find(|p| !port_free(**p)) {
            bail!("port {p} is in use; pass another --redis-port (or 0 for free ports)");
        }
        ports.into_iter().map(Some).collect()
    };

    eprintln!("starting ZooKeeper on 127.0.0.1:{zk_port} ...");
    let zk_server = ZkServer::start_with(ZkOptions {
        port: Some(zk_port),
        dir: Some(dir.join("zookeeper")),
        tick_ms: Some(500),
        ..Default::default()
    })?;
    let zk_addr = zk_server.connect_string();
    let mut redis: Vec<RedisServer> = Vec::new();
    eprintln!("starting {total} redis-server processes ...");
    for port in &redis_ports {
        let sub = match port {
            Some(p) => dir.join(format!("redis-{p}")),
            None => dir.join(format!("redis-{}", redis.len() + 1)),
        };
        // No delay before a full sync: replicas come up at once in a sandbox.
        let extra_args = vec!["--repl-diskless-sync-delay".to_string(), "0".to_string()];
        redis.push(RedisServer::start_with(RedisOptions {
            port: *port,
            dir: Some(sub),
            extra_args,
            ..Default::default()
        })?);
    }
    let specs: Vec<GroupSpec> = redis
        .chunks(per_group)
        .map(|chunk| GroupSpec { servers: chunk.iter().map(|r| Server::new(r.addr())).collect() })
        .collect();
    let topology = Topology::new(&global.cluster, &specs, ClusterSettings::default())?;
    let mut sandbox_global = global.clone();
    sandbox_global.zk = zk_addr.clone();
    let zk = runtime.block_on(async {
        let zk = sandbox_global.connect().await?;
        let paths = sandbox_global.paths()?;
        TopologyStore::new(zk.clone(), paths.clone()).create(&topology).await?;
        let event = Event::new(
            EventKind::ClusterCreated,
            topology.epoch,
            "sandbox",
            format!("sandbox cluster {} created", global.cluster),
        );
        let _ = EventLog::new(zk.clone(), &paths).append(&event).await;
        anyhow::Ok(zk)
    })?;

    eprintln!("starting {} controller(s) ...", args.controllers);
    let mut controllers = Vec::new();
    for n in 1..=args.controllers {
        controllers.push(spawn_controller(global, &zk_addr, &dir, n)?);
    }

    let proxy_addr = format!("127.0.0.1:{proxy_port}");
    eprintln!("starting the proxy on {proxy_addr} ...");
    let admin_addr = format!("127.0.0.1:{admin_port}");
    controllers.push(spawn_proxy(global, &zk_addr, &dir, &proxy_addr, &admin_addr)?);

    let result = (|| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(args.ready_timeout);
        let mut last_note = Instant::now();
        while !runtime.block_on(replication_ready(&sandbox_global, &zk, &topology))
            || !runtime.block_on(proxy_ready(&proxy_addr, topology.epoch))
        {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            for c in &mut controllers {
                if let Ok(Some(status)) = c.child.try_wait() {
                    let log = fs::read_to_string(&c.log).unwrap_or_default();
                    bail!("{} exited ({status}) before the sandbox was ready; its log:\n{log}", c.id);
                }
            }
            if Instant::now() > deadline {
                bail!("replication was not up within {}s; see the logs in {}", args.ready_timeout, dir.display());
            }
            if last_note.elapsed() > Duration::from_secs(3) {
                eprintln!("waiting for replication to come up ...");
                last_note = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        let mut groups = Vec::new();
        println!("zedis sandbox  cluster {}  dir {}", global.cluster, dir.display());
        println!("  {:<12} {:<22} pid", "role", "address");
        println!("  {:<12} {:<22} {}", "zookeeper", zk_addr, zk_server.pid().unwrap_or(0));
        for (i, chunk) in redis.chunks(per_group).enumerate() {
            let servers: Vec<_> =
                chunk.iter().map(|r| json!({ "addr": r.addr(), "pid": r.pid(), "dir": r.dir() })).collect();
            for (j, r) in chunk.iter().enumerate() {
                let role = if j == 0 { format!("g{} master", i + 1) } else { format!("g{} replica", i + 1) };
                println!("  {:<12} {:<22} {}", role, r.addr(), r.pid().unwrap_or(0));
            }
            groups.push(json!({ "id": i + 1, "master": servers[0], "replicas": servers[1..] }));
        }
        for c in controllers.iter().filter(|c| c.id.starts_with("ctl-")) {
            println!("  {:<12} {:<22} {}", "controller", c.id, c.child.id());
        }
        for c in controllers.iter().filter(|c| c.id.starts_with("proxy-")) {
            println!("  {:<12} {:<22} {}", "proxy", proxy_addr, c.child.id());
        }
        let sandbox = json!({
            "pid": std::process::id(),
            "dir": dir,
            "cluster": global.cluster,
            "root": global.root,
            "zookeeper": { "addr": zk_addr, "pid": zk_server.pid(), "dir": zk_server.dir() },
            "groups": groups,
            "controllers": controllers.iter().filter(|c| c.id.starts_with("ctl-")).map(|c| json!({ "id": c.id, "pid": c.child.id(), "log": c.log })).collect::<Vec<_>>(),
            "proxy": controllers.iter().find(|c| c.id.starts_with("proxy-")).map(|c| json!({ "addr": proxy_addr, "pid": c.child.id(), "log": c.log })),
            "admin": { "addr": admin_addr, "metrics": format!("http://{admin_addr}/metrics") },
        });
        fs::write(dir.join("sandbox.json"), serde_json::to_vec_pretty(&sandbox)?)?;
        println!("  {:<12} {:<22}", "metrics", format!("http://{admin_addr}/metrics"));
        println!("try: zedis --zk {zk_addr} status    redis-cli -p {proxy_port}");
        println!("zedis sandbox ready");
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })();

    eprintln!("stopping ...");
    for c in &mut controllers {
        stop_controller(c);
    }
    for r in &mut redis {
        r.stop();
    }
    drop(zk);
    drop(zk_server);
    runtime.shutdown_timeout(Duration::from_secs(1));
    eprintln!("stopped");
    result
}
