//! [`LeaderLatch`]: stand in an election and ask, at any time, whether we lead.

use zedis_coord::Zk;

use super::campaign::{Campaign, Phase};
use super::error::{ElectionError, EndReason};
use super::leadership::Leadership;
use super::options::ElectionOptions;

/// A participant in an election, latch style: it joins the line at [`LeaderLatch::start`],
/// leads when its turn comes, and stays a candidate until [`LeaderLatch::resign`], drop, or
/// the end of its session.
///
/// ```no_run
/// # async fn demo(zk: zedis_coord::Zk) -> Result<(), zedis_recipes::leader::ElectionError> {
/// use zedis_recipes::leader::{ElectionOptions, LeaderLatch};
/// let latch = LeaderLatch::start(&zk, "reports", ElectionOptions::with_id("worker-1")).await?;
/// let leadership = latch.await_leadership().await?;
/// let mut loss = leadership.loss();
/// tokio::select! {
///     _ = loss.may_be_lost() => { /* stop acting as the leader now */ }
///     _ = async { /* lead, passing leadership.epoch() to what you write */ } => {}
/// }
/// latch.resign().await?;
/// # Ok(()) }
/// ```
///
/// Leadership and the connection: while the connection to ZooKeeper is suspended the leader
/// keeps leading for the grace ([`ElectionOptions::suspend_grace`]); past it the loss signal
/// goes `MayBeLost` and [`LeaderLatch::is_leader`] is false. If the connection comes back
/// within the session, a read confirms the node still leads and the same term (same epoch)
/// resumes. When the session expires, the candidacy and the leadership end for good
/// (`Lost`); call [`LeaderLatch::rejoin`] with a new session to stand again.
///
/// Dropping the latch withdraws the candidacy in the background (the loss signal goes `Lost`
/// first, then the node is deleted).
#[derive(Debug)]
pub struct LeaderLatch {
    election: String,
    options: ElectionOptions,
    campaign: Campaign,
}

impl LeaderLatch {
    /// Joins the election `election` (the node exists when this returns).
    ///
    /// # Cancellation safety
    /// Safe: if dropped before it returns, the node is deleted as soon as it exists.
    pub async fn start(zk: &Zk, election: &str, options: ElectionOptions) -> Result<LeaderLatch, ElectionError> {
        let campaign = Campaign::start(zk, election, &options).await?;
        Ok(LeaderLatch { election: election.to_string(), options, campaign })
    }

    /// Waits until this participant leads (and may act on it), and returns the term. Returns
    /// at once if it leads already. Fails with [`ElectionError::Ended`] once the candidacy is
    /// over (resigned, session lost, node deleted).
    ///
    /// # Cancellation safety
    /// Safe: waiting changes nothing.
    pub async fn await_leadership(&self) -> Result<Leadership, ElectionError> {
        self.campaign.await_leadership().await
    }

    /// Whether this participant leads and may act on it right now.
    pub fn is_leader(&self) -> bool {
        self.campaign.leadership().is_some()
    }

    /// The current term, if this participant leads and may act on it now.
    pub fn leadership(&self) -> Option<Leadership> {
        self.campaign.leadership()
    }

    /// Why the candidacy ended, if it has.
    pub fn ended(&self) -> Option<EndReason> {
        match self.campaign.phase() {
            Phase::Ended(reason) => Some(reason),
            _ => None,
        }
    }

    /// The election's name.
    pub fn election(&self) -> &str {
        &self.election
    }

    /// This candidacy's node.
    pub fn node_path(&self) -> &str {
        self.campaign.path()
    }

    /// Leaves the election: the loss signal goes `Lost`, then the node is deleted (so the next
    /// in line can only start after we stopped). Idempotent. If the connection is suspended it
    /// waits for it to come back or for the session to end.
    ///
    /// # Cancellation safety
    /// Safe: once called, the withdrawal completes in the background even if this future is
    /// dropped.
    pub async fn resign(&self) -> Result<(), ElectionError> {
        self.campaign.resign().await
    }

    /// Stands again with `zk` (typically a new session after [`EndReason::SessionLost`]): the
    /// current candidacy is withdrawn if it is still on, and a new one joins the end of the line
    /// with the same options. A later term has a greater epoch.
    ///
    /// # Cancellation safety
    /// Safe: the latch keeps its old (withdrawn) candidacy until the new one has joined.
    pub async fn rejoin(&mut self, zk: &Zk) -> Result<(), ElectionError> {
        if let Err(e) = self.campaign.resign().await {
            tracing::warn!(election = %self.election, error = %e, "cannot withdraw the old candidacy; it goes with its session");
        }
        self.campaign = Campaign::start(zk, &self.election, &self.options).await?;
        Ok(())
    }
}
