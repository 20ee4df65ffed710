//! Contender nodes, as pure functions: their names, their order, finding our own node again
//! after a lost create reply, and the decision "do I hold it, or which nodes do I wait for".
//!
//! A contender is an ephemeral sequential node `<kind>-<token>-<sequence>` under the lock's
//! directory. The token is random per acquisition attempt: when the reply to a create is lost
//! (connection loss) the node may exist anyway, and the token is how we find it again instead
//! of leaving an orphan that would block every later contender until our session ends. The
//! sequence (appended by ZooKeeper) gives the FIFO order; the kind says what the contender
//! wants, so one directory can hold readers and writers.

use serde::{Deserialize, Serialize};

/// What a contender wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContenderKind {
    /// A mutex ([`crate::ZkLock`]): alone, after everyone queued before it.
    #[serde(rename = "lock")]
    Exclusive,
    /// The read half of [`crate::ZkRwLock`]: shares with other readers, waits for writers
    /// queued before it.
    Read,
    /// The write half of [`crate::ZkRwLock`]: alone, like [`ContenderKind::Exclusive`].
    Write,
    /// A permit of [`crate::ZkSemaphore`]: one of the first N contenders.
    Permit,
}

impl ContenderKind {
    const ALL: [ContenderKind; 4] =
        [ContenderKind::Exclusive, ContenderKind::Read, ContenderKind::Write, ContenderKind::Permit];

    /// The node name prefix of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            ContenderKind::Exclusive => "lock",
            ContenderKind::Read => "read",
            ContenderKind::Write => "write",
            ContenderKind::Permit => "permit",
        }
    }

    fn from_prefix(prefix: &str) -> Option<ContenderKind> {
        ContenderKind::ALL.into_iter().find(|k| k.prefix() == prefix)
    }

    /// Whether holders of this kind exclude everyone else.
    pub fn is_exclusive(self) -> bool {
        matches!(self, ContenderKind::Exclusive | ContenderKind::Write)
    }
}

impl std::fmt::Display for ContenderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A contender node's name, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contender {
    /// The node name (last path segment).
    pub name: String,
    pub kind: ContenderKind,
    /// The random token of the acquisition attempt that created it.
    pub token: String,
    /// The sequence ZooKeeper appended: the queue order.
    pub sequence: u64,
}

/// A fresh random token for one acquisition attempt (16 hex digits).
pub fn new_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The path prefix to create an ephemeral sequential contender node with.
pub fn node_prefix(dir: &str, kind: ContenderKind, token: &str) -> String {
    format!("{dir}/{}-{token}-", kind.prefix())
}

/// Parses a contender node name; `None` for anything else (so foreign nodes are ignored).
pub fn parse(name: &str) -> Option<Contender> {
    let (head, sequence) = name.rsplit_once('-')?;
    let (prefix, token) = head.split_once('-')?;
    // ZooKeeper pads to 10 digits (19 past i32::MAX): anything shorter is not its sequence.
    if sequence.len() < 10 || !sequence.bytes().all(|b| b.is_ascii_digit()) || token.is_empty() {
        return None;
    }
    Some(Contender {
        name: name.to_string(),
        kind: ContenderKind::from_prefix(prefix)?,
        token: token.to_string(),
        sequence: sequence.parse().ok()?,
    })
}

/// The contenders among `names`, in queue order (lowest sequence first); other names dropped.
pub fn in_order<I, S>(names: I) -> Vec<Contender>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut queue: Vec<Contender> = names.into_iter().filter_map(|n| parse(n.as_ref())).collect();
    queue.sort_by_key(|c| c.sequence);
    queue
}

/// Our own node after a create whose reply was lost: the contender carrying our token.
pub fn find_own<'a>(queue: &'a [Contender], token: &str) -> Option<&'a Contender> {
    queue.iter().find(|c| c.token == token)
}

/// What a contender does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It holds the lock (or a permit).
    Acquired,
    /// It waits until one of these nodes changes, then decides again.
    Wait(WaitFor),
    /// Its node is not in the queue any more (session expired, or deleted by someone).
    Gone,
}

/// The nodes a waiting contender watches: never the whole directory, so a release wakes
/// only the contenders it concerns (no herd).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitFor {
    /// Names of the nodes to watch.
    pub nodes: Vec<String>,
    /// Wake also when a watched node's data changes (it marks itself acquired), not only when
    /// it goes. Needed by a semaphore waiter whose predecessor is a waiter too: it must learn
    /// when that predecessor moves up to a permit, as it may then be first in line itself.
    pub wake_on_data: bool,
}

