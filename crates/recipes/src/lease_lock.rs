//! A Redis lease lock: cheap mutual exclusion for *efficiency*, with a loss signal.
//!
//! Acquiring is one `SET key <random 128-bit value> NX PX <lease>`; releasing is a
//! compare-and-delete script, so a holder never deletes a lease that expired and was taken by
//! someone else. While the guard lives, a watchdog renews the lease every third of it with a
//! compare-and-`PEXPIRE` script, and moves the guard's [`LossSignal`]:
//!
//! - `MayBeLost` when a renewal fails in a way that tells nothing (connection error, timeout,
//!   `-TRYAGAIN` from a proxy...) while the lease has not yet ended by our clock: the server may
//!   have restarted without the key, or failed over to a replica that never saw it;
//! - back to `Held` when a later renewal finds our value again;
//! - `Lost` when a renewal finds the value gone or changed, when the lease end passes without a
//!   successful renewal, and on release.
//!
//! The lease end is counted by *our* clock from the moment the request that set or renewed the
//! lease was **sent**, minus a drift margin: Redis starts its TTL later than that, so our view
//! of the end is never later than the server's.
//!
//! # What it does not promise
//! A lease lock depends on timing (a paused process can hold a lease that already expired) and
//! on one Redis server keeping the key (an asynchronous replica promoted after a failover may
//! not have it). It carries no fencing token. Use it to avoid doing work twice; when a write
//! must never come from a stale holder, use the ZooKeeper lock, whose token
//! [`FencedResource`](crate::fenced_resource::FencedResource) enforces at the data.
//!
//! # Keys
//! `<key_prefix>{<name>}` (default `zedis:lease:{name}`): the name is a hash tag, so keys a
//! caller derives from the same name land in the same slot behind the zedis proxy or a Redis
//! Cluster. Every command touches that one key, so it works through the proxy and against a
//! plain Redis alike.

use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{RedisError, Script, ServerErrorKind, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::loss::{Hold, LossSender, LossSignal};

/// Default lease: how long the key lives without a renewal.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default base interval between acquisition attempts while the lock is taken.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Default prefix of the lock's key.
pub const DEFAULT_KEY_PREFIX: &str = "zedis:lease:";
/// Default deadline of one Redis request.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(2);
/// The shortest lease accepted: below this the renewal round trips eat the whole lease.
pub const MIN_LEASE: Duration = Duration::from_millis(30);

/// `KEYS[1]` = lease key, `ARGV[1]` = our value. Deletes the key only if it still holds our
/// value; returns 1 if it deleted it, 0 otherwise (expired, taken by another, released).
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `KEYS[1]` = lease key, `ARGV[1]` = our value, `ARGV[2]` = lease in ms. Extends the lease
/// only if the key still holds our value; returns 1 if it did, 0 otherwise.
const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW_LUA));

/// How a [`RedisLeaseLock`] behaves. `Default` gives a 30 s lease renewed every 10 s.
#[derive(Clone, Debug)]
pub struct LeaseLockOptions {
    /// How long the key lives without a renewal; what a crashed holder costs the others.
    /// At least [`MIN_LEASE`].
    pub lease: Duration,
    /// Base interval between acquisition attempts while another holds the lock; each wait is
    /// jittered to between half and one and a half of it, so contenders do not retry in step.
    pub retry_interval: Duration,
    /// Prefix of the key; the key is `<key_prefix>{<name>}`.
    pub key_prefix: String,
    /// Deadline of one Redis request (acquire, renew, release). A renewal is also cut at the
    /// lease end, whichever comes first.
    pub op_timeout: Duration,
    /// Renew the lease in the background while the guard lives. Without it the lease simply
    /// ends after `lease` and the loss signal turns `Lost` then.
    pub watchdog: bool,
}

impl Default for LeaseLockOptions {
    fn default() -> Self {
        LeaseLockOptions {
            lease: DEFAULT_LEASE,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            op_timeout: DEFAULT_OP_TIMEOUT,
            watchdog: true,
        }
    }
}

impl LeaseLockOptions {
    /// Checks the options make sense together.
    pub fn validate(&self) -> Result<(), LeaseLockError> {
        let bad = |why: String| Err(LeaseLockError::InvalidOptions(why));
        if self.lease < MIN_LEASE {
            return bad(format!("lease {:?} is shorter than {MIN_LEASE:?}", self.lease));
        }
        if u64::try_from(self.lease.as_millis()).is_err() {
            return bad(format!("lease {:?} does not fit in milliseconds", self.lease));
        }
        if self.retry_interval.is_zero() {
            return bad("retry_interval must be positive".to_owned());
        }
        if self.op_timeout.is_zero() {
            return bad("op_timeout must be positive".to_owned());
        }
        Ok(())
    }
}

