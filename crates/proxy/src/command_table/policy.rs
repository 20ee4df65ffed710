//! How the proxy treats each command: [`policy`].
//!
//! The proxy fronts several independent Redis groups (one master + replicas each), routes keys by hash slot, and
//! owns the client connection, so every command falls in one of these classes:
//!
//! * [`Policy::Keyed`]: data commands. All keys must hash to one slot (else [`CROSSSLOT`](super::CROSSSLOT), as
//!   Redis Cluster says), and the request goes to that slot's master. A request with no key (`EVAL` with 0 keys,
//!   or arguments the server will reject) may go to any group.
//! * [`Policy::Split`]: `MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`, `TOUCH`: split by slot, merged.
//! * [`Policy::AllGroups`]: keyspace-wide commands and script/function management, sent to every group.
//! * [`Policy::AnyGroup`]: keyless commands whose answer does not depend on the data (`TIME`, `LOLWUT`, the
//!   `HELP` of containers, `COMMAND DOCS`, `FUNCTION LIST`): forwarded to one group's master.
//! * [`Policy::Local`]: connection state and introspection, answered by the proxy.
//! * [`Policy::Blocking`]: may block: run on a dedicated backend connection.
//! * [`Policy::PubSub`], [`Policy::Transaction`]: their own session machinery.
//! * [`Policy::Unsupported`]: makes no sense behind a proxy; refused with [`unsupported_error`].
//!
//! The decision is made from the [`CommandSpec`] and, for a few commands, the arguments (`XREAD ... BLOCK`,
//! `COPY ... DB`). A keyless command this module does not name is refused, so a command added by a newer Redis
//! is never forwarded blindly: the table tests check that every keyless command of the table is classified.

use zedis_resp::Request;

use super::keys::{may_have_keys, parse_i64, xread_blocks};
use super::{CommandFlags, CommandSpec};

/// How the proxy treats a request. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Single slot: route by the keys ([`keys`](super::keys)); all keys must share a slot, else
    /// [`CROSSSLOT`](super::CROSSSLOT). Most data commands, and the multi-key ones that must stay atomic:
    /// `MSETNX`, `RENAME`, `SINTER`, `ZUNIONSTORE`, `LMOVE`, `PFMERGE`, `EVAL`/`FCALL` with keys, ... No key: any
    /// group.
    Keyed,
    /// Split by slot, one sub-request per slot (or per group), then merged.
    Split(SplitKind),
    /// Sent to every group's master; the replies aggregated.
    AllGroups(AggregateKind),
    /// Keyless and independent of the data: forwarded to any one group's master, the reply passed through.
    AnyGroup,
    /// Answered by the proxy itself.
    Local(LocalKind),
    /// A blocking command (`BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`, `BZPOPMIN`, `BZPOPMAX`, `BZMPOP`,
    /// `XREAD`/`XREADGROUP` with `BLOCK`): routed like [`Policy::Keyed`], but on a dedicated backend connection
    /// so that it does not stall the pipeline other clients share. (Inside `MULTI` Redis does not block, and the
    /// transaction's connection is dedicated anyway.)
    Blocking,
    /// Publish/subscribe.
    PubSub(PubSubKind),
    /// `MULTI`/`EXEC`/`DISCARD`/`WATCH`/`UNWATCH`: a transaction runs on one slot's master (the first keyed
    /// command, or `WATCH`, picks the slot; every later key must hash to it).
    Transaction(TxKind),
    /// Refused with [`unsupported_error`]; the text says why.
    Unsupported(&'static str),
}

/// How a [`Policy::Split`] command is split and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// `MGET key...`: one `MGET` per slot; the values merged back in the order of the keys.
    MGet,
    /// `MSET key value [key value ...]`: one `MSET` per slot with its pairs; `OK` once every part said `OK`
    /// (not atomic across slots, as in Redis Cluster proxies; `MSETNX` stays single-slot).
    MSet,
    /// `DEL`, `UNLINK`, `EXISTS`, `TOUCH`: one per slot; the reply is the sum of the integer replies.
    SumIntegers,
}

