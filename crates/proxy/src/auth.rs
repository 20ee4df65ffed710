//! Client authentication and roles. A proxy may require a password (the `default` user) and
//! may know named users, each with a role: `read` runs only commands that do not write,
//! `write` runs everything but cluster-wide destruction, `admin` runs everything the proxy
//! supports (FLUSHALL, FLUSHDB). Decisions are pure functions.

use crate::command_table::{AggregateKind, CommandSpec, LocalKind, Policy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.to_ascii_lowercase().as_str() {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: use read, write or admin")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub role: Role,
}

impl std::str::FromStr for User {
    type Err = String;
    /// `NAME:PASSWORD:ROLE`
    fn from_str(s: &str) -> Result<User, String> {
        let mut parts = s.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(password), Some(role)) if !name.is_empty() && !password.is_empty() => {
                Ok(User { name: name.into(), password: password.into(), role: role.parse()? })
            }
            _ => Err(format!("bad user {s:?}: expected NAME:PASSWORD:ROLE")),
        }
    }
}

/// Who may connect. Empty means no authentication (everyone is `admin`, as Redis's default
/// user without a password).
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    /// Password of the `default` user, who gets the `admin` role.
    pub password: Option<String>,
    pub users: Vec<User>,
}

/// Constant-time comparison so response timing does not leak a password's prefix.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AuthConfig {
    pub fn required(&self) -> bool {
        self.password.is_some() || !self.users.is_empty()
    }

    /// The role a connection starts with: full access when nothing is configured.
    pub fn initial_role(&self) -> Option<Role> {
        if self.required() {
            None
        } else {
            Some(Role::Admin)
        }
    }

    /// `AUTH [user] password`.
    pub fn check(&self, user: Option<&str>, password: &str) -> Result<Role, &'static str> {
        match user {
            None | Some("default") => match &self.password {
                Some(p) if same(p, password) => Ok(Role::Admin),
                Some(_) => Err(WRONGPASS),
                None if user.is_none() => Err(NO_PASSWORD),
                None => Err(WRONGPASS),
            },
            Some(name) => match self.users.iter().find(|u| u.name == name) {
                Some(u) if same(&u.password, password) => Ok(u.role),
                _ => Err(WRONGPASS),
            },
        }
    }
}

pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// Whether a connection in `role` (None: not authenticated) may run `spec` under `policy`.
pub fn permitted(role: Option<Role>, spec: &CommandSpec, policy: Policy) -> Result<(), String> {
    let Some(role) = role else {
        return match policy {
            Policy::Local(LocalKind::Auth | LocalKind::Hello | LocalKind::Quit | LocalKind::Reset) => Ok(()),
            _ => Err(NOAUTH.to_string()),
        };
    };
    let denied = || Err(format!("NOPERM this user has no permissions to run the '{}' command", spec.name));
    match (role, policy) {
        (Role::Admin, _) => Ok(()),
        (_, Policy::AllGroups(AggregateKind::Flush)) => denied(),
        (Role::Read, _) if crate::command_table::may_write(spec) => denied(),
        // Publishing is a write to other clients' streams.
        (
            Role::Read,
            Policy::PubSub(crate::command_table::PubSubKind::Publish | crate::command_table::PubSubKind::SPublish),
        ) => denied(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_table::{lookup, policy};
    use zedis_resp::Request;

    fn decide(role: Option<Role>, args: &[&str]) -> bool {
        let req = Request::from_args(args);
        let spec = crate::command_table::resolve(&req).unwrap();
        permitted(role, spec, policy(spec, &req)).is_ok()
    }

    #[test]
    fn roles() {
        let table: &[(Option<Role>, &[&str], bool)] = &[
            (None, &["GET", "k"], false),
            (None, &["AUTH", "pw"], true),
            (None, &["HELLO", "2", "AUTH", "u", "p"], true),
            (None, &["QUIT"], true),
            (Some(Role::Read), &["GET", "k"], true),
            (Some(Role::Read), &["MGET", "a", "b"], true),
            (Some(Role::Read), &["SET", "k", "v"], false),
            (Some(Role::Read), &["DEL", "k"], false),
            (Some(Role::Read), &["PUBLISH", "c", "m"], false),
            (Some(Role::Read), &["EVAL", "return 1", "0"], false),
            (Some(Role::Read), &["FCALL", "f", "0"], false),
            (Some(Role::Read), &["EVAL_RO", "return 1", "0"], true),
            (Some(Role::Read), &["SUBSCRIBE", "c"], true),
            (Some(Role::Write), &["SET", "k", "v"], true),
            (Some(Role::Write), &["FLUSHALL"], false),
            (Some(Role::Write), &["FLUSHDB"], false),
            (Some(Role::Admin), &["FLUSHALL"], true),
        ];
        for (role, args, want) in table {
            assert_eq!(decide(*role, args), *want, "{role:?} {args:?}");
        }
        assert!(lookup(b"GET").is_some());
    }

    #[test]
    fn passwords_and_users() {
        let cfg = AuthConfig {
            password: Some("secret".into()),
            users: vec!["ro:rpw:read".parse().unwrap(), "rw:wpw:write".parse().unwrap()],
        };
        assert_eq!(cfg.check(None, "secret"), Ok(Role::Admin));
        assert_eq!(cfg.check(Some("default"), "secret"), Ok(Role::Admin));
        assert_eq!(cfg.check(None, "nope"), Err(WRONGPASS));
        assert_eq!(cfg.check(Some("ro"), "rpw"), Ok(Role::Read));
        assert_eq!(cfg.check(Some("rw"), "wpw"), Ok(Role::Write));
        assert_eq!(cfg.check(Some("rw"), "rpw"), Err(WRONGPASS));
        assert_eq!(cfg.check(Some("ghost"), "x"), Err(WRONGPASS));
        assert_eq!(cfg.initial_role(), None);
        let open = AuthConfig::default();
        assert_eq!(open.initial_role(), Some(Role::Admin));
        assert_eq!(open.check(None, "x"), Err(NO_PASSWORD));
        assert!("bad".parse::<User>().is_err());
        assert!("a:b:root".parse::<User>().is_err());
        assert!("a::read".parse::<User>().is_err());
    }
}