/// Why a lease lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseLockError {
    #[error("invalid lease lock options: {0}")]
    InvalidOptions(String),
    #[error("invalid lease lock name {0:?}: it must be non-empty")]
    InvalidName(String),
    #[error("redis error on lease {key}: {source}")]
    Redis {
        key: String,
        #[source]
        source: RedisError,
    },
    #[error("redis did not answer within {timeout:?} on lease {key}")]
    Timeout { key: String, timeout: Duration },
    #[error("unexpected reply on lease {key}: {reply}")]
    UnexpectedReply { key: String, reply: String },
}

impl LeaseLockError {
    /// Whether retrying may help: the connection failed or timed out, or the server (or the
    /// proxy in front of it) is busy with a failover or a load. Such an error also leaves open
    /// whether the request took effect.
    pub fn is_transient(&self) -> bool {
        match self {
            LeaseLockError::Timeout { .. } => true,
            LeaseLockError::Redis { source, .. } => is_transient_redis(source),
            LeaseLockError::InvalidOptions(_)
            | LeaseLockError::InvalidName(_)
            | LeaseLockError::UnexpectedReply { .. } => false,
        }
    }
}

fn is_transient_redis(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::ReadOnly
            )
        )
}

// ---------------------------------------------------------------------------------------------
// Pure decisions

/// What one renewal attempt found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewalOutcome {
    /// The key still held our value and its lease was extended.
    Renewed,
    /// The key is gone or holds another value: someone else may hold the lock now.
    Gone,
    /// The attempt failed without an answer (connection error, timeout, server busy): the
    /// lease may or may not still be ours.
    Failed,
}

/// The hold after a renewal attempt that ended at `now`, with the lease (as last extended)
/// ending at `lease_end` by our clock.
///
/// A successful renewal proves the key held our value continuously (only we ever write that
/// value, and it cannot come back once gone), so it restores `Held` whatever the clock says.
pub fn hold_after_renewal(outcome: RenewalOutcome, now: Instant, lease_end: Instant) -> Hold {
    match outcome {
        RenewalOutcome::Renewed => Hold::Held,
        RenewalOutcome::Gone => Hold::Lost,
        RenewalOutcome::Failed if now < lease_end => Hold::MayBeLost,
        RenewalOutcome::Failed => Hold::Lost,
    }
}

/// The timing derived from [`LeaseLockOptions`]: when to renew, when the lease ends by our
/// clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// The lease as set on the server (`PX`).
    pub lease: Duration,
    /// Interval between renewals while they succeed: a third of the lease, so two may fail
    /// before the lease ends.
    pub renew_every: Duration,
    /// Interval between renewals after one failed: short, so a passing hiccup costs little.
    pub renew_retry: Duration,
    /// Subtracted from the lease when computing its end by our clock, for the drift between
    /// our clock and the server's (1 % of the lease plus 2 ms, as Redlock does).
    pub drift: Duration,
}

impl LeaseTiming {
    pub fn new(lease: Duration) -> LeaseTiming {
        LeaseTiming {
            lease,
            renew_every: lease / 3,
            renew_retry: (lease / 10).max(Duration::from_millis(5)),
            drift: lease / 100 + Duration::from_millis(2),
        }
    }

    /// The lease end by our clock for a lease set or renewed by a request sent at `sent`.
    pub fn lease_end(&self, sent: Instant) -> Instant {
        sent + self.lease.saturating_sub(self.drift)
    }

    /// The deadline of a renewal sent at `sent`: the request timeout, but never later than a
    /// renewal interval (an unanswered renewal is a failed one: say `MayBeLost` and try again)
    /// nor than the lease end (from then on the hold is lost, whatever the server says later).
    pub fn renew_deadline(&self, sent: Instant, op_timeout: Duration, lease_end: Instant) -> Instant {
        (sent + op_timeout.min(self.renew_every)).min(lease_end)
    }

    /// When the watchdog acts next after a renewal attempt sent at `sent` and finished at
    /// `now` with `outcome`, the lease ending at `lease_end`. `None` after `Gone`: there is
    /// nothing left to renew.
    pub fn next_wake(
        &self,
        outcome: RenewalOutcome,
        sent: Instant,
        now: Instant,
        lease_end: Instant,
    ) -> Option<Instant> {
        match outcome {
            RenewalOutcome::Renewed => Some((sent + self.renew_every).max(now)),
            RenewalOutcome::Gone => None,
            // Never sleep past the lease end: that is when the hold turns `Lost`.
            RenewalOutcome::Failed => Some((now + self.renew_retry).min(lease_end)),
        }
    }
}

/// `base` scaled by `0.5 + unit`, `unit` in `[0, 1)`: a wait between half and one and a half
/// of `base`.
pub(crate) fn jittered(base: Duration, unit: f64) -> Duration {
    base.mul_f64(0.5 + unit.clamp(0.0, 1.0))
}