/// How the replies of a [`Policy::AllGroups`] command are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    /// `DBSIZE`: the sum of the integers.
    Sum,
    /// `KEYS pattern`: the concatenation of the arrays.
    Concat,
    /// `SCAN`: one group at a time; the proxy's cursor encodes the group index and that group's cursor.
    Scan,
    /// `RANDOMKEY`: a random group's key; if that group is empty, another group's; nil if all are empty.
    RandomKey,
    /// `FLUSHDB`, `FLUSHALL`: admin users only; `OK` once every group said `OK`.
    Flush,
    /// `OK` once every group said `OK` (`SCRIPT FLUSH`, `FUNCTION DELETE`/`FLUSH`/`RESTORE`); else the first error.
    AllOk,
    /// Every group must succeed with the same reply, which is returned (`SCRIPT LOAD` → the SHA1, `FUNCTION
    /// LOAD` → the library name); else the first error.
    SameReply,
    /// `SCRIPT EXISTS sha...`: arrays of 0/1, combined with AND per position (a script is usable through the
    /// proxy only if every group has it).
    AndPerPosition,
    /// `SCRIPT KILL`, `FUNCTION KILL`: `OK` if some group stopped a script; else the first error (`NOTBUSY`).
    AnyOk,
}

/// Which [`Policy::Local`] command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    Ping,
    Echo,
    Quit,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`: the proxy's own handshake (it speaks RESP2 and RESP3).
    Hello,
    /// `AUTH`: against the proxy's users.
    Auth,
    /// `SELECT 0` is `OK`; any other database is refused (only database 0 exists behind the proxy).
    Select,
    /// `RESET`: the proxy's session state (and leaves pub/sub and transaction modes).
    Reset,
    /// `READONLY`, `READWRITE`: cluster-client courtesy, `OK`.
    ReadOnly,
    ReadWrite,
    ClientId,
    ClientSetName,
    ClientGetName,
    /// `CLIENT INFO` of this proxy connection.
    ClientInfo,
    /// `CLIENT LIST` of the proxy's client connections.
    ClientList,
    /// `CLIENT REPLY ON|OFF|SKIP`: the proxy drops replies itself.
    ClientReply,
    /// `INFO [section...]`: the proxy's own sections (server, clients, stats, keyspace summed over groups, ...).
    Info,
    /// `COMMAND`, `COMMAND COUNT`, `INFO`, `LIST`, `GETKEYS`, `GETKEYSANDFLAGS`: from this table (the spec tells
    /// which). `COMMAND DOCS` and `COMMAND HELP` are [`Policy::AnyGroup`].
    Command,
    /// `ACL WHOAMI`: the proxy's user for this connection.
    AclWhoami,
}

/// Which [`Policy::PubSub`] command. Plain channels (`SUBSCRIBE`, `PSUBSCRIBE`, `PUBLISH`) are global in Redis, so
/// the proxy must make a message published through any group reach every subscriber; shard channels
/// (`SSUBSCRIBE`, `SPUBLISH`) hash to a slot like keys ([`shard_channels`](super::shard_channels)) and go to that
/// slot's group, as in Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubSubKind {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    SSubscribe,
    SUnsubscribe,
    Publish,
    SPublish,
    /// `PUBSUB CHANNELS [pattern]`
    Channels,
    /// `PUBSUB NUMSUB [channel...]`
    NumSub,
    /// `PUBSUB NUMPAT`
    NumPat,
    /// `PUBSUB SHARDCHANNELS [pattern]`
    ShardChannels,
    /// `PUBSUB SHARDNUMSUB [channel...]`
    ShardNumSub,
}

/// Which [`Policy::Transaction`] command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    Multi,
    Exec,
    Discard,
    /// `WATCH key...`: keys as [`keys`](super::keys) finds them; all in the transaction's slot.
    Watch,
    Unwatch,
}

// Why some commands are refused. One reason per family; the error text names the command.

/// CONFIG, SHUTDOWN, DEBUG, MODULE, SAVE/BGSAVE/BGREWRITEAOF, PFSELFTEST/PFDEBUG, MEMORY PURGE: changing or
/// stopping one server behind the controller's back would make the groups diverge.
const SERVER_ADMIN: &str = "the zedis controller administers the Redis servers";
/// REPLICAOF/SLAVEOF, FAILOVER, SYNC/PSYNC/REPLCONF, ROLE: the controller owns replication and failover; a
/// client-driven change would break its fencing by topology epoch.
const REPLICATION: &str = "the zedis controller manages replication and failover";
/// WAIT: the proxy acknowledges writes per its durability mode (in `replicated` mode it issues WAIT itself), and
/// on a shared backend connection WAIT would count other clients' writes.
const WAIT: &str = "the proxy manages write durability itself (see the cluster's durability mode)";
/// CLUSTER, ASKING, RESTORE-ASKING: zedis is not a Redis Cluster; the proxy routes by slot itself.
const CLUSTER: &str = "zedis is not a Redis Cluster: the proxy routes by slot itself";
/// SWAPDB, MOVE, COPY ... DB n: only database 0 exists behind the proxy, as in Redis Cluster.
const DATABASES: &str = "only database 0 exists behind the proxy";
/// MIGRATE: moving keys between servers is slot migration, driven by the controller.
const MIGRATE: &str = "keys move between groups by slot migration (zedis slots migrate)";
/// LATENCY, SLOWLOG, MEMORY DOCTOR/STATS/MALLOC-STATS, LASTSAVE, MONITOR: per-server diagnostics, meaningless for
/// the whole cluster through one connection.
const DIAGNOSTICS: &str = "per-server diagnostics: ask each server directly or use the zedis admin API";
/// ACL except WHOAMI: the proxy authenticates clients against its own users; backend ACLs are the controller's.
const ACL: &str = "users are configured on the proxy, not through ACL";
/// CLIENT KILL/PAUSE/UNPAUSE/UNBLOCK/NO-EVICT, SCRIPT DEBUG: backend connections are shared by many clients, so
/// acting on "the" backend connection or server-wide client state would hit other clients.
const SHARED_CONNECTIONS: &str = "backend connections are shared by many clients";
/// CLIENT TRACKING/CACHING/GETREDIR/TRACKINGINFO: client-side caching needs invalidations from every group,
/// which the proxy does not relay.
const TRACKING: &str = "client-side caching (tracking) is not relayed by the proxy";
/// A keyless command this module does not classify (e.g. one added by a newer Redis).
const UNCLASSIFIED: &str = "this command is not classified for the proxy";

/// How the proxy treats `req`, whose spec is `spec` (from [`resolve`](super::resolve)). Cheap: data commands
/// are decided after a few comparisons.
pub fn policy(spec: &CommandSpec, req: &Request) -> Policy {
    if may_have_keys(spec) {
        return keyed_policy(spec, req);
    }
    keyless_policy(spec)
}

fn keyed_policy(spec: &CommandSpec, req: &Request) -> Policy {
    match spec.name {
        "mget" => Policy::Split(SplitKind::MGet),
        "mset" => Policy::Split(SplitKind::MSet),
        "del" | "unlink" | "exists" | "touch" => Policy::Split(SplitKind::SumIntegers),
        "watch" => Policy::Transaction(TxKind::Watch),
        "xread" | "xreadgroup" => {
            if xread_blocks(req) {
                Policy::Blocking
            } else {
                Policy::Keyed
            }
        }
        "copy" => {
            // COPY source destination [DB destination-db] [REPLACE]
            let mut i = 3;
            while let Some(a) = req.arg(i) {
                if a.eq_ignore_ascii_case(b"db") {
                    // Only DB 0 (the only one) is accepted; a bad number is left for Redis to reject.
                    match req.arg(i + 1).and_then(parse_i64) {
                        Some(0) | None => {}
                        Some(_) => return Policy::Unsupported(DATABASES),
                    }
                    i += 1;
                }
                i += 1;
            }
            Policy::Keyed
        }
        "move" => Policy::Unsupported(DATABASES),
        "migrate" => Policy::Unsupported(MIGRATE),
        "pfdebug" => Policy::Unsupported(SERVER_ADMIN),
        "restore-asking" => Policy::Unsupported(CLUSTER),
        _ if spec.flags.contains(CommandFlags::BLOCKING) => Policy::Blocking,
        _ => Policy::Keyed,
    }
}

fn keyless_policy(spec: &CommandSpec) -> Policy {
    use Policy::*;
    match spec.name {
        // Connection and introspection: the proxy owns the client connection.
        "ping" => Local(LocalKind::Ping),
        "echo" => Local(LocalKind::Echo),
        "quit" => Local(LocalKind::Quit),
        "hello" => Local(LocalKind::Hello),
        "auth" => Local(LocalKind::Auth),
        "select" => Local(LocalKind::Select),
        "reset" => Local(LocalKind::Reset),
        "readonly" => Local(LocalKind::ReadOnly),
        "readwrite" => Local(LocalKind::ReadWrite),
        "info" => Local(LocalKind::Info),
        "client|id" => Local(LocalKind::ClientId),
        "client|setname" => Local(LocalKind::ClientSetName),
        "client|getname" => Local(LocalKind::ClientGetName),
        "client|info" => Local(LocalKind::ClientInfo),
        "client|list" => Local(LocalKind::ClientList),
        "client|reply" => Local(LocalKind::ClientReply),
        "command"
        | "command|count"
        | "command|info"
        | "command|list"
        | "command|getkeys"
        | "command|getkeysandflags" => Local(LocalKind::Command),
        "acl|whoami" => Local(LocalKind::AclWhoami),

        // Independent of the data: any group answers as well as all of them. TIME is forwarded (a real Redis
        // clock, like the one the data's expirations use) rather than made up by the proxy.
        "time" | "lolwut" | "command|docs" | "command|help" | "client|help" | "object|help" | "memory|help"
        | "xinfo|help" | "xgroup|help" | "pubsub|help" | "script|help" | "function|help" => AnyGroup,
        // Functions are loaded on every group through the proxy, so any group lists the same ones.
        // (FUNCTION STATS shows that group's running function only.)
        "function|list" | "function|dump" | "function|stats" => AnyGroup,

        // The whole keyspace: every group.
        "dbsize" => AllGroups(AggregateKind::Sum),
        "keys" => AllGroups(AggregateKind::Concat),
        "scan" => AllGroups(AggregateKind::Scan),
        "randomkey" => AllGroups(AggregateKind::RandomKey),
        "flushdb" | "flushall" => AllGroups(AggregateKind::Flush),
        // Scripts and functions must exist on every group, since their keys may live on any of them.
        "script|load" | "function|load" => AllGroups(AggregateKind::SameReply),
        "script|exists" => AllGroups(AggregateKind::AndPerPosition),
        "script|flush" | "function|delete" | "function|flush" | "function|restore" => AllGroups(AggregateKind::AllOk),
        "script|kill" | "function|kill" => AllGroups(AggregateKind::AnyOk),

        // Pub/sub.
        "subscribe" => PubSub(PubSubKind::Subscribe),
        "unsubscribe" => PubSub(PubSubKind::Unsubscribe),
        "psubscribe" => PubSub(PubSubKind::PSubscribe),
        "punsubscribe" => PubSub(PubSubKind::PUnsubscribe),
        "ssubscribe" => PubSub(PubSubKind::SSubscribe),
        "sunsubscribe" => PubSub(PubSubKind::SUnsubscribe),
        "publish" => PubSub(PubSubKind::Publish),
        "spublish" => PubSub(PubSubKind::SPublish),
        "pubsub|channels" => PubSub(PubSubKind::Channels),
        "pubsub|numsub" => PubSub(PubSubKind::NumSub),
        "pubsub|numpat" => PubSub(PubSubKind::NumPat),
        "pubsub|shardchannels" => PubSub(PubSubKind::ShardChannels),
        "pubsub|shardnumsub" => PubSub(PubSubKind::ShardNumSub),

        // Transactions.
        "multi" => Transaction(TxKind::Multi),
        "exec" => Transaction(TxKind::Exec),
        "discard" => Transaction(TxKind::Discard),
        "unwatch" => Transaction(TxKind::Unwatch),

        // Refused, by family (see the reason constants above).
        "shutdown" | "debug" | "save" | "bgsave" | "bgrewriteaof" | "pfselftest" | "memory|purge" => {
            Unsupported(SERVER_ADMIN)
        }
        "replicaof" | "slaveof" | "failover" | "sync" | "psync" | "replconf" | "role" => Unsupported(REPLICATION),
        "wait" => Unsupported(WAIT),
        "asking" => Unsupported(CLUSTER),
        "swapdb" => Unsupported(DATABASES),
        "lastsave" | "monitor" | "memory|doctor" | "memory|stats" | "memory|malloc-stats" => Unsupported(DIAGNOSTICS),
        "client|kill" | "client|pause" | "client|unpause" | "client|unblock" | "client|no-evict" | "script|debug" => {
            Unsupported(SHARED_CONNECTIONS)
        }
        "client|tracking" | "client|caching" | "client|getredir" | "client|trackinginfo" => Unsupported(TRACKING),
        _ => match spec.parent.unwrap_or(spec.token) {
            // Whole containers.
            "CONFIG" | "MODULE" => Unsupported(SERVER_ADMIN),
            "CLUSTER" => Unsupported(CLUSTER),
            "ACL" => Unsupported(ACL),
            "LATENCY" | "SLOWLOG" => Unsupported(DIAGNOSTICS),
            _ => Unsupported(UNCLASSIFIED),
        },
    }
}

/// The error text for a [`Policy::Unsupported`] command: `ERR CONFIG GET is not supported by the zedis proxy:
/// the zedis controller administers the Redis servers`.
pub fn unsupported_error(spec: &CommandSpec, reason: &str) -> String {
    format!("ERR {} is not supported by the zedis proxy: {reason}", spec.display_name())
}

