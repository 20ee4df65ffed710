//! Key extraction: which arguments of a request are keys.
//!
//! [`keys`] gives the same positions as `COMMAND GETKEYS` of Redis 7 (and so as Redis Cluster's routing, which
//! uses the same code): it interprets the command's key specs exactly as Redis's `getKeysUsingKeySpecs` does and,
//! where a spec cannot tell (`SORT ... STORE`, `MIGRATE ... KEYS`) or the arguments make it fail (a bad
//! `numkeys`), falls back to the command's own key finder as Redis does. Where the command itself would reject
//! its `numkeys`, [`keys`] returns the command's error text instead of no keys.

use smallvec::SmallVec;
use zedis_resp::Request;

use super::{BeginSearch, CommandFlags, CommandSpec, FindKeys, KeySpecFlags};

/// Argument indices of the keys of a request, in Redis's order. Up to 4 keys need no allocation.
pub type KeyIndices = SmallVec<[usize; 4]>;

/// The keys of `req` (resolved to `spec`), as argument indices (0 is the command name), in the order
/// `COMMAND GETKEYS` lists them. Every index is `< req.len()`. Never panics, whatever the arguments.
///
/// * Ranges (`first_key`..`last_key` step `step`, `last_key` negative from the end): `GET`, `MSET` (every other
///   argument), `BITOP op dest key...`, `LMOVE src dst`, `RENAME`, `OBJECT ENCODING key`, `XINFO STREAM key`, ...
/// * `numkeys` commands: `EVAL`/`EVALSHA`/`EVAL_RO`/`EVALSHA_RO`/`FCALL`/`FCALL_RO` (count at 2),
///   `ZUNIONSTORE`/`ZINTERSTORE`/`ZDIFFSTORE` (destination at 1, count at 2), `ZUNION`/`ZINTER`/`ZDIFF`/
///   `ZINTERCARD`/`SINTERCARD`/`LMPOP`/`ZMPOP` (count at 1), `BLMPOP`/`BZMPOP` (timeout, then count).
/// * Keyword commands: `XREAD`/`XREADGROUP` (after `STREAMS`, the first half of the rest), `GEORADIUS`/
///   `GEORADIUSBYMEMBER` (`STORE`/`STOREDIST` destinations), `SORT ... STORE dest` (the last `STORE` wins),
///   `MIGRATE` (the key at 3, or the keys after `KEYS` when it is empty).
///
/// An empty result means the request names no key: a keyless command, `EVAL` with 0 keys, or arguments the
/// command will reject itself (`XREAD` without `STREAMS`, an unbalanced `XREAD`, `MIGRATE` with both a key and
/// `KEYS`): such a request can go to any group, as Redis Cluster runs it on whichever node it reached.
///
/// Shard channels (`SPUBLISH`, `SSUBSCRIBE`) are not keys (as in `COMMAND GETKEYS`): see [`shard_channels`].
///
/// # Errors
///
/// A `numkeys` the command would refuse, with the command's own text (see [`KeyError`]). The arity is not
/// checked here: call [`check_arity`](super::check_arity) first.
pub fn keys(spec: &CommandSpec, req: &Request) -> Result<KeyIndices, KeyError> {
    let mut out = KeyIndices::new();
    if from_specs(spec, req, SpecSelect::Keys, &mut out).is_ok() {
        return Ok(out);
    }
    out.clear();
    fallback(spec, req, &mut out)?;
    Ok(out)
}

/// The shard channels of `SPUBLISH` (argument 1), `SSUBSCRIBE` and `SUNSUBSCRIBE` (arguments 1..): the
/// arguments Redis hashes to a slot like keys (key specs flagged `not_key`). Empty for every other command.
pub fn shard_channels(spec: &CommandSpec, req: &Request) -> KeyIndices {
    let mut out = KeyIndices::new();
    if from_specs(spec, req, SpecSelect::NotKeys, &mut out).is_err() {
        out.clear();
    }
    out
}