/// A lease's timers as the keeper sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaseClock {
    /// The lease end by our clock, as last extended.
    pub(crate) lease_end: Instant,
    /// When to renew next (ignored without a watchdog).
    pub(crate) next_renewal: Instant,
    /// A renewal is in flight; its task reports back.
    pub(crate) renewing: bool,
    /// Released, or lost: nothing more to do.
    pub(crate) done: bool,
}

/// What the keeper does about one lease at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Done, or a renewal in flight (it is cut at the lease end and reports back).
    Nothing,
    /// The lease end passed without a successful renewal.
    Lost,
    /// Time to renew.
    Renew,
    /// Nothing until then.
    WaitUntil(Instant),
}

/// The keeper's decision for one lease; `renew` is whether the watchdog is on.
pub(crate) fn due(now: Instant, clock: &LeaseClock, renew: bool) -> Due {
    if clock.done || clock.renewing {
        Due::Nothing
    } else if now >= clock.lease_end {
        Due::Lost
    } else if !renew {
        Due::WaitUntil(clock.lease_end)
    } else if now >= clock.next_renewal {
        Due::Renew
    } else {
        Due::WaitUntil(clock.next_renewal.min(clock.lease_end))
    }
}

// ---------------------------------------------------------------------------------------------
// The lock

/// A named lease lock on one Redis server (or behind the zedis proxy).
///
/// Cheap to clone when the connection is (a [`ConnectionManager`] or a
/// `MultiplexedConnection` is). Clones share one background *keeper* task that renews the
/// leases of their guards and moves their loss signals; it starts with the first acquisition
/// and ends after a renewal interval without any guard. (One keeper per lock rather than a task
/// per guard: spawning and aborting a task per acquisition costs more than the two Redis round
/// trips of a short critical section.)
#[derive(Clone)]
pub struct RedisLeaseLock<C: ConnectionLike + Clone + Send + Sync + 'static = ConnectionManager> {
    name: String,
    opts: LeaseLockOptions,
    keeper: Arc<Keeper<C>>,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> fmt::Debug for RedisLeaseLock<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLeaseLock").field("key", &self.keeper.key).field("opts", &self.opts).finish()
    }
}

