//! The record of one instance of a service, as stored (JSON) in its znode and in the Redis
//! mirror.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::{DiscoveryError, Result};
use super::paths::{check_instance_id, check_service};

/// Weight of an instance that does not say (the weighted picker's unit).
pub const DEFAULT_WEIGHT: u32 = 100;

/// Largest record accepted: well below ZooKeeper's 1 MiB `jute.maxbuffer`, so a service's
/// records can still be read together.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// One instance of a service.
///
/// JSON, readable with `zkCli.sh get` and from the Redis mirror:
/// `{"name":"api","id":"api-1","address":"10.0.0.7","port":8080,"weight":100,
/// "metadata":{"zone":"a"},"enabled":true,"registered_at":1700000000000}`.
/// Every field but `name`, `id`, `address` and `port` may be left out by writers in other
/// languages; unknown fields are ignored (newer writers stay readable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// Service name (also the parent znode's name).
    pub name: String,
    /// Instance id, unique within the service (also the znode's name).
    pub id: String,
    /// Host name or IP address clients connect to.
    pub address: String,
    pub port: u16,
    /// Relative share of the weighted picker's traffic; 0 gets none while others have weight.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Free-form labels (zone, version, protocol...).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Disabled instances stay listed but pickers never choose them (drain before shutdown).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// When the instance was first registered, milliseconds since the Unix epoch (set by
    /// [`Discovery::register`](super::Discovery::register); kept across re-registrations).
    #[serde(default)]
    pub registered_at: u64,
}

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

fn enabled_by_default() -> bool {
    true
}

impl ServiceInstance {
    /// An enabled instance of weight [`DEFAULT_WEIGHT`] without metadata.
    pub fn new(name: impl Into<String>, id: impl Into<String>, address: impl Into<String>, port: u16) -> Self {
        ServiceInstance {
            name: name.into(),
            id: id.into(),
            address: address.into(),
            port,
            weight: DEFAULT_WEIGHT,
            metadata: BTreeMap::new(),
            enabled: true,
            registered_at: 0,
        }
    }

    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// `address:port`, with brackets around an IPv6 address.
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// Checks that the instance can be registered: valid names, an address, a port, a record
    /// of bounded size.
    pub fn validate(&self) -> Result<()> {
        check_service(&self.name)?;
        check_instance_id(&self.id)?;
        let bad = |why: String| Err(DiscoveryError::InvalidInstance(format!("{}/{}: {why}", self.name, self.id)));
        if self.address.is_empty() || self.address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad(format!("address {:?} must be a host name or IP address", self.address));
        }
        if self.port == 0 {
            return bad("port 0 cannot be connected to".into());
        }
        if let Some(key) = self.metadata.keys().find(|k| k.is_empty() || k.chars().any(char::is_control)) {
            return bad(format!("metadata key {key:?} must be non-empty printable text"));
        }
        let len = self.to_json().len();
        if len > MAX_RECORD_BYTES {
            return bad(format!("record of {len} bytes is larger than {MAX_RECORD_BYTES}"));
        }
        Ok(())
    }

    /// The record as stored.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, integers and a string map always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the record of znode `path`, which names the instance: the path's service and id
    /// win over the record's (the path is what watchers and the mirror key on).
    pub fn from_record(service: &str, id: &str, path: &str, data: &[u8]) -> Result<ServiceInstance> {
        let mut instance: ServiceInstance = serde_json::from_slice(data)
            .map_err(|e| DiscoveryError::BadRecord { path: path.to_string(), reason: e.to_string() })?;
        if instance.name != service || instance.id != id {
            tracing::debug!(path, name = %instance.name, id = %instance.id, "record names another instance; the path wins");
            instance.name = service.to_string();
            instance.id = id.to_string();
        }
        Ok(instance)
    }

    /// Whether two records describe the same endpoint (the same process restarted).
    pub fn same_endpoint(&self, other: &ServiceInstance) -> bool {
        self.address == other.address && self.port == other.port
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_defaults() {
        let i = ServiceInstance::new("api", "a-1", "10.0.0.7", 8080).with_metadata("zone", "a").with_weight(5);
        let back = ServiceInstance::from_record("api", "a-1", "/p", &i.to_json()).unwrap();
        assert_eq!(back, i);
        let minimal = br#"{"name":"api","id":"a-1","address":"h","port":1,"extra":[1]}"#;
        let m = ServiceInstance::from_record("api", "a-1", "/p", minimal).unwrap();
        assert_eq!((m.weight, m.enabled, m.metadata.len(), m.registered_at), (DEFAULT_WEIGHT, true, 0, 0));
    }

    #[test]
    fn path_names_the_instance() {
        let i = ServiceInstance::new("other", "zz", "h", 1);
        let got = ServiceInstance::from_record("api", "a-1", "/p", &i.to_json()).unwrap();
        assert_eq!((got.name.as_str(), got.id.as_str()), ("api", "a-1"));
    }

    #[test]
    fn bad_records() {
        for data in [&b""[..], b"{", b"null", br#"{"name":"api","id":"a","address":"h","port":70000}"#] {
            let err = ServiceInstance::from_record("api", "a", "/p", data).unwrap_err();
            assert!(matches!(err, DiscoveryError::BadRecord { .. }), "{data:?}: {err}");
        }
    }

    #[test]
    fn validation() {
        let ok = ServiceInstance::new("api", "a-1", "10.0.0.7", 8080);
        assert!(ok.validate().is_ok());
        let table: Vec<(ServiceInstance, &str)> = vec![
            (ServiceInstance::new("", "a", "h", 1), "service name"),
            (ServiceInstance::new("a/b", "a", "h", 1), "service name"),
            (ServiceInstance::new("api", "..", "h", 1), "instance id"),
            (ServiceInstance::new("api", "a", "", 1), "address"),
            (ServiceInstance::new("api", "a", "h h", 1), "address"),
            (ServiceInstance::new("api", "a", "h", 0), "port"),
            (ok.clone().with_metadata("", "v"), "metadata key"),
            (ok.clone().with_metadata("k", "x".repeat(MAX_RECORD_BYTES)), "larger than"),
        ];
        for (instance, needle) in table {
            let err = instance.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{instance:?}: {err}");
        }
    }

    #[test]
    fn endpoint() {
        assert_eq!(ServiceInstance::new("a", "b", "10.0.0.1", 80).endpoint(), "10.0.0.1:80");
        assert_eq!(ServiceInstance::new("a", "b", "::1", 80).endpoint(), "[::1]:80");
        assert_eq!(ServiceInstance::new("a", "b", "[::1]", 80).endpoint(), "[::1]:80");
    }
}
