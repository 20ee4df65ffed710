//! The Redis 7 command table: what the proxy knows of every command, and the decisions made from it.
//!
//! Pure code, no I/O. The table itself ([`generated`]) is produced from a real `redis-server` by
//! `scripts/gen-command-table.py` and committed, so it is exactly what that Redis version declares: name, arity,
//! flags, the legacy key range, ACL categories, tips, key specs and subcommands.
//!
//! * [`resolve`] finds the [`CommandSpec`] of a request (a command, or the subcommand of a container such as
//!   `CONFIG GET`), with Redis's error texts for unknown commands; [`lookup`] and [`lookup_subcommand`] are the
//!   underlying searches. No allocation on success.
//! * [`check_arity`] applies Redis's arity rule.
//! * [`keys`] tells which arguments are keys, as `COMMAND GETKEYS` (and so Redis Cluster's routing) does, and
//!   rejects a bad `numkeys` with the command's own error text ([`KeyError`]).
//! * [`policy`] says how the proxy treats a request: route by slot, split and merge, fan out to every group,
//!   answer locally, block on a dedicated connection, pub/sub, transaction, or refuse.
//!
//! ```
//! use zedis_proxy::command_table::{check_arity, keys, policy, resolve, Policy};
//! use zedis_resp::Request;
//!
//! let req = Request::from_args(["zunionstore", "dst", "2", "a", "b"]);
//! let spec = resolve(&req).unwrap();
//! check_arity(spec, req.len()).unwrap();
//! assert_eq!(keys(spec, &req).unwrap().as_slice(), [1, 3, 4]);
//! assert_eq!(policy(spec, &req), Policy::Keyed);
//! ```

mod flags;
mod generated;
mod keys;
mod policy;

use std::fmt;

use zedis_resp::Request;

pub use flags::{AclCategories, CommandFlags, KeySpecFlags};
pub use generated::REDIS_VERSION;
pub use keys::{keys, shard_channels, KeyError, KeyIndices};
pub use policy::{policy, unsupported_error, AggregateKind, LocalKind, Policy, PubSubKind, SplitKind, TxKind};

use generated::{COMMANDS, MAX_TOKEN_LEN};

/// Redis Cluster's reply when the keys of one request live in different slots.
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// One command or subcommand of the table.
#[derive(Debug)]
pub struct CommandSpec {
    /// Redis's full name, lower-case, as in its error texts and `COMMAND INFO`: `"get"`, `"config|get"`.
    pub name: &'static str,
    /// The upper-case word this spec is looked up by: `"GET"`; for a subcommand its own word (`"GET"` for
    /// `config|get`).
    pub token: &'static str,
    /// For a subcommand, the container's token (`"CONFIG"`).
    pub parent: Option<&'static str>,
    /// Redis's arity: `n > 0` means exactly `n` arguments, `n < 0` at least `-n` (the command name and, for a
    /// subcommand, the container name included).
    pub arity: i32,
    /// Command flags.
    pub flags: CommandFlags,
    /// Legacy key range, as `COMMAND INFO` prints it: first key position (0: none).
    pub first_key: i32,
    /// Legacy key range: last key position; negative counts from the end (-1: the last argument).
    pub last_key: i32,
    /// Legacy key range: step between keys.
    pub step: i32,
    /// ACL categories.
    pub acl: AclCategories,
    /// Documentation group (`COMMAND DOCS`).
    pub group: CommandGroup,
    /// Command tips (`"request_policy:all_shards"`, `"nondeterministic_output"`, ...).
    pub tips: &'static [&'static str],
    /// Key specs, the Redis 7 description of where the keys are.
    pub key_specs: &'static [KeySpec],
    /// Subcommands of a container command (`CONFIG`, `CLIENT`, ...), sorted by token; empty otherwise.
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// True for a container command (`CONFIG`, `CLIENT`, `OBJECT`, ...): one with subcommands.
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// True if the command may modify the dataset (`write` flag).
    pub fn is_write(&self) -> bool {
        self.flags.contains(CommandFlags::WRITE)
    }

    /// True if the command only reads the dataset (`readonly` flag).
    pub fn is_readonly(&self) -> bool {
        self.flags.contains(CommandFlags::READONLY)
    }

    /// True if `args` arguments (the name(s) included) satisfy the arity.
    pub fn arity_ok(&self, args: usize) -> bool {
        let argc = i64::try_from(args).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// The name as users write it, upper-case with a space: `"GET"`, `"CONFIG GET"`.
    pub fn display_name(&self) -> DisplayName<'_> {
        DisplayName(self)
    }
}

