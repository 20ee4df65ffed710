//! Server addresses are kept as `host:port` strings, exactly as the operator gave them
//! (after validation), because that is what Redis prints in `INFO replication`.

use crate::error::TopologyError;

/// Checks `host:port` and returns it trimmed. IPv6 hosts are written `[::1]:6379`.
pub fn parse_addr(addr: &str) -> Result<String, TopologyError> {
    let addr = addr.trim();
    let bad = |reason: &str| TopologyError::BadAddress { addr: addr.to_string(), reason: reason.to_string() };
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("expected host:port"))?;
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("write IPv6 hosts in brackets, e.g. [::1]:6379"));
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/' || c == ',') {
        return Err(bad("host has characters that are not allowed"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad("port must be a number from 1 to 65535")),
        Ok(_) => Ok(addr.to_string()),
    }
}

/// Splits `host:port` for `REPLICAOF host port`.
pub fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let table: &[(&str, Option<&str>)] = &[
            ("127.0.0.1:6379", Some("127.0.0.1:6379")),
            (" localhost:7000 ", Some("localhost:7000")),
            ("[::1]:6379", Some("[::1]:6379")),
            ("::1:6379", None),
            ("127.0.0.1", None),
            (":6379", None),
            ("host:0", None),
            ("host:70000", None),
            ("host:abc", None),
            ("a b:1", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_addr(input).ok().as_deref(), *want, "{input}");
        }
        assert_eq!(split_addr("[::1]:6379"), Some(("::1", 6379)));
        assert_eq!(split_addr("10.0.0.1:7000"), Some(("10.0.0.1", 7000)));
    }
}
