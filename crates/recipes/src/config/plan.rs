//! The write decision, pure: given a key's released record and canary (as just read), what a
//! change writes — the new key record, the canary node, the history — or why it is refused.
//! The store turns a [`WritePlan`] into one ZooKeeper transaction.

use std::collections::BTreeMap;

use super::canary::check_labels;
use super::error::{ConfigError, Result};
use super::format::{validate, Format};
use super::record::{CanaryInfo, CanaryState, ConfigRecord, MAX_VALUE_BYTES};

/// A change to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Release a value to everyone. `expect_version`: refuse unless the key is at exactly this
    /// version (0: the key must never have existed).
    Publish { value: String, format: Format, comment: String, expect_version: Option<u64> },
    /// Delete the key (a new version that says so).
    Delete { comment: String },
    /// Release `from` (a version out of the history) again, as a new version.
    Rollback { from: ConfigRecord, comment: String },
    /// Show a candidate to the clients whose labels match `selector`.
    Canary { value: String, format: Format, selector: BTreeMap<String, String>, comment: String },
    /// Release the canary candidate to everyone.
    Promote { comment: String },
    /// Drop the canary candidate; its clients go back to the released value.
    Abandon { comment: String },
}

/// Who writes, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub time_ms: u64,
    pub author: String,
}

/// What a change writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WritePlan {
    /// The key node's new record (created if the key has none).
    pub released: Option<ConfigRecord>,
    /// Rewrite the key node unchanged (compare-and-set) so that a concurrent release, which
    /// read the key before the canary existed, fails its own compare-and-set and sees it.
    pub fence_released: bool,
    pub create_canary: Option<ConfigRecord>,
    pub delete_canary: bool,
    /// History nodes to create, oldest first.
    pub history: Vec<ConfigRecord>,
    /// What the caller gets back: the version that the change made.
    pub result: ConfigRecord,
}

/// Plans `change` to `namespace/key`, whose released record is `released` and whose canary
/// candidate is `canary`.
pub fn plan(
    namespace: &str,
    key: &str,
    released: Option<&ConfigRecord>,
    canary: Option<&ConfigRecord>,
    change: &Change,
    stamp: &Stamp,
) -> Result<WritePlan> {
    let not_found = || ConfigError::NotFound { namespace: namespace.to_string(), key: key.to_string() };
    let canary_active = |c: &ConfigRecord| ConfigError::CanaryActive {
        namespace: namespace.to_string(),
        key: key.to_string(),
        version: c.version,
    };
    let no_canary = || ConfigError::NoCanary { namespace: namespace.to_string(), key: key.to_string() };
    let current = released.map_or(0, |r| r.version);
    let new = |value: &str, format: Format, version: u64, comment: &str| ConfigRecord {
        value: value.to_string(),
        format,
        version,
        time_ms: stamp.time_ms,
        author: stamp.author.clone(),
        comment: comment.to_string(),
        deleted: false,
        canary: None,
    };
    // A release in the middle of a canary would make the candidate's number ambiguous.
    if let (Some(c), Change::Publish { .. } | Change::Delete { .. } | Change::Rollback { .. } | Change::Canary { .. }) =
        (canary, change)
    {
        return Err(canary_active(c));
    }
    match change {
        Change::Publish { value, format, comment, expect_version } => {
            check_value(*format, value)?;
            if let Some(expected) = *expect_version {
                if expected != current {
                    return Err(ConfigError::VersionConflict {
                        namespace: namespace.to_string(),
                        key: key.to_string(),
                        expected,
                        actual: current,
                    });
                }
            }
            let record = new(value, *format, current + 1, comment);
            Ok(release(record))
        }
        Change::Delete { comment } => {
            let r = released.filter(|r| !r.deleted).ok_or_else(not_found)?;
            let mut record = new("", r.format, current + 1, comment);
            record.deleted = true;
            Ok(release(record))
        }
        Change::Rollback { from, comment } => {
            let mut record = new(&from.value, from.format, current + 1, comment);
            record.deleted = from.deleted;
            Ok(release(record))
        }
        Change::Canary { value, format, selector, comment } => {
            check_value(*format, value)?;
            if selector.is_empty() {
                return Err(ConfigError::BadName("a canary needs a selector (NAME=VALUE labels)".to_string()));
            }
            check_labels(selector)?;
            let r = released.filter(|r| !r.deleted).ok_or_else(not_found)?;
            let mut record = new(value, *format, r.version + 1, comment);
            record.canary = Some(CanaryInfo { selector: selector.clone(), state: CanaryState::Candidate });
            Ok(WritePlan {
                fence_released: true,
                create_canary: Some(record.clone()),
                result: record,
                ..WritePlan::default()
            })
        }
        Change::Promote { comment } => {
            let c = canary.ok_or_else(no_canary)?;
            if c.version != current + 1 {
                return Err(stale_canary(namespace, key, c, current));
            }
            let mut record = new(&c.value, c.format, c.version, &with_default(comment, &c.comment));
            record.canary = c.canary.clone().map(|info| CanaryInfo { state: CanaryState::Promoted, ..info });
            Ok(WritePlan { delete_canary: true, ..release(record) })
        }
        Change::Abandon { comment } => {
            let c = canary.ok_or_else(no_canary)?;
            if c.version != current + 1 {
                return Err(stale_canary(namespace, key, c, current));
            }
            let r = released.ok_or_else(not_found)?;
            let mut abandoned = c.clone();
            if let Some(info) = abandoned.canary.as_mut() {
                info.state = CanaryState::Abandoned;
            }
            // The clients that saw the candidate (version N) go back to the released value
            // as version N+1, never back to a lower number.
            let comment = with_default(comment, &format!("abandon canary v{}", c.version));
            let mut record = new(&r.value, r.format, c.version + 1, &comment);
            record.deleted = r.deleted;
            Ok(WritePlan {
                released: Some(record.clone()),
                delete_canary: true,
                history: vec![abandoned, record.clone()],
                result: record,
                ..WritePlan::default()
            })
        }
    }
}

