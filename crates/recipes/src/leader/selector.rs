//! [`LeaderSelector`]: run a closure each time this participant becomes the leader.

use std::future::Future;

use zedis_coord::Zk;

use super::error::{ElectionError, EndReason};
use super::latch::LeaderLatch;
use super::leadership::Leadership;
use super::options::ElectionOptions;
use crate::loss::Hold;

/// Selector style: [`LeaderSelector::run`] stands in the election, calls the closure with the
/// [`Leadership`] each time this participant becomes leader, and stands again afterwards
/// ([`ElectionOptions::requeue`]).
///
/// Every call is a term of its own with a greater epoch: when the closure returns, the
/// participant resigns (the next in line takes over) and, with `requeue`, joins the end of the
/// line. When the leadership may be lost — the connection stayed suspended longer than the
/// grace — or is lost, the closure's future is dropped at its next await point and the term
/// ends. Tasks the closure spawns are not cancelled by that: give them
/// [`Leadership::loss`] and have them stop on it.
#[derive(Debug)]
pub struct LeaderSelector {
    _private: (),
}

/// How one term ended.
enum TermEnd {
    Returned,
    Lost(Hold),
}

impl LeaderSelector {
    /// Runs `lead` each time this participant leads `election`, until:
    /// - `requeue` is off: after the first term; `Ok` if the closure returned, else the
    ///   [`ElectionError::Ended`] that stopped it ([`EndReason::SteppedDown`] for a suspension);
    /// - the session is lost: [`ElectionError::Ended`] with [`EndReason::SessionLost`] (or the
    ///   session's error); call again with a new session to stand again;
    /// - the future is dropped.
    ///
    /// # Cancellation safety
    /// Safe: dropping it drops the closure's future and withdraws the candidacy in the
    /// background (the loss signal goes `Lost` before the node is deleted).
    pub async fn run<F, Fut>(
        zk: &Zk,
        election: &str,
        options: ElectionOptions,
        mut lead: F,
    ) -> Result<(), ElectionError>
    where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            let latch = LeaderLatch::start(zk, election, options.clone()).await?;
            let leadership = latch.await_leadership().await?;
            let mut loss = leadership.loss();
            let end = tokio::select! {
                _ = lead(leadership.clone()) => TermEnd::Returned,
                hold = loss.may_be_lost() => TermEnd::Lost(hold),
            };
            // Waits for a suspended connection to come back (or the session to end), so a new
            // candidacy never stands beside an old one of ours.
            let resigned = latch.resign().await;
            let reason = match end {
                TermEnd::Returned => None,
                TermEnd::Lost(Hold::MayBeLost) => {
                    tracing::warn!(election, epoch = leadership.epoch(), "leadership may be lost: term cancelled");
                    Some(EndReason::SteppedDown)
                }
                // The task has ended the candidacy by now; it says why.
                TermEnd::Lost(_) => Some(latch.ended().unwrap_or(EndReason::SessionLost)),
            };
            resigned?;
            let ended = |reason| ElectionError::Ended { election: election.to_string(), reason };
            match reason {
                Some(EndReason::SessionLost) => return Err(ended(EndReason::SessionLost)),
                Some(reason) if !options.requeue => return Err(ended(reason)),
                None if !options.requeue => return Ok(()),
                // Stand again (a lost session makes the next start fail with its error).
                _ => {}
            }
        }
    }
}
