//! Where the configuration center lives in ZooKeeper, and the names it accepts.
//!
//! ```text
//! <root>/config/<namespace>/<key>                      current record (JSON, see ConfigRecord)
//! <root>/config/<namespace>/<key>/history/v-<version>  one record per version, the last N
//! <root>/config/<namespace>/<key>/canary               the canary candidate, while there is one
//! ```
//!
//! History and canary are children of the key node so that a key's whole story is in one
//! subtree (one `deleteall` removes it) and `zkCli.sh ls` shows it next to the value.

use zedis_coord::paths::{check_name, check_root};

use super::error::{ConfigError, Result};

/// Longest key name accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Prefix of history node names; the rest is the version in decimal, zero-padded so that
/// `ls` lists them in order.
const HISTORY_PREFIX: &str = "v-";

/// Checks a namespace name: letters, digits, `-`, `_` or `.` (it becomes one path segment, a
/// snapshot file name and part of Redis keys; braces are excluded so the mirror's hash tags
/// stay what they are meant to be).
pub fn check_namespace(namespace: &str) -> Result<()> {
    check_name("namespace", namespace).map_err(|e| ConfigError::BadName(bad_path_reason(e)))
}

/// Checks a key name: 1 to 255 of letters, digits, `-`, `_`, `.`, `:` or `@` (not `.` or `..`).
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key != "."
        && key != ".."
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadName(format!(
            "key name {key:?}: use 1 to {MAX_KEY_LEN} letters, digits, '-', '_', '.', ':' or '@'"
        )))
    }
}

fn bad_path_reason(e: zedis_coord::CoordError) -> String {
    match e {
        zedis_coord::CoordError::BadPath(reason) => reason,
        other => other.to_string(),
    }
}

/// The name of the history node of `version`.
pub fn history_name(version: u64) -> String {
    format!("{HISTORY_PREFIX}{version:020}")
}

/// The version of a history node name, if it is one.
pub fn history_version(name: &str) -> Option<u64> {
    name.strip_prefix(HISTORY_PREFIX).and_then(|v| v.parse().ok())
}

/// What a path under `<root>/config` is (for watch events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind<'a> {
    /// `<root>/config` itself.
    Config,
    Namespace(&'a str),
    Key(&'a str, &'a str),
    Canary(&'a str, &'a str),
    /// The history folder or one of its versions.
    History(&'a str, &'a str),
}

/// The paths of the configuration center under one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigPaths {
    /// `<root>/config`.
    base: String,
}

impl ConfigPaths {
    pub fn new(root: &str) -> Result<ConfigPaths> {
        let root = check_root(root).map_err(|e| ConfigError::BadName(bad_path_reason(e)))?;
        Ok(ConfigPaths { base: format!("{root}/config") })
    }

    /// `<root>/config`: one child per namespace.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn namespace(&self, namespace: &str) -> String {
        format!("{}/{namespace}", self.base)
    }

    pub fn key(&self, namespace: &str, key: &str) -> String {
        format!("{}/{namespace}/{key}", self.base)
    }

    pub fn history_dir(&self, namespace: &str, key: &str) -> String {
        format!("{}/history", self.key(namespace, key))
    }

    pub fn history(&self, namespace: &str, key: &str, version: u64) -> String {
        format!("{}/{}", self.history_dir(namespace, key), history_name(version))
    }

    pub fn canary(&self, namespace: &str, key: &str) -> String {
        format!("{}/canary", self.key(namespace, key))
    }

    /// Classifies a path reported by a watch; `None` for paths outside the layout.
    pub fn classify<'a>(&self, path: &'a str) -> Option<PathKind<'a>> {
        let rest = path.strip_prefix(self.base.as_str())?;
        if rest.is_empty() {
            return Some(PathKind::Config);
        }
        let mut parts = rest.strip_prefix('/')?.split('/');
        let namespace = parts.next().filter(|s| !s.is_empty())?;
        let Some(key) = parts.next() else {
            return Some(PathKind::Namespace(namespace));
        };
        match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => Some(PathKind::Key(namespace, key)),
            (Some("canary"), None, _) => Some(PathKind::Canary(namespace, key)),
            (Some("history"), _, None) => Some(PathKind::History(namespace, key)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let p = ConfigPaths::new("/zedis").unwrap();
        assert_eq!(p.base(), "/zedis/config");
        assert_eq!(p.key("app", "db.url"), "/zedis/config/app/db.url");
        assert_eq!(p.history("app", "k", 7), "/zedis/config/app/k/history/v-00000000000000000007");
        assert_eq!(p.canary("app", "k"), "/zedis/config/app/k/canary");
        assert_eq!(ConfigPaths::new("/").unwrap().namespace("a"), "/config/a");
    }

    #[test]
    fn classify_table() {
        let p = ConfigPaths::new("/z").unwrap();
        let table: &[(&str, Option<PathKind>)] = &[
            ("/z/config", Some(PathKind::Config)),
            ("/z/config/app", Some(PathKind::Namespace("app"))),
            ("/z/config/app/k", Some(PathKind::Key("app", "k"))),
            ("/z/config/app/k/canary", Some(PathKind::Canary("app", "k"))),
            ("/z/config/app/k/history", Some(PathKind::History("app", "k"))),
            ("/z/config/app/k/history/v-1", Some(PathKind::History("app", "k"))),
            ("/z/config/app/k/other", None),
            ("/z/configx", None),
            ("/z/services/x", None),
        ];
        for (path, want) in table {
            assert_eq!(p.classify(path), *want, "{path}");
        }
    }

    #[test]
    fn names() {
        for good in ["a", "db.url", "feature:x", "user@host", "A-b_c"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "{x}", &"k".repeat(256)] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_namespace("app-1.prod").is_ok());
        for bad in ["", "a/b", "{a}", "a:b"] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
        assert_eq!(history_version(&history_name(42)), Some(42));
        assert_eq!(history_version("x-1"), None);
    }
}
