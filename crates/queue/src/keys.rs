//! The Redis keys of a queue. Pure.

use crate::error::QueueError;

/// Longest queue or topic name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// A queue's keys. Both carry the hash tag `{NAME}`, so they live in one slot (one group of
/// the zedis cluster) and a script may touch both through the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueKeys {
    /// The stream of messages: `zedis:queue:{NAME}`.
    pub stream: String,
    /// Messages that failed too often: `zedis:queue:{NAME}:dead`.
    pub dead: String,
}

impl QueueKeys {
    pub fn new(name: &str) -> Result<QueueKeys, QueueError> {
        check_name(name)?;
        Ok(QueueKeys { stream: format!("zedis:queue:{{{name}}}"), dead: format!("zedis:queue:{{{name}}}:dead") })
    }
}

/// Names are printable ASCII without spaces or braces (a brace would change the hash tag).
pub fn check_name(name: &str) -> Result<(), QueueError> {
    let bad = |why| Err(QueueError::BadName { name: name.to_string(), why });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 200 bytes");
    }
    if name.contains(['{', '}']) {
        return bad("braces would change the key's hash tag");
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("only printable ASCII without spaces is allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_hash_tag() {
        let k = QueueKeys::new("emails").unwrap();
        assert_eq!(k.stream, "zedis:queue:{emails}");
        assert_eq!(k.dead, "zedis:queue:{emails}:dead");
    }

    #[test]
    fn bad_names() {
        for (name, needle) in [
            ("", "empty"),
            ("a{b", "hash tag"),
            ("a}", "hash tag"),
            ("a b", "printable"),
            ("é", "printable"),
            ("a\n", "printable"),
        ] {
            let err = QueueKeys::new(name).unwrap_err().to_string();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
        assert!(QueueKeys::new(&"x".repeat(201)).is_err());
        assert!(QueueKeys::new("jobs.high-priority:v2").is_ok());
    }
}