/// Whether the contender at `index` of `queue` holds. `permits` is the number of permits when
/// that contender is a [`ContenderKind::Permit`] (ignored otherwise).
///
/// Kinds that do not understand each other (a semaphore and a mutex under one name) stay
/// safe: every kind counts the others as blockers.
pub fn holds(queue: &[Contender], index: usize, permits: u32) -> bool {
    let Some(me) = queue.get(index) else { return false };
    let before = &queue[..index];
    match me.kind {
        ContenderKind::Exclusive | ContenderKind::Write => before.is_empty(),
        ContenderKind::Read => before.iter().all(|c| c.kind == ContenderKind::Read),
        ContenderKind::Permit => {
            before.iter().all(|c| c.kind == ContenderKind::Permit) && index < permits.max(1) as usize
        }
    }
}

/// The decision of the contender named `me`.
pub fn decide(queue: &[Contender], me: &str, permits: u32) -> Decision {
    let Some(index) = queue.iter().position(|c| c.name == me) else { return Decision::Gone };
    if holds(queue, index, permits) {
        return Decision::Acquired;
    }
    let before = &queue[..index];
    let wait = |nodes: Vec<&Contender>, wake_on_data| {
        Decision::Wait(WaitFor { nodes: nodes.into_iter().map(|c| c.name.clone()).collect(), wake_on_data })
    };
    match queue[index].kind {
        // Everyone before must go: wait for them one at a time, nearest first.
        ContenderKind::Exclusive | ContenderKind::Write => wait(vec![&before[index - 1]], false),
        // Only non-readers block a reader: the nearest one before it.
        ContenderKind::Read => {
            let blocker = before.iter().rev().find(|c| c.kind != ContenderKind::Read);
            wait(blocker.into_iter().collect(), false)
        }
        ContenderKind::Permit => {
            if let Some(blocker) = before.iter().rev().find(|c| c.kind != ContenderKind::Permit) {
                return wait(vec![blocker], false);
            }
            let permits = permits.max(1) as usize;
            if index == permits {
                // First in line: any holder leaving frees a permit for us.
                wait(before.iter().collect(), false)
            } else {
                // Behind another waiter: we can only move up once it has (it marks its node
                // when it acquires) or once it goes.
                wait(vec![&before[index - 1]], true)
            }
        }
    }
}

/// Whether a contender that just acquired must mark its node as acquired: when it waited
/// (its record then tells `lock list` the true "since"), or when it is a permit and others
/// were already queued behind it (a waiting successor may be watching it for that mark;
/// see [`WaitFor::wake_on_data`]).
pub fn must_mark(kind: ContenderKind, waited: bool, successors: usize) -> bool {
    waited || (kind == ContenderKind::Permit && successors > 0)
}

/// The data of a contender node (JSON): who queued, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContenderRecord {
    /// The owner id given in the options (default `host:pid`).
    pub owner: String,
    pub host: String,
    pub pid: u32,
    /// When it joined the queue (ms since the Unix epoch, its own clock).
    pub queued_ms: u64,
    /// When it acquired, if it had to wait for it (otherwise it acquired at `queued_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquired_ms: Option<u64>,
    /// The number of permits it assumes (semaphores only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permits: Option<u32>,
}

impl ContenderRecord {
    /// Since when it holds, if it holds.
    pub fn since_ms(&self) -> u64 {
        self.acquired_ms.unwrap_or(self.queued_ms)
    }
}

