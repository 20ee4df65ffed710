//! What `cluster migrations`, `cluster migrate --wait` and `status` show of slot migrations:
//! the topology's record of each migration joined with the progress record its driver
//! publishes. Pure.

use serde::Serialize;
use zedis_topology::migration_summary::sources;
use zedis_topology::{GroupId, Migration, MigrationProgress, MigrationState};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MigrationView {
    /// The topology's record (`rate` there is the limit, keys/s, null for none).
    #[serde(flatten)]
    pub migration: Migration,
    /// Groups its slots come from: those of the pending slots, or all once it has finished.
    pub sources: Vec<GroupId>,
    pub slots_done: usize,
    pub slots_total: usize,
    /// When it started (its driver's record, else its `migration_started` event), ms since
    /// the Unix epoch.
    pub started_ms: Option<u64>,
    pub age_s: Option<u64>,
    /// The driver's progress record; null until the driver has published one.
    pub progress: Option<MigrationProgress>,
}

impl MigrationView {
    pub fn new(m: &Migration, progress: Option<MigrationProgress>, started_ms: Option<u64>, now_ms: u64) -> Self {
        let started_ms = progress.as_ref().map(|p| p.started_ms).filter(|t| *t > 0).or(started_ms);
        let slots_total = m.total_slots();
        let slots_done = if m.state == MigrationState::Done { slots_total } else { m.moved as usize };
        MigrationView {
            migration: m.clone(),
            sources: if m.pending.is_empty() { m.sources.clone() } else { sources(&m.pending) },
            slots_done,
            slots_total,
            started_ms,
            age_s: started_ms.map(|t| now_ms.saturating_sub(t) / 1000),
            progress,
        }
    }

    pub fn state(&self) -> &'static str {
        state_name(self.migration.state)
    }

    /// `1→2`, `1+3→2` (`→2` for a record written before sources were kept).
    pub fn direction(&self) -> String {
        let from: Vec<String> = self.sources.iter().map(|g| g.to_string()).collect();
        format!("{}→{}", from.join("+"), self.migration.target)
    }

    /// `moving  slots 40/100  keys 12345 (1.2 MiB)  2300 keys/s  ETA 5s`.
    pub fn progress_text(&self) -> String {
        let mut out = format!("{:<10}  slots {}/{}", self.state(), self.slots_done, self.slots_total);
        match &self.progress {
            Some(p) => {
                out.push_str(&format!("  keys {} ({})", p.keys_moved, approx_bytes(p.bytes_moved)));
                if self.migration.state.is_active() {
                    out.push_str(&format!("  {:.0} keys/s", p.rate));
                    out.push_str(&format!("  ETA {}", p.eta_s.map(duration).unwrap_or_else(|| "?".into())));
                }
                if let Some(e) = &p.last_error {
                    out.push_str(&format!("  last error: {e}"));
                }
            }
            None if self.migration.state.is_active() => out.push_str("  (no progress reported yet)"),
            None => {}
        }
        out
    }
}

/// The JSON spelling of a state (`preparing`, `moving`, ...).
pub fn state_name(state: MigrationState) -> &'static str {
    match state {
        MigrationState::Preparing => "preparing",
        MigrationState::Moving => "moving",
        MigrationState::Paused => "paused",
        MigrationState::Cancelling => "cancelling",
        MigrationState::Done => "done",
        MigrationState::Cancelled => "cancelled",
    }
}

