//! The local snapshot of a namespace: what a client last read, on disk, so that it can start
//! and serve reads while ZooKeeper is unreachable.
//!
//! One JSON file per namespace, `<snapshot_dir>/<namespace>.json`, written atomically (a
//! temporary file in the same folder, flushed to disk, then renamed over the old one), so a
//! crash leaves either the old snapshot or the new one, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Result};
use super::record::ConfigRecord;

/// Snapshots larger than this are refused on load (a damaged or foreign file).
const MAX_SNAPSHOT_BYTES: u64 = 256 * 1024 * 1024;

/// The file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub namespace: String,
    /// When the client last read the namespace from ZooKeeper (ms since the Unix epoch).
    pub taken_at_ms: u64,
    /// The labels of the client that wrote it (canary candidates it saw are in `entries`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Every key as the client saw it, deletions included (so that an older value is never
    /// served after a newer deletion).
    pub entries: BTreeMap<String, ConfigRecord>,
}

/// The snapshot file of `namespace` in `dir`.
pub fn snapshot_path(dir: &Path, namespace: &str) -> PathBuf {
    dir.join(format!("{namespace}.json"))
}

/// Loads the snapshot of `namespace`; `Ok(None)` if there is none.
pub fn load(dir: &Path, namespace: &str) -> Result<Option<SnapshotFile>> {
    let path = snapshot_path(dir, namespace);
    let error = |reason: String| ConfigError::Snapshot { path: path.clone(), reason };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(e.to_string())),
    };
    let len = file.metadata().map_err(|e| error(e.to_string()))?.len();
    if len > MAX_SNAPSHOT_BYTES {
        return Err(error(format!("{len} bytes is more than a snapshot can be")));
    }
    let snapshot: SnapshotFile =
        serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| error(e.to_string()))?;
    if snapshot.namespace != namespace {
        return Err(error(format!("holds namespace {:?}, not {namespace:?}", snapshot.namespace)));
    }
    Ok(Some(snapshot))
}

/// Writes `snapshot` atomically (temporary file, fsync, rename, fsync of the folder).
pub fn save(dir: &Path, snapshot: &SnapshotFile) -> Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path = snapshot_path(dir, &snapshot.namespace);
    let error = |reason: String| ConfigError::Snapshot { path: path.clone(), reason };
    std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.json.tmp-{}-{}",
        snapshot.namespace,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        let data = serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?;
        file.write_all(&data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        // Make the rename itself durable; not every file system lets a folder be synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(e.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::format::Format;

    fn record(version: u64) -> ConfigRecord {
        ConfigRecord {
            value: format!("v{version}"),
            format: Format::Text,
            version,
            time_ms: 5,
            author: "a".into(),
            comment: String::new(),
            deleted: false,
            canary: None,
        }
    }

    #[test]
    fn save_load_replace() {
        let dir = std::env::temp_dir().join(format!("zedis-snapshot-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir, "app").unwrap(), None);
        let mut s = SnapshotFile {
            namespace: "app".into(),
            taken_at_ms: 1,
            labels: BTreeMap::new(),
            entries: [("k".to_string(), record(1))].into(),
        };
        save(&dir, &s).unwrap();
        assert_eq!(load(&dir, "app").unwrap().as_ref(), Some(&s));
        s.entries.insert("k".into(), record(2));
        s.taken_at_ms = 2;
        save(&dir, &s).unwrap();
        assert_eq!(load(&dir, "app").unwrap().as_ref(), Some(&s));
        // No temporary files are left behind.
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["app.json"]);
        // A damaged file is an error, not an empty snapshot.
        std::fs::write(snapshot_path(&dir, "app"), b"{not json").unwrap();
        assert!(matches!(load(&dir, "app"), Err(ConfigError::Snapshot { .. })));
        // A file of another namespace is refused.
        let other = SnapshotFile { namespace: "other".into(), ..s };
        std::fs::write(snapshot_path(&dir, "app"), serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(load(&dir, "app"), Err(ConfigError::Snapshot { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
