#!/usr/bin/env python3
"""Generate crates/proxy/src/command_table/generated.rs from a real redis-server.

The proxy's command table (name, arity, flags, legacy key range, ACL categories, tips, key specs
and subcommands of every Redis command) is taken from the server itself with `COMMAND` and
`COMMAND DOCS` (for the command group), so it is exactly what that Redis version declares. The
generated file is committed: building zedis needs no Redis.

Usage:
    scripts/gen-command-table.py                 # start a throw-away redis-server, regenerate
    scripts/gen-command-table.py --port 6379     # ask a server that is already running
    scripts/gen-command-table.py --check         # exit 1 if the committed file is out of date

Python 3 standard library only. The output is passed through `rustfmt` (with the repository's
rustfmt.toml) when rustfmt is on PATH, so that `cargo fmt` leaves it unchanged.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "crates", "proxy", "src", "command_table", "generated.rs")

# Names Redis prints, mapped to the Rust constants in command_table/mod.rs. A name missing here
# (a newer Redis) stops the generator: add the constant on the Rust side first.
COMMAND_FLAGS = [
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking", "loading",
    "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth", "no_mandatory_keys",
    "no_async_loading", "no_multi", "movablekeys", "allow_busy", "module_no_cluster",
]
ACL_CATEGORIES = [
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog",
    "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous", "connection",
    "transaction", "scripting",
]
KEY_SPEC_FLAGS = [
    "RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key", "incomplete",
    "variable_flags",
]
GROUPS = {
    "generic": "Generic", "string": "String", "list": "List", "set": "Set", "sorted-set": "SortedSet",
    "hash": "Hash", "pubsub": "Pubsub", "transactions": "Transactions", "connection": "Connection",
    "server": "Server", "scripting": "Scripting", "hyperloglog": "Hyperloglog", "cluster": "Cluster",
    "sentinel": "Sentinel", "geo": "Geo", "stream": "Stream", "bitmap": "Bitmap", "module": "Module",
}


class RespError(Exception):
    pass


class Conn:
    """A minimal RESP2 client: enough for COMMAND and COMMAND DOCS."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        self.rfile.close()
        self.sock.close()

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        reply = self._read()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _read(self):
        line = self.rfile.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by redis-server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ValueError("unexpected RESP line %r" % line)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary):
    """Starts redis-server on a free loopback port; returns (process, port, directory)."""
    tmp = tempfile.mkdtemp(prefix="zedis-gen-")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp, "--logfile", os.path.join(tmp, "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            c = Conn("127.0.0.1", port, timeout=1)
            if c.call("PING") == "PONG":
                c.close()
                return proc, port, tmp
            c.close()
        except (OSError, RespError):
            time.sleep(0.05)
    stop_server(proc, tmp)
    sys.exit("redis-server did not start on port %d" % port)


def stop_server(proc, tmp):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def pairs(flat):
    """A RESP2 map (flat array of key, value, ...) as a dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bitset(kind, names, known, what):
    consts = []
    for n in names:
        n = n.lstrip("@")
        if n not in known:
            sys.exit("unknown %s %r: add it to %s in command_table/mod.rs and to this script" % (what, n, kind))
        consts.append("%s::%s" % (kind, n.upper()))
    if not consts:
        return "%s::EMPTY" % kind
    if len(consts) == 1:
        return consts[0]
    return "%s::of(&[%s])" % (kind, ", ".join(consts))


def key_spec(raw, indent):
    ks = pairs(raw)
    bs = pairs(ks["begin_search"])
    bs_spec = pairs(bs["spec"])
    if bs["type"] == "index":
        begin = "BeginSearch::Index(%d)" % bs_spec["index"]
    elif bs["type"] == "keyword":
        begin = "BeginSearch::Keyword { keyword: %s, start_from: %d }" % (rust_str(bs_spec["keyword"]),
                                                                         bs_spec["startfrom"])
    elif bs["type"] == "unknown":
        begin = "BeginSearch::Unknown"
    else:
        sys.exit("unknown begin_search type %r" % bs["type"])
    fk = pairs(ks["find_keys"])
    fk_spec = pairs(fk["spec"])
    if fk["type"] == "range":
        find = "FindKeys::Range { last_key: %d, key_step: %d, limit: %d }" % (
            fk_spec["lastkey"], fk_spec["keystep"], fk_spec["limit"])
    elif fk["type"] == "keynum":
        find = "FindKeys::Keynum { keynum_idx: %d, first_key: %d, key_step: %d }" % (
            fk_spec["keynumidx"], fk_spec["firstkey"], fk_spec["keystep"])
    elif fk["type"] == "unknown":
        find = "FindKeys::Unknown"
    else:
        sys.exit("unknown find_keys type %r" % fk["type"])
    pad = " " * indent
    return "\n".join([
        pad + "KeySpec {",
        pad + "    notes: %s," % rust_str(ks.get("notes", "")),
        pad + "    flags: %s," % bitset("K", ks["flags"], KEY_SPEC_FLAGS, "key spec flag"),
        pad + "    begin_search: %s," % begin,
        pad + "    find_keys: %s," % find,
        pad + "}",
    ])


def command(entry, groups, indent):
    (name, arity, flags, first, last, step, acl, tips, key_specs, subs) = entry[:10]
    parent, _, token = name.rpartition("|")
    group = groups.get(name)
    if group not in GROUPS:
        sys.exit("unknown or missing command group %r for %r" % (group, name))
    pad = " " * indent
    out = [pad + "CommandSpec {"]
    field = lambda k, v: out.append("%s    %s: %s," % (pad, k, v))
    field("name", rust_str(name))
    field("token", rust_str(token.upper()))
    field("parent", "Some(%s)" % rust_str(parent.upper()) if parent else "None")
    field("arity", arity)
    field("flags", bitset("F", flags, COMMAND_FLAGS, "command flag"))
    field("first_key", first)
    field("last_key", last)
    field("step", step)
    field("acl", bitset("A", acl, ACL_CATEGORIES, "ACL category"))
    field("group", "CommandGroup::" + GROUPS[group])
    field("tips", "&[%s]" % ", ".join(rust_str(t) for t in tips))
    if key_specs:
        out.append(pad + "    key_specs: &[")
        for k in key_specs:
            out.append(key_spec(k, indent + 8) + ",")
        out.append(pad + "    ],")
    else:
        field("key_specs", "&[]")
    if subs:
        out.append(pad + "    subcommands: &[")
        for sub in sorted(subs, key=lambda e: e[0].rpartition("|")[2].upper().encode()):
            out.append(command(sub, groups, indent + 8) + ",")
        out.append(pad + "    ],")
    else:
        field("subcommands", "&[]")
    out.append(pad + "}")
    return "\n".join(out)


def doc_groups(docs, into):
    for name, doc in pairs(docs).items():
        d = pairs(doc)
        into[name] = d.get("group")
        if d.get("subcommands"):
            doc_groups(d["subcommands"], into)


def generate(conn):
    info = dict(line.split(":", 1) for line in conn.call("INFO", "server").splitlines() if ":" in line)
    version = info["redis_version"].strip()
    commands = conn.call("COMMAND")
    groups = {}
    doc_groups(conn.call("COMMAND", "DOCS"), groups)
    commands.sort(key=lambda e: e[0].upper().encode())
    names = [e[0] for e in commands]
    if len(set(n.upper() for n in names)) != len(names):
        sys.exit("duplicate command names")
    total = len(commands) + sum(len(e[9]) for e in commands)
    tokens = [e[0] for e in commands] + [s[0].rpartition("|")[2] for e in commands for s in e[9]]
    longest = max(len(t) for t in tokens)
    body = ",\n".join(command(e, groups, 4) for e in commands)
    return """// @generated by scripts/gen-command-table.py from Redis {version}. Do not edit by hand.
//
// To regenerate (needs redis-server on PATH, or a running server):
//     python3 scripts/gen-command-table.py [--port PORT]
//
// {top} commands and {subs} subcommands, as `COMMAND` and `COMMAND DOCS` of Redis {version} report them.
// Top-level commands are sorted by `token`, and so are the subcommands of each container.

use super::{{
    AclCategories as A, BeginSearch, CommandFlags as F, CommandGroup, CommandSpec, FindKeys, KeySpec, KeySpecFlags as K,
}};

/// The Redis version this table was generated from.
pub const REDIS_VERSION: &str = "{version}";

/// Length of the longest [`CommandSpec::token`] (of a command or a subcommand).
pub(super) const MAX_TOKEN_LEN: usize = {longest};

/// Every top-level command, sorted by [`CommandSpec::token`].
pub(super) static COMMANDS: [CommandSpec; {top}] = [
{body},
];
""".format(version=version, top=len(commands), subs=total - len(commands), longest=longest, body=body)


def rustfmt(text):
    exe = shutil.which("rustfmt")
    if not exe:
        print("warning: rustfmt not found; the output is not formatted", file=sys.stderr)
        return text
    res = subprocess.run([exe, "--edition", "2021", "--config-path", os.path.join(REPO, "rustfmt.toml"),
                          "--emit", "stdout"], input=text.encode(), capture_output=True)
    if res.returncode != 0:
        sys.exit("rustfmt failed:\n" + res.stderr.decode())
    return res.stdout.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="server host, with --port (default 127.0.0.1)")
    ap.add_argument("--port", type=int, help="ask a running server instead of starting one")
    ap.add_argument("--redis-server", default=os.environ.get("ZEDIS_REDIS_SERVER", "redis-server"),
                    help="redis-server binary to start (default: $ZEDIS_REDIS_SERVER or redis-server)")
    ap.add_argument("--out", default=OUT, help="output file (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if --out differs")
    args = ap.parse_args()

    proc = tmp = None
    if args.port is None:
        proc, port, tmp = start_server(args.redis_server)
        host = "127.0.0.1"
    else:
        host, port = args.host, args.port
    try:
        conn = Conn(host, port)
        text = rustfmt(generate(conn))
        conn.close()
    finally:
        if proc is not None:
            stop_server(proc, tmp)

    if args.check:
        try:
            with open(args.out) as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            sys.exit("%s is out of date: run scripts/gen-command-table.py" % os.path.relpath(args.out, REPO))
        print("%s is up to date" % os.path.relpath(args.out, REPO))
        return
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print("wrote %s" % os.path.relpath(args.out, REPO))


if __name__ == "__main__":
    main()