impl<C> RedisLeaseLock<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A lock named `name` on `conn`.
    pub fn new(conn: C, name: impl Into<String>, opts: LeaseLockOptions) -> Result<Self, LeaseLockError> {
        let name = name.into();
        if name.is_empty() {
            return Err(LeaseLockError::InvalidName(name));
        }
        opts.validate()?;
        let keeper = Arc::new(Keeper {
            conn,
            key: format!("{}{{{}}}", opts.key_prefix, name),
            timing: LeaseTiming::new(opts.lease),
            renew: opts.watchdog,
            op_timeout: opts.op_timeout,
            state: Mutex::new(KeeperState::default()),
            wake: Notify::new(),
        });
        Ok(RedisLeaseLock { name, opts, keeper })
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis key of the lease.
    pub fn key(&self) -> &str {
        &self.keeper.key
    }

    /// The options in force.
    pub fn options(&self) -> &LeaseLockOptions {
        &self.opts
    }

    /// One attempt: `Some(guard)` if we got the lock, `None` if someone else holds it.
    ///
    /// # Cancellation safety
    /// Safe: if the future is dropped after the request was sent, a best-effort release of
    /// the value it may have set is spawned.
    pub async fn try_acquire(&self) -> Result<Option<LeaseGuard<C>>, LeaseLockError> {
        self.acquire_until(Some(Instant::now())).await
    }

    /// Tries until `timeout` has passed: `Some(guard)` if we got the lock, `None` if someone
    /// else held it all along. If the last attempt failed on the connection, that error is
    /// returned instead of `None`, so "taken" and "unreachable" stay apart. Transient errors
    /// (see [`LeaseLockError::is_transient`]) are retried within the timeout.
    ///
    /// # Cancellation safety
    /// Safe: if the future is dropped while an attempt may have set the key, a best-effort
    /// release of our value is spawned; no lease is left behind for the others to wait out.
    pub async fn try_lock(&self, timeout: Duration) -> Result<Option<LeaseGuard<C>>, LeaseLockError> {
        self.acquire_until(Instant::now().checked_add(timeout)).await
    }

    /// Waits until the lock is ours. Transient errors are retried (and logged) forever;
    /// others are returned.
    ///
    /// # Cancellation safety
    /// Safe, as [`RedisLeaseLock::try_lock`].
    pub async fn lock(&self) -> Result<LeaseGuard<C>, LeaseLockError> {
        loop {
            if let Some(guard) = self.acquire_until(None).await? {
                return Ok(guard);
            }
        }
    }

    /// The acquisition loop; `deadline` `None` waits forever.
    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<LeaseGuard<C>>, LeaseLockError> {
        // One value for the whole call: if a SET's reply is lost, the next attempt can tell
        // whether that SET took effect by finding this value in the key.
        let mut pending = self.pending();
        let mut attempts: u64 = 0;
        loop {
            attempts += 1;
            let last_error = match self.attempt(&mut pending).await {
                Ok(Some(sent)) => {
                    tracing::debug!(key = %self.keeper.key, attempts, "lease lock acquired");
                    return Ok(Some(LeaseGuard::start(&self.keeper, pending.disarm(), sent)));
                }
                Ok(None) => None,
                Err(e) if e.is_transient() => {
                    tracing::warn!(key = %self.keeper.key, attempts, error = %e, "lease lock attempt failed; retrying");
                    Some(e)
                }
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            let mut wait = jittered(self.opts.retry_interval, rand::random::<f64>());
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return match last_error {
                        Some(e) => Err(e),
                        None => Ok(None),
                    };
                }
                wait = wait.min(deadline - now);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One acquisition attempt: `Some(sent)` if the key now holds our value, with the time
    /// the request that set its lease was sent.
    async fn attempt(&self, pending: &mut PendingAcquire<C>) -> Result<Option<Instant>, LeaseLockError> {
        let key = &self.keeper.key;
        let mut conn = self.keeper.conn.clone();
        let lease_ms = lease_millis(self.opts.lease);
        if pending.maybe_set {
            // An earlier SET may have taken effect without us hearing of it: if the key holds
            // our value, it is ours; renewing it both checks that and restarts its lease.
            let sent = Instant::now();
            let renewed = self.call(RENEW.key(key).arg(&pending.value).arg(lease_ms).invoke_async(&mut conn)).await?;
            match renewed {
                1 => return Ok(self.still_valid(pending, sent)),
                0 => pending.maybe_set = false,
                other => return Err(self.unexpected(format!("renew returned {other}"))),
            }
        }
        let sent = Instant::now();
        // From here until a definite reply the SET may take effect whatever happens to us.
        pending.maybe_set = true;
        let reply: Value = self
            .call(
                redis::cmd("SET").arg(key).arg(&pending.value).arg("NX").arg("PX").arg(lease_ms).query_async(&mut conn),
            )
            .await?;
        match reply {
            Value::Okay => Ok(self.still_valid(pending, sent)),
            Value::SimpleString(s) if s == "OK" => Ok(self.still_valid(pending, sent)),
            Value::Nil => {
                pending.maybe_set = false;
                Ok(None)
            }
            other => Err(self.unexpected(format!("SET NX answered {other:?}"))),
        }
    }

    /// `Some(sent)` for a lease set by a request sent at `sent`, or `None` (and a release
    /// spawned) if the reply came so late that the lease already ended by our clock.
    fn still_valid(&self, pending: &mut PendingAcquire<C>, sent: Instant) -> Option<Instant> {
        if Instant::now() < self.keeper.timing.lease_end(sent) {
            return Some(sent);
        }
        tracing::warn!(key = %self.keeper.key, lease = ?self.opts.lease, "lease lock reply came after the lease ended; giving it back");
        // Replacing `pending` drops the old one, whose value may be set: that drop releases it.
        // Later attempts use a fresh value.
        *pending = self.pending();
        None
    }

    fn pending(&self) -> PendingAcquire<C> {
        PendingAcquire {
            conn: self.keeper.conn.clone(),
            key: self.keeper.key.clone(),
            value: random_value(),
            op_timeout: self.opts.op_timeout,
            maybe_set: false,
        }
    }

    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, LeaseLockError> {
        with_timeout(&self.keeper.key, self.opts.op_timeout, fut).await
    }

    fn unexpected(&self, reply: String) -> LeaseLockError {
        LeaseLockError::UnexpectedReply { key: self.keeper.key.clone(), reply }
    }
}

/// A value only this acquisition knows: 128 random bits from the thread's CSPRNG.
fn random_value() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn lease_millis(lease: Duration) -> u64 {
    // `validate` checked it fits; saturate rather than panic all the same.
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
}

/// Locks a std mutex; a poisoned one only means a panic elsewhere, and the timers inside are
/// still consistent (every critical section below is a few assignments).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn with_timeout<T>(
    key: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, LeaseLockError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(LeaseLockError::Redis { key: key.to_owned(), source }),
        Err(_) => Err(LeaseLockError::Timeout { key: key.to_owned(), timeout }),
    }
}

/// Compare-and-delete of `value` at `key`: `Ok(true)` if it deleted our value.
async fn release_value<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    value: &str,
    timeout: Duration,
) -> Result<bool, LeaseLockError> {
    let deleted: i64 = with_timeout(key, timeout, RELEASE.key(key).arg(value).invoke_async(conn)).await?;
    Ok(deleted == 1)
}

/// Spawns a compare-and-delete, for drops; logs the outcome. Does nothing outside a runtime.
fn spawn_release<C: ConnectionLike + Clone + Send + Sync + 'static>(
    mut conn: C,
    key: String,
    value: String,
    timeout: Duration,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(key = %key, "lease dropped outside a tokio runtime; it will expire on its own");
        return;
    };
    handle.spawn(async move {
        match release_value(&mut conn, &key, &value, timeout).await {
            Ok(deleted) => tracing::debug!(key = %key, deleted, "lease released on drop"),
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "releasing a dropped lease failed; it will expire on its own")
            }
        }
    });
}