/// Plans a released record and its history entry.
fn release(record: ConfigRecord) -> WritePlan {
    WritePlan { released: Some(record.clone()), history: vec![record.clone()], result: record, ..WritePlan::default() }
}

fn with_default(comment: &str, default: &str) -> String {
    if comment.is_empty() {
        default.to_string()
    } else {
        comment.to_string()
    }
}

fn stale_canary(namespace: &str, key: &str, canary: &ConfigRecord, current: u64) -> ConfigError {
    ConfigError::BadRecord {
        path: format!("{namespace}/{key}/canary"),
        reason: format!(
            "canary version {} does not follow the released version {current}; abandon it by hand",
            canary.version
        ),
    }
}

/// Checks a value against its format and the size limit.
pub fn check_value(format: Format, value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(ConfigError::TooLarge { size: value.len(), limit: MAX_VALUE_BYTES });
    }
    validate(format, value).map_err(|reason| ConfigError::InvalidValue { format, reason })
}

/// The history versions to delete so that at most `limit` (at least 1) remain: the oldest.
pub fn history_to_trim(versions: &[u64], limit: usize) -> Vec<u64> {
    let mut sorted = versions.to_vec();
    sorted.sort_unstable();
    let excess = sorted.len().saturating_sub(limit.max(1));
    sorted.truncate(excess);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp { time_ms: 1000, author: "alice".into() }
    }

    fn rec(value: &str, version: u64) -> ConfigRecord {
        ConfigRecord {
            value: value.into(),
            format: Format::Text,
            version,
            time_ms: 1,
            author: "bob".into(),
            comment: String::new(),
            deleted: false,
            canary: None,
        }
    }

    fn publish(value: &str, expect: Option<u64>) -> Change {
        Change::Publish { value: value.into(), format: Format::Text, comment: "c".into(), expect_version: expect }
    }

    fn selector() -> BTreeMap<String, String> {
        [("zone".to_string(), "a".to_string())].into()
    }

    fn canary_of(value: &str, version: u64) -> ConfigRecord {
        let mut c = rec(value, version);
        c.canary = Some(CanaryInfo { selector: selector(), state: CanaryState::Candidate });
        c
    }

    #[test]
    fn publish_table() {
        let v3 = rec("x", 3);
        let mut gone = rec("", 4);
        gone.deleted = true;
        // (released, expect, Ok(new version) or Err(actual version of the conflict))
        type Row<'a> = (Option<&'a ConfigRecord>, Option<u64>, std::result::Result<u64, u64>);
        let table: &[Row] = &[
            (None, None, Ok(1)),
            (None, Some(0), Ok(1)),
            (None, Some(1), Err(0)),
            (Some(&v3), None, Ok(4)),
            (Some(&v3), Some(3), Ok(4)),
            (Some(&v3), Some(2), Err(3)),
            (Some(&v3), Some(0), Err(3)),
            (Some(&gone), Some(4), Ok(5)),
        ];
        for (released, expect, want) in table {
            let got = plan("ns", "k", *released, None, &publish("y", *expect), &stamp());
            match (got, want) {
                (Ok(p), Ok(v)) => {
                    assert_eq!(p.result.version, *v);
                    assert_eq!(p.released.as_ref(), Some(&p.result));
                    assert_eq!(p.history, vec![p.result.clone()]);
                    assert_eq!((p.result.author.as_str(), p.result.time_ms), ("alice", 1000));
                    assert!(!p.fence_released && p.create_canary.is_none() && !p.delete_canary);
                }
                (Err(ConfigError::VersionConflict { expected, actual, .. }), Err(a)) => {
                    assert_eq!((expected, actual), (expect.unwrap(), *a));
                }
                (got, want) => panic!("{released:?} expect {expect:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        let change =
            Change::Publish { value: "{".into(), format: Format::Json, comment: String::new(), expect_version: None };
        assert!(matches!(plan("ns", "k", None, None, &change, &stamp()), Err(ConfigError::InvalidValue { .. })));
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(matches!(
            plan("ns", "k", None, None, &publish(&big, None), &stamp()),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[test]
    fn delete_and_rollback() {
        let v2 = rec("x", 2);
        let p = plan("ns", "k", Some(&v2), None, &Change::Delete { comment: String::new() }, &stamp()).unwrap();
        assert!(p.result.deleted && p.result.version == 3 && p.result.value.is_empty());
        let deleted = p.result;
        let again = plan("ns", "k", Some(&deleted), None, &Change::Delete { comment: String::new() }, &stamp());
        assert!(matches!(again, Err(ConfigError::NotFound { .. })));
        assert!(matches!(
            plan("ns", "k", None, None, &Change::Delete { comment: String::new() }, &stamp()),
            Err(ConfigError::NotFound { .. })
        ));
        // Rolling back a deleted key to version 2 brings its value back as version 4.
        let back = Change::Rollback { from: v2.clone(), comment: "rollback to v2".into() };
        let p = plan("ns", "k", Some(&deleted), None, &back, &stamp()).unwrap();
        assert_eq!((p.result.version, p.result.value.as_str(), p.result.deleted), (4, "x", false));
        assert_eq!(p.result.comment, "rollback to v2");
    }

    #[test]
    fn canary_lifecycle() {
        let v5 = rec("old", 5);
        let change =
            Change::Canary { value: "new".into(), format: Format::Text, selector: selector(), comment: String::new() };
        let p = plan("ns", "k", Some(&v5), None, &change, &stamp()).unwrap();
        assert!(p.fence_released && p.released.is_none() && p.history.is_empty());
        let c = p.create_canary.unwrap();
        assert_eq!((c.version, c.value.as_str()), (6, "new"));
        assert!(c.is_canary_candidate());

        // Nothing else may be released meanwhile.
        for blocked in [
            publish("z", None),
            Change::Delete { comment: String::new() },
            Change::Rollback { from: v5.clone(), comment: String::new() },
            change.clone(),
        ] {
            assert!(
                matches!(
                    plan("ns", "k", Some(&v5), Some(&c), &blocked, &stamp()),
                    Err(ConfigError::CanaryActive { version: 6, .. })
                ),
                "{blocked:?}"
            );
        }

        // Promote: released as the candidate's own number, so its clients see no change.
        let p = plan("ns", "k", Some(&v5), Some(&c), &Change::Promote { comment: String::new() }, &stamp()).unwrap();
        let r = p.released.unwrap();
        assert_eq!((r.version, r.value.as_str()), (6, "new"));
        assert_eq!(r.canary.as_ref().map(|i| i.state), Some(CanaryState::Promoted));
        assert!(p.delete_canary && p.history.len() == 1);

        // Abandon: the old value again, numbered above the candidate.
        let p = plan("ns", "k", Some(&v5), Some(&c), &Change::Abandon { comment: String::new() }, &stamp()).unwrap();
        let r = p.released.unwrap();
        assert_eq!((r.version, r.value.as_str()), (7, "old"));
        assert!(p.delete_canary);
        assert_eq!(p.history.iter().map(|h| h.version).collect::<Vec<_>>(), [6, 7]);
        assert_eq!(p.history[0].canary.as_ref().map(|i| i.state), Some(CanaryState::Abandoned));
    }

    #[test]
    fn canary_refusals() {
        let v5 = rec("old", 5);
        let change = |selector: BTreeMap<String, String>| Change::Canary {
            value: "new".into(),
            format: Format::Text,
            selector,
            comment: String::new(),
        };
        assert!(matches!(
            plan("ns", "k", None, None, &change(selector()), &stamp()),
            Err(ConfigError::NotFound { .. })
        ));
        assert!(matches!(
            plan("ns", "k", Some(&v5), None, &change(BTreeMap::new()), &stamp()),
            Err(ConfigError::BadName(_))
        ));
        for c in [Change::Promote { comment: String::new() }, Change::Abandon { comment: String::new() }] {
            assert!(matches!(plan("ns", "k", Some(&v5), None, &c, &stamp()), Err(ConfigError::NoCanary { .. })));
            // A candidate that does not follow the released version is not acted upon.
            let stale = canary_of("new", 9);
            assert!(matches!(
                plan("ns", "k", Some(&v5), Some(&stale), &c, &stamp()),
                Err(ConfigError::BadRecord { .. })
            ));
        }
    }

    #[test]
    fn trim_table() {
        // (versions, limit, deleted)
        let table: &[(&[u64], usize, &[u64])] = &[
            (&[], 50, &[]),
            (&[1, 2, 3], 3, &[]),
            (&[1, 2, 3], 2, &[1]),
            (&[5, 3, 4, 1, 2], 2, &[1, 2, 3]),
            (&[1, 2], 0, &[1]),
        ];
        for (versions, limit, want) in table {
            assert_eq!(history_to_trim(versions, *limit), *want, "{versions:?} limit {limit}");
        }
    }
}