/// [`CommandSpec::display_name`].
pub struct DisplayName<'a>(&'a CommandSpec);

impl fmt::Display for DisplayName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.0.parent {
            write!(f, "{parent} ")?;
        }
        f.write_str(self.0.token)
    }
}

/// True if the command may modify the dataset (`write` flag). Scripts (`EVAL`, `FCALL`) have neither this nor
/// the `readonly` flag: what they do is only known when they run.
pub fn is_write(spec: &CommandSpec) -> bool {
    spec.is_write()
}

/// True if the command only reads the dataset (`readonly` flag).
/// Whether running `spec` may change data: write commands, and scripts and functions that are
/// not the read-only variants (Redis does not flag `EVAL`/`FCALL` as writes, yet they may write).
pub fn may_write(spec: &CommandSpec) -> bool {
    spec.is_write() || (!spec.is_readonly() && spec.parent.is_none() && spec.group == CommandGroup::Scripting)
}

pub fn is_readonly(spec: &CommandSpec) -> bool {
    spec.is_readonly()
}

/// The documentation group of a command (`COMMAND DOCS`), in Redis's spelling via [`CommandGroup::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandGroup {
    Generic,
    String,
    List,
    Set,
    SortedSet,
    Hash,
    Pubsub,
    Transactions,
    Connection,
    Server,
    Scripting,
    Hyperloglog,
    Cluster,
    Sentinel,
    Geo,
    Stream,
    Bitmap,
    Module,
}

impl CommandGroup {
    /// The group as Redis names it (`"sorted-set"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CommandGroup::Generic => "generic",
            CommandGroup::String => "string",
            CommandGroup::List => "list",
            CommandGroup::Set => "set",
            CommandGroup::SortedSet => "sorted-set",
            CommandGroup::Hash => "hash",
            CommandGroup::Pubsub => "pubsub",
            CommandGroup::Transactions => "transactions",
            CommandGroup::Connection => "connection",
            CommandGroup::Server => "server",
            CommandGroup::Scripting => "scripting",
            CommandGroup::Hyperloglog => "hyperloglog",
            CommandGroup::Cluster => "cluster",
            CommandGroup::Sentinel => "sentinel",
            CommandGroup::Geo => "geo",
            CommandGroup::Stream => "stream",
            CommandGroup::Bitmap => "bitmap",
            CommandGroup::Module => "module",
        }
    }
}

/// A Redis 7 key spec: where to start looking ([`BeginSearch`]) and how to find the keys from there ([`FindKeys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Redis's note on the spec (often empty).
    pub notes: &'static str,
    /// How the command uses these keys; [`KeySpecFlags::NOT_KEY`] marks shard channels.
    pub flags: KeySpecFlags,
    /// Where the search starts.
    pub begin_search: BeginSearch,
    /// How the keys are found from there.
    pub find_keys: FindKeys,
}

/// First step of a [`KeySpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index.
    Index(i32),
    /// After the first argument equal to `keyword` (ignoring case), searching forward from index `start_from`,
    /// or backward from `argc + start_from` if it is negative.
    Keyword { keyword: &'static str, start_from: i32 },
    /// Cannot be told from the arguments: Redis uses the command's own key finder.
    Unknown,
}

/// Second step of a [`KeySpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys from the start up to `last_key` (relative to the start; negative: from the end of the arguments;
    /// -1 with a `limit` > 1: up to `1/limit` of the remaining arguments), every `key_step`.
    Range { last_key: i32, key_step: i32, limit: i32 },
    /// A count of keys at `keynum_idx` (relative to the start), keys from `first_key` (relative to the start),
    /// every `key_step`.
    Keynum { keynum_idx: i32, first_key: i32, key_step: i32 },
    /// Cannot be told from the arguments.
    Unknown,
}

/// Every top-level command, sorted by token (use [`CommandSpec::subcommands`] for subcommands).
pub fn commands() -> &'static [CommandSpec] {
    &COMMANDS
}

