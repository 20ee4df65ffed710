//! The controller process: one ZooKeeper session at a time; in each session it observes all
//! servers, publishes what it sees, stands for election, and while it leads, plans and acts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use zedis_coord::LeaderRecord;
use zedis_coord::{
    Candidate, ClusterPaths, CoordError, EventLog, ObserverBoard, PostedReport, RequestQueue, SessionState,
    TopologyStore, Zk, ZkOptions,
};
use zedis_topology::{now_ms, Event, EventKind, GroupId, ObserverReport};

use crate::admin::handle_pending;
use crate::observer::Observer;
use crate::planner::{plan, Action, PlanInput};
use crate::reconciler::{Done, Leadership, Reconciler};

#[derive(Clone, Debug)]
pub struct ControllerOptions {
    pub zk: ZkOptions,
    pub root: String,
    pub cluster: String,
    /// Unique per instance; shown in events and `zedis status`.
    pub id: String,
    /// How often the leader plans.
    pub tick: Duration,
    /// Per Redis command sent while acting.
    pub command_timeout: Duration,
    /// The Redis servers' `requirepass` (never written to ZooKeeper).
    pub redis_password: Option<String>,
    /// While leading, keep the Redis mirrors of ZooKeeper data (see [`crate::mirrors`]).
    pub mirrors: bool,
    /// How the slot migration driver moves keys (see [`crate::migrator`]).
    pub mover: crate::migrator::MoverOptions,
}

impl ControllerOptions {
    pub fn new(zk: ZkOptions, cluster: &str) -> ControllerOptions {
        ControllerOptions {
            zk,
            root: "/zedis".into(),
            cluster: cluster.into(),
            id: default_id(),
            tick: Duration::from_millis(100),
            command_timeout: Duration::from_secs(2),
            redis_password: None,
            mirrors: true,
            mover: crate::migrator::MoverOptions::default(),
        }
    }
}

/// `<hostname>-<pid>`, unique enough on one machine and readable in `zedis status`.
pub fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "controller".to_string() } else { host };
    let clean: String = host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("{clean}-{}", std::process::id())
}

enum SessionEnd {
    Shutdown,
    /// The session is gone (expired or closed): start a new one.
    Lost(String),
}

