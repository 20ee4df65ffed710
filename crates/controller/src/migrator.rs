//! The controller leader's slot migration driver (ARCHITECTURE.md, "Slot migration").
//!
//! For each migration in the topology it does what its state asks: `Preparing` → once every
//! registered router has applied the migration's epoch, set the out marker on each source and
//! record `Moving`; `Moving` → passes over each source moving keys of the pending slots to the
//! target (`MIGRATE`, or in chunks for big collections) until a full pass finds none, then
//! commit the slots to the target (`Done`); `Cancelling` → set the target's back marker and
//! move keys back until none is left (`Cancelled`); finished → remove the markers once every
//! router has left the migration behind. A new leader picks up from the topology and the
//! markers: every step is idempotent.
//!
//! What to do is decided by the pure [`next_task`]; the rest is thin I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::Value;
use zedis_coord::{ClusterPaths, TopologyStore, Versioned, Zk};
use zedis_topology::{
    key_slot, now_ms, Event, EventKind, GroupId, Markers, Migration, MigrationAction, MigrationProgress,
    MigrationState, Slot, Topology,
};

use crate::reconciler::{Leadership, ReconcileError};
use crate::server_ops::{ServerConn, ServerError};

/// How the mover works; the defaults suit most fleets.
#[derive(Clone, Debug)]
pub struct MoverOptions {
    /// Keys per `MIGRATE`.
    pub batch: usize,
    /// Keys `SCAN` asks for per call.
    pub scan_count: usize,
    /// Collections using more memory than this move in chunks instead of one `MIGRATE`.
    pub big_key_bytes: u64,
    /// Elements per chunk of a big collection.
    pub chunk: usize,
    /// Timeout of one `MIGRATE` (and of the mover's other commands).
    pub timeout: Duration,
    /// How often the driver looks at the topology.
    pub tick: Duration,
}

impl Default for MoverOptions {
    fn default() -> Self {
        MoverOptions {
            batch: 100,
            scan_count: 1000,
            big_key_bytes: 8 << 20,
            chunk: 2000,
            timeout: Duration::from_secs(10),
            tick: Duration::from_millis(100),
        }
    }
}

/// What the driver runs on.
#[derive(Clone)]
pub struct MigratorContext {
    pub id: String,
    pub zk: Zk,
    pub paths: ClusterPaths,
    pub store: TopologyStore,
    pub leadership: Leadership,
    pub password: Option<String>,
    pub options: MoverOptions,
}

/// The next thing to do for one migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Wait until every router has applied `epoch`, then set the out markers and begin.
    Begin {
        epoch: u64,
    },
    /// Move keys from the sources to the target.
    MoveOut,
    /// Move keys from the target back to their sources.
    MoveBack,
    /// Remove the markers once every router has applied `epoch`.
    Clean {
        epoch: u64,
    },
    Nothing,
}

/// What migration `m` needs now; `cleaned` are finished migrations whose markers are gone.
pub fn next_task(m: &Migration, cleaned: &HashSet<u64>) -> Task {
    match m.state {
        MigrationState::Preparing => Task::Begin { epoch: m.since_epoch },
        MigrationState::Moving => Task::MoveOut,
        MigrationState::Cancelling => Task::MoveBack,
        MigrationState::Paused => Task::Nothing,
        MigrationState::Done | MigrationState::Cancelled => match m.finished_epoch {
            Some(epoch) if !cleaned.contains(&m.id) => Task::Clean { epoch },
            _ => Task::Nothing,
        },
    }
}

/// Where a key of `slot` goes in this pass: the target when moving out, its source when
/// moving back; None when the slot is not pending (or comes from another source).
pub fn destination(m: &Migration, slot: Slot, from: GroupId, back: bool) -> Option<GroupId> {
    let mv = m.pending_move(slot)?;
    match back {
        false if mv.source == from => Some(m.target),
        true if m.target == from => Some(mv.source),
        _ => None,
    }
}

/// Keys of the pending slots on the sending side, estimated from its key count and the share
/// of the slots it holds that are pending from it.
pub fn estimate_keys(dbsize: u64, pending_slots: usize, held_slots: usize) -> u64 {
    if held_slots == 0 {
        return 0;
    }
    (dbsize as f64 * (pending_slots as f64 / held_slots as f64).min(1.0)).round() as u64
}

