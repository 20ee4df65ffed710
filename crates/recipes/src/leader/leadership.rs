//! [`Leadership`]: what a leader holds while it leads.

use std::sync::Arc;
use std::time::SystemTime;

use crate::loss::{Hold, LossSignal};

/// One term of leadership: the epoch (fencing token) and the loss signal. Cheap to clone;
/// every clone sees the same signal.
///
/// Act as the leader only while [`Leadership::is_held`]: the signal goes
/// [`Hold::MayBeLost`] when the connection to ZooKeeper stays suspended longer than the
/// grace (stop acting; with [`super::LeaderLatch`] it may come back to `Held`, same epoch,
/// once a reconnect confirms the node still leads) and [`Hold::Lost`] when the term is over
/// (resigned, session expired, node deleted).
#[derive(Clone, Debug)]
pub struct Leadership {
    inner: Arc<Term>,
    loss: LossSignal,
}

#[derive(Debug)]
struct Term {
    election: String,
    id: String,
    epoch: u64,
    node: String,
    since: SystemTime,
}

impl Leadership {
    pub(crate) fn new(
        election: &str,
        id: &str,
        epoch: u64,
        node: &str,
        since: SystemTime,
        loss: LossSignal,
    ) -> Leadership {
        let term = Term { election: election.to_string(), id: id.to_string(), epoch, node: node.to_string(), since };
        Leadership { inner: Arc::new(term), loss }
    }

    /// The fencing token of this term: the czxid of our candidate node. Every later leader of
    /// this election has a greater one (across sessions, ZooKeeper restarts and re-creation
    /// of the election directory). Pass it to the resources the leader writes and have them
    /// refuse lower ones.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// The election's name.
    pub fn election(&self) -> &str {
        &self.inner.election
    }

    /// Our participant id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Our candidate node's name.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// When this term began (our clock).
    pub fn since(&self) -> SystemTime {
        self.inner.since
    }

    /// The loss signal of this term; select on [`LossSignal::may_be_lost`] to stop leading.
    pub fn loss(&self) -> LossSignal {
        self.loss.clone()
    }

    /// The hold now.
    pub fn hold(&self) -> Hold {
        self.loss.hold()
    }

    /// Whether we may act as the leader right now.
    pub fn is_held(&self) -> bool {
        self.loss.is_held()
    }
}