#[cfg(test)]
mod tests {
    use super::super::{all_commands, resolve};
    use super::*;

    fn policy_of(args: &[&str]) -> Policy {
        let req = Request::from_args(args);
        policy(resolve(&req).unwrap(), &req)
    }

    #[test]
    fn decisions() {
        use Policy::*;
        let sha = "a".repeat(40);
        let cases: &[(&[&str], Policy)] = &[
            // Single slot.
            (&["GET", "k"], Keyed),
            (&["SET", "k", "v"], Keyed),
            (&["MSETNX", "a", "1", "b", "2"], Keyed),
            (&["RENAME", "a", "b"], Keyed),
            (&["SINTER", "a", "b"], Keyed),
            (&["ZUNIONSTORE", "d", "2", "a", "b"], Keyed),
            (&["LMOVE", "a", "b", "LEFT", "LEFT"], Keyed),
            (&["PFMERGE", "d", "a"], Keyed),
            (&["EVAL", "return 1", "1", "k"], Keyed),
            (&["EVAL", "return 1", "0"], Keyed),
            (&["EVALSHA", &sha, "0"], Keyed),
            (&["FCALL", "f", "1", "k"], Keyed),
            (&["OBJECT", "ENCODING", "k"], Keyed),
            (&["MEMORY", "USAGE", "k"], Keyed),
            (&["XINFO", "STREAM", "s"], Keyed),
            (&["XGROUP", "CREATE", "s", "g", "$"], Keyed),
            (&["DUMP", "k"], Keyed),
            (&["RESTORE", "k", "0", "x"], Keyed),
            (&["COPY", "a", "b"], Keyed),
            (&["COPY", "a", "b", "DB", "0", "REPLACE"], Keyed),
            (&["EXPIRE", "k", "10"], Keyed),
            (&["SORT", "k", "STORE", "d"], Keyed),
            (&["XREAD", "COUNT", "1", "STREAMS", "s", "0"], Keyed),
            (&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"], Keyed),
            (&["GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"], Keyed),
            // Split.
            (&["MGET", "a", "b"], Split(SplitKind::MGet)),
            (&["MSET", "a", "1", "b", "2"], Split(SplitKind::MSet)),
            (&["DEL", "a", "b"], Split(SplitKind::SumIntegers)),
            (&["UNLINK", "a"], Split(SplitKind::SumIntegers)),
            (&["EXISTS", "a", "b"], Split(SplitKind::SumIntegers)),
            (&["TOUCH", "a", "b"], Split(SplitKind::SumIntegers)),
            // Every group.
            (&["DBSIZE"], AllGroups(AggregateKind::Sum)),
            (&["KEYS", "*"], AllGroups(AggregateKind::Concat)),
            (&["SCAN", "0"], AllGroups(AggregateKind::Scan)),
            (&["RANDOMKEY"], AllGroups(AggregateKind::RandomKey)),
            (&["FLUSHDB"], AllGroups(AggregateKind::Flush)),
            (&["FLUSHALL", "ASYNC"], AllGroups(AggregateKind::Flush)),
            (&["SCRIPT", "LOAD", "return 1"], AllGroups(AggregateKind::SameReply)),
            (&["SCRIPT", "EXISTS", "a", "b"], AllGroups(AggregateKind::AndPerPosition)),
            (&["SCRIPT", "FLUSH"], AllGroups(AggregateKind::AllOk)),
            (&["SCRIPT", "KILL"], AllGroups(AggregateKind::AnyOk)),
            (&["FUNCTION", "LOAD", "code"], AllGroups(AggregateKind::SameReply)),
            (&["FUNCTION", "DELETE", "lib"], AllGroups(AggregateKind::AllOk)),
            // Any group.
            (&["TIME"], AnyGroup),
            (&["COMMAND", "DOCS", "get"], AnyGroup),
            (&["FUNCTION", "LIST"], AnyGroup),
            (&["OBJECT", "HELP"], AnyGroup),
            // Local.
            (&["PING"], Local(LocalKind::Ping)),
            (&["ECHO", "x"], Local(LocalKind::Echo)),
            (&["QUIT"], Local(LocalKind::Quit)),
            (&["HELLO", "3"], Local(LocalKind::Hello)),
            (&["AUTH", "pw"], Local(LocalKind::Auth)),
            (&["SELECT", "0"], Local(LocalKind::Select)),
            (&["RESET"], Local(LocalKind::Reset)),
            (&["READONLY"], Local(LocalKind::ReadOnly)),
            (&["CLIENT", "SETNAME", "x"], Local(LocalKind::ClientSetName)),
            (&["client", "getname"], Local(LocalKind::ClientGetName)),
            (&["CLIENT", "ID"], Local(LocalKind::ClientId)),
            (&["CLIENT", "INFO"], Local(LocalKind::ClientInfo)),
            (&["CLIENT", "LIST"], Local(LocalKind::ClientList)),
            (&["INFO", "server"], Local(LocalKind::Info)),
            (&["COMMAND"], Local(LocalKind::Command)),
            (&["COMMAND", "COUNT"], Local(LocalKind::Command)),
            (&["COMMAND", "INFO", "get"], Local(LocalKind::Command)),
            (&["COMMAND", "GETKEYS", "GET", "k"], Local(LocalKind::Command)),
            (&["ACL", "WHOAMI"], Local(LocalKind::AclWhoami)),
            // Blocking.
            (&["BLPOP", "a", "0"], Blocking),
            (&["BRPOP", "a", "b", "0"], Blocking),
            (&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"], Blocking),
            (&["BRPOPLPUSH", "a", "b", "0"], Blocking),
            (&["BLMPOP", "0", "1", "a", "LEFT"], Blocking),
            (&["BZPOPMIN", "a", "0"], Blocking),
            (&["BZPOPMAX", "a", "0"], Blocking),
            (&["BZMPOP", "0", "1", "a", "MIN"], Blocking),
            (&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], Blocking),
            (&["XREADGROUP", "GROUP", "g", "c", "BLOCK", "10", "STREAMS", "s", ">"], Blocking),
            // Pub/sub.
            (&["SUBSCRIBE", "a"], PubSub(PubSubKind::Subscribe)),
            (&["PSUBSCRIBE", "a*"], PubSub(PubSubKind::PSubscribe)),
            (&["UNSUBSCRIBE"], PubSub(PubSubKind::Unsubscribe)),
            (&["PUNSUBSCRIBE"], PubSub(PubSubKind::PUnsubscribe)),
            (&["SSUBSCRIBE", "a"], PubSub(PubSubKind::SSubscribe)),
            (&["SUNSUBSCRIBE"], PubSub(PubSubKind::SUnsubscribe)),
            (&["PUBLISH", "a", "m"], PubSub(PubSubKind::Publish)),
            (&["SPUBLISH", "a", "m"], PubSub(PubSubKind::SPublish)),
            (&["PUBSUB", "CHANNELS"], PubSub(PubSubKind::Channels)),
            (&["PUBSUB", "NUMSUB", "a"], PubSub(PubSubKind::NumSub)),
            (&["PUBSUB", "NUMPAT"], PubSub(PubSubKind::NumPat)),
            (&["PUBSUB", "SHARDCHANNELS"], PubSub(PubSubKind::ShardChannels)),
            (&["PUBSUB", "SHARDNUMSUB", "a"], PubSub(PubSubKind::ShardNumSub)),
            // Transactions.
            (&["MULTI"], Transaction(TxKind::Multi)),
            (&["EXEC"], Transaction(TxKind::Exec)),
            (&["DISCARD"], Transaction(TxKind::Discard)),
            (&["WATCH", "a", "b"], Transaction(TxKind::Watch)),
            (&["UNWATCH"], Transaction(TxKind::Unwatch)),
            // Refused.
            (&["CONFIG", "GET", "x"], Unsupported(SERVER_ADMIN)),
            (&["CONFIG", "SET", "x", "y"], Unsupported(SERVER_ADMIN)),
            (&["SHUTDOWN"], Unsupported(SERVER_ADMIN)),
            (&["DEBUG", "SLEEP", "0"], Unsupported(SERVER_ADMIN)),
            (&["MODULE", "LIST"], Unsupported(SERVER_ADMIN)),
            (&["BGSAVE"], Unsupported(SERVER_ADMIN)),
            (&["PFDEBUG", "GETREG", "k"], Unsupported(SERVER_ADMIN)),
            (&["REPLICAOF", "NO", "ONE"], Unsupported(REPLICATION)),
            (&["SLAVEOF", "h", "1"], Unsupported(REPLICATION)),
            (&["FAILOVER"], Unsupported(REPLICATION)),
            (&["PSYNC", "?", "-1"], Unsupported(REPLICATION)),
            (&["WAIT", "1", "0"], Unsupported(WAIT)),
            (&["CLUSTER", "SLOTS"], Unsupported(CLUSTER)),
            (&["ASKING"], Unsupported(CLUSTER)),
            (&["RESTORE-ASKING", "k", "0", "x"], Unsupported(CLUSTER)),
            (&["SWAPDB", "0", "1"], Unsupported(DATABASES)),
            (&["MOVE", "k", "1"], Unsupported(DATABASES)),
            (&["COPY", "a", "b", "DB", "1"], Unsupported(DATABASES)),
            (&["MIGRATE", "h", "1", "k", "0", "5"], Unsupported(MIGRATE)),
            (&["MONITOR"], Unsupported(DIAGNOSTICS)),
            (&["SLOWLOG", "GET"], Unsupported(DIAGNOSTICS)),
            (&["LATENCY", "LATEST"], Unsupported(DIAGNOSTICS)),
            (&["MEMORY", "STATS"], Unsupported(DIAGNOSTICS)),
            (&["ACL", "LIST"], Unsupported(ACL)),
            (&["CLIENT", "KILL", "ID", "1"], Unsupported(SHARED_CONNECTIONS)),
            (&["CLIENT", "PAUSE", "10"], Unsupported(SHARED_CONNECTIONS)),
            (&["SCRIPT", "DEBUG", "YES"], Unsupported(SHARED_CONNECTIONS)),
            (&["CLIENT", "TRACKING", "ON"], Unsupported(TRACKING)),
        ];
        for (args, expected) in cases {
            assert_eq!(policy_of(args), *expected, "{args:?}");
        }
    }

    #[test]
    fn every_command_is_classified() {
        for spec in all_commands() {
            // Containers themselves only resolve when given alone, which fails their arity (except COMMAND).
            if spec.is_container() && spec.name != "command" {
                continue;
            }
            let req = Request::from_args([spec.name]);
            let p = policy(spec, &req);
            assert_ne!(p, Policy::Unsupported(UNCLASSIFIED), "{} is not classified", spec.name);
            if let Policy::Unsupported(reason) = p {
                let text = unsupported_error(spec, reason);
                assert!(text.starts_with("ERR ") && !text.contains(['\r', '\n']), "{text}");
            }
        }
    }

    #[test]
    fn write_commands_never_go_to_any_group() {
        for spec in all_commands() {
            let req = Request::from_args([spec.name]);
            if spec.is_write() {
                assert!(
                    !matches!(policy(spec, &req), Policy::AnyGroup | Policy::Local(_)),
                    "{} writes but is not routed to its data",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn unsupported_text_names_the_command() {
        let req = Request::from_args(["config", "get", "x"]);
        let spec = resolve(&req).unwrap();
        let Policy::Unsupported(reason) = policy(spec, &req) else { panic!() };
        assert_eq!(
            unsupported_error(spec, reason),
            "ERR CONFIG GET is not supported by the zedis proxy: the zedis controller administers the Redis servers"
        );
        let req = Request::from_args(["shutdown"]);
        let spec = resolve(&req).unwrap();
        let Policy::Unsupported(reason) = policy(spec, &req) else { panic!() };
        assert!(unsupported_error(spec, reason).starts_with("ERR SHUTDOWN is not supported by the zedis proxy: "));
    }
}
