//! Thread-per-core serving: each worker thread runs its own single-threaded tokio runtime,
//! and a client's session, the backend connections it uses and their reader/writer tasks all
//! live on the same thread. A request then moves between tasks without crossing threads (no
//! work-stealing queues, no cross-thread wake-ups), which is most of a proxy's CPU per request.

use std::cell::Cell;
use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the worker thread we are on (None outside the workers).
pub fn current() -> Option<usize> {
    WORKER.with(|w| w.get())
}

/// A set of worker threads; dropping it stops them (their tasks are dropped).
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers (at least one).
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let n = n.max(1);
        let mut workers = Workers { handles: Vec::new(), stops: Vec::new(), threads: Vec::new() };
        for i in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop_tx);
            let thread = std::thread::Builder::new().name(format!("zedis-worker-{i}")).spawn(move || {
                WORKER.with(|w| w.set(Some(i)));
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
            })?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs `future` on worker `i % len`.
    pub fn spawn<F>(&self, i: usize, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handles[i % self.handles.len()].spawn(future);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        // The threads end as soon as their runtimes drop their tasks; not joined here, so a
        // drop on an async thread never blocks it.
        self.threads.clear();
    }
}

/// The number of worker threads to use by default: half the CPUs the process may run on, at
/// least one. The kernel's network stack does much of a proxy's work on the other half (and
/// on a shared host, Redis and the clients need CPUs too); more workers than free CPUs only
/// add context switches.
pub fn default_count() -> usize {
    (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_their_worker() {
        let workers = Workers::start(2).expect("workers start");
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..4 {
            let tx = tx.clone();
            workers.spawn(i, async move {
                let _ = tx.send((i, current()));
            });
        }
        let mut seen: Vec<(usize, Option<usize>)> =
            (0..4).map(|_| rx.recv_timeout(std::time::Duration::from_secs(5)).expect("task ran")).collect();
        seen.sort();
        assert_eq!(seen, vec![(0, Some(0)), (1, Some(1)), (2, Some(0)), (3, Some(1))]);
        assert_eq!(current(), None);
    }
}