/// Milliseconds since the Unix epoch by the local clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(names: &[&str]) -> Vec<Contender> {
        in_order(names.iter().copied())
    }

    fn waits(nodes: &[&str], wake_on_data: bool) -> Decision {
        Decision::Wait(WaitFor { nodes: nodes.iter().map(|s| s.to_string()).collect(), wake_on_data })
    }

    #[test]
    fn names_parse_and_sort_by_sequence() {
        let c = parse("lock-00ab-0000000042").expect("a contender");
        assert_eq!((c.kind, c.token.as_str(), c.sequence), (ContenderKind::Exclusive, "00ab", 42));
        assert_eq!(parse("permit-ff-2147483648000000000").map(|c| c.sequence), Some(2147483648000000000));
        for junk in
            ["lock-0000000001", "lock--0000000001", "nope-ab-0000000001", "lock-ab-12", "lock-ab-00000000x1", ""]
        {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
        let order: Vec<String> = q(&["write-b-0000000010", "junk", "read-a-0000000002", "lock-c-0000000003"])
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(order, ["read-a-0000000002", "lock-c-0000000003", "write-b-0000000010"]);
        assert_eq!(node_prefix("/z/locks/x", ContenderKind::Read, "ab"), "/z/locks/x/read-ab-");
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.len() == 16 && a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn own_node_is_found_again_by_token() {
        let queue = q(&["lock-aaaa-0000000001", "lock-bbbb-0000000002", "read-cccc-0000000003"]);
        let table: &[(&str, Option<&str>)] = &[
            ("bbbb", Some("lock-bbbb-0000000002")),
            ("cccc", Some("read-cccc-0000000003")),
            // The create never happened: nothing to recover, create again.
            ("dddd", None),
            // A token is a whole segment, not a substring.
            ("bb", None),
        ];
        for (token, want) in table {
            assert_eq!(find_own(&queue, token).map(|c| c.name.as_str()), *want, "token {token}");
        }
    }

    #[test]
    fn decisions() {
        let mutex = ["lock-a-0000000001", "lock-b-0000000002", "lock-c-0000000003"];
        let rw =
            ["read-a-0000000001", "read-b-0000000002", "write-c-0000000003", "read-d-0000000004", "write-e-0000000005"];
        let sem = ["permit-a-0000000001", "permit-b-0000000002", "permit-c-0000000003", "permit-d-0000000004"];
        let table: &[(&[&str], &str, u32, Decision)] = &[
            // Mutex: first holds, each other waits for its predecessor only.
            (&mutex, "lock-a-0000000001", 1, Decision::Acquired),
            (&mutex, "lock-b-0000000002", 1, waits(&["lock-a-0000000001"], false)),
            (&mutex, "lock-c-0000000003", 1, waits(&["lock-b-0000000002"], false)),
            (&mutex, "lock-z-0000000009", 1, Decision::Gone),
            // Readers share until a writer; a writer waits for its predecessor (reader or not);
            // a reader behind a writer waits for the nearest writer.
            (&rw, "read-a-0000000001", 1, Decision::Acquired),
            (&rw, "read-b-0000000002", 1, Decision::Acquired),
            (&rw, "write-c-0000000003", 1, waits(&["read-b-0000000002"], false)),
            (&rw, "read-d-0000000004", 1, waits(&["write-c-0000000003"], false)),
            (&rw, "write-e-0000000005", 1, waits(&["read-d-0000000004"], false)),
            // Semaphore of 2: first two hold, the first waiter watches both holders, the next
            // waiter watches the first waiter, data included.
            (&sem, "permit-b-0000000002", 2, Decision::Acquired),
            (&sem, "permit-c-0000000003", 2, waits(&["permit-a-0000000001", "permit-b-0000000002"], false)),
            (&sem, "permit-d-0000000004", 2, waits(&["permit-c-0000000003"], true)),
            (&sem, "permit-d-0000000004", 4, Decision::Acquired),
            // Zero permits is taken as one.
            (&sem, "permit-b-0000000002", 0, waits(&["permit-a-0000000001"], false)),
            // Mixed kinds stay exclusive of each other.
            (&["lock-a-0000000001", "read-b-0000000002"], "read-b-0000000002", 1, waits(&["lock-a-0000000001"], false)),
            (
                &["read-a-0000000001", "permit-b-0000000002"],
                "permit-b-0000000002",
                5,
                waits(&["read-a-0000000001"], false),
            ),
            (
                &["permit-a-0000000001", "read-b-0000000002"],
                "read-b-0000000002",
                1,
                waits(&["permit-a-0000000001"], false),
            ),
        ];
        for (names, me, permits, want) in table {
            assert_eq!(&decide(&q(names), me, *permits), want, "{me} in {names:?} with {permits} permits");
        }
    }

    #[test]
    fn marks() {
        use ContenderKind::*;
        let table = [
            (Exclusive, false, 3, false),
            (Exclusive, true, 0, true),
            (Permit, false, 0, false),
            (Permit, false, 1, true),
            (Read, true, 0, true),
        ];
        for (kind, waited, successors, want) in table {
            assert_eq!(must_mark(kind, waited, successors), want, "{kind} waited={waited} successors={successors}");
        }
    }

    #[test]
    fn record_is_readable_json() {
        let r = ContenderRecord {
            owner: "web-1".into(),
            host: "h".into(),
            pid: 7,
            queued_ms: 10,
            acquired_ms: None,
            permits: None,
        };
        let text = serde_json::to_string(&r).expect("serializes");
        assert_eq!(text, r#"{"owner":"web-1","host":"h","pid":7,"queued_ms":10}"#);
        assert_eq!(serde_json::from_str::<ContenderRecord>(&text).expect("parses"), r);
        assert_eq!(r.since_ms(), 10);
        // Kinds read the same in JSON as in node names.
        for kind in ContenderKind::ALL {
            assert_eq!(serde_json::to_value(kind).expect("serializes"), kind.prefix());
        }
        assert_eq!(ContenderRecord { acquired_ms: Some(12), ..r }.since_ms(), 12);
    }
}
