//! Where discovery lives in ZooKeeper: `<root>/services/<service>/<instance id>`.

use zedis_coord::paths::{check_name, check_root};

use super::error::Result;

/// The discovery part of the path layout, under a checked root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePaths {
    /// Checked root without a trailing slash; empty for `/`.
    root: String,
}

/// What a path under `<root>/services` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathKind<'a> {
    /// `<root>/services` itself.
    Services,
    /// `<root>/services/<service>`.
    Service(&'a str),
    /// `<root>/services/<service>/<id>`.
    Instance(&'a str, &'a str),
}

impl ServicePaths {
    /// Paths under `root` (e.g. `/zedis`).
    pub fn new(root: &str) -> Result<ServicePaths> {
        Ok(ServicePaths { root: check_root(root)? })
    }

    /// `<root>/services`: one child per service.
    pub fn services(&self) -> String {
        format!("{}/services", self.root)
    }

    /// `<root>/services/<service>`: one ephemeral child per live instance.
    pub fn service(&self, service: &str) -> String {
        format!("{}/services/{service}", self.root)
    }

    /// `<root>/services/<service>/<id>`: the instance record.
    pub fn instance(&self, service: &str, id: &str) -> String {
        format!("{}/services/{service}/{id}", self.root)
    }

    /// What `path` (from a watch event) names, if it is under `<root>/services` and its
    /// segments are valid names. Deeper paths are not discovery's and give `None`.
    pub fn classify<'a>(&self, path: &'a str) -> Option<PathKind<'a>> {
        let services = self.services();
        let rest = path.strip_prefix(services.as_str())?;
        if rest.is_empty() {
            return Some(PathKind::Services);
        }
        let rest = rest.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let service = parts.next().filter(|s| check_name("service", s).is_ok())?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(PathKind::Service(service)),
            (Some(id), None) if check_name("instance", id).is_ok() => Some(PathKind::Instance(service, id)),
            _ => None,
        }
    }
}

/// Checks a service name (one path segment).
pub fn check_service(name: &str) -> Result<()> {
    Ok(check_name("service", name)?)
}

/// Checks an instance id (one path segment).
pub fn check_instance_id(id: &str) -> Result<()> {
    Ok(check_name("instance id", id)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let p = ServicePaths::new("/zedis/").unwrap();
        assert_eq!(p.services(), "/zedis/services");
        assert_eq!(p.service("api"), "/zedis/services/api");
        assert_eq!(p.instance("api", "a-1"), "/zedis/services/api/a-1");
        let top = ServicePaths::new("/").unwrap();
        assert_eq!(top.instance("api", "x"), "/services/api/x");
        assert!(ServicePaths::new("zedis").is_err());
    }

    #[test]
    fn classify() {
        let p = ServicePaths::new("/zedis").unwrap();
        let table: &[(&str, Option<PathKind>)] = &[
            ("/zedis/services", Some(PathKind::Services)),
            ("/zedis/services/api", Some(PathKind::Service("api"))),
            ("/zedis/services/api/i-1", Some(PathKind::Instance("api", "i-1"))),
            ("/zedis/services/api/i-1/deeper", None),
            ("/zedis/servicesx", None),
            ("/zedis/services/", None),
            ("/zedis/services/bad name", None),
            ("/zedis/services/api/", None),
            ("/other/services/api", None),
            ("", None),
        ];
        for (path, want) in table {
            assert_eq!(p.classify(path), *want, "{path:?}");
        }
    }
}
