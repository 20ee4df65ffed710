//! Discovery change → cache updated: `caches` [`ServiceCache`]s (each with its own session)
//! follow one service while another session registers and deregisters instances in turn;
//! each change is timed from just before the call until every cache's `changes()` receiver
//! shows the new set of instances.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zedis_coord::ZkOptions;
use zedis_recipes::discovery::{Discovery, DiscoveryOptions, Registration, ServiceCache, ServiceInstance, ServiceView};

use crate::zk_side::SESSION_TIMEOUT;

/// Longest a cache may take to see one change, or to be ready, before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(10);

/// Changes made, and waited for, before the timed ones (the JVM's JIT, the connections).
/// Even, so the service is empty again when the timed changes begin.
pub const WARMUP_CHANGES: usize = 50;

/// How long to wait for the sessions to close at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The times of one run: register → every cache shows it, deregister → every cache shows it.
#[derive(Clone, Debug, Default)]
pub struct Propagation {
    pub register: Vec<Duration>,
    pub deregister: Vec<Duration>,
}

/// `changes` changes (alternately the registration of a new instance and its deregistration)
/// of the service `service`, seen by `caches` caches, after [`WARMUP_CHANGES`] untimed ones.
pub async fn propagation(hosts: &str, service: &str, caches: usize, changes: usize) -> Result<Propagation> {
    let mut zk = ZkOptions::new(hosts);
    zk.session_timeout = SESSION_TIMEOUT;
    let connect = || Discovery::connect(zk.clone(), DiscoveryOptions::default());
    let registrar = connect().await.context("connect the registering session")?;
    let mut followers = Vec::with_capacity(caches);
    for _ in 0..caches {
        let discovery = connect().await.context("connect a cache's session")?;
        let cache = discovery.cache(service)?;
        followers.push((discovery, cache));
    }
    for (_, cache) in &followers {
        tokio::time::timeout(STUCK, cache.ready()).await.context("a cache never read the service")?;
        ensure!(cache.instances().is_empty(), "service {service} has instances before the run");
    }

    let mut out = Propagation::default();
    let mut registered: Option<Registration> = None;
    for k in 0..WARMUP_CHANGES + changes {
        let id = format!("bench-{k}");
        let expected: Vec<String> = if registered.is_none() { vec![id.clone()] } else { Vec::new() };
        let waiters: Vec<_> = followers.iter().map(|(_, cache)| seen(cache, expected.clone())).collect();
        let start = Instant::now();
        let samples = match registered.take() {
            None => {
                let instance = ServiceInstance::new(service, id, "127.0.0.1", 7000);
                registered = Some(registrar.register(instance).await.context("register")?);
                &mut out.register
            }
            Some(registration) => {
                registration.deregister().await.context("deregister")?;
                &mut out.deregister
            }
        };
        let mut last = start;
        for waiter in waiters {
            let at = tokio::time::timeout_at(start + STUCK, waiter)
                .await
                .map_err(|_| anyhow!("a cache did not see change {} within {STUCK:?}", k + 1))?
                .map_err(|e| anyhow!("waiter task failed: {e}"))?
                .context("a cache stopped")?;
            last = last.max(at);
        }
        if k >= WARMUP_CHANGES {
            samples.push(last - start);
        }
    }

    if let Some(registration) = registered {
        registration.deregister().await.context("deregister the last instance")?;
    }
    for (discovery, cache) in followers {
        drop(cache);
        discovery.close(CLOSE_TIMEOUT).await;
    }
    registrar.close(CLOSE_TIMEOUT).await;
    Ok(out)
}

/// A task that resolves with the instant `cache` shows exactly the instances `expected` (ids).
fn seen(cache: &ServiceCache, expected: Vec<String>) -> JoinHandle<Result<Instant>> {
    let mut changes = cache.changes();
    tokio::spawn(async move {
        let matches = |view: &ServiceView| view.instances.iter().map(|i| &i.id).eq(expected.iter());
        changes.wait_for(matches).await.map(|_| Instant::now()).context("the cache was dropped")
    })
}
