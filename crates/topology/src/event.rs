//! Entries of the bounded event history at `/<root>/clusters/<cluster>/events/`.

use serde::{Deserialize, Serialize};

use crate::group::GroupId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ClusterCreated,
    GroupAdded,
    ServerAdded,
    ServerRemoved,
    PriorityChanged,
    SettingsChanged,
    LeaderElected,
    MasterDown,
    FailoverBlocked,
    FailoverCommitted,
    Promoted,
    Repointed,
    Demoted,
    SwitchoverStarted,
    SwitchoverAborted,
    SwitchoverDone,
    Configured,
    /// An operator started a slot migration (`cluster migrate`, `cluster rebalance`).
    MigrationStarted,
    /// A slot migration changed state: paused, resumed or cancelled by an operator, begun or
    /// finished by its driver.
    MigrationChanged,
    /// A kind written by a newer zedis.
    #[serde(other)]
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Topology epoch the event belongs to.
    pub epoch: u64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub message: String,
    /// Who did it: a controller id or `cli`.
    pub by: String,
}

impl Event {
    pub fn new(kind: EventKind, epoch: u64, by: &str, message: impl Into<String>) -> Event {
        Event { time_ms: now_ms(), epoch, kind, group: None, server: None, message: message.into(), by: by.to_string() }
    }

    pub fn group(mut self, group: GroupId) -> Event {
        self.group = Some(group);
        self
    }

    pub fn server(mut self, server: &str) -> Event {
        self.server = Some(server.to_string());
        self
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_from_newer_writers_still_parse() {
        let json = r#"{"time_ms":1,"epoch":2,"kind":"something_new","message":"m","by":"x"}"#;
        let e: Event = serde_json::from_str(json).unwrap();
        assert_eq!(e.kind, EventKind::Other);
        let e = Event::new(EventKind::Promoted, 3, "ctl", "promoted").group(1).server("h:1");
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