/// `cluster migrations` as a table, newest last.
pub fn render_table(views: &[MigrationView]) -> String {
    if views.is_empty() {
        return "no migrations; start one with `zedis cluster migrate` or `zedis cluster rebalance`\n".to_string();
    }
    let header = ["ID", "STATE", "GROUPS", "SLOTS", "KEYS", "BYTES", "RATE", "ETA", "AGE", "LAST ERROR"];
    let rows: Vec<[String; 10]> = views
        .iter()
        .map(|v| {
            let p = v.progress.as_ref();
            let active = v.migration.state.is_active();
            let rate = match (p, v.migration.rate) {
                (Some(p), Some(limit)) if active => format!("{:.0}/s (max {limit})", p.rate),
                (Some(p), None) if active => format!("{:.0}/s", p.rate),
                (None, Some(limit)) if active => format!("max {limit}/s"),
                _ => "-".into(),
            };
            [
                v.migration.id.to_string(),
                v.state().to_string(),
                v.direction(),
                format!("{}/{}", v.slots_done, v.slots_total),
                p.map(|p| p.keys_moved.to_string()).unwrap_or_else(|| "-".into()),
                p.map(|p| approx_bytes(p.bytes_moved)).unwrap_or_else(|| "-".into()),
                rate,
                p.and_then(|p| p.eta_s).filter(|_| active).map(duration).unwrap_or_else(|| "-".into()),
                v.age_s.map(duration).unwrap_or_else(|| "-".into()),
                p.and_then(|p| p.last_error.clone()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `1.2 MiB`, `512 B`.
pub fn approx_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `45s`, `3m05s`, `2h10m`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
    }
}

#[cfg(test)]
mod tests {
    use zedis_topology::SlotMove;

    use super::*;

    fn migration(state: MigrationState, pending: Vec<SlotMove>, moved: u32) -> Migration {
        Migration {
            id: 3,
            target: 2,
            pending,
            moved,
            state,
            since_epoch: 4,
            rate: Some(500),
            sources: vec![1, 3],
            finished_epoch: None,
        }
    }

    #[test]
    fn views_join_the_record_and_the_progress() {
        let mv = |from, to, source| SlotMove { from, to, source };
        let m = migration(MigrationState::Moving, vec![mv(40, 99, 1), mv(100, 109, 3)], 40);
        let p = MigrationProgress {
            id: 3,
            keys_moved: 12345,
            bytes_moved: 3 << 20,
            rate: 2300.4,
            eta_s: Some(65),
            by: "c1".into(),
            started_ms: 10_000,
            last_error: Some("MIGRATE timed out".into()),
            ..Default::default()
        };
        let v = MigrationView::new(&m, Some(p), Some(1), 70_000);
        assert_eq!((v.slots_done, v.slots_total, v.age_s), (40, 110, Some(60)), "the driver's start time wins");
        assert_eq!(v.direction(), "1+3→2");
        assert_eq!(
            v.progress_text(),
            "moving      slots 40/110  keys 12345 (3.0 MiB)  2300 keys/s  ETA 1m05s  last error: MIGRATE timed out"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!((json["id"].as_u64(), json["state"].as_str()), (Some(3), Some("moving")));
        assert_eq!((json["rate"].as_u64(), json["progress"]["keys_moved"].as_u64()), (Some(500), Some(12345)));
        let table = render_table(&[v]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID  STATE   GROUPS"), "{table}");
        assert!(lines[1].contains("1+3→2") && lines[1].contains("40/110") && lines[1].contains("2300/s (max 500)"));
        assert!(lines[1].contains("1m05s") && lines[1].ends_with("MIGRATE timed out"), "{table}");

        let preparing = MigrationView::new(&migration(MigrationState::Preparing, vec![mv(0, 9, 1)], 0), None, None, 5);
        assert_eq!(preparing.progress_text(), "preparing   slots 0/10  (no progress reported yet)");
        assert_eq!(serde_json::to_value(&preparing).unwrap()["progress"], serde_json::Value::Null);
        let done = MigrationView::new(&migration(MigrationState::Done, vec![], 10), None, Some(0), 125_000);
        assert_eq!(
            (done.slots_done, done.slots_total, done.direction()),
            (10, 10, "1+3→2".to_string()),
            "sources kept"
        );
        assert!(render_table(&[done]).lines().nth(1).unwrap().contains("2m05s"));
        assert!(render_table(&[]).starts_with("no migrations"));
    }

    #[test]
    fn units() {
        assert_eq!(approx_bytes(512), "512 B");
        assert_eq!(approx_bytes(1536), "1.5 KiB");
        assert_eq!(duration(7200 + 600), "2h10m");
    }
}
