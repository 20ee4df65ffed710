//! How to stand in an election: [`ElectionOptions`], and where elections live in ZooKeeper.

use std::time::Duration;

use zedis_coord::paths::{check_name, check_root};

use super::error::ElectionError;

/// The default root of zedis's nodes in ZooKeeper.
pub const DEFAULT_ROOT: &str = "/zedis";

/// Largest application `data` a candidate may publish (ZooKeeper's own limit is 1 MiB per node,
/// and every observer reads the leader's record on each change).
pub const MAX_DATA_BYTES: usize = 64 * 1024;

/// How a participant stands in an election.
#[derive(Clone, Debug)]
pub struct ElectionOptions {
    /// Root of zedis's nodes; the election lives in `<root>/elections/<name>/`.
    pub root: String,
    /// This participant's id as others see it (`LeaderInfo::id`); default `host:pid`.
    pub id: String,
    /// Application data published with the candidacy, e.g. the address the leader serves on.
    pub data: serde_json::Value,
    /// How long a leader keeps believing it leads while its connection to ZooKeeper is
    /// suspended. `None` is a third of the negotiated session timeout; at most half of it.
    ///
    /// Why the bound: the client notices a silent connection after about 2/5 of the session
    /// timeout (zookeeper-client 0.11 checks every 1/20), and ZooKeeper cannot expire the session
    /// — and so elect someone else — before a whole session timeout has passed since it last
    /// heard from us. A leader stepping down `grace` after noticing therefore stops believing at
    /// most `0.45 T + grace` after the server last heard from it, before the next leader can be
    /// elected at `T` plus a notification. With the default grace that leaves over a fifth of the
    /// session timeout to spare.
    pub suspend_grace: Option<Duration>,
    /// [`super::LeaderSelector`] only: stand again after the closure returns (or after a step
    /// down), so the participant leads again when its turn comes. Default `true`.
    pub requeue: bool,
}

impl Default for ElectionOptions {
    fn default() -> ElectionOptions {
        ElectionOptions {
            root: DEFAULT_ROOT.to_string(),
            id: default_id(),
            data: serde_json::Value::Null,
            suspend_grace: None,
            requeue: true,
        }
    }
}

impl ElectionOptions {
    /// Options with this participant id and the other defaults.
    pub fn with_id(id: impl Into<String>) -> ElectionOptions {
        ElectionOptions { id: id.into(), ..ElectionOptions::default() }
    }

    /// The grace for a session of `session_timeout`, checked against the bound described on
    /// [`ElectionOptions::suspend_grace`].
    pub fn grace_for(&self, session_timeout: Duration) -> Result<Duration, ElectionError> {
        let max = session_timeout / 2;
        match self.suspend_grace {
            None => Ok(session_timeout / 3),
            Some(grace) if grace <= max => Ok(grace),
            Some(grace) => Err(ElectionError::BadOptions(format!(
                "suspend_grace {grace:?} is longer than half the session timeout ({max:?}): \
                 a suspended leader could still believe it leads when another is elected"
            ))),
        }
    }

    /// Checks everything that does not need the session.
    pub(crate) fn check(&self) -> Result<(), ElectionError> {
        if self.id.is_empty() || self.id.len() > 1024 || self.id.chars().any(char::is_control) {
            return Err(ElectionError::BadOptions(format!(
                "participant id {:?}: use 1 to 1024 printable characters",
                self.id
            )));
        }
        let size = serde_json::to_vec(&self.data).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_DATA_BYTES {
            return Err(ElectionError::BadOptions(format!(
                "data is {size} bytes as JSON; at most {MAX_DATA_BYTES} are allowed"
            )));
        }
        Ok(())
    }
}

/// `<root>/elections/<name>`, with the root and the name checked.
pub fn election_dir(root: &str, name: &str) -> Result<String, ElectionError> {
    check_name("election", name)?;
    let root = check_root(root)?;
    Ok(format!("{root}/elections/{name}"))
}

/// `host:pid`: unique among live processes, and tells an operator where the leader runs.
pub fn default_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_defaults_to_a_third_and_is_bounded_by_half() {
        let t = Duration::from_secs(6);
        let mut o = ElectionOptions::with_id("a");
        assert_eq!(o.grace_for(t).unwrap(), Duration::from_secs(2));
        o.suspend_grace = Some(Duration::from_secs(3));
        assert_eq!(o.grace_for(t).unwrap(), Duration::from_secs(3));
        o.suspend_grace = Some(Duration::ZERO);
        assert_eq!(o.grace_for(t).unwrap(), Duration::ZERO);
        o.suspend_grace = Some(Duration::from_millis(3001));
        assert!(matches!(o.grace_for(t), Err(ElectionError::BadOptions(_))));
    }

    #[test]
    fn layout_and_names() {
        assert_eq!(election_dir("/zedis", "jobs").unwrap(), "/zedis/elections/jobs");
        assert_eq!(election_dir("/", "jobs").unwrap(), "/elections/jobs");
        assert_eq!(election_dir("/a/b/", "x.y-z_1").unwrap(), "/a/b/elections/x.y-z_1");
        assert!(election_dir("/zedis", "a/b").is_err());
        assert!(election_dir("/zedis", "").is_err());
        assert!(election_dir("zedis", "a").is_err());
    }

    #[test]
    fn options_are_checked() {
        assert!(ElectionOptions::with_id("worker-1").check().is_ok());
        assert!(ElectionOptions::with_id("").check().is_err());
        assert!(ElectionOptions::with_id("a\nb").check().is_err());
        let big = ElectionOptions {
            data: serde_json::Value::String("x".repeat(MAX_DATA_BYTES)),
            ..ElectionOptions::with_id("a")
        };
        assert!(big.check().is_err());
        let id = default_id();
        assert!(id.ends_with(&format!(":{}", std::process::id())), "{id}");
    }
}
