//! How far a migration's mover has got: published by the controller leader at
//! `/<root>/clusters/<cluster>/migrations/<id>` about once a second (not in the topology, which
//! changes only when routing does), read by `cluster migrations` and `status`.

use serde::{Deserialize, Serialize};

use crate::migration::MigrationId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationProgress {
    pub id: MigrationId,
    /// Keys moved so far (both directions while cancelling count here too).
    pub keys_moved: u64,
    /// Bytes of the keys moved (Redis' `MEMORY USAGE` of each key before it moved).
    pub bytes_moved: u64,
    /// Keys of the migrating slots the sending side held when the current pass began
    /// (estimated from its key count and the share of its slots that move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_estimate: Option<u64>,
    /// Big collections moved in chunks.
    #[serde(default)]
    pub big_keys: u64,
    /// Full passes over the sending side so far (the last one finds nothing left).
    #[serde(default)]
    pub passes: u32,
    /// Keys per second over the last few seconds.
    #[serde(default)]
    pub rate: f64,
    /// Seconds left at the current rate, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<u64>,
    /// The controller driving it.
    pub by: String,
    pub started_ms: u64,
    pub updated_ms: u64,
    /// The last error the mover hit (it retries); cleared by the next successful batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl MigrationProgress {
    /// Keys still to move, by the estimate.
    pub fn remaining(&self) -> Option<u64> {
        self.keys_estimate.map(|e| e.saturating_sub(self.keys_moved))
    }

    /// Recomputes `eta_s` from the estimate and the rate.
    pub fn update_eta(&mut self) {
        self.eta_s = match self.remaining() {
            Some(0) => Some(0),
            Some(left) if self.rate >= 0.5 => Some((left as f64 / self.rate).ceil() as u64),
            _ => None,
        };
    }

    pub fn from_json(bytes: &[u8]) -> Result<MigrationProgress, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of plain fields always serialises.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_from_estimate_and_rate() {
        let table: &[(Option<u64>, u64, f64, Option<u64>)] = &[
            (Some(1000), 400, 100.0, Some(6)),
            (Some(1000), 400, 0.0, None),
            (None, 400, 100.0, None),
            (Some(300), 400, 100.0, Some(0)),
            (Some(1000), 999, 3.0, Some(1)),
        ];
        for &(estimate, moved, rate, want) in table {
            let mut p = MigrationProgress { keys_estimate: estimate, keys_moved: moved, rate, ..Default::default() };
            p.update_eta();
            assert_eq!(p.eta_s, want, "{estimate:?} {moved} {rate}");
        }
        let p = MigrationProgress { id: 3, keys_moved: 5, by: "c1".into(), ..Default::default() };
        assert_eq!(MigrationProgress::from_json(&p.to_json()).unwrap(), p);
    }
}
