//! The queue's decisions, as pure functions of counts and durations; the I/O in
//! [`crate::queue`] only carries them out.

use std::time::Duration;

/// What to do with a message whose consumer did not acknowledge it within the visibility
/// timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Deliver it again (to whichever consumer reclaimed it).
    Redeliver,
    /// It failed too often: move it to the dead-letter stream and acknowledge it.
    DeadLetter,
}

/// A message already delivered `delivered` times without an acknowledgement is delivered
/// again while that is below `max_deliveries`; then it is dead-lettered.
pub fn disposition(delivered: u64, max_deliveries: u32) -> Disposition {
    if delivered >= u64::from(max_deliveries) {
        Disposition::DeadLetter
    } else {
        Disposition::Redeliver
    }
}

/// The idle time to give a message so that it becomes reclaimable after `delay`: reclaiming
/// takes messages idle for at least `visibility_timeout`.
pub fn retry_idle(visibility_timeout: Duration, delay: Duration) -> Duration {
    visibility_timeout.saturating_sub(delay)
}

/// Why a message was dead-lettered, as recorded beside it.
pub fn dead_letter_reason(delivered: u64, max_deliveries: u32, visibility_timeout: Duration) -> String {
    format!(
        "not acknowledged after {delivered} deliveries (max_deliveries {max_deliveries}, visibility timeout {} ms)",
        visibility_timeout.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_after_max_deliveries() {
        use Disposition::*;
        let table = [
            // (delivered so far, max_deliveries, decision)
            (1, 5, Redeliver),
            (4, 5, Redeliver),
            (5, 5, DeadLetter),
            (6, 5, DeadLetter),
            (1, 1, DeadLetter),
            (0, 1, Redeliver),
            (u64::MAX, u32::MAX, DeadLetter),
        ];
        for (delivered, max, want) in table {
            assert_eq!(disposition(delivered, max), want, "delivered {delivered}, max {max}");
        }
    }

    #[test]
    fn retry_idle_makes_a_message_visible_after_the_delay() {
        let s = Duration::from_secs;
        let table = [
            (s(30), Duration::ZERO, s(30)),
            (s(30), s(10), s(20)),
            (s(30), s(30), Duration::ZERO),
            (s(30), s(60), Duration::ZERO),
        ];
        for (vt, delay, want) in table {
            assert_eq!(retry_idle(vt, delay), want, "vt {vt:?} delay {delay:?}");
        }
    }

    #[test]
    fn reasons_say_what_happened() {
        let r = dead_letter_reason(5, 5, Duration::from_millis(500));
        assert!(r.contains("5 deliveries") && r.contains("500 ms"), "{r}");
    }
}