/// A `numkeys` argument the command refuses. `Display` is the command's own Redis 7 error text (without the
/// leading `-`), so the proxy can answer with it directly.
///
/// Texts by command (checked against Redis 7.0):
///
/// | command | not an integer | negative | 0 | more than the arguments |
/// |---|---|---|---|---|
/// | `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO` | [`NotAnInteger`] | [`NegativeKeys`] | no keys | [`TooManyKeys`] |
/// | `FCALL`, `FCALL_RO` | [`BadNumberOfKeys`] | [`NegativeKeys`] | no keys | [`TooManyKeys`] |
/// | `ZUNIONSTORE`, `ZINTERSTORE`, `ZDIFFSTORE`, `ZUNION`, `ZINTER`, `ZDIFF`, `ZINTERCARD` | [`NotAnInteger`] | [`NoInputKeys`] | [`NoInputKeys`] | [`Syntax`] |
/// | `SINTERCARD` | [`NumkeysNotPositive`] | [`NumkeysNotPositive`] | [`NumkeysNotPositive`] | [`TooManyKeys`] |
/// | `LMPOP`, `ZMPOP`, `BLMPOP`, `BZMPOP` | [`NumkeysNotPositive`] | [`NumkeysNotPositive`] | [`NumkeysNotPositive`] | [`Syntax`] |
///
/// `EVALSHA`/`EVALSHA_RO` with a SHA that is not 40 characters long fail with [`NoScript`] before `numkeys` is
/// looked at. `FCALL` of a function that does not exist fails with `ERR Function not found` before `numkeys` is
/// looked at, which the proxy cannot know: forward the request to any group instead of answering if that
/// difference matters.
///
/// [`NotAnInteger`]: KeyError::NotAnInteger
/// [`NegativeKeys`]: KeyError::NegativeKeys
/// [`TooManyKeys`]: KeyError::TooManyKeys
/// [`BadNumberOfKeys`]: KeyError::BadNumberOfKeys
/// [`NoInputKeys`]: KeyError::NoInputKeys
/// [`Syntax`]: KeyError::Syntax
/// [`NumkeysNotPositive`]: KeyError::NumkeysNotPositive
/// [`NoScript`]: KeyError::NoScript
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `numkeys` is not an integer (`EVAL` family, `Z*STORE`, `ZUNION`/`ZINTER`/`ZDIFF`/`ZINTERCARD`).
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// `numkeys` of `FCALL`/`FCALL_RO` is not an integer.
    #[error("ERR Bad number of keys provided")]
    BadNumberOfKeys,
    /// Negative `numkeys` of the `EVAL` and `FCALL` families.
    #[error("ERR Number of keys can't be negative")]
    NegativeKeys,
    /// More keys than arguments left (`EVAL` and `FCALL` families, `SINTERCARD`).
    #[error("ERR Number of keys can't be greater than number of args")]
    TooManyKeys,
    /// `numkeys` not a positive integer (`SINTERCARD`, `LMPOP`, `ZMPOP`, `BLMPOP`, `BZMPOP`).
    #[error("ERR numkeys should be greater than 0")]
    NumkeysNotPositive,
    /// `numkeys` below 1 for the sorted-set set operations; carries Redis's full command name.
    #[error("ERR at least 1 input key is needed for '{0}' command")]
    NoInputKeys(&'static str),
    /// More keys than arguments left (sorted-set set operations, `LMPOP` family).
    #[error("ERR syntax error")]
    Syntax,
    /// `EVALSHA` with a SHA1 that is not 40 characters long.
    #[error("NOSCRIPT No matching script. Please use EVAL.")]
    NoScript,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SpecSelect {
    /// Real keys: skip specs flagged `not_key` (Redis's default).
    Keys,
    /// Only the specs flagged `not_key` (shard channels).
    NotKeys,
}

/// A spec could not tell the keys: Redis then drops what it found and asks the command's own key finder.
struct InvalidSpec;

/// Redis's `getKeysUsingKeySpecs` (7.0), without the partial-result mode.
fn from_specs(spec: &CommandSpec, req: &Request, select: SpecSelect, out: &mut KeyIndices) -> Result<(), InvalidSpec> {
    let argc = req.len() as i64;
    for ks in spec.key_specs {
        let not_key = ks.flags.contains(KeySpecFlags::NOT_KEY);
        if not_key != (select == SpecSelect::NotKeys) {
            continue;
        }
        let mut first: i64 = match ks.begin_search {
            BeginSearch::Index(pos) => pos.into(),
            BeginSearch::Keyword { keyword, start_from } => match find_keyword(req, keyword, start_from.into()) {
                Some(i) => i + 1,
                None => continue,
            },
            BeginSearch::Unknown => return Err(InvalidSpec),
        };
        let (last, step): (i64, i64) = match ks.find_keys {
            FindKeys::Range { last_key, key_step, limit } => {
                let (last_key, limit) = (i64::from(last_key), i64::from(limit));
                let last = if last_key >= 0 {
                    first + last_key
                } else if limit == 0 {
                    argc + last_key
                } else {
                    // Rust's `/` truncates toward zero, like C's.
                    first + ((argc - first) / limit + last_key)
                };
                (last, key_step.into())
            }
            FindKeys::Keynum { keynum_idx, first_key, key_step } => {
                let idx = first + i64::from(keynum_idx);
                let numkeys = arg(req, idx).and_then(parse_i64).ok_or(InvalidSpec)?;
                if numkeys < 0 {
                    return Err(InvalidSpec);
                }
                first += i64::from(first_key);
                (first.saturating_add(numkeys) - 1, key_step.into())
            }
            FindKeys::Unknown => return Err(InvalidSpec),
        };
        if last >= argc || last < first || first >= argc || first < 0 || step <= 0 {
            return Err(InvalidSpec);
        }
        let mut i = first;
        while i <= last {
            out.push(i as usize);
            i += step;
        }
        if ks.flags.contains(KeySpecFlags::INCOMPLETE) {
            return Err(InvalidSpec);
        }
    }
    Ok(())
}

/// The index of `keyword` (ignoring case) searched as Redis does: forward from `start_from` (excluding the last
/// argument) or, if negative, backward from `argc + start_from` (down to index 2).
fn find_keyword(req: &Request, keyword: &str, start_from: i64) -> Option<i64> {
    let argc = req.len() as i64;
    let (start, end) = if start_from > 0 { (start_from, argc - 1) } else { (argc + start_from, 1) };
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if arg(req, i).is_some_and(|a| a.eq_ignore_ascii_case(keyword.as_bytes())) {
            return Some(i);
        }
        i = if start <= end { i + 1 } else { i - 1 };
    }
    None
}

