//! Every choice the cache makes, as pure functions of what it has seen. The I/O layer
//! ([`Cache`](crate::Cache)) reads Redis, asks here what to do, and does it.
//!
//! The life of a `get_or_load`:
//! 1. Read the entry; [`freshness`] says whether it is missing, fresh or stale (logically
//!    expired but kept for a while), and [`recompute_early`] (XFetch) whether this caller
//!    should refresh a fresh entry ahead of time. [`plan_read`] turns that into serve or
//!    refresh.
//! 2. To refresh, the caller asks for the key's lease (`SET lock token NX PX`). With it, it
//!    loads and writes. Without it, someone else is loading: [`plan_contended`] says whether to
//!    serve what it has or wait.
//! 3. While waiting it polls the entry and the lease; [`plan_poll`] says when to stop: a fresh
//!    value arrived (serve it), the lease vanished (the loader failed or was invalidated: try
//!    to take over), or time is up (serve the stale copy, or load without a lease).
//!
//! Randomness enters only through a uniform number `u` drawn by the caller, so each decision
//! has a deterministic `*_at` form that the tests use with fixed or seeded values.

use std::time::Duration;

use rand::Rng;

use crate::envelope::Meta;

/// How an entry looks at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// No entry (or one that does not decode).
    Missing,
    /// Before its logical expiry.
    Fresh,
    /// Past its logical expiry, still kept in Redis as a stale copy.
    Stale,
}

/// What to do after reading an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadAction {
    /// Return it.
    Serve,
    /// Load a new value (with protection: only once the lease is ours).
    Refresh,
}

/// What to do when another caller holds the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContendedAction {
    /// Return the entry read (fresh: the other is recomputing early; stale and no waiting).
    ServeCurrent,
    /// Wait for the other's value (see [`plan_poll`]).
    Wait,
    /// Nothing to serve and no waiting: load, without writing.
    LoadWithoutLease,
}

/// What a waiting caller saw on one poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PollView {
    /// The entry as just read.
    pub freshness: Freshness,
    /// Someone holds the lease.
    pub lock_held: bool,
    /// The wait ([`CacheOptions::wait_for_loader`](crate::CacheOptions::wait_for_loader)) is
    /// over.
    pub timed_out: bool,
}

/// What a waiting caller does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollAction {
    /// A fresh value is there: return it.
    Serve,
    /// Poll again after the poll interval.
    KeepWaiting,
    /// The lease is free (the loader failed, was cancelled, or an invalidation revoked it):
    /// try to take it and load.
    TakeOver,
    /// Out of time, but there is a stale copy: return it.
    ServeStale,
    /// Out of time and nothing to serve: load without writing (the lease holder will).
    LoadWithoutLease,
}

/// Whether the entry described by `meta` is fresh at `now_ms`.
pub(crate) fn freshness(meta: Option<&Meta>, now_ms: u64) -> Freshness {
    match meta {
        None => Freshness::Missing,
        Some(meta) if now_ms < meta.expires_at_ms => Freshness::Fresh,
        Some(_) => Freshness::Stale,
    }
}

/// A TTL with jitter: `ttl * (1 - jitter * u)` for a fresh uniform `u`; see
/// [`jittered_ttl_at`].
pub(crate) fn jittered_ttl<R: Rng + ?Sized>(ttl: Duration, jitter: f64, rng: &mut R) -> Duration {
    jittered_ttl_at(ttl, jitter, rng.random::<f64>())
}

/// `ttl * (1 - jitter * u)`, at least 1 ms. Jitter only shortens: the caller's `ttl` is a
/// promise about staleness, and spreading expiries downward keeps it. `jitter` and `u` are
/// clamped to `[0, 1]`.
pub(crate) fn jittered_ttl_at(ttl: Duration, jitter: f64, u: f64) -> Duration {
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.0 };
    ttl.mul_f64(1.0 - jitter * u).max(Duration::from_millis(1))
}

/// XFetch (Vattani, Chierichetti, Lowenstein, VLDB 2015): recompute a fresh entry early when
/// `now - delta * beta * ln(u) >= expiry`, for a fresh uniform `u` in `(0, 1]`.
pub(crate) fn recompute_early<R: Rng + ?Sized>(meta: &Meta, now_ms: u64, beta: f64, rng: &mut R) -> bool {
    // `random` gives [0, 1); 1 - that is in (0, 1], so ln never sees 0.
    let u = 1.0 - rng.random::<f64>();
    recompute_early_at(now_ms, meta.expires_at_ms, meta.delta_ms, beta, u)
}