/// Runs until `shutdown` turns true. Survives ZooKeeper outages and session expiry.
pub async fn run(options: ControllerOptions, mut shutdown: watch::Receiver<bool>) -> Result<(), CoordError> {
    let paths = ClusterPaths::new(&options.root, &options.cluster)?;
    zedis_coord::paths::check_name("controller id", &options.id)?;
    let mut backoff = Duration::from_millis(200);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let zk = tokio::select! {
            zk = Zk::connect(&options.zk) => zk,
            _ = shutdown.changed() => return Ok(()),
        };
        let zk = match zk {
            Ok(zk) => {
                backoff = Duration::from_millis(200);
                zk
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach ZooKeeper; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        tracing::info!(id = %options.id, session_timeout = ?zk.session_timeout(), "ZooKeeper session established");
        match run_session(&options, &paths, zk, &mut shutdown).await {
            SessionEnd::Shutdown => return Ok(()),
            SessionEnd::Lost(why) => tracing::warn!(reason = %why, "ZooKeeper session ended; starting a new one"),
        }
    }
}

/// Resolves when the session reaches a terminal state.
async fn session_over(zk: &Zk) -> String {
    let mut states = zk.client().state_watcher();
    loop {
        match states.changed().await {
            SessionState::Expired => return "session expired".into(),
            SessionState::Closed => return "client closed".into(),
            SessionState::AuthFailed => return "authentication failed".into(),
            _ => {}
        }
    }
}

async fn run_session(
    options: &ControllerOptions,
    paths: &ClusterPaths,
    zk: Zk,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let store = TopologyStore::new(zk.clone(), paths.clone());
    let observer = Observer::new(&options.id).with_password(options.redis_password.clone());
    let mut tasks = JoinSet::new();
    let mut waiting_logged = false;
    // Wait for the cluster to exist.
    let first = loop {
        match store.read().await {
            Ok(t) => break t,
            Err(CoordError::NoCluster { .. }) => {
                if !waiting_logged {
                    tracing::info!(cluster = %paths.cluster(), "waiting for the cluster to be created");
                    waiting_logged = true;
                }
            }
            Err(e) if e.is_session_lost() => return SessionEnd::Lost(e.to_string()),
            Err(e) => tracing::warn!(error = %e, "cannot read topology"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return SessionEnd::Shutdown,
            why = session_over(&zk) => return SessionEnd::Lost(why),
        }
    };
    observer.follow(&first.value);
    let probe_interval = Duration::from_millis(first.value.settings.probe_interval_ms);

    // Follow topology changes so every instance probes the right servers.
    {
        let store = store.clone();
        let observer = observer.clone();
        tasks.spawn(async move {
            loop {
                match store.read_and_watch().await {
                    Ok((t, watcher)) => {
                        observer.follow(&t.value);
                        watcher.changed().await;
                    }
                    Err(e) if e.is_session_lost() => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "topology watch failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    }
    // Publish what we see.
    {
        let board = ObserverBoard::new(zk.clone(), paths.clone());
        let observer = observer.clone();
        tasks.spawn(async move {
            let mut failing = false;
            loop {
                match board.publish(&observer.report()).await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "cannot publish observations");
                        failing = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(probe_interval).await;
            }
        });
    }

    loop {
        let candidate = match Candidate::join(&zk, &paths.election(), options.id.as_bytes()).await {
            Ok(c) => c,
            Err(e) if e.is_session_lost() => return SessionEnd::Lost(e.to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot join the election; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return SessionEnd::Shutdown,
                    why = session_over(&zk) => return SessionEnd::Lost(why),
                }
            }
        };
        // Waiting can fail on a connection loss while our node stays: wait again with the same
        // candidacy (a second node in this session could wait on the first forever).
        loop {
            tokio::select! {
                r = candidate.wait_for_leadership() => match r {
                    Ok(()) => break,
                    Err(e) if e.is_session_lost() => return SessionEnd::Lost(e.to_string()),
                    Err(e) => {
                        tracing::warn!(error = %e, "election wait failed; waiting again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = shutdown.changed() => {
                    let _ = candidate.resign().await;
                    return SessionEnd::Shutdown;
                }
                why = session_over(&zk) => return SessionEnd::Lost(why),
            }
        }
        let leader = Leader::new(options, paths, &zk, store.clone(), observer.clone());
        let end = leader.lead(&candidate, shutdown).await;
        leader.reconciler.leadership.set(false);
        match end {
            LeadEnd::Shutdown => {
                let _ = candidate.resign().await;
                return SessionEnd::Shutdown;
            }
            LeadEnd::Lost(why) => return SessionEnd::Lost(why),
            LeadEnd::Deposed => {
                tracing::warn!("no longer the leader; standing again");
                if let Err(e) = candidate.resign().await {
                    // Our node may linger: start over with a fresh session rather than stand twice.
                    return SessionEnd::Lost(format!("cannot withdraw the old candidacy: {e}"));
                }
            }
        }
    }
}

enum LeadEnd {
    Shutdown,
    Lost(String),
    Deposed,
}

/// Tells live observers from dead ones by whether their report changed recently, judged by
/// our own clock (no trust in other machines' clocks).
#[derive(Default)]
struct Freshness {
    seen: HashMap<String, (i32, Option<Instant>)>,
}

impl Freshness {
    fn live(&mut self, posted: Vec<PostedReport>, own: &ObserverReport, max_age: Duration) -> Vec<ObserverReport> {
        let now = Instant::now();
        let mut live = vec![own.clone()];
        let mut present = Vec::new();
        for p in posted {
            present.push(p.observer.clone());
            if p.observer == own.observer {
                continue;
            }
            let entry = self.seen.entry(p.observer.clone()).or_insert((p.version, None));
            if entry.0 != p.version {
                *entry = (p.version, Some(now));
            }
            // First sight proves nothing: a dead observer's node lingers until its session expires.
            let fresh = entry.1.is_some_and(|t| now.duration_since(t) <= max_age);
            if let (true, Some(report)) = (fresh, p.report) {
                live.push(report);
            }
        }
        self.seen.retain(|k, _| present.contains(k));
        live
    }
}

struct Leader {
    zk: Zk,
    paths: ClusterPaths,
    store: TopologyStore,
    observer: Observer,
    board: ObserverBoard,
    queue: RequestQueue,
    reconciler: Reconciler,
    tick: Duration,
    /// What the mirrors need, when they run (see [`crate::mirrors`]).
    mirrors: Option<ControllerOptions>,
    mover: crate::migrator::MoverOptions,
}

impl Leader {
    fn new(
        options: &ControllerOptions,
        paths: &ClusterPaths,
        zk: &Zk,
        store: TopologyStore,
        observer: Observer,
    ) -> Leader {
        Leader {
            zk: zk.clone(),
            paths: paths.clone(),
            board: ObserverBoard::new(zk.clone(), paths.clone()),
            queue: RequestQueue::new(zk.clone(), paths),
            reconciler: Reconciler {
                id: options.id.clone(),
                store: store.clone(),
                events: EventLog::new(zk.clone(), paths),
                leadership: Leadership::default(),
                timeout: options.command_timeout,
                password: options.redis_password.clone(),
            },
            store,
            observer,
            tick: options.tick,
            mirrors: options.mirrors.then(|| options.clone()),
            mover: options.mover.clone(),
        }
    }

    async fn lead(&self, candidate: &Candidate, shutdown: &mut watch::Receiver<bool>) -> LeadEnd {
        let leadership = self.reconciler.leadership.clone();
        // Stop acting the moment the connection is suspended.
        let mut states = self.zk.client().state_watcher();
        let guard = {
            let leadership = leadership.clone();
            let mut states = self.zk.client().state_watcher();
            tokio::spawn(async move {
                loop {
                    let s = states.changed().await;
                    if s != SessionState::SyncConnected {
                        leadership.set(false);
                    }
                    if matches!(s, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed) {
                        return;
                    }
                }
            })
        };
        let _abort = AbortOnDrop(guard);
        let _mirrors = self.mirrors.clone().map(|o| AbortOnDrop(tokio::spawn(crate::mirrors::run(o))));
        let _migrator = AbortOnDrop(tokio::spawn(crate::migrator::run(crate::migrator::MigratorContext {
            id: self.reconciler.id.clone(),
            zk: self.zk.clone(),
            paths: self.paths.clone(),
            store: self.store.clone(),
            leadership: leadership.clone(),
            password: self.reconciler.password.clone(),
            options: self.mover.clone(),
        })));
        let mut announced = false;
        let record = LeaderRecord { id: self.reconciler.id.clone(), term: candidate.sequence(), since_ms: now_ms() };
        let end = self.lead_loop(candidate, shutdown, &leadership, &record, &mut states, &mut announced).await;
        leadership.set(false);
        if !matches!(end, LeadEnd::Lost(_)) {
            let _ = record.withdraw(&self.zk, &self.paths).await;
        }
        end
    }

    #[allow(clippy::too_many_arguments)]
    async fn lead_loop(
        &self,
        candidate: &Candidate,
        shutdown: &mut watch::Receiver<bool>,
        leadership: &Leadership,
        record: &LeaderRecord,
        states: &mut zedis_coord::StateWatcher,
        announced: &mut bool,
    ) -> LeadEnd {
        let mut verified = false;
        let mut freshness = Freshness::default();
        let mut blocked: HashMap<GroupId, String> = HashMap::new();
        let mut acted: HashMap<String, Instant> = HashMap::new();
        let mut interval = tokio::time::interval(self.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return LeadEnd::Shutdown,
                s = states.changed() => {
                    if matches!(s, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed) {
                        return LeadEnd::Lost(format!("{s:?}"));
                    }
                    if s != SessionState::SyncConnected {
                        tracing::warn!(state = ?s, "ZooKeeper connection suspended: not acting until it is back");
                        verified = false;
                    }
                    continue;
                }
            }
            match self.zk.state() {
                SessionState::SyncConnected => {}
                SessionState::Expired | SessionState::Closed | SessionState::AuthFailed => {
                    return LeadEnd::Lost("session over".into())
                }
                _ => {
                    leadership.set(false);
                    verified = false;
                    continue;
                }
            }
            // The state channel keeps only the latest value: a disconnect and reconnect while we
            // were busy in a step show up only as the guard having cleared `leadership`.
            if !verified || !leadership.is_acting() {
                match candidate.is_leader().await {
                    Ok(true) => {
                        verified = true;
                        if let Err(e) = record.publish(&self.zk, &self.paths).await {
                            tracing::warn!(error = %e, "cannot publish the leader record");
                            continue;
                        }
                        leadership.set(true);
                    }
                    Ok(false) => return LeadEnd::Deposed,
                    Err(e) if e.is_session_lost() => return LeadEnd::Lost(e.to_string()),
                    Err(_) => continue,
                }
            }
            let topo = match self.store.read().await {
                Ok(t) => t,
                Err(e) if e.is_session_lost() => return LeadEnd::Lost(e.to_string()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read topology");
                    continue;
                }
            };
            if !*announced {
                *announced = true;
                self.reconciler
                    .event(Event::new(
                        EventKind::LeaderElected,
                        topo.value.epoch,
                        &self.reconciler.id,
                        format!("{} leads", self.reconciler.id),
                    ))
                    .await;
            }
            let own = self.observer.report();
            if let Err(e) = self.step(&topo, &own, &mut freshness, &mut blocked, &mut acted).await {
                tracing::debug!(error = %e, "step interrupted");
            }
        }
    }

    async fn step(
        &self,
        topo: &zedis_coord::Versioned<zedis_topology::Topology>,
        own: &ObserverReport,
        freshness: &mut Freshness,
        blocked: &mut HashMap<GroupId, String>,
        acted: &mut HashMap<String, Instant>,
    ) -> Result<(), crate::reconciler::ReconcileError> {
        if own.epoch != topo.value.epoch {
            // Our probes are still following an older topology; the watch catches up shortly.
            self.observer.follow(&topo.value);
        }
        if handle_pending(&self.reconciler, &self.queue, topo, own).await? {
            return Ok(());
        }
        let posted = self.board.read_all().await?;
        let max_age = Duration::from_millis((topo.value.settings.probe_interval_ms * 5).max(1000));
        let live = freshness.live(posted, own, max_age);
        let p = plan(&PlanInput { topology: &topo.value, own, live: &live });
        let mut now_blocked = HashMap::new();
        for b in &p.blocked {
            if blocked.get(&b.group) != Some(&b.reason) {
                self.reconciler
                    .event(
                        Event::new(EventKind::FailoverBlocked, topo.value.epoch, &self.reconciler.id, b.reason.clone())
                            .group(b.group),
                    )
                    .await;
            }
            now_blocked.insert(b.group, b.reason.clone());
        }
        *blocked = now_blocked;
        // Forget actions whose effect our probes have seen since.
        acted.retain(|addr, t| !self.observer.observed_since(addr, *t));
        for action in &p.actions {
            self.reconciler.leadership.check()?;
            // Acting again on a server before a probe shows our last action would only repeat it.
            if !matches!(action, Action::Failover { .. }) && action.targets().iter().any(|a| acted.contains_key(*a)) {
                continue;
            }
            let started = Instant::now();
            let result = self.reconciler.execute(topo, action, own).await;
            for addr in action.targets() {
                acted.insert(addr.to_string(), started);
            }
            if let Action::Failover { group, .. } = action {
                for s in topo.value.group(*group).map(|g| g.servers.as_slice()).unwrap_or_default() {
                    acted.insert(s.addr.clone(), started);
                }
            }
            match result {
                Ok(Done::NewEpoch) => return Ok(()),
                Ok(Done::Nothing) => {}
                Err(e) => {
                    let level_is_warn = matches!(action, Action::Failover { .. });
                    if level_is_warn {
                        tracing::warn!(error = %e, ?action, "failover step failed; will retry");
                    } else {
                        tracing::debug!(error = %e, ?action, "action failed; will retry");
                    }
                }
            }
        }
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
