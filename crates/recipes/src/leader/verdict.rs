//! The pure "am I the leader now?" decision. The runtime ([`super::campaign`]) gathers the
//! facts and acts on the verdict; nothing here does I/O or reads a clock.

use std::time::Duration;

use zookeeper_client::SessionState;

use crate::loss::Hold;

/// What a candidate knows at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Our node was first in line at the last check, and nothing since says otherwise (a
    /// step-down clears it until a read after the reconnect confirms it again).
    pub first: bool,
    /// The session's state now.
    pub session: SessionState,
    /// How long the connection has been suspended (`None` when we have not seen it suspended).
    pub suspended_for: Option<Duration>,
    /// How long a suspended leader may keep believing it leads.
    pub grace: Duration,
}

/// What the candidate must believe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Leading: act as the leader.
    Lead,
    /// Not (or not known to be) first in line: do not act as the leader.
    Wait,
    /// First in line, but suspended longer than the grace: another process may be elected
    /// soon, so act as not leading until a reconnect confirms the node still leads.
    StepDown,
    /// The session is over: the node is gone, and leadership with it, for good.
    Ended,
}

impl Verdict {
    /// The hold a leader has under this verdict.
    pub fn hold(self) -> Hold {
        match self {
            Verdict::Lead => Hold::Held,
            Verdict::Wait | Verdict::StepDown => Hold::MayBeLost,
            Verdict::Ended => Hold::Lost,
        }
    }
}

/// Decides whether the candidate leads now.
pub fn decide(facts: Facts) -> Verdict {
    match facts.session {
        SessionState::Expired | SessionState::Closed | SessionState::AuthFailed => return Verdict::Ended,
        _ if !facts.first => return Verdict::Wait,
        SessionState::SyncConnected => return Verdict::Lead,
        // Read-only means the server we reach has lost its quorum: the majority side may expire
        // our session while we talk to it, so it counts as suspended.
        SessionState::Disconnected | SessionState::ConnectedReadOnly => {}
    }
    // `<`, so a zero grace steps down the moment a suspension is seen.
    if facts.suspended_for.unwrap_or(Duration::ZERO) < facts.grace {
        Verdict::Lead
    } else {
        Verdict::StepDown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use SessionState as S;
        use Verdict::*;
        let ms = Duration::from_millis;
        let grace = ms(1000);
        #[rustfmt::skip]
        let table: &[(bool, SessionState, Option<Duration>, Duration, Verdict)] = &[
            // first, session,              suspended for, grace,  verdict
            (true,  S::SyncConnected,     None,           grace,  Lead),
            (false, S::SyncConnected,     None,           grace,  Wait),
            // A suspension shorter than the grace is a blip: keep leading.
            (true,  S::Disconnected,      None,           grace,  Lead),
            (true,  S::Disconnected,      Some(ms(0)),    grace,  Lead),
            (true,  S::Disconnected,      Some(ms(999)),  grace,  Lead),
            // At the grace, step down (well before the session can expire on the server).
            (true,  S::Disconnected,      Some(ms(1000)), grace,  StepDown),
            (true,  S::Disconnected,      Some(ms(5000)), grace,  StepDown),
            (true,  S::ConnectedReadOnly, Some(ms(10)),   grace,  Lead),
            (true,  S::ConnectedReadOnly, Some(ms(1000)), grace,  StepDown),
            // Zero grace: the first sign of suspension is enough.
            (true,  S::Disconnected,      None,           ms(0),  StepDown),
            (true,  S::Disconnected,      Some(ms(0)),    ms(0),  StepDown),
            (true,  S::SyncConnected,     None,           ms(0),  Lead),
            // Not first: never lead, suspended or not.
            (false, S::Disconnected,      Some(ms(1)),    grace,  Wait),
            (false, S::Disconnected,      Some(ms(5000)), grace,  Wait),
            // Reconnected after a step-down, before the read confirmed the node: still waiting.
            (false, S::SyncConnected,     None,           grace,  Wait),
            // The session is over, whatever else we believe.
            (true,  S::Expired,           None,           grace,  Ended),
            (false, S::Expired,           Some(ms(1)),    grace,  Ended),
            (true,  S::Closed,            None,           grace,  Ended),
            (true,  S::AuthFailed,        None,           grace,  Ended),
        ];
        for &(first, session, suspended_for, grace, want) in table {
            let facts = Facts { first, session, suspended_for, grace };
            assert_eq!(decide(facts), want, "{facts:?}");
        }
    }

    #[test]
    fn holds() {
        assert_eq!(Verdict::Lead.hold(), Hold::Held);
        assert_eq!(Verdict::StepDown.hold(), Hold::MayBeLost);
        assert_eq!(Verdict::Wait.hold(), Hold::MayBeLost);
        assert_eq!(Verdict::Ended.hold(), Hold::Lost);
    }
}
