//! The ZooKeeper path layout (see the brief's "ZooKeeper layout"). Every path zedis uses is
//! built here, so the layout can be read in one place.

use crate::error::{CoordError, Result};

/// Checks a root path: absolute, no trailing slash (except `/`), no empty segments.
pub fn check_root(root: &str) -> Result<String> {
    let bad = || CoordError::BadPath(format!("root {root:?} must be an absolute path like /zedis"));
    if !root.starts_with('/') || root.contains("//") || root.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    let trimmed = root.trim_end_matches('/');
    Ok(if trimmed.is_empty() { String::new() } else { trimmed.to_string() })
}

/// Checks a name used as one path segment (cluster, lock, service, ...).
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CoordError::BadPath(format!("{kind} name {name:?}: use letters, digits, '-', '_' or '.'")))
    }
}

/// Paths of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPaths {
    root: String,
    cluster: String,
}

impl ClusterPaths {
    pub fn new(root: &str, cluster: &str) -> Result<ClusterPaths> {
        check_name("cluster", cluster)?;
        Ok(ClusterPaths { root: check_root(root)?, cluster: cluster.to_string() })
    }

    pub fn root(&self) -> &str {
        if self.root.is_empty() {
            "/"
        } else {
            &self.root
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn clusters(&self) -> String {
        format!("{}/clusters", self.root)
    }

    pub fn base(&self) -> String {
        format!("{}/clusters/{}", self.root, self.cluster)
    }

    pub fn topology(&self) -> String {
        format!("{}/topology", self.base())
    }

    pub fn election(&self) -> String {
        format!("{}/controllers/election", self.base())
    }

    /// Ephemeral record of the controller that is acting as leader right now.
    pub fn leader(&self) -> String {
        format!("{}/controllers/leader", self.base())
    }

    pub fn observers(&self) -> String {
        format!("{}/controllers/observers", self.base())
    }

    pub fn observer(&self, id: &str) -> String {
        format!("{}/{id}", self.observers())
    }

    pub fn proxies(&self) -> String {
        format!("{}/proxies", self.base())
    }

    /// In-process routers (`zedis::Cluster`): registered like proxies, listed apart.
    pub fn clients(&self) -> String {
        format!("{}/clients", self.base())
    }

    pub fn events(&self) -> String {
        format!("{}/events", self.base())
    }

    pub fn requests(&self) -> String {
        format!("{}/requests", self.base())
    }

    /// Progress records of slot migrations (written by the controller leader's mover).
    pub fn migrations(&self) -> String {
        format!("{}/migrations", self.base())
    }

    pub fn migration(&self, id: u64) -> String {
        format!("{}/{id}", self.migrations())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let p = ClusterPaths::new("/zedis", "default").unwrap();
        assert_eq!(p.topology(), "/zedis/clusters/default/topology");
        assert_eq!(p.election(), "/zedis/clusters/default/controllers/election");
        assert_eq!(p.observer("c1"), "/zedis/clusters/default/controllers/observers/c1");
        assert_eq!(p.events(), "/zedis/clusters/default/events");
        let p = ClusterPaths::new("/", "x").unwrap();
        assert_eq!(p.topology(), "/clusters/x/topology");
        assert_eq!(ClusterPaths::new("/a/b/", "x").unwrap().base(), "/a/b/clusters/x");
    }

    #[test]
    fn bad_names_and_roots() {
        for root in ["zedis", "/a//b", ""] {
            assert!(ClusterPaths::new(root, "x").is_err(), "{root}");
        }
        for name in ["", "a/b", "..", "a b", "ü"] {
            assert!(ClusterPaths::new("/zedis", name).is_err(), "{name}");
        }
    }
}