/// The XFetch test with a given `u`. `-ln(u)` is exponentially distributed, so the chance to
/// recompute at `gap` before expiry is `exp(-gap / (delta * beta))`: negligible far from
/// expiry, rising steeply near it, and earlier for values that take longer to compute. With
/// many callers one of them almost surely refreshes before expiry, and with few the chance
/// that several do at once is small (the lease makes it one anyway).
pub(crate) fn recompute_early_at(now_ms: u64, expires_at_ms: u64, delta_ms: u64, beta: f64, u: f64) -> bool {
    if now_ms >= expires_at_ms {
        return true;
    }
    // Written to be false for NaN as well: a nonsense beta or u never triggers a recompute.
    let valid = beta.is_finite() && beta > 0.0 && u > 0.0 && u <= 1.0;
    if !valid {
        return false;
    }
    let head_start = delta_ms as f64 * beta * -u.ln();
    now_ms as f64 + head_start >= expires_at_ms as f64
}

/// After reading: serve a fresh entry unless XFetch picked this caller; refresh otherwise.
pub(crate) fn plan_read(freshness: Freshness, early: bool) -> ReadAction {
    match freshness {
        Freshness::Fresh if !early => ReadAction::Serve,
        _ => ReadAction::Refresh,
    }
}

/// Another caller holds the lease: serve a fresh entry (that caller is recomputing early),
/// otherwise wait for its value if waiting is allowed; with no wait, a stale copy is served
/// and without one the caller loads.
pub(crate) fn plan_contended(freshness: Freshness, can_wait: bool) -> ContendedAction {
    match (freshness, can_wait) {
        (Freshness::Fresh, _) => ContendedAction::ServeCurrent,
        (_, true) => ContendedAction::Wait,
        (Freshness::Stale, false) => ContendedAction::ServeCurrent,
        (Freshness::Missing, false) => ContendedAction::LoadWithoutLease,
    }
}