/// The value of an acquisition in progress; releases it on drop if a SET may have set it.
struct PendingAcquire<C: ConnectionLike + Clone + Send + Sync + 'static> {
    conn: C,
    key: String,
    value: String,
    op_timeout: Duration,
    /// A SET NX with `value` was sent and we do not know that it failed.
    maybe_set: bool,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> PendingAcquire<C> {
    /// The acquisition succeeded: hand the value over to the guard.
    fn disarm(mut self) -> String {
        self.maybe_set = false;
        std::mem::take(&mut self.value)
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Drop for PendingAcquire<C> {
    fn drop(&mut self) {
        if self.maybe_set {
            spawn_release(
                self.conn.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.value),
                self.op_timeout,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The keeper: renewals and loss signals of every live guard of one lock

/// One live lease, shared by its guard and the keeper.
#[derive(Debug)]
struct Lease {
    value: String,
    sender: LossSender,
    clock: Mutex<LeaseClock>,
}

impl Lease {
    fn clock(&self) -> LeaseClock {
        *lock(&self.clock)
    }

    /// Marks the lease done with `hold` (`Lost`), unless it is done already.
    fn finish(&self) {
        lock(&self.clock).done = true;
        self.sender.set(Hold::Lost);
    }
}

#[derive(Debug, Default)]
struct KeeperState {
    /// The leases of live guards. Guards remove theirs on release and drop, so the list stays
    /// as short as the number of guards alive.
    leases: Vec<Arc<Lease>>,
    /// A keeper task runs (or is about to).
    running: bool,
    /// When the running keeper next wakes by itself; `None` while it is planning.
    planned_wake: Option<Instant>,
}

struct Keeper<C> {
    conn: C,
    key: String,
    timing: LeaseTiming,
    renew: bool,
    op_timeout: Duration,
    state: Mutex<KeeperState>,
    /// Wakes the keeper to plan again: a lease that needs it sooner than its planned wake, or
    /// a renewal that finished.
    wake: Notify,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Keeper<C> {
    /// Puts a new lease under the keeper's care; starts the keeper if none runs.
    fn register(self: &Arc<Self>, lease: Arc<Lease>) {
        let clock = lease.clock();
        let first = if self.renew { clock.next_renewal } else { clock.lease_end };
        let mut state = lock(&self.state);
        state.leases.push(lease);
        if !state.running {
            state.running = true;
            state.planned_wake = None;
            drop(state);
            tokio::spawn(Arc::clone(self).run());
        } else if state.planned_wake.is_some_and(|wake| first < wake) {
            drop(state);
            self.wake.notify_one();
        }
        // Otherwise the keeper wakes before this lease needs anything (the common case: a
        // short critical section costs no wake-up at all).
    }

    /// Takes a lease out of the keeper's care (release, drop).
    fn unregister(&self, lease: &Arc<Lease>) {
        lock(&self.state).leases.retain(|l| !Arc::ptr_eq(l, lease));
    }

    /// The keeper task: wakes when a lease needs renewing or has run out, spawns the renewals,
    /// and ends after a renewal interval with no lease to look after.
    async fn run(self: Arc<Self>) {
        // If the task is cancelled (its runtime shuts down), the next registration must start
        // a new keeper.
        let mut running = RunningFlag { keeper: &self.state, armed: true };
        let linger = self.timing.renew_every;
        let mut idle_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut renewals = Vec::new();
            let wake = {
                let mut state = lock(&self.state);
                let mut wake: Option<Instant> = None;
                for lease in &state.leases {
                    let mut clock = lock(&lease.clock);
                    match due(now, &clock, self.renew) {
                        Due::Nothing => {}
                        Due::Lost => {
                            clock.done = true;
                            lease.sender.set(Hold::Lost);
                            tracing::warn!(key = %self.key, "lease ended without a successful renewal: lost");
                        }
                        Due::Renew => {
                            clock.renewing = true;
                            renewals.push(Arc::clone(lease));
                        }
                        Due::WaitUntil(at) => wake = Some(wake.map_or(at, |w| w.min(at))),
                    }
                }
                state.leases.retain(|l| !l.clock().done);
                if state.leases.is_empty() {
                    let since = *idle_since.get_or_insert(now);
                    if now >= since + linger {
                        state.running = false;
                        state.planned_wake = None;
                        running.armed = false;
                        return;
                    }
                    wake = Some(since + linger);
                } else {
                    idle_since = None;
                }
                // With only leases whose renewal is in flight, their tasks will wake us.
                let wake = wake.unwrap_or(now + linger);
                state.planned_wake = Some(wake);
                wake
            };
            for lease in renewals {
                tokio::spawn(Arc::clone(&self).renew_one(lease));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// One renewal, in its own task so that a slow server never delays the keeper's other
    /// duties; reports back through the lease's clock and wakes the keeper.
    async fn renew_one(self: Arc<Self>, lease: Arc<Lease>) {
        let lease_end = lease.clock().lease_end;
        let sent = Instant::now();
        let deadline = self.timing.renew_deadline(sent, self.op_timeout, lease_end);
        let mut conn = self.conn.clone();
        let reply = tokio::time::timeout_at(
            deadline,
            RENEW.key(&self.key).arg(&lease.value).arg(lease_millis(self.timing.lease)).invoke_async::<i64>(&mut conn),
        )
        .await;
        let outcome = match reply {
            Ok(Ok(1)) => RenewalOutcome::Renewed,
            Ok(Ok(0)) => RenewalOutcome::Gone,
            Ok(Ok(other)) => {
                tracing::warn!(key = %self.key, reply = other, "lease renewal answered something unexpected");
                RenewalOutcome::Failed
            }
            Ok(Err(e)) => {
                tracing::warn!(key = %self.key, error = %e, "lease renewal failed");
                RenewalOutcome::Failed
            }
            Err(_) => {
                tracing::warn!(key = %self.key, timeout = ?(deadline - sent), "lease renewal timed out");
                RenewalOutcome::Failed
            }
        };
        let now = Instant::now();
        {
            let mut clock = lock(&lease.clock);
            if clock.done {
                // Released while the renewal was in flight.
                return;
            }
            clock.renewing = false;
            if outcome == RenewalOutcome::Renewed {
                clock.lease_end = self.timing.lease_end(sent);
            }
            let before = lease.sender.hold();
            let hold = hold_after_renewal(outcome, now, clock.lease_end);
            lease.sender.set(hold);
            match self.timing.next_wake(outcome, sent, now, clock.lease_end) {
                Some(at) if hold != Hold::Lost => clock.next_renewal = at,
                _ => clock.done = true,
            }
            if hold != before {
                match hold {
                    Hold::Held => tracing::info!(key = %self.key, "lease renewed again: held"),
                    Hold::MayBeLost => tracing::warn!(key = %self.key, "lease may be lost"),
                    Hold::Lost => tracing::warn!(key = %self.key, ?outcome, "lease lost"),
                }
            }
        }
        self.wake.notify_one();
    }
}

/// Clears `running` if the keeper task ends without saying so itself (it was cancelled).
struct RunningFlag<'a> {
    keeper: &'a Mutex<KeeperState>,
    armed: bool,
}

impl Drop for RunningFlag<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = lock(self.keeper);
            state.running = false;
            state.planned_wake = None;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The guard

/// A held lease. Renewed in the background (unless the watchdog is off); released by
/// [`LeaseGuard::release`] or, best-effort, on drop.
pub struct LeaseGuard<C: ConnectionLike + Clone + Send + Sync + 'static = ConnectionManager> {
    keeper: Arc<Keeper<C>>,
    lease: Arc<Lease>,
    signal: LossSignal,
    released: bool,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> fmt::Debug for LeaseGuard<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is left out: whoever knows it can release or renew the lease.
        f.debug_struct("LeaseGuard")
            .field("key", &self.keeper.key)
            .field("hold", &self.hold())
            .field("released", &self.released)
            .finish()
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> LeaseGuard<C> {
    /// A guard for `value`, set by a request sent at `sent`, under `keeper`'s care.
    fn start(keeper: &Arc<Keeper<C>>, value: String, sent: Instant) -> LeaseGuard<C> {
        let (sender, signal) = LossSignal::new();
        let clock = LeaseClock {
            lease_end: keeper.timing.lease_end(sent),
            next_renewal: sent + keeper.timing.renew_every,
            renewing: false,
            done: false,
        };
        let lease = Arc::new(Lease { value, sender, clock: Mutex::new(clock) });
        keeper.register(Arc::clone(&lease));
        LeaseGuard { keeper: Arc::clone(keeper), lease, signal, released: false }
    }

    /// The Redis key of the lease.
    pub fn key(&self) -> &str {
        &self.keeper.key
    }

    /// The random value that marks the lease as ours.
    pub fn value(&self) -> &str {
        &self.lease.value
    }

    /// A signal that turns `MayBeLost` or `Lost` when the lease may be or is lost; select on
    /// it to stop the critical section.
    pub fn loss(&self) -> LossSignal {
        self.signal.clone()
    }

    /// The hold now.
    pub fn hold(&self) -> Hold {
        self.signal.hold()
    }

    /// Whether the lease is held now (`Held`).
    pub fn is_held(&self) -> bool {
        self.signal.is_held()
    }

    /// When the lease ends by our clock unless renewed again (already drift-corrected).
    pub fn valid_until(&self) -> Instant {
        self.lease.clock().lease_end
    }

    /// Releases the lease: stops renewing it, marks the hold `Lost`, and deletes the key if it
    /// still holds our value. Returns whether it deleted it (`false`: the lease had expired or
    /// was released already). Idempotent; after an error it may be called again, and a guard
    /// dropped unreleased retries once in the background.
    ///
    /// # Cancellation safety
    /// Safe: if dropped mid-way the guard is still unreleased and its drop releases it.
    pub async fn release(&mut self) -> Result<bool, LeaseLockError> {
        self.stop();
        if self.released {
            return Ok(false);
        }
        let mut conn = self.keeper.conn.clone();
        let deleted = release_value(&mut conn, &self.keeper.key, &self.lease.value, self.keeper.op_timeout).await?;
        self.released = true;
        tracing::debug!(key = %self.keeper.key, deleted, "lease released");
        Ok(deleted)
    }

    /// Stops renewing and marks the hold lost: the holder is done with it. A renewal still in
    /// flight is harmless: if it lands after our delete it finds the value gone.
    fn stop(&mut self) {
        self.lease.finish();
        self.keeper.unregister(&self.lease);
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Drop for LeaseGuard<C> {
    fn drop(&mut self) {
        self.stop();
        if !self.released {
            self.released = true;
            spawn_release(
                self.keeper.conn.clone(),
                self.keeper.key.clone(),
                self.lease.value.clone(),
                self.keeper.op_timeout,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_after_renewal_table() {
        use RenewalOutcome::*;
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(100);
        let before = t0 + Duration::from_millis(50);
        let after = t0 + Duration::from_millis(150);
        let table: &[(RenewalOutcome, Instant, Hold)] = &[
            (Renewed, before, Hold::Held),
            // Proven continuous ownership even if the reply came late.
            (Renewed, after, Hold::Held),
            (Gone, before, Hold::Lost),
            (Gone, after, Hold::Lost),
            (Failed, before, Hold::MayBeLost),
            (Failed, end, Hold::Lost),
            (Failed, after, Hold::Lost),
        ];
        for (outcome, now, want) in table {
            assert_eq!(hold_after_renewal(*outcome, *now, end), *want, "{outcome:?} at {:?}", *now - t0);
        }
    }

    #[test]
    fn timing_from_lease() {
        let t = LeaseTiming::new(Duration::from_secs(30));
        assert_eq!(t.renew_every, Duration::from_secs(10));
        assert_eq!(t.renew_retry, Duration::from_secs(3));
        assert_eq!(t.drift, Duration::from_millis(302));
        let t0 = Instant::now();
        assert_eq!(t.lease_end(t0), t0 + Duration::from_millis(29_698));
        // Tiny leases keep a sane retry floor.
        let t = LeaseTiming::new(Duration::from_millis(30));
        assert_eq!(t.renew_retry, Duration::from_millis(5));
    }

    #[test]
    fn next_wake_table() {
        use RenewalOutcome::*;
        let t = LeaseTiming::new(Duration::from_millis(600));
        let ms = Duration::from_millis;
        let sent = Instant::now();
        let end = sent + ms(500);
        // (outcome, finished after, lease end, want)
        let table: &[(RenewalOutcome, Duration, Instant, Option<Instant>)] = &[
            // Next renewal a third of a lease after the last one was sent.
            (Renewed, ms(10), end, Some(sent + ms(200))),
            // A reply slower than the renewal interval: renew right away.
            (Renewed, ms(250), end, Some(sent + ms(250))),
            (Gone, ms(10), end, None),
            // After a failure retry soon (lease/10)...
            (Failed, ms(10), end, Some(sent + ms(70))),
            // ...but never past the lease end.
            (Failed, ms(480), end, Some(end)),
        ];
        for (outcome, after, end, want) in table {
            assert_eq!(t.next_wake(*outcome, sent, sent + *after, *end), *want, "{outcome:?} after {after:?}");
        }
    }

    #[test]
    fn renew_deadline_table() {
        let ms = Duration::from_millis;
        let sent = Instant::now();
        // (lease, op timeout, lease end after sent, want after sent)
        let table: &[(Duration, Duration, Duration, Duration)] = &[
            // A long lease: the request timeout rules.
            (ms(30_000), ms(2_000), ms(29_000), ms(2_000)),
            // A short lease: a third of it.
            (ms(600), ms(2_000), ms(580), ms(200)),
            // Close to the lease end: the lease end.
            (ms(600), ms(2_000), ms(50), ms(50)),
        ];
        for (lease, op_timeout, end, want) in table {
            let t = LeaseTiming::new(*lease);
            assert_eq!(t.renew_deadline(sent, *op_timeout, sent + *end), sent + *want, "lease {lease:?}");
        }
    }

    #[test]
    fn keeper_due_table() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let clock = LeaseClock { lease_end: t0 + ms(500), next_renewal: t0 + ms(200), renewing: false, done: false };
        let renewing = LeaseClock { renewing: true, ..clock };
        let done = LeaseClock { done: true, ..clock };
        // (clock, now after t0, watchdog on, want)
        let table: &[(LeaseClock, Duration, bool, Due)] = &[
            (clock, ms(100), true, Due::WaitUntil(t0 + ms(200))),
            (clock, ms(200), true, Due::Renew),
            (clock, ms(499), true, Due::Renew),
            (clock, ms(500), true, Due::Lost),
            // Without a watchdog only the lease end matters.
            (clock, ms(300), false, Due::WaitUntil(t0 + ms(500))),
            (clock, ms(500), false, Due::Lost),
            // A renewal in flight answers for itself (it is cut at the lease end).
            (renewing, ms(600), true, Due::Nothing),
            (done, ms(600), true, Due::Nothing),
            // A next renewal scheduled past the lease end never delays the loss.
            (LeaseClock { next_renewal: t0 + ms(900), ..clock }, ms(100), true, Due::WaitUntil(t0 + ms(500))),
        ];
        for (clock, after, renew, want) in table {
            assert_eq!(due(t0 + *after, clock, *renew), *want, "{clock:?} at {after:?}, renew {renew}");
        }
    }

    #[test]
    fn jitter_bounds() {
        let base = Duration::from_millis(100);
        assert_eq!(jittered(base, 0.0), Duration::from_millis(50));
        assert_eq!(jittered(base, 0.5), Duration::from_millis(100));
        assert!(jittered(base, 0.999_999) < Duration::from_millis(150));
        assert_eq!(jittered(base, 7.0), Duration::from_millis(150), "out-of-range input is clamped");
    }

    #[test]
    fn options_validation() {
        assert!(LeaseLockOptions::default().validate().is_ok());
        let table: &[(LeaseLockOptions, bool)] = &[
            (LeaseLockOptions { lease: Duration::from_millis(29), ..Default::default() }, false),
            (LeaseLockOptions { lease: MIN_LEASE, ..Default::default() }, true),
            (LeaseLockOptions { retry_interval: Duration::ZERO, ..Default::default() }, false),
            (LeaseLockOptions { op_timeout: Duration::ZERO, ..Default::default() }, false),
        ];
        for (opts, ok) in table {
            assert_eq!(opts.validate().is_ok(), *ok, "{opts:?}");
        }
    }

    fn keeper_running<C: ConnectionLike + Clone + Send + Sync + 'static>(lock: &RedisLeaseLock<C>) -> bool {
        super::lock(&lock.keeper.state).running
    }

    /// The keeper ends when no guard needs it and a later acquisition starts it again.
    #[tokio::test]
    async fn keeper_stops_when_idle_and_starts_again() {
        let ms = Duration::from_millis;
        let server = zedis_testkit::RedisServer::start().expect("start redis");
        let client = redis::Client::open(server.url()).expect("url");
        let conn = ConnectionManager::new(client).await.expect("connect");
        let opts = LeaseLockOptions { lease: ms(150), ..LeaseLockOptions::default() };
        let lock = RedisLeaseLock::new(conn.clone(), "idle", opts).expect("lock");
        eprintln!("phase: the first acquisition starts the keeper");
        let mut guard = lock.try_acquire().await.expect("acquire").expect("free");
        assert!(keeper_running(&lock));
        guard.release().await.expect("release");
        eprintln!("phase: idle for a renewal interval, it ends");
        let deadline = Instant::now() + Duration::from_secs(2);
        while keeper_running(&lock) {
            assert!(Instant::now() < deadline, "the idle keeper did not end");
            tokio::time::sleep(ms(10)).await;
        }
        eprintln!("phase: the next acquisition starts it again and it renews");
        let guard = lock.try_acquire().await.expect("acquire").expect("free");
        assert!(keeper_running(&lock));
        let until = Instant::now() + ms(450);
        while Instant::now() < until {
            assert!(guard.is_held(), "the lease was not renewed");
            tokio::time::sleep(ms(10)).await;
        }
        let mut check = conn.clone();
        let value: Option<String> = redis::cmd("GET").arg(guard.key()).query_async(&mut check).await.expect("GET");
        assert_eq!(value.as_deref(), Some(guard.value()));
    }

    #[test]
    fn values_are_random_128_bit_hex() {
        let a = random_value();
        let b = random_value();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn transient_errors() {
        let io = RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        let table: &[(LeaseLockError, bool)] = &[
            (LeaseLockError::Timeout { key: "k".into(), timeout: Duration::from_secs(1) }, true),
            (LeaseLockError::Redis { key: "k".into(), source: io }, true),
            (LeaseLockError::InvalidName(String::new()), false),
            (LeaseLockError::UnexpectedReply { key: "k".into(), reply: "x".into() }, false),
        ];
        for (e, want) in table {
            assert_eq!(e.is_transient(), *want, "{e}");
        }
    }
}
