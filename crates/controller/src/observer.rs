//! Every controller instance probes every server of the cluster and keeps what it saw; the
//! report it publishes is what the leader votes with.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use zedis_topology::{now_ms, ClusterSettings, ObserverReport, ServerObservation, Topology};

use crate::info::observe_info;
use crate::server_ops::ServerConn;

/// Managed settings read back with `CONFIG GET`, to spot drift.
pub const MANAGED_CONFIG: &[&str] =
    &["min-replicas-to-write", "min-replicas-max-lag", "repl-timeout", "repl-ping-replica-period"];

/// Every setting a probe reads back: the managed ones and the operator's
/// (`ClusterSettings::redis`), so the planner sees drift in either.
pub fn config_keys(settings: &ClusterSettings) -> Vec<String> {
    MANAGED_CONFIG.iter().map(|k| k.to_string()).chain(settings.redis.keys().cloned()).collect()
}

#[derive(Debug)]
struct ProbeState {
    since: Instant,
    /// When the probe behind `last` started: an action taken after that is not reflected yet.
    last_probe_started: Option<Instant>,
    last_ok: Option<Instant>,
    last: ServerObservation,
}

/// Shared, always-current view of every probed server.
#[derive(Clone)]
pub struct Observer {
    id: String,
    password: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    epoch: u64,
    settings: ClusterSettings,
    states: HashMap<String, ProbeState>,
    tasks: HashMap<String, JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

impl Observer {
    pub fn new(id: &str) -> Observer {
        Observer {
            id: id.to_string(),
            password: None,
            inner: Arc::new(Mutex::new(Inner {
                epoch: 0,
                settings: ClusterSettings::default(),
                states: HashMap::new(),
                tasks: HashMap::new(),
            })),
        }
    }

    /// Probes with the servers' `requirepass`.
    pub fn with_password(mut self, password: Option<String>) -> Observer {
        self.password = password;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a probe task panicked mid-update; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts probing servers new to `topology` and stops probing removed ones.
    pub fn follow(&self, topology: &Topology) {
        let wanted = topology.server_addrs();
        let mut inner = self.lock();
        inner.epoch = topology.epoch;
        let settings_changed = inner.settings != topology.settings;
        inner.settings = topology.settings.clone();
        let stale: Vec<String> =
            inner.tasks.keys().filter(|a| settings_changed || !wanted.contains(a)).cloned().collect();
        for addr in stale {
            if let Some(task) = inner.tasks.remove(&addr) {
                task.abort();
            }
            if !wanted.contains(&addr) {
                inner.states.remove(&addr);
            }
        }
        for addr in wanted {
            if inner.tasks.contains_key(&addr) {
                continue;
            }
            inner.states.entry(addr.clone()).or_insert_with(|| ProbeState {
                since: Instant::now(),
                last_probe_started: None,
                last_ok: None,
                last: ServerObservation { error: Some("not probed yet".into()), ..Default::default() },
            });
            // The task holds a weak handle, so dropping the last Observer stops every probe.
            let task = tokio::spawn(probe_loop(
                Arc::downgrade(&self.inner),
                addr.clone(),
                topology.settings.clone(),
                self.password.clone(),
            ));
            inner.tasks.insert(addr, task);
        }
    }

    fn record(inner: &Mutex<Inner>, addr: &str, started: Instant, result: Result<ServerObservation, String>) {
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = inner.states.get_mut(addr) else { return };
        state.last_probe_started = Some(started);
        match result {
            Ok(obs) => {
                state.last_ok = Some(Instant::now());
                state.last = obs;
            }
            Err(error) => {
                state.last.ok = false;
                state.last.error = Some(error);
            }
        }
    }

    /// Whether what we know of `addr` comes from a probe that started after `t`, so it
    /// reflects an action taken at `t`.
    pub fn observed_since(&self, addr: &str, t: Instant) -> bool {
        self.lock().states.get(addr).and_then(|s| s.last_probe_started).is_some_and(|p| p >= t)
    }

    /// What this observer sees now, with its down votes.
    pub fn report(&self) -> ObserverReport {
        let inner = self.lock();
        let down_after = Duration::from_millis(inner.settings.down_after_ms);
        let servers: BTreeMap<String, ServerObservation> = inner
            .states
            .iter()
            .map(|(addr, state)| {
                let mut obs = state.last.clone();
                let quiet = state.last_ok.map(|t| t.elapsed()).unwrap_or_else(|| state.since.elapsed());
                obs.down = quiet >= down_after;
                obs.last_ok_ago_ms = state.last_ok.map(|t| t.elapsed().as_millis() as u64);
                (addr.clone(), obs)
            })
            .collect();
        ObserverReport { observer: self.id.clone(), time_ms: now_ms(), epoch: inner.epoch, servers }
    }
}

/// One probe: PING, `INFO replication server`, `CONFIG GET` of `config_keys` (see
/// [`config_keys`]).
pub async fn probe(conn: &mut ServerConn, config_keys: &[String]) -> Result<ServerObservation, String> {
    let mut pipe = redis::pipe();
    pipe.cmd("PING").cmd("INFO").arg("replication").arg("server").cmd("CONFIG").arg("GET");
    for key in config_keys {
        pipe.arg(key);
    }
    let (pong, info, config): (String, String, BTreeMap<String, String>) =
        conn.pipeline(&pipe).await.map_err(|e| e.to_string())?;
    if pong != "PONG" {
        return Err(format!("unexpected PING reply {pong:?}"));
    }
    let mut obs = ServerObservation { ok: true, config, ..Default::default() };
    observe_info(&info, &mut obs);
    if obs.role.is_none() {
        return Err("INFO has no role: not a Redis server?".into());
    }
    Ok(obs)
}

async fn probe_loop(inner: Weak<Mutex<Inner>>, addr: String, settings: ClusterSettings, password: Option<String>) {
    let interval = Duration::from_millis(settings.probe_interval_ms);
    // Long enough for a busy server, short enough to vote well inside down_after.
    let timeout = Duration::from_millis((settings.down_after_ms / 2).clamp(50, 2000));
    // `follow` restarts this loop when the settings change, so the key list stays current.
    let keys = config_keys(&settings);
    let mut conn: Option<ServerConn> = None;
    loop {
        let started = Instant::now();
        if conn.is_none() {
            match ServerConn::connect_with(&addr, timeout, password.as_deref()).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let Some(inner) = inner.upgrade() else { return };
                    Observer::record(&inner, &addr, started, Err(e.to_string()));
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            let result = probe(c, &keys).await;
            if result.is_err() {
                conn = None; // reconnect next time: the connection may be broken
            }
            let Some(inner) = inner.upgrade() else { return };
            Observer::record(&inner, &addr, started, result);
        }
        tokio::time::sleep(interval.saturating_sub(started.elapsed())).await;
    }
}
