//! Choosing one instance of a service for a request: pure, no I/O, time passed in.
//!
//! The candidates are the *enabled* instances, minus those put aside by
//! [`Picker::note_error`] until their backoff ends. When too few are left — fewer than
//! `protect_threshold` of the enabled ones, or none at all — every enabled instance is a
//! candidate again (Nacos's "protect threshold"): better to spread load over instances that
//! erred a moment ago than to pile it all on the last healthy one, or to fail with none.
//! Disabled instances are never chosen.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::instance::ServiceInstance;
use super::ring::HashRing;

/// How a [`Picker`] chooses among the candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Each candidate in turn (ordered by id).
    #[default]
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// At random, in proportion to `weight` (instances of weight 0 only when all are 0).
    Weighted,
    /// The same instance for as long as it is a candidate; a new one (weighted) after it
    /// vanishes, is disabled or errs.
    Sticky,
    /// By the request's key on a [`HashRing`]: a key keeps its instance while that instance
    /// lives; weighted when no key is given.
    ConsistentHash,
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Strategy, String> {
        Ok(match s {
            "round-robin" => Strategy::RoundRobin,
            "random" => Strategy::Random,
            "weighted" => Strategy::Weighted,
            "sticky" => Strategy::Sticky,
            "consistent-hash" => Strategy::ConsistentHash,
            _ => {
                return Err(format!(
                    "unknown strategy {s:?} (round-robin, random, weighted, sticky or consistent-hash)"
                ))
            }
        })
    }
}

/// How a [`Picker`] behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct PickerOptions {
    pub strategy: Strategy,
    /// How long [`Picker::note_error`] keeps an instance aside.
    pub error_backoff: Duration,
    /// In `0.0..=1.0`: when the share of enabled instances not put aside falls below this,
    /// every enabled instance is a candidate again. 0 (the default) only does so when none
    /// is left.
    pub protect_threshold: f64,
    /// Points per instance on the consistent-hash ring.
    pub virtual_nodes: u32,
    /// Seed of the random choices (tests, reproducible simulations); `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for PickerOptions {
    fn default() -> PickerOptions {
        PickerOptions {
            strategy: Strategy::RoundRobin,
            error_backoff: Duration::from_secs(10),
            protect_threshold: 0.0,
            virtual_nodes: 160,
            seed: None,
        }
    }
}

impl PickerOptions {
    pub fn with_strategy(strategy: Strategy) -> PickerOptions {
        PickerOptions { strategy, ..PickerOptions::default() }
    }
}

/// Chooses instances. Keep one per service and client (it remembers the round-robin
/// position, the sticky choice and the instances put aside); wrap it in a `Mutex` to share.
#[derive(Debug)]
pub struct Picker {
    options: PickerOptions,
    rng: StdRng,
    next: usize,
    sticky: Option<String>,
    /// Instance id → until when it is put aside.
    aside: HashMap<String, Instant>,
    /// The ring of the last candidate set, rebuilt only when that set changes.
    ring: Option<HashRing>,
}

impl Picker {
    pub fn new(options: PickerOptions) -> Picker {
        let rng = match options.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Picker { options, rng, next: 0, sticky: None, aside: HashMap::new(), ring: None }
    }

    pub fn options(&self) -> &PickerOptions {
        &self.options
    }