/// A registered router: its id, the epoch it routes with and its session timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterSeen {
    pub id: String,
    pub epoch: u64,
    pub session_timeout: Duration,
}

/// Who holds up a switch at `epoch`: routers behind it, or routers that vanished less than
/// their session timeout ago (they may still be serving from an old table until they notice).
/// `since_start`: how long this driver has watched (a router that vanished before it started
/// counts as vanished at its start).
pub fn routers_behind(
    routers: &[RouterSeen],
    vanished: &HashMap<String, (Instant, Duration)>,
    epoch: u64,
    now: Instant,
) -> Vec<String> {
    let mut out: Vec<String> =
        routers.iter().filter(|r| r.epoch < epoch).map(|r| format!("{} (epoch {})", r.id, r.epoch)).collect();
    for (id, (at, timeout)) in vanished {
        if now.duration_since(*at) < *timeout {
            out.push(format!("{id} (gone, waiting out its session)"));
        }
    }
    out.sort();
    out
}

/// Runs until dropped (the leader aborts it when it stops leading).
///
/// # Cancellation safety
/// Every step can be cut anywhere: markers and moves are idempotent, a key is deleted from the
/// sending side only by `MIGRATE` or after its copy is in place.
pub async fn run(ctx: MigratorContext) {
    let mut driver = Driver::new(ctx);
    let mut interval = tokio::time::interval(driver.ctx.options.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if !driver.ctx.leadership.is_acting() {
            continue;
        }
        if let Err(e) = driver.step().await {
            tracing::debug!(error = %e, "migration step interrupted");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Coord(#[from] zedis_coord::CoordError),
    #[error("{0}")]
    Other(String),
}

struct Driver {
    ctx: MigratorContext,
    started: Instant,
    /// Routers seen registered, to notice when one vanishes.
    seen: HashMap<String, Duration>,
    vanished: HashMap<String, (Instant, Duration)>,
    cleaned: HashSet<u64>,
    progress: HashMap<u64, Meter>,
    conns: HashMap<String, ServerConn>,
    /// Logged once per cause.
    last_wait: Option<String>,
}

/// Progress of one migration, and when it was last published.
struct Meter {
    record: MigrationProgress,
    published: Option<Instant>,
    window: Vec<(Instant, u64)>,
    /// Since when, and from how many keys moved, the rate limit counts.
    throttle: Option<(Instant, u64)>,
}

impl Driver {
    fn new(ctx: MigratorContext) -> Driver {
        Driver {
            ctx,
            started: Instant::now(),
            seen: HashMap::new(),
            vanished: HashMap::new(),
            cleaned: HashSet::new(),
            progress: HashMap::new(),
            conns: HashMap::new(),
            last_wait: None,
        }
    }

    async fn step(&mut self) -> Result<(), MoveError> {
        let topo = self.ctx.store.read().await?;
        let mut ids: Vec<(u64, Task)> =
            topo.value.migrations.iter().map(|m| (m.id, next_task(m, &self.cleaned))).collect();
        ids.retain(|(_, t)| *t != Task::Nothing);
        for (id, task) in ids {
            self.ctx.leadership.check()?;
            match task {
                Task::Begin { epoch } => {
                    if self.routers_ready(epoch).await? {
                        self.begin(&topo, id).await?;
                        return Ok(());
                    }
                }
                Task::MoveOut | Task::MoveBack => {
                    self.pass(&topo, id, task == Task::MoveBack).await?;
                    return Ok(());
                }
                Task::Clean { epoch } => {
                    if self.routers_ready(epoch).await? {
                        self.clean(&topo.value, id).await?;
                    }
                }
                Task::Nothing => {}
            }
        }
        Ok(())
    }

    /// Whether every registered router applied `epoch` and none vanished too recently.
    async fn routers_ready(&mut self, epoch: u64) -> Result<bool, MoveError> {
        let mut routers = Vec::new();
        for dir in [self.ctx.paths.proxies(), self.ctx.paths.clients()] {
            for child in self.ctx.zk.children(&dir).await.unwrap_or_default() {
                let Some((data, _)) = self.ctx.zk.get(&format!("{dir}/{child}")).await? else { continue };
                let v: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
                routers.push(RouterSeen {
                    id: child,
                    epoch: v.get("epoch").and_then(|e| e.as_u64()).unwrap_or(0),
                    session_timeout: Duration::from_millis(
                        v.get("session_timeout_ms").and_then(|t| t.as_u64()).unwrap_or(DEFAULT_ROUTER_TIMEOUT_MS),
                    ),
                });
            }
        }
        let now = Instant::now();
        let present: HashSet<&str> = routers.iter().map(|r| r.id.as_str()).collect();
        for (id, timeout) in self.seen.drain().collect::<Vec<_>>() {
            if !present.contains(id.as_str()) {
                self.vanished.entry(id).or_insert((now, timeout));
            }
        }
        for r in &routers {
            self.seen.insert(r.id.clone(), r.session_timeout);
            self.vanished.remove(&r.id);
        }
        self.vanished.retain(|_, (at, timeout)| now.duration_since(*at) < *timeout);
        // Routers that vanished before this driver started are unknown: wait one timeout.
        let mut behind = routers_behind(&routers, &self.vanished, epoch, now);
        let startup =
            routers.iter().map(|r| r.session_timeout).max().unwrap_or(Duration::from_millis(DEFAULT_ROUTER_TIMEOUT_MS));
        if now.duration_since(self.started) < startup {
            behind.push("a controller that just took over (waiting out routers' sessions)".into());
        }
        if behind.is_empty() {
            self.last_wait = None;
            return Ok(true);
        }
        let why = behind.join(", ");
        if self.last_wait.as_deref() != Some(why.as_str()) {
            tracing::info!(epoch, waiting_for = %why, "migration waits for routers to apply its epoch");
            self.last_wait = Some(why);
        }
        Ok(false)
    }

    async fn conn(&mut self, addr: &str) -> Result<ServerConn, MoveError> {
        self.ctx.leadership.check()?;
        if let Some(c) = self.conns.get(addr) {
            return Ok(c.clone());
        }
        let c = ServerConn::connect_with(addr, self.ctx.options.timeout, self.ctx.password.as_deref()).await?;
        self.conns.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Runs `cmd` on the server at `addr`; a failed connection is dropped for a fresh one next time.
    async fn on<T: redis::FromRedisValue>(&mut self, addr: &str, cmd: &redis::Cmd) -> Result<T, MoveError> {
        let mut c = self.conn(addr).await?;
        match c.query(cmd).await {
            Ok(v) => Ok(v),
            Err(e) => {
                // A fresh connection next time (cheap; the server may have restarted or moved).
                self.conns.remove(addr);
                Err(e.into())
            }
        }
    }

    /// Sets the out markers on every source (waiting for a replica to have them, so a failover
    /// keeps them) and records `Moving`.
    async fn begin(&mut self, topo: &Versioned<Topology>, id: u64) -> Result<(), MoveError> {
        let Some(m) = topo.value.migrations.iter().find(|m| m.id == id) else { return Ok(()) };
        let markers = Markers::of(id);
        let sources: Vec<GroupId> = m.pending.iter().map(|mv| mv.source).collect::<HashSet<_>>().into_iter().collect();
        for g in sources {
            self.set_marker(&topo.value, g, &markers.out, id).await?;
        }
        let next =
            topo.value.migration_action(id, MigrationAction::Begin).map_err(|e| MoveError::Other(e.to_string()))?;
        self.write(topo, &next, format!("migration {id}: every router routes through the sources; keys move now")).await
    }

    async fn set_marker(&mut self, topo: &Topology, group: GroupId, marker: &str, id: u64) -> Result<(), MoveError> {
        let Some(g) = topo.group(group) else { return Ok(()) };
        let master = g.master.clone();
        let replicas = g.replicas().count();
        let _: () = self.on(&master, redis::cmd("SET").arg(marker).arg(id)).await?;
        if replicas > 0 {
            let acked: i64 = self.on(&master, redis::cmd("WAIT").arg(1).arg(1000)).await?;
            if acked < 1 {
                tracing::warn!(group, marker, "no replica confirmed the migration marker yet");
            }
        }
        Ok(())
    }

    async fn write(&mut self, topo: &Versioned<Topology>, next: &Topology, message: String) -> Result<(), MoveError> {
        self.ctx.leadership.check()?;
        self.ctx.store.write(next, topo.version).await?;
        tracing::info!(epoch = next.epoch, "{message}");
        let events = zedis_coord::EventLog::new(self.ctx.zk.clone(), &self.ctx.paths);
        let _ = events.append(&Event::new(EventKind::MigrationChanged, next.epoch, &self.ctx.id, message)).await;
        Ok(())
    }

    /// One full pass over the sending side(s); finishes the migration when it found nothing.
    async fn pass(&mut self, topo: &Versioned<Topology>, id: u64, back: bool) -> Result<(), MoveError> {
        let Some(m) = topo.value.migrations.iter().find(|m| m.id == id).cloned() else { return Ok(()) };
        let markers = Markers::of(id);
        let senders: Vec<GroupId> = if back {
            self.set_marker(&topo.value, m.target, &markers.back, id).await?;
            vec![m.target]
        } else {
            // Idempotent: a failover may have lost it on a source before it replicated.
            let sources: Vec<GroupId> =
                m.pending.iter().map(|mv| mv.source).collect::<HashSet<_>>().into_iter().collect();
            for g in &sources {
                self.set_marker(&topo.value, *g, &markers.out, id).await?;
            }
            sources
        };
        if !self.progress.contains_key(&id) {
            // Carry on counting where an earlier leader left off.
            if let Ok(Some((data, _))) = self.ctx.zk.get(&self.ctx.paths.migration(id)).await {
                if let Ok(mut record) = MigrationProgress::from_json(&data) {
                    record.by = self.ctx.id.clone();
                    record.rate = 0.0;
                    self.progress.insert(id, Meter { record, published: None, window: Vec::new(), throttle: None });
                }
            }
        }
        // Nothing is being copied in chunks between passes: whatever a dead leader held goes.
        for g in senders.iter().chain(std::iter::once(&m.target)) {
            if let Some(group) = topo.value.group(*g) {
                let master = group.master.clone();
                let _: () = self.on(&master, redis::cmd("DEL").arg(&markers.held)).await?;
            }
        }
        self.meter(id).record.passes += 1;
        let mut found = 0u64;
        for from in senders {
            let Some(group) = topo.value.group(from) else { continue };
            let from_addr = group.master.clone();
            let dbsize: u64 = self.on(&from_addr, &redis::cmd("DBSIZE")).await?;
            let pending_here: usize =
                m.pending.iter().filter(|mv| if back { true } else { mv.source == from }).map(|mv| mv.len()).sum();
            let held_here = topo.value.slots.count(from) + if back { pending_here } else { 0 };
            let meter = self.meter(id);
            if meter.record.passes == 1 || meter.record.keys_estimate.is_none() {
                let est = meter.record.keys_moved + estimate_keys(dbsize, pending_here, held_here);
                meter.record.keys_estimate = Some(est);
            }
            match self.scan_and_move(&topo.value, &m, from, &from_addr, back).await {
                Ok(n) => found += n,
                Err(Interrupted::Changed) => return Ok(()),
                Err(Interrupted::Error(e)) => {
                    self.meter(id).record.last_error = Some(e.to_string());
                    self.publish(id, true).await;
                    return Err(e);
                }
            }
        }
        self.publish(id, true).await;
        if found > 0 {
            return Ok(());
        }
        // A full pass found no key of the pending slots: the sending side is drained.
        let fresh = self.ctx.store.read().await?;
        let still = fresh.value.migrations.iter().find(|x| x.id == id).map(|x| x.state);
        if still != Some(m.state) || fresh.value.epoch != topo.value.epoch {
            return Ok(()); // changed meanwhile: look again next tick
        }
        let next = fresh.value.finish_migration(id).map_err(|e| MoveError::Other(e.to_string()))?;
        let meter = self.meter(id);
        meter.record.eta_s = Some(0);
        meter.record.keys_estimate = Some(meter.record.keys_moved);
        self.publish(id, true).await;
        let message = if back {
            format!("migration {id} cancelled: every key is back with its source")
        } else {
            format!("migration {id} done: {} slots now with group {}", m.total_slots(), m.target)
        };
        self.write(&fresh, &next, message).await
    }

    /// SCANs `from` and moves the keys of the pending slots; returns how many it found.
    async fn scan_and_move(
        &mut self,
        topo: &Topology,
        m: &Migration,
        from: GroupId,
        from_addr: &str,
        back: bool,
    ) -> Result<u64, Interrupted> {
        let mut cursor: u64 = 0;
        let mut found = 0u64;
        let mut last_check = Instant::now();
        loop {
            if last_check.elapsed() > Duration::from_millis(500) {
                last_check = Instant::now();
                self.still_wanted(m, topo.epoch).await?;
            }
            let scan = redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(self.ctx.options.scan_count).clone();
            let (next, keys): (u64, Vec<Vec<u8>>) = self.on(from_addr, &scan).await?;
            cursor = next;
            let mut by_dest: BTreeMap<GroupId, Vec<Vec<u8>>> = BTreeMap::new();
            for k in keys {
                if Markers::is_marker(&k) {
                    continue;
                }
                if let Some(dest) = destination(m, key_slot(&k), from, back) {
                    by_dest.entry(dest).or_default().push(k);
                }
            }
            for (dest, keys) in by_dest {
                let Some(to_addr) = topo.group(dest).map(|g| g.master.clone()) else { continue };
                found += keys.len() as u64;
                // With a rate limit, batches of a tenth of a second's worth keep the pace even.
                let size = match m.rate.filter(|r| *r > 0) {
                    Some(rate) => self.ctx.options.batch.min((rate as usize / 10).max(1)),
                    None => self.ctx.options.batch,
                };
                for batch in keys.chunks(size.max(1)) {
                    self.move_batch(m, from_addr, &to_addr, batch).await?;
                }
                // MIGRATE deletes on the sender: let a replica have the deletes before going
                // on, so a failover of the sender cannot bring back more than the last batch.
                if topo.group(from).is_some_and(|g| g.replicas().count() > 0) {
                    let _: i64 = self.on(from_addr, redis::cmd("WAIT").arg(1).arg(200)).await?;
                }
            }
            if cursor == 0 {
                return Ok(found);
            }
        }
    }

    /// Stops the pass when the migration changed state, or leadership went.
    async fn still_wanted(&mut self, m: &Migration, epoch: u64) -> Result<(), Interrupted> {
        self.ctx.leadership.check().map_err(|e| Interrupted::Error(e.into()))?;
        let now = self.ctx.store.read().await.map_err(|e| Interrupted::Error(e.into()))?;
        let state = now.value.migrations.iter().find(|x| x.id == m.id).map(|x| x.state);
        if state != Some(m.state) {
            return Err(Interrupted::Changed);
        }
        // Another change (a failover) may have moved masters: start the pass again.
        if now.value.epoch != epoch {
            return Err(Interrupted::Changed);
        }
        self.publish(m.id, false).await;
        Ok(())
    }

    async fn move_batch(&mut self, m: &Migration, from: &str, to: &str, keys: &[Vec<u8>]) -> Result<(), Interrupted> {
        // Size first: big collections move in chunks, the rest in one MIGRATE.
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(5);
            pipe.cmd("TYPE").arg(k);
        }
        let mut c = self.conn(from).await?;
        let sized: Vec<Value> = match c.pipeline(&pipe).await {
            Ok(v) => v,
            Err(e) => {
                self.conns.remove(from);
                return Err(MoveError::from(e).into());
            }
        };
        let mut small: Vec<&Vec<u8>> = Vec::new();
        let mut bytes = 0u64;
        let mut big: Vec<(&Vec<u8>, String, u64)> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let usage = match sized.get(i * 2) {
                Some(Value::Int(n)) => *n as u64,
                _ => continue, // gone meanwhile (expired)
            };
            let kind = match sized.get(i * 2 + 1) {
                Some(Value::SimpleString(s)) => s.clone(),
                Some(Value::Okay) => "ok".into(),
                _ => String::new(),
            };
            if usage > self.ctx.options.big_key_bytes && matches!(kind.as_str(), "hash" | "set" | "zset" | "list") {
                big.push((k, kind, usage));
            } else {
                bytes += usage;
                small.push(k);
            }
        }
        if !small.is_empty() {
            self.throttle(m, small.len() as u64).await;
            self.migrate(from, to, &small).await?;
            let meter = self.meter(m.id);
            meter.record.keys_moved += small.len() as u64;
            meter.record.bytes_moved += bytes;
            meter.record.last_error = None;
        }
        for (k, kind, usage) in big {
            let mut src = self.conn(from).await?;
            let mut dst = self.conn(to).await?;
            let moved = crate::chunk_copy::copy(
                &mut src,
                &mut dst,
                &self.ctx.leadership,
                m.id,
                k,
                &kind,
                self.ctx.options.chunk,
            )
            .await?;
            if moved {
                let meter = self.meter(m.id);
                meter.record.keys_moved += 1;
                meter.record.big_keys += 1;
                meter.record.bytes_moved += usage;
            }
        }
        Ok(())
    }

    async fn migrate(&mut self, from: &str, to: &str, keys: &[&Vec<u8>]) -> Result<(), MoveError> {
        let (host, port) =
            zedis_topology::split_addr(to).ok_or_else(|| MoveError::Other(format!("bad address {to}")))?;
        let mut cmd = redis::cmd("MIGRATE");
        cmd.arg(host).arg(port).arg("").arg(0).arg(self.ctx.options.timeout.as_millis() as u64);
        if let Some(pw) = self.ctx.password.as_deref() {
            cmd.arg("AUTH").arg(pw);
        }
        cmd.arg("KEYS");
        for k in keys {
            cmd.arg(k.as_slice());
        }
        let reply: Value = self.on(from, &cmd).await?;
        match reply {
            Value::Okay | Value::SimpleString(_) => Ok(()),
            other => Err(MoveError::Other(format!("MIGRATE from {from} to {to}: {other:?}"))),
        }
    }

    /// Keeps to the migration's `--rate` (keys per second): waits until moving `next` more
    /// keys stays within it, counted from this driver's first batch.
    async fn throttle(&mut self, m: &Migration, next: u64) {
        let Some(rate) = m.rate.filter(|r| *r > 0) else { return };
        let meter = self.meter(m.id);
        let (t0, k0) = *meter.throttle.get_or_insert((Instant::now(), meter.record.keys_moved));
        let moved = meter.record.keys_moved.saturating_sub(k0) + next;
        let due = Duration::from_secs_f64(moved.saturating_sub(next) as f64 / f64::from(rate));
        let elapsed = t0.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }

    fn meter(&mut self, id: u64) -> &mut Meter {
        let by = self.ctx.id.clone();
        self.progress.entry(id).or_insert_with(|| Meter {
            record: MigrationProgress { id, by, started_ms: now_ms(), ..Default::default() },
            published: None,
            window: Vec::new(),
            throttle: None,
        })
    }

    /// Publishes the progress record (at most once a second unless `now`).
    async fn publish(&mut self, id: u64, force: bool) {
        let meter = self.meter(id);
        let now = Instant::now();
        if !force && meter.published.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        meter.window.retain(|(t, _)| now.duration_since(*t) < Duration::from_secs(10));
        meter.window.push((now, meter.record.keys_moved));
        let (t0, k0) = meter.window[0];
        let span = now.duration_since(t0).as_secs_f64();
        if span > 0.2 {
            meter.record.rate = (meter.record.keys_moved - k0) as f64 / span;
        }
        meter.record.update_eta();
        meter.record.updated_ms = now_ms();
        meter.published = Some(now);
        let data = meter.record.to_json();
        if let Err(e) = self.ctx.zk.put(&self.ctx.paths.migration(id), &data).await {
            tracing::debug!(error = %e, id, "cannot publish migration progress");
        }
    }

    /// Removes a finished migration's markers and leftovers from every server involved.
    async fn clean(&mut self, topo: &Topology, id: u64) -> Result<(), MoveError> {
        let Some(m) = topo.migrations.iter().find(|m| m.id == id) else { return Ok(()) };
        let markers = Markers::of(id);
        let mut groups: HashSet<GroupId> = HashSet::from([m.target]);
        // Finished migrations keep no pending moves: every group may have been a source.
        groups.extend(topo.groups.iter().map(|g| g.id));
        for g in groups {
            let Some(group) = topo.group(g) else { continue };
            let master = group.master.clone();
            let _: () =
                self.on(&master, redis::cmd("DEL").arg(&markers.out).arg(&markers.back).arg(&markers.held)).await?;
            let pattern = format!("{}*", String::from_utf8_lossy(&Markers::temp_key(id, b"")));
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = self
                    .on(&master, redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000))
                    .await?;
                if !keys.is_empty() {
                    let _: () = self.on(&master, redis::cmd("UNLINK").arg(keys)).await?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        self.cleaned.insert(id);
        tracing::info!(id, "migration markers removed");
        Ok(())
    }
}

/// ZooKeeper's session timeout for routers that do not say theirs (the CLI's default).
const DEFAULT_ROUTER_TIMEOUT_MS: u64 = 6_000;

enum Interrupted {
    /// The migration changed state (or the topology moved): the pass stops cleanly.
    Changed,
    Error(MoveError),
}

impl From<MoveError> for Interrupted {
    fn from(e: MoveError) -> Interrupted {
        Interrupted::Error(e)
    }
}