/// Every command and subcommand (containers before their subcommands).
pub fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
}

/// The top-level command called `name`, ignoring ASCII case. Binary search over the sorted table; no allocation.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(&COMMANDS, name)
}

/// The subcommand `sub` (ignoring ASCII case) of the container `parent`: `lookup_subcommand(config, b"get")`.
/// `None` if there is none (or `parent` is not a container).
pub fn lookup_subcommand(parent: &'static CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    find(parent.subcommands, sub)
}

/// A command by Redis's full name as `COMMAND INFO` accepts it: `"get"`, `"config|get"` (any case).
pub fn lookup_full_name(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name),
        Some(bar) => lookup_subcommand(lookup(&name[..bar])?, &name[bar + 1..]),
    }
}

fn find(table: &'static [CommandSpec], name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut buf = [0u8; MAX_TOKEN_LEN];
    let upper = &mut buf[..name.len()];
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    let upper: &[u8] = upper;
    table.binary_search_by(|c| c.token.as_bytes().cmp(upper)).ok().map(|i| &table[i])
}

/// The spec that runs `req`, as Redis finds it: the command named by argument 0 or, for a container given a
/// second argument, that subcommand. A container alone (`CONFIG`) resolves to the container, whose arity then
/// fails (except `COMMAND`, valid alone), exactly as in Redis.
pub fn resolve(req: &Request) -> Result<&'static CommandSpec, LookupError> {
    let Some(cmd) = lookup(req.name()) else {
        return Err(LookupError::unknown_command(req));
    };
    if !cmd.is_container() || req.len() < 2 {
        return Ok(cmd);
    }
    let sub = req.arg(1).unwrap_or_default();
    lookup_subcommand(cmd, sub).ok_or_else(|| LookupError::unknown_subcommand(cmd, sub))
}

/// An unknown command or subcommand. `Display` is Redis 7's error text (without the leading `-`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `
    #[error("{0}")]
    UnknownCommand(String),
    /// `ERR unknown subcommand 'foo'. Try CONFIG HELP.`
    #[error("{0}")]
    UnknownSubcommand(String),
}

impl LookupError {
    fn unknown_command(req: &Request) -> LookupError {
        // Redis: "unknown command '%.128s', with args beginning with: " then "'%.*s' " per argument while the
        // list is shorter than 128 bytes, each cut to what is left of the 128.
        let mut args: Vec<u8> = Vec::new();
        for a in req.args().skip(1) {
            if args.len() >= 128 {
                break;
            }
            let room = 128 - args.len();
            args.push(b'\'');
            args.extend_from_slice(c_str(a, room));
            args.extend_from_slice(b"' ");
        }
        let msg = format!(
            "ERR unknown command '{}', with args beginning with: {}",
            String::from_utf8_lossy(c_str(req.name(), 128)),
            String::from_utf8_lossy(&args)
        );
        LookupError::UnknownCommand(no_newlines(msg))
    }

    fn unknown_subcommand(parent: &CommandSpec, sub: &[u8]) -> LookupError {
        let msg = format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(c_str(sub, 128)),
            parent.token
        );
        LookupError::UnknownSubcommand(no_newlines(msg))
    }
}

/// What C's `%.Ns` prints of `s`: up to the first NUL, at most `max` bytes.
fn c_str(s: &[u8], max: usize) -> &[u8] {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len()).min(max);
    &s[..end]
}

/// Redis replaces CR and LF in error texts built from user input by spaces.
fn no_newlines(s: String) -> String {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ")
    } else {
        s
    }
}

/// Redis's arity rule: positive arity means exactly that many arguments, negative at least its absolute value
/// (command and subcommand names included).
pub fn check_arity(spec: &CommandSpec, argc: usize) -> Result<(), ArityError> {
    if spec.arity_ok(argc) {
        Ok(())
    } else {
        Err(ArityError { command: spec.name })
    }
}