/// One step of waiting for another caller's load.
pub(crate) fn plan_poll(view: PollView) -> PollAction {
    match view {
        PollView { freshness: Freshness::Fresh, .. } => PollAction::Serve,
        PollView { lock_held: false, .. } => PollAction::TakeOver,
        PollView { timed_out: false, .. } => PollAction::KeepWaiting,
        PollView { freshness: Freshness::Stale, .. } => PollAction::ServeStale,
        PollView { freshness: Freshness::Missing, .. } => PollAction::LoadWithoutLease,
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn meta(expires_at_ms: u64, delta_ms: u64) -> Meta {
        Meta { negative: false, computed_at_ms: 0, delta_ms, expires_at_ms }
    }

    #[test]
    fn freshness_table() {
        let m = meta(1_000, 10);
        let cases = [
            (None, 5, Freshness::Missing),
            (Some(&m), 0, Freshness::Fresh),
            (Some(&m), 999, Freshness::Fresh),
            (Some(&m), 1_000, Freshness::Stale),
            (Some(&m), 5_000, Freshness::Stale),
        ];
        for (meta, now, want) in cases {
            assert_eq!(freshness(meta, now), want, "meta {meta:?} at {now}");
        }
    }

    #[test]
    fn jitter_table() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let cases = [
            // (ttl, jitter, u, want)
            (s(100), 0.0, 0.7, s(100)),
            (s(100), 0.1, 0.0, s(100)),
            (s(100), 0.1, 0.5, s(95)),
            (s(100), 0.1, 1.0, s(90)),
            (s(100), 1.0, 1.0, ms(1)),
            (s(100), 2.0, 0.5, s(50)),         // jitter clamped to 1
            (s(100), 0.1, -3.0, s(100)),       // u clamped to 0
            (s(100), f64::NAN, 0.5, s(100)),   // nonsense jitter: none
            (Duration::ZERO, 0.1, 0.5, ms(1)), // never zero: SET PX 0 is an error
        ];
        for (ttl, jitter, u, want) in cases {
            assert_eq!(jittered_ttl_at(ttl, jitter, u), want, "ttl {ttl:?} jitter {jitter} u {u}");
        }
    }

    #[test]
    fn jitter_spreads_within_bounds_with_a_seeded_rng() {
        let mut rng = StdRng::seed_from_u64(7);
        let ttl = Duration::from_secs(60);
        let ttls: Vec<Duration> = (0..1_000).map(|_| jittered_ttl(ttl, 0.2, &mut rng)).collect();
        let min = *ttls.iter().min().expect("non-empty");
        let max = *ttls.iter().max().expect("non-empty");
        assert!(min >= Duration::from_secs(48), "min {min:?}");
        assert!(max <= ttl, "max {max:?}");
        // Uniform over 12 s: a thousand draws cover nearly all of it.
        assert!(max - min > Duration::from_secs(11), "spread {:?}", max - min);
        // And every second of the range gets some.
        let mut buckets = [0u32; 12];
        for t in &ttls {
            let i = ((t.as_secs_f64() - 48.0) as usize).min(11);
            buckets[i] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 40), "buckets {buckets:?}");
    }

    #[test]
    fn xfetch_table() {
        let cases = [
            // (now, expires, delta, beta, u, want)
            (1_000, 1_000, 10, 1.0, 0.5, true),    // expired: always
            (2_000, 1_000, 0, 0.0, 1.0, true),     // expired even with beta 0
            (0, 1_000, 10, 1.0, 1.0, false),       // u = 1: ln 1 = 0, no head start
            (900, 1_000, 100, 1.0, 0.5, false),    // head start 69 ms < 100 ms
            (950, 1_000, 100, 1.0, 0.5, true),     // 69 ms >= 50 ms
            (900, 1_000, 100, 2.0, 0.5, true),     // beta 2: 139 ms
            (900, 1_000, 100, 0.0, 0.0001, false), // beta 0: off
            (999, 1_000, 0, 1.0, 0.0001, false),   // instant loads get no head start
            (0, 1_000, 100, 1.0, 0.000_01, true),  // u tiny: 1151 ms head start
            (900, 1_000, 100, 1.0, 0.0, false),    // u out of range: never early
            (900, 1_000, 100, f64::NAN, 0.5, false),
        ];
        for (now, expires, delta, beta, u, want) in cases {
            assert_eq!(
                recompute_early_at(now, expires, delta, beta, u),
                want,
                "now {now} expires {expires} delta {delta} beta {beta} u {u}"
            );
        }
    }

    #[test]
    fn xfetch_probability_rises_towards_expiry() {
        // P(early at gap g) = exp(-g / (delta * beta)); check it empirically with a seeded RNG.
        let mut rng = StdRng::seed_from_u64(42);
        let m = meta(10_000, 100);
        let rate = |now: u64, rng: &mut StdRng| {
            (0..20_000).filter(|_| recompute_early(&m, now, 1.0, rng)).count() as f64 / 20_000.0
        };
        let far = rate(9_500, &mut rng); // exp(-5) = 0.0067
        let mid = rate(9_900, &mut rng); // exp(-1) = 0.37
        let near = rate(9_990, &mut rng); // exp(-0.1) = 0.90
        assert!((far - 0.0067).abs() < 0.004, "far {far}");
        assert!((mid - 0.368).abs() < 0.02, "mid {mid}");
        assert!((near - 0.905).abs() < 0.02, "near {near}");
        assert_eq!(rate(5_000, &mut rng), 0.0, "50 deltas away: never (exp(-50))");
    }

    #[test]
    fn read_table() {
        use Freshness::*;
        let cases = [
            (Fresh, false, ReadAction::Serve),
            (Fresh, true, ReadAction::Refresh),
            (Stale, false, ReadAction::Refresh),
            (Stale, true, ReadAction::Refresh),
            (Missing, false, ReadAction::Refresh),
        ];
        for (f, early, want) in cases {
            assert_eq!(plan_read(f, early), want, "{f:?} early={early}");
        }
    }

    #[test]
    fn contended_table() {
        use ContendedAction::*;
        use Freshness::*;
        let cases = [
            (Fresh, true, ServeCurrent),
            (Fresh, false, ServeCurrent),
            (Stale, true, Wait),
            (Stale, false, ServeCurrent),
            (Missing, true, Wait),
            (Missing, false, LoadWithoutLease),
        ];
        for (f, can_wait, want) in cases {
            assert_eq!(plan_contended(f, can_wait), want, "{f:?} can_wait={can_wait}");
        }
    }

    #[test]
    fn poll_table() {
        use Freshness::*;
        use PollAction::*;
        let cases = [
            // (freshness, lock_held, timed_out, want)
            (Fresh, true, false, Serve),
            (Fresh, false, true, Serve),
            (Missing, true, false, KeepWaiting),
            (Stale, true, false, KeepWaiting),
            (Missing, false, false, TakeOver),
            (Stale, false, false, TakeOver),
            (Missing, false, true, TakeOver),
            (Stale, false, true, TakeOver),
            (Stale, true, true, ServeStale),
            (Missing, true, true, LoadWithoutLease),
        ];
        for (freshness, lock_held, timed_out, want) in cases {
            let view = PollView { freshness, lock_held, timed_out };
            assert_eq!(plan_poll(view), want, "{view:?}");
        }
    }
}