fn arg(req: &Request, i: i64) -> Option<&[u8]> {
    usize::try_from(i).ok().and_then(|i| req.arg(i))
}

/// Redis's `string2ll`: an optional `-`, then digits without leading zeros (`0` alone is fine), in `i64` range.
/// No `+`, no spaces.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return if neg { None } else { Some(0) },
        [b'0', ..] => return None,
        _ => {}
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

/// Which `numkeys` rules a command applies (see [`KeyError`]).
#[derive(Clone, Copy)]
enum Numkeys {
    Eval,
    EvalSha,
    Fcall,
    ZSetOp,
    SInterCard,
    MPop,
}

/// The command's own key finder, used where the key specs cannot tell (Redis's `getkeys_proc`).
fn fallback(spec: &CommandSpec, req: &Request, out: &mut KeyIndices) -> Result<(), KeyError> {
    let name = spec.name;
    let (rules, count_at) = match name {
        "sort" => return sort_keys(req, out),
        "sort_ro" => {
            if req.len() > 1 {
                out.push(1);
            }
            return Ok(());
        }
        "migrate" => return migrate_keys(req, out),
        "eval" | "eval_ro" => (Numkeys::Eval, 2),
        "evalsha" | "evalsha_ro" => (Numkeys::EvalSha, 2),
        "fcall" | "fcall_ro" => (Numkeys::Fcall, 2),
        "zunionstore" | "zinterstore" | "zdiffstore" => (Numkeys::ZSetOp, 2),
        "zunion" | "zinter" | "zdiff" | "zintercard" => (Numkeys::ZSetOp, 1),
        "sintercard" => (Numkeys::SInterCard, 1),
        "lmpop" | "zmpop" => (Numkeys::MPop, 1),
        "blmpop" | "bzmpop" => (Numkeys::MPop, 2),
        // A spec failed on arguments the command rejects anyway (e.g. an unbalanced XREAD): no keys.
        _ => return Ok(()),
    };
    if matches!(rules, Numkeys::EvalSha) && req.arg(1).is_some_and(|sha| sha.len() != 40) {
        return Err(KeyError::NoScript);
    }
    let Some(raw) = req.arg(count_at) else {
        // Too few arguments: the arity check rejects the request.
        return Ok(());
    };
    let available = req.len().saturating_sub(count_at + 1) as i64;
    let numkeys = parse_i64(raw);
    let err = match (rules, numkeys) {
        (Numkeys::Eval | Numkeys::EvalSha, None) => KeyError::NotAnInteger,
        (Numkeys::Fcall, None) => KeyError::BadNumberOfKeys,
        (Numkeys::Eval | Numkeys::EvalSha | Numkeys::Fcall, Some(n)) if n < 0 => KeyError::NegativeKeys,
        (Numkeys::Eval | Numkeys::EvalSha | Numkeys::Fcall, Some(0)) => return Ok(()),
        (Numkeys::Eval | Numkeys::EvalSha | Numkeys::Fcall, Some(_)) => KeyError::TooManyKeys,
        (Numkeys::ZSetOp, None) => KeyError::NotAnInteger,
        (Numkeys::ZSetOp, Some(n)) if n < 1 => KeyError::NoInputKeys(name),
        (Numkeys::ZSetOp, Some(_)) => KeyError::Syntax,
        (Numkeys::SInterCard | Numkeys::MPop, None) => KeyError::NumkeysNotPositive,
        (Numkeys::SInterCard | Numkeys::MPop, Some(n)) if n < 1 => KeyError::NumkeysNotPositive,
        (Numkeys::SInterCard, Some(_)) => KeyError::TooManyKeys,
        (Numkeys::MPop, Some(_)) => KeyError::Syntax,
    };
    // The spec only fails on a numkeys out of [1, available] (or 0 for scripts); keep the invariant visible.
    debug_assert!(numkeys.is_none_or(|n| n < 1 || n > available));
    Err(err)
}