/// The wrong number of arguments. `Display` is Redis 7's text: `ERR wrong number of arguments for 'get' command`
/// (`'config|get'` for a subcommand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ERR wrong number of arguments for '{command}' command")]
pub struct ArityError {
    /// Redis's full lower-case name of the command.
    pub command: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str]) -> Request {
        Request::from_args(args)
    }

    #[test]
    fn table_is_sorted_and_consistent() {
        fn check(table: &[CommandSpec], parent: Option<&str>) {
            for w in table.windows(2) {
                assert!(w[0].token < w[1].token, "{} before {}", w[0].token, w[1].token);
            }
            for c in table {
                assert_eq!(c.parent, parent, "{}", c.name);
                assert_eq!(c.token, c.token.to_ascii_uppercase());
                assert!(c.token.len() <= MAX_TOKEN_LEN);
                let expected = match parent {
                    Some(p) => format!("{}|{}", p.to_ascii_lowercase(), c.token.to_ascii_lowercase()),
                    None => c.token.to_ascii_lowercase(),
                };
                assert_eq!(c.name, expected);
                assert_ne!(c.arity, 0, "{}", c.name);
                check(c.subcommands, Some(c.token));
            }
        }
        check(commands(), None);
        assert!(commands().len() >= 200, "{}", commands().len());
        assert!(all_commands().count() >= 350);
        assert!(REDIS_VERSION.starts_with("7."));
    }

    #[test]
    fn every_spec_is_found_by_its_names() {
        for c in all_commands() {
            assert!(std::ptr::eq(lookup_full_name(c.name.as_bytes()).unwrap(), c), "{}", c.name);
            assert!(std::ptr::eq(lookup_full_name(c.name.to_ascii_uppercase().as_bytes()).unwrap(), c));
            match c.parent {
                None => assert!(std::ptr::eq(lookup(c.token.to_ascii_lowercase().as_bytes()).unwrap(), c)),
                Some(p) => {
                    let parent = lookup(p.as_bytes()).unwrap();
                    assert!(std::ptr::eq(lookup_subcommand(parent, c.token.as_bytes()).unwrap(), c));
                }
            }
        }
    }

    #[test]
    fn lookup_ignores_case_only() {
        let get = lookup(b"gEt").unwrap();
        assert_eq!(get.name, "get");
        assert_eq!((get.arity, get.first_key, get.last_key, get.step), (2, 1, 1, 1));
        assert!(get.is_readonly() && !get.is_write() && is_readonly(get) && !is_write(get));
        assert!(get.flags.contains(CommandFlags::FAST));
        assert!(get.acl.contains(AclCategories::STRING | AclCategories::READ));
        assert_eq!(get.group, CommandGroup::String);
        let set = lookup(b"SET").unwrap();
        assert!(set.is_write() && !set.is_readonly());
        assert!(lookup(b"GET ").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(b"G\xc3\x89T").is_none());
        assert!(lookup(&[b'A'; 1000]).is_none());
        assert!(lookup(b"config|get").is_none());
        assert_eq!(lookup(b"georadiusbymember_ro").unwrap().name, "georadiusbymember_ro");
        assert_eq!(lookup_full_name(b"Config|Get").unwrap().name, "config|get");
        assert!(lookup_full_name(b"get|x").is_none());
        assert!(lookup_full_name(b"config|").is_none());
        let mget = lookup(b"mget").unwrap();
        assert_eq!((mget.first_key, mget.last_key, mget.step), (1, -1, 1));
        let mset = lookup(b"mset").unwrap();
        assert_eq!((mset.arity, mset.first_key, mset.last_key, mset.step), (-3, 1, -1, 2));
    }

    #[test]
    fn containers_and_subcommands() {
        let cases: &[(&[&str], &str, i32)] = &[
            (&["CONFIG", "GET", "maxmemory"], "config|get", -3),
            (&["client", "setname", "x"], "client|setname", 3),
            (&["OBJECT", "encoding", "k"], "object|encoding", 3),
            (&["xinfo", "STREAM", "s"], "xinfo|stream", -3),
            (&["memory", "usage", "k"], "memory|usage", -3),
            (&["SCRIPT", "LOAD", "return 1"], "script|load", 3),
            (&["FUNCTION", "load", "x"], "function|load", -3),
            (&["command", "info", "get"], "command|info", -2),
            (&["COMMAND"], "command", -1),
            (&["XGROUP", "CREATECONSUMER", "s", "g", "c"], "xgroup|createconsumer", 5),
            (&["client", "no-evict", "on"], "client|no-evict", 3),
            (&["config"], "config", -2),
        ];
        for (args, name, arity) in cases {
            let spec = resolve(&req(args)).unwrap();
            assert_eq!(spec.name, *name);
            assert_eq!(spec.arity, *arity, "{name}");
        }
        let obj = resolve(&req(&["object", "freq", "k"])).unwrap();
        assert_eq!((obj.first_key, obj.last_key, obj.step), (2, 2, 1));
        assert_eq!(obj.display_name().to_string(), "OBJECT FREQ");
        assert_eq!(lookup(b"get").unwrap().display_name().to_string(), "GET");
        assert!(lookup(b"config").unwrap().is_container());
        // Not containers: a second word is an ordinary argument.
        assert_eq!(resolve(&req(&["get", "config"])).unwrap().name, "get");
    }

    #[test]
    fn unknown_command_texts_match_redis() {
        let e = resolve(&req(&["FOOBAR", "a", "b"])).unwrap_err();
        assert_eq!(e.to_string(), "ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' ");
        let e = resolve(&req(&["foo"])).unwrap_err();
        assert_eq!(e.to_string(), "ERR unknown command 'foo', with args beginning with: ");
        let e = resolve(&req(&["CONFIG", "FOO"])).unwrap_err();
        assert_eq!(e.to_string(), "ERR unknown subcommand 'FOO'. Try CONFIG HELP.");
        let e = resolve(&req(&["object", "foo", "x"])).unwrap_err();
        assert_eq!(e, LookupError::UnknownSubcommand("ERR unknown subcommand 'foo'. Try OBJECT HELP.".into()));
        let e = resolve(&req(&["x\r\ny", "a\nb"])).unwrap_err();
        assert_eq!(e.to_string(), "ERR unknown command 'x  y', with args beginning with: 'a b' ");
        // Arguments are cut once the list reaches 128 bytes; each to what is left of the 128.
        let long = "z".repeat(200);
        let e = resolve(&req(&["nope", "abc", &long, "tail"])).unwrap_err().to_string();
        let expected = format!("ERR unknown command 'nope', with args beginning with: 'abc' '{}' ", "z".repeat(122));
        assert_eq!(e, expected);
        let e = resolve(&req(&[&long])).unwrap_err().to_string();
        assert_eq!(e, format!("ERR unknown command '{}', with args beginning with: ", "z".repeat(128)));
        let e = resolve(&Request::from_args(Vec::<&str>::new())).unwrap_err();
        assert_eq!(e.to_string(), "ERR unknown command '', with args beginning with: ");
    }

    #[test]
    fn arity() {
        let get = lookup(b"GET").unwrap();
        assert!(check_arity(get, 2).is_ok());
        for n in [0, 1, 3, 100] {
            let e = check_arity(get, n).unwrap_err();
            assert_eq!(e.to_string(), "ERR wrong number of arguments for 'get' command");
        }
        let mset = lookup(b"MSET").unwrap();
        assert!(check_arity(mset, 2).is_err());
        assert!(check_arity(mset, 3).is_ok() && check_arity(mset, 4).is_ok() && check_arity(mset, 1000).is_ok());
        let config_get = lookup_full_name(b"config|get").unwrap();
        assert!(check_arity(config_get, 3).is_ok() && check_arity(config_get, 5).is_ok());
        assert_eq!(
            check_arity(config_get, 2).unwrap_err().to_string(),
            "ERR wrong number of arguments for 'config|get' command"
        );
        let config = resolve(&req(&["config"])).unwrap();
        assert_eq!(
            check_arity(config, 1).unwrap_err().to_string(),
            "ERR wrong number of arguments for 'config' command"
        );
        let command = resolve(&req(&["command"])).unwrap();
        assert!(check_arity(command, 1).is_ok());
        let ping = lookup(b"ping").unwrap();
        assert!(check_arity(ping, 1).is_ok() && check_arity(ping, 2).is_ok());
        assert!(check_arity(lookup(b"xread").unwrap(), 3).is_err());
        assert!(check_arity(lookup(b"quit").unwrap(), 5).is_ok());
        assert!(!lookup(b"get").unwrap().arity_ok(usize::MAX));
        assert!(lookup(b"mget").unwrap().arity_ok(usize::MAX));
    }

    #[test]
    fn crossslot_text() {
        assert_eq!(CROSSSLOT, "CROSSSLOT Keys in request don't hash to the same slot");
    }
}
