//! Canary selection, pure: which clients see a canary candidate, and which record a client
//! sees for a key.

use std::collections::BTreeMap;

use super::error::{ConfigError, Result};
use super::record::ConfigRecord;

/// Longest label name or value.
const MAX_LABEL_LEN: usize = 128;

/// Whether a client with `labels` is selected: every pair of the selector is among its labels.
/// An empty selector selects nobody (a release for everyone is a plain publish).
pub fn selector_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The record a client with `labels` sees for a key: the canary candidate if the client is
/// selected and the candidate is newer than the released record, else the released record.
/// Because a candidate is always numbered released + 1, and promoting or abandoning it writes a
/// released version at least that high, what one client sees never goes down.
pub fn effective<'a>(
    released: Option<&'a ConfigRecord>,
    canary: Option<&'a ConfigRecord>,
    labels: &BTreeMap<String, String>,
) -> Option<&'a ConfigRecord> {
    let candidate = canary.filter(|c| {
        c.canary.as_ref().is_some_and(|info| selector_matches(&info.selector, labels))
            && released.is_none_or(|r| c.version > r.version)
    });
    candidate.or(released)
}

/// Checks labels (and selectors): non-empty names and values of letters, digits, `-`, `_`,
/// `.` or `/`, at most 128 characters each.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_LABEL_LEN
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    for (k, v) in labels {
        if !ok(k) || !ok(v) {
            return Err(ConfigError::BadName(format!(
                "label {k:?}={v:?}: use 1 to {MAX_LABEL_LEN} letters, digits, '-', '_', '.' or '/'"
            )));
        }
    }
    Ok(())
}

/// Parses `k=v,k2=v2` (also accepts several such strings, e.g. repeated flags).
pub fn parse_labels<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for spec in specs {
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError::BadName(format!("label {pair:?}: expected NAME=VALUE")))?;
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    check_labels(&labels)?;
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::format::Format;
    use crate::config::record::{CanaryInfo, CanaryState};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn record(version: u64, selector: Option<&[(&str, &str)]>) -> ConfigRecord {
        ConfigRecord {
            value: format!("v{version}"),
            format: Format::Text,
            version,
            time_ms: 0,
            author: String::new(),
            comment: String::new(),
            deleted: false,
            canary: selector.map(|s| CanaryInfo { selector: labels(s), state: CanaryState::Candidate }),
        }
    }

    #[test]
    fn selector_table() {
        // (selector, labels, matches)
        type Row<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)], bool);
        let table: &[Row] = &[
            (&[("zone", "a")], &[("zone", "a")], true),
            (&[("zone", "a")], &[("zone", "a"), ("tier", "web")], true),
            (&[("zone", "a"), ("tier", "web")], &[("zone", "a")], false),
            (&[("zone", "a")], &[("zone", "b")], false),
            (&[("zone", "a")], &[], false),
            (&[], &[("zone", "a")], false),
            (&[], &[], false),
        ];
        for (selector, have, want) in table {
            assert_eq!(selector_matches(&labels(selector), &labels(have)), *want, "{selector:?} vs {have:?}");
        }
    }

    #[test]
    fn effective_table() {
        let released = record(5, None);
        let canary = record(6, Some(&[("zone", "a")]));
        let stale_canary = record(5, Some(&[("zone", "a")]));
        let a = labels(&[("zone", "a")]);
        let b = labels(&[("zone", "b")]);
        // (released, canary, labels, expected version)
        type Row<'a> = (Option<&'a ConfigRecord>, Option<&'a ConfigRecord>, &'a BTreeMap<String, String>, Option<u64>);
        let table: &[Row] = &[
            (Some(&released), None, &a, Some(5)),
            (Some(&released), Some(&canary), &a, Some(6)),
            (Some(&released), Some(&canary), &b, Some(5)),
            (Some(&released), Some(&stale_canary), &a, Some(5)),
            (None, Some(&canary), &a, Some(6)),
            (None, Some(&canary), &b, None),
            (None, None, &a, None),
        ];
        for (r, c, l, want) in table {
            assert_eq!(effective(*r, *c, l).map(|x| x.version), *want, "{r:?} {c:?} {l:?}");
        }
    }

    #[test]
    fn parse_labels_table() {
        assert_eq!(
            parse_labels(["zone=a,tier=web", "dc = x"]).unwrap(),
            labels(&[("zone", "a"), ("tier", "web"), ("dc", "x")])
        );
        assert!(parse_labels(["zone"]).is_err());
        assert!(parse_labels(["zone="]).is_err());
        assert!(parse_labels(["a b=c"]).is_err());
        assert!(parse_labels([""]).unwrap().is_empty());
    }
}