/// Redis's `sortGetKeys`: the key at 1, and the destination of the last `STORE` (skipping the arguments of
/// `LIMIT`, `GET` and `BY`).
fn sort_keys(req: &Request, out: &mut KeyIndices) -> Result<(), KeyError> {
    if req.len() < 2 {
        return Ok(());
    }
    out.push(1);
    let mut store = None;
    let mut i = 2;
    while i < req.len() {
        let a = req.arg(i).unwrap_or_default();
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"store") && i + 1 < req.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    out.extend(store);
    Ok(())
}

/// Redis's `migrateGetKeys`: `MIGRATE host port key db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 user pw]
/// [KEYS key...]`: the key at 3, or, when `KEYS` is given with an empty key at 3, the keys after `KEYS`.
fn migrate_keys(req: &Request, out: &mut KeyIndices) -> Result<(), KeyError> {
    let argc = req.len();
    let (mut first, mut num) = (3, 1);
    if argc > 6 {
        let mut i = 6;
        while i < argc {
            let a = req.arg(i).unwrap_or_default();
            if a.eq_ignore_ascii_case(b"keys") {
                if !req.arg(3).unwrap_or_default().is_empty() {
                    num = 0; // a syntax error: MIGRATE says so itself
                } else {
                    first = i + 1;
                    num = argc - first;
                }
                break;
            }
            if a.eq_ignore_ascii_case(b"auth") {
                i += 1;
            } else if a.eq_ignore_ascii_case(b"auth2") {
                i += 2;
            }
            i += 1;
        }
    }
    out.extend((first..first + num).filter(|&i| i < argc));
    Ok(())
}

/// True if `XREAD`/`XREADGROUP` asks to block (a `BLOCK` option before `STREAMS`), parsing the options as
/// Redis does: `COUNT n`, `BLOCK ms`, `GROUP group consumer`, `NOACK`, then `STREAMS`.
pub(crate) fn xread_blocks(req: &Request) -> bool {
    let mut i = 1;
    while let Some(a) = req.arg(i) {
        if a.eq_ignore_ascii_case(b"block") {
            return true;
        } else if a.eq_ignore_ascii_case(b"count") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"group") {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"noack") {
            i += 1;
        } else {
            return false; // STREAMS, or a syntax error
        }
    }
    false
}