    /// Chooses an instance for a request (`key` for [`Strategy::ConsistentHash`]); `None` when
    /// no instance is enabled.
    pub fn pick<'a>(&mut self, instances: &'a [ServiceInstance], key: Option<&[u8]>) -> Option<&'a ServiceInstance> {
        self.pick_at(instances, key, Instant::now())
    }

    /// [`Picker::pick`] at a given time.
    pub fn pick_at<'a>(
        &mut self,
        instances: &'a [ServiceInstance],
        key: Option<&[u8]>,
        now: Instant,
    ) -> Option<&'a ServiceInstance> {
        let candidates = self.candidates_at(instances, now);
        if candidates.is_empty() {
            return None;
        }
        let index = match self.options.strategy {
            Strategy::RoundRobin => {
                let i = self.next % candidates.len();
                self.next = self.next.wrapping_add(1);
                i
            }
            Strategy::Random => self.rng.random_range(0..candidates.len()),
            Strategy::Weighted => self.weighted(&candidates),
            Strategy::Sticky => {
                let kept = self.sticky.as_deref().and_then(|id| candidates.iter().position(|c| c.id == id));
                match kept {
                    Some(i) => i,
                    None => {
                        let i = self.weighted(&candidates);
                        self.sticky = Some(candidates[i].id.clone());
                        i
                    }
                }
            }
            Strategy::ConsistentHash => match key {
                Some(key) => self.ring_for(&candidates).locate(key).unwrap_or(0),
                None => self.weighted(&candidates),
            },
        };
        Some(candidates[index])
    }

    /// The instances a pick chooses among now (ordered by id): see the module docs.
    pub fn candidates_at<'a>(&mut self, instances: &'a [ServiceInstance], now: Instant) -> Vec<&'a ServiceInstance> {
        // Forget backoffs that ended, so the map stays as small as the set of erring instances.
        self.aside.retain(|_, until| *until > now);
        let mut enabled: Vec<&ServiceInstance> = instances.iter().filter(|i| i.enabled).collect();
        enabled.sort_by(|a, b| a.id.cmp(&b.id));
        let healthy: Vec<&ServiceInstance> =
            enabled.iter().copied().filter(|i| !self.aside.contains_key(&i.id)).collect();
        let too_few = (healthy.len() as f64) < self.options.protect_threshold * enabled.len() as f64;
        if healthy.is_empty() || too_few {
            enabled
        } else {
            healthy
        }
    }

    /// Puts an instance aside for `error_backoff` (a request to it failed).
    pub fn note_error(&mut self, id: &str) {
        self.note_error_at(id, Instant::now());
    }

    /// [`Picker::note_error`] at a given time.
    pub fn note_error_at(&mut self, id: &str, now: Instant) {
        self.aside.insert(id.to_string(), now + self.options.error_backoff);
        if self.sticky.as_deref() == Some(id) {
            self.sticky = None;
        }
    }

    /// Takes an instance back at once (a request to it succeeded).
    pub fn note_success(&mut self, id: &str) {
        self.aside.remove(id);
    }

    /// Whether `id` is put aside at `now`.
    pub fn is_aside_at(&self, id: &str, now: Instant) -> bool {
        self.aside.get(id).is_some_and(|until| *until > now)
    }

    fn weighted(&mut self, candidates: &[&ServiceInstance]) -> usize {
        let total: u64 = candidates.iter().map(|c| u64::from(c.weight)).sum();
        if total == 0 {
            return self.rng.random_range(0..candidates.len());
        }
        let mut r = self.rng.random_range(0..total);
        for (i, c) in candidates.iter().enumerate() {
            let w = u64::from(c.weight);
            if r < w {
                return i;
            }
            r -= w;
        }
        candidates.len() - 1
    }

    fn ring_for(&mut self, candidates: &[&ServiceInstance]) -> &HashRing {
        let same = self.ring.as_ref().is_some_and(|ring| {
            ring.members().len() == candidates.len() && ring.members().iter().zip(candidates).all(|(m, c)| *m == c.id)
        });
        if !same {
            let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
            self.ring = Some(HashRing::new(&ids, self.options.virtual_nodes));
        }
        self.ring.get_or_insert_with(|| HashRing::new::<&str>(&[], 1))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn instances(weights: &[u32]) -> Vec<ServiceInstance> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| ServiceInstance::new("api", format!("i-{i}"), "127.0.0.1", 8000 + i as u16).with_weight(*w))
            .collect()
    }

    fn picker(strategy: Strategy) -> Picker {
        Picker::new(PickerOptions { strategy, seed: Some(7), ..PickerOptions::default() })
    }

    fn counts(p: &mut Picker, all: &[ServiceInstance], n: usize, now: Instant) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for i in 0..n {
            let key = format!("k{i}");
            let got = p.pick_at(all, Some(key.as_bytes()), now).expect("a candidate");
            *out.entry(got.id.clone()).or_insert(0) += 1;
        }
        out
    }

    #[test]
    fn round_robin_is_even_and_in_order() {
        let all = instances(&[1, 1, 1]);
        let mut p = picker(Strategy::RoundRobin);
        let now = Instant::now();
        let order: Vec<String> = (0..6).map(|_| p.pick_at(&all, None, now).unwrap().id.clone()).collect();
        assert_eq!(order, ["i-0", "i-1", "i-2", "i-0", "i-1", "i-2"]);
        let c = counts(&mut p, &all, 300, now);
        assert!(c.values().all(|n| *n == 100), "{c:?}");
    }

    #[test]
    fn random_is_roughly_uniform() {
        let all = instances(&[1, 1, 1, 1]);
        let c = counts(&mut picker(Strategy::Random), &all, 20_000, Instant::now());
        for n in c.values() {
            assert!((*n as f64 / 20_000.0 - 0.25).abs() < 0.02, "{c:?}");
        }
    }

    #[test]
    fn weighted_follows_weights() {
        let table: &[&[u32]] = &[&[100, 200, 700], &[1, 1], &[5, 0, 5], &[100, 300]];
        for weights in table {
            let all = instances(weights);
            let total: u32 = weights.iter().sum();
            let n = 40_000;
            let c = counts(&mut picker(Strategy::Weighted), &all, n, Instant::now());
            for (i, w) in weights.iter().enumerate() {
                let got = *c.get(&format!("i-{i}")).unwrap_or(&0) as f64 / n as f64;
                let want = f64::from(*w) / f64::from(total);
                assert!((got - want).abs() < 0.015, "weights {weights:?}: i-{i} got {got:.3}, want {want:.3}");
            }
        }
    }

    #[test]
    fn all_zero_weights_are_uniform() {
        let all = instances(&[0, 0]);
        let c = counts(&mut picker(Strategy::Weighted), &all, 10_000, Instant::now());
        assert!(c.values().all(|n| (*n as f64 / 10_000.0 - 0.5).abs() < 0.03), "{c:?}");
    }

    #[test]
    fn disabled_instances_are_never_chosen() {
        let mut all = instances(&[1, 1, 1]);
        all[1].enabled = false;
        for strategy in
            [Strategy::RoundRobin, Strategy::Random, Strategy::Weighted, Strategy::Sticky, Strategy::ConsistentHash]
        {
            let c = counts(&mut picker(strategy), &all, 1000, Instant::now());
            assert!(!c.contains_key("i-1"), "{strategy:?}: {c:?}");
        }
        for i in &mut all {
            i.enabled = false;
        }
        assert_eq!(picker(Strategy::RoundRobin).pick(&all, None), None);
        assert_eq!(picker(Strategy::RoundRobin).pick(&[], None), None);
    }

    #[test]
    fn sticky_keeps_its_instance_until_it_goes() {
        let mut all = instances(&[1, 1, 1]);
        let mut p = picker(Strategy::Sticky);
        let now = Instant::now();
        let first = p.pick_at(&all, None, now).unwrap().id.clone();
        assert!((0..100).all(|_| p.pick_at(&all, None, now).unwrap().id == first));
        // An error moves it, and it sticks to the new one.
        p.note_error_at(&first, now);
        let second = p.pick_at(&all, None, now).unwrap().id.clone();
        assert_ne!(second, first);
        assert!((0..100).all(|_| p.pick_at(&all, None, now).unwrap().id == second));
        // The instance vanishing moves it too.
        all.retain(|i| i.id != second);
        let third = p.pick_at(&all, None, now).unwrap().id.clone();
        assert_ne!(third, second);
    }

    #[test]
    fn consistent_hash_keeps_keys_when_another_instance_goes() {
        let all = instances(&[1, 1, 1, 1, 1]);
        let mut p = picker(Strategy::ConsistentHash);
        let now = Instant::now();
        let keys: Vec<String> = (0..5000).map(|i| format!("session:{i}")).collect();
        let before: Vec<String> =
            keys.iter().map(|k| p.pick_at(&all, Some(k.as_bytes()), now).unwrap().id.clone()).collect();
        // Same key, same instance.
        for (k, was) in keys.iter().zip(&before).take(100) {
            assert_eq!(&p.pick_at(&all, Some(k.as_bytes()), now).unwrap().id, was);
        }
        let rest: Vec<ServiceInstance> = all.iter().filter(|i| i.id != "i-2").cloned().collect();
        let mut moved = 0;
        for (k, was) in keys.iter().zip(&before) {
            let now_on = &p.pick_at(&rest, Some(k.as_bytes()), now).unwrap().id;
            if was == "i-2" {
                moved += 1;
            } else {
                assert_eq!(now_on, was, "key {k} moved though its instance stayed");
            }
        }
        let share = moved as f64 / keys.len() as f64;
        assert!((share - 0.2).abs() < 0.07, "i-2 owned {share:.3} of the keys");
        // A key's instance put aside: the key moves while it is aside, and comes back after.
        let k = keys[0].as_bytes();
        let owner = before[0].clone();
        p.note_error_at(&owner, now);
        assert_ne!(p.pick_at(&all, Some(k), now).unwrap().id, owner);
        let later = now + p.options().error_backoff + Duration::from_millis(1);
        assert_eq!(p.pick_at(&all, Some(k), later).unwrap().id, owner);
    }

    #[test]
    fn note_error_puts_aside_for_the_backoff() {
        let all = instances(&[1, 1, 1]);
        let mut p = picker(Strategy::RoundRobin);
        let now = Instant::now();
        p.note_error_at("i-1", now);
        assert!(p.is_aside_at("i-1", now));
        let during = counts(&mut p, &all, 90, now + Duration::from_secs(5));
        assert!(!during.contains_key("i-1"), "{during:?}");
        let after = now + Duration::from_secs(10);
        assert!(!p.is_aside_at("i-1", after));
        let c = counts(&mut p, &all, 90, after);
        assert_eq!(c.get("i-1"), Some(&30), "{c:?}");
        // note_success takes it back at once.
        p.note_error_at("i-0", after);
        p.note_success("i-0");
        assert!(!p.is_aside_at("i-0", after));
    }

    #[test]
    fn protect_threshold() {
        // (threshold, instances, noted as erring, ids that must be candidates)
        type Row = (f64, usize, &'static [&'static str], &'static [&'static str]);
        let table: &[Row] = &[
            (0.0, 4, &["i-0"], &["i-1", "i-2", "i-3"]),
            (0.0, 4, &["i-0", "i-1", "i-2", "i-3"], &["i-0", "i-1", "i-2", "i-3"]),
            (0.5, 4, &["i-0"], &["i-1", "i-2", "i-3"]),
            (0.5, 4, &["i-0", "i-1"], &["i-2", "i-3"]),
            (0.5, 4, &["i-0", "i-1", "i-2"], &["i-0", "i-1", "i-2", "i-3"]),
            (0.8, 5, &["i-0"], &["i-1", "i-2", "i-3", "i-4"]),
            (0.8, 5, &["i-0", "i-1"], &["i-0", "i-1", "i-2", "i-3", "i-4"]),
            (1.0, 3, &["i-2"], &["i-0", "i-1", "i-2"]),
        ];
        for (threshold, n, erring, want) in table {
            let all = instances(&vec![1; *n]);
            let mut p =
                Picker::new(PickerOptions { protect_threshold: *threshold, seed: Some(1), ..Default::default() });
            let now = Instant::now();
            for id in *erring {
                p.note_error_at(id, now);
            }
            let got: Vec<&str> = p.candidates_at(&all, now).iter().map(|i| i.id.as_str()).collect();
            assert_eq!(&got, want, "threshold {threshold}, erring {erring:?}");
        }
    }

    #[test]
    fn strategy_names() {
        for (name, want) in [
            ("round-robin", Strategy::RoundRobin),
            ("random", Strategy::Random),
            ("weighted", Strategy::Weighted),
            ("sticky", Strategy::Sticky),
            ("consistent-hash", Strategy::ConsistentHash),
        ] {
            assert_eq!(name.parse::<Strategy>(), Ok(want));
        }
        assert!("fastest".parse::<Strategy>().is_err());
    }
}