/// True if the command may take keys at all (a key spec for real keys); `EVAL` and friends included.
pub(crate) fn may_have_keys(spec: &CommandSpec) -> bool {
    spec.key_specs.iter().any(|k| !k.flags.contains(KeySpecFlags::NOT_KEY))
        || spec.flags.contains(CommandFlags::MOVABLEKEYS)
}

#[cfg(test)]
mod tests {
    use super::super::{lookup_full_name, resolve};
    use super::*;

    fn keys_of(args: &[&str]) -> Result<Vec<usize>, KeyError> {
        let req = Request::from_args(args);
        let spec = resolve(&req).unwrap();
        keys(spec, &req).map(|k| k.to_vec())
    }

    fn ok(args: &[&str], expected: &[usize]) {
        assert_eq!(keys_of(args), Ok(expected.to_vec()), "{args:?}");
    }

    fn err(args: &[&str], expected: KeyError) {
        assert_eq!(keys_of(args), Err(expected), "{args:?}");
    }

    #[test]
    fn parse_like_string2ll() {
        let good: &[(&str, i64)] = &[
            ("0", 0),
            ("1", 1),
            ("-1", -1),
            ("123", 123),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for (s, v) in good {
            assert_eq!(parse_i64(s.as_bytes()), Some(*v), "{s}");
        }
        for s in
            ["", "-", "+1", " 1", "1 ", "01", "-0", "00", "1x", "9223372036854775808", "-9223372036854775809", "1.0"]
        {
            assert_eq!(parse_i64(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn ranges() {
        ok(&["GET", "k"], &[1]);
        ok(&["SET", "k", "v", "GET"], &[1]);
        ok(&["MGET", "a", "b", "c"], &[1, 2, 3]);
        ok(&["MSET", "a", "1", "b", "2"], &[1, 3]);
        ok(&["MSETNX", "a", "1", "b", "2"], &[1, 3]);
        ok(&["DEL", "a", "b"], &[1, 2]);
        ok(&["BITOP", "AND", "d", "a", "b"], &[2, 3, 4]);
        ok(&["LMOVE", "a", "b", "LEFT", "RIGHT"], &[1, 2]);
        ok(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"], &[1, 2]);
        ok(&["SMOVE", "a", "b", "m"], &[1, 2]);
        ok(&["RENAME", "a", "b"], &[1, 2]);
        ok(&["BLPOP", "a", "b", "0"], &[1, 2]);
        ok(&["BZPOPMIN", "a", "b", "0"], &[1, 2]);
        ok(&["OBJECT", "ENCODING", "k"], &[2]);
        ok(&["MEMORY", "USAGE", "k", "SAMPLES", "5"], &[2]);
        ok(&["XINFO", "STREAM", "s", "FULL"], &[2]);
        ok(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"], &[2]);
        ok(&["PFMERGE", "d", "a", "b"], &[1, 2, 3]);
        ok(&["GEOSEARCHSTORE", "d", "s", "FROMMEMBER", "m", "BYRADIUS", "1", "km"], &[1, 2]);
        ok(&["WATCH", "a", "b"], &[1, 2]);
        ok(&["PING"], &[]);
        ok(&["CONFIG", "GET", "x"], &[]);
        ok(&["PUBLISH", "ch", "m"], &[]);
        ok(&["SPUBLISH", "ch", "m"], &[]);
    }

    #[test]
    fn numkeys_commands() {
        ok(&["EVAL", "return 1", "2", "a", "b", "arg"], &[3, 4]);
        ok(&["EVAL", "return 1", "0", "arg"], &[]);
        ok(&["EVALSHA_RO", &"a".repeat(40), "1", "k"], &[3]);
        ok(&["FCALL", "f", "1", "k", "a"], &[3]);
        ok(&["FCALL_RO", "f", "0"], &[]);
        ok(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"], &[1, 3, 4]);
        ok(&["ZDIFFSTORE", "d", "1", "a"], &[1, 3]);
        ok(&["ZINTER", "2", "a", "b", "WITHSCORES"], &[2, 3]);
        ok(&["ZINTERCARD", "1", "a", "LIMIT", "5"], &[2]);
        ok(&["SINTERCARD", "2", "a", "b"], &[2, 3]);
        ok(&["LMPOP", "2", "a", "b", "LEFT", "COUNT", "3"], &[2, 3]);
        ok(&["ZMPOP", "1", "a", "MIN"], &[2]);
        ok(&["BLMPOP", "0.5", "2", "a", "b", "RIGHT"], &[3, 4]);
        ok(&["BZMPOP", "0", "1", "a", "MAX"], &[3]);
    }

    #[test]
    fn numkeys_errors_match_redis() {
        let sha = "a".repeat(40);
        for name in ["EVAL", "EVAL_RO"] {
            err(&[name, "s", "x", "a"], KeyError::NotAnInteger);
            err(&[name, "s", "01", "a"], KeyError::NotAnInteger);
            err(&[name, "s", "9999999999999999999", "a"], KeyError::NotAnInteger);
            err(&[name, "s", "-1", "a"], KeyError::NegativeKeys);
            err(&[name, "s", "3", "a", "b"], KeyError::TooManyKeys);
            err(&[name, "s", "2"], KeyError::TooManyKeys);
        }
        for name in ["EVALSHA", "EVALSHA_RO"] {
            err(&[name, &sha, "x"], KeyError::NotAnInteger);
            err(&[name, &sha, "-1"], KeyError::NegativeKeys);
            err(&[name, &sha, "5"], KeyError::TooManyKeys);
            err(&[name, "abc", "5"], KeyError::NoScript);
            err(&[name, "abc", "0"], KeyError::NoScript);
            ok(&[name, "abc", "1", "k"], &[3]); // the server answers NOSCRIPT itself
        }
        for name in ["FCALL", "FCALL_RO"] {
            err(&[name, "f", "x"], KeyError::BadNumberOfKeys);
            err(&[name, "f", "+1", "a"], KeyError::BadNumberOfKeys);
            err(&[name, "f", "-1"], KeyError::NegativeKeys);
            err(&[name, "f", "2", "a"], KeyError::TooManyKeys);
        }
        for (args, name) in [
            (&["ZUNIONSTORE", "d"][..], "zunionstore"),
            (&["ZINTERSTORE", "d"], "zinterstore"),
            (&["ZDIFFSTORE", "d"], "zdiffstore"),
            (&["ZUNION"], "zunion"),
            (&["ZINTER"], "zinter"),
            (&["ZDIFF"], "zdiff"),
            (&["ZINTERCARD"], "zintercard"),
        ] {
            let with = |n: &'static str, rest: &[&'static str]| [args, &[n], rest].concat();
            err(&with("x", &["a", "b"]), KeyError::NotAnInteger);
            err(&with("0", &["a", "b"]), KeyError::NoInputKeys(name));
            err(&with("-1", &["a", "b"]), KeyError::NoInputKeys(name));
            err(&with("3", &["a", "b"]), KeyError::Syntax);
        }
        assert_eq!(
            KeyError::NoInputKeys("zunionstore").to_string(),
            "ERR at least 1 input key is needed for 'zunionstore' command"
        );
        err(&["SINTERCARD", "x", "a"], KeyError::NumkeysNotPositive);
        err(&["SINTERCARD", "0", "a"], KeyError::NumkeysNotPositive);
        err(&["SINTERCARD", "3", "a", "b"], KeyError::TooManyKeys);
        for pre in [&["LMPOP"][..], &["BLMPOP", "0"], &["ZMPOP"], &["BZMPOP", "1.5"]] {
            let with = |n: &'static str, rest: &[&'static str]| [pre, &[n], rest].concat();
            err(&with("x", &["a", "LEFT"]), KeyError::NumkeysNotPositive);
            err(&with("-2", &["a", "LEFT"]), KeyError::NumkeysNotPositive);
            err(&with("0", &["a", "LEFT"]), KeyError::NumkeysNotPositive);
            err(&with("5", &["a", "LEFT"]), KeyError::Syntax);
        }
    }

    #[test]
    fn keyword_commands() {
        ok(&["XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "0"], &[4, 5]);
        ok(&["XREAD", "BLOCK", "0", "STREAMS", "a", "$"], &[4]);
        ok(&["XREAD", "STREAMS", "streams", "0"], &[2]);
        ok(&["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "a", ">"], &[7]);
        ok(&["XREADGROUP", "GROUP", "STREAMS", "c", "STREAMS", "a", ">"], &[5]);
        // Unbalanced: Redis's spec floors to the first half; the server replies the error.
        ok(&["XREAD", "STREAMS", "a", "b", "0"], &[2]);
        ok(&["XREAD", "COUNT", "1", "STREAMS", "a"], &[]);
        ok(&["XREAD", "COUNT", "1", "x"], &[]);
        ok(&["GEORADIUS", "k", "0", "0", "1", "km"], &[1]);
        ok(&["GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"], &[1, 7]);
        ok(&["GEORADIUS", "k", "0", "0", "1", "km", "STORE", "a", "STOREDIST", "b"], &[1, 7, 9]);
        ok(&["GEORADIUSBYMEMBER", "k", "m", "1", "km", "storedist", "d"], &[1, 6]);
        ok(&["GEORADIUS", "k", "0", "0", "1", "km", "STORE"], &[1]);
        ok(&["SORT", "k"], &[1]);
        ok(&["SORT", "k", "BY", "w_*", "STORE", "d", "GET", "#"], &[1, 5]);
        ok(&["SORT", "k", "STORE", "a", "STORE", "b"], &[1, 5]);
        ok(&["SORT", "k", "LIMIT", "STORE", "d", "STORE", "e"], &[1, 6]);
        ok(&["SORT", "k", "GET", "store", "x"], &[1]);
        ok(&["SORT", "k", "STORE"], &[1]);
        ok(&["SORT_RO", "k", "BY", "x"], &[1]);
        ok(&["MIGRATE", "h", "1", "k", "0", "5"], &[3]);
        ok(&["MIGRATE", "h", "1", "", "0", "5", "COPY", "AUTH", "keys", "KEYS", "a", "b"], &[10, 11]);
        ok(&["MIGRATE", "h", "1", "", "0", "5", "AUTH2", "u", "keys", "KEYS", "a"], &[10]);
        ok(&["MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a"], &[]);
    }

    #[test]
    fn shard_channels_are_not_keys() {
        let req = Request::from_args(["SPUBLISH", "ch", "m"]);
        let spec = resolve(&req).unwrap();
        assert!(keys(spec, &req).unwrap().is_empty());
        assert_eq!(shard_channels(spec, &req).as_slice(), [1]);
        let req = Request::from_args(["SSUBSCRIBE", "a", "b"]);
        assert_eq!(shard_channels(resolve(&req).unwrap(), &req).as_slice(), [1, 2]);
        let req = Request::from_args(["SUNSUBSCRIBE"]);
        assert!(shard_channels(resolve(&req).unwrap(), &req).is_empty());
        let req = Request::from_args(["GET", "k"]);
        assert!(shard_channels(resolve(&req).unwrap(), &req).is_empty());
    }

    #[test]
    fn short_requests_never_index_out_of_range() {
        // keys() does not check arity: with too few arguments it must still return valid indices.
        for c in super::super::all_commands() {
            for n in 0..6 {
                let mut args = vec![c.parent.unwrap_or(c.token).to_string()];
                if c.parent.is_some() {
                    args.push(c.token.to_string());
                }
                args.extend((0..n).map(|i| i.to_string()));
                let req = Request::from_args(&args);
                if let Ok(k) = keys(c, &req) {
                    assert!(k.iter().all(|&i| i < req.len() && i > 0), "{args:?} {k:?}");
                }
                assert!(shard_channels(c, &req).iter().all(|&i| i < req.len()));
            }
        }
        let req = Request::from_args(Vec::<&str>::new());
        assert!(keys(lookup_full_name(b"get").unwrap(), &req).unwrap().is_empty());
    }

    #[test]
    fn xread_block_detection() {
        let blocks = |args: &[&str]| xread_blocks(&Request::from_args(args));
        assert!(blocks(&["XREAD", "BLOCK", "0", "STREAMS", "a", "$"]));
        assert!(blocks(&["xread", "count", "1", "block", "10", "streams", "a", "$"]));
        assert!(blocks(&["XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "0", "STREAMS", "a", ">"]));
        assert!(!blocks(&["XREAD", "STREAMS", "block", "0"]));
        assert!(!blocks(&["XREADGROUP", "GROUP", "block", "block", "STREAMS", "a", ">"]));
        assert!(!blocks(&["XREAD", "COUNT", "block", "STREAMS", "a", "0"]));
        assert!(!blocks(&["XREAD"]));
    }
}
