//! `zedis config ...`: the configuration center from the command line — set, get, list,
//! history, rollback, delete, watch, canary releases, and the Redis mirror.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use zedis_recipes::config::{
    parse_labels, CanaryOptions, ConfigClient, ConfigOptions, ConfigRecord, Format, MirrorOptions, PublishOptions,
    Source,
};

use crate::common::{format_utc, stop_signal, Global};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Publish a value as the next version of NS/KEY; prints the new version.
    #[command(long_about = SET_ABOUT)]
    Set(SetArgs),
    /// Print the value of NS/KEY (with --json: the value and its metadata).
    #[command(long_about = GET_ABOUT)]
    Get(GetArgs),
    /// List the keys of a namespace with their versions.
    List(ListArgs),
    /// Show the versions of NS/KEY still in its history, newest first.
    History(HistoryArgs),
    /// Publish an older version's value again, as the next version; prints it.
    Rollback(RollbackArgs),
    /// Delete NS/KEY (a new version that says so; `rollback` can undo it); prints its version.
    Delete(DeleteArgs),
    /// Print one line per change of a namespace until Ctrl-C (first its current keys).
    #[command(long_about = WATCH_ABOUT)]
    Watch(WatchArgs),
    /// Canary releases: show a candidate to labelled clients first, then promote or abandon it.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Mirror every namespace into Redis until Ctrl-C, for applications in any language.
    #[command(long_about = MIRROR_ABOUT)]
    Mirror(MirrorArgs),
}

const SET_ABOUT: &str = "\
Publish a value as the next version of NS/KEY; prints the new version.

The value is VALUE, or the content of --file (`-` reads standard input). It is validated
against --format (text, json, toml or properties; taken from the file's extension when not
given) and refused with the reason if it does not parse. Versions start at 1 and rise by 1
with every change; the last 50 are kept in the history.

With --expect-version V the value is published only if NS/KEY is at version V now (0: only if
it never existed); otherwise nothing is written and zedis exits with 1 and a line naming the
current version. Use it for read-modify-write without losing someone else's change.

Examples:
  zedis config set app db.url postgres://db1/app --comment 'move to db1'
  zedis config set app limits --file limits.json --expect-version 4";

const GET_ABOUT: &str = "\
Print the value of NS/KEY (with --json: the value and its metadata).

Exits with 1 if the key does not exist or is deleted. With --snapshot-dir, the namespace is
kept there and, when ZooKeeper is unreachable, the value is read from that snapshot instead
(a warning on standard error says so; --json shows \"source\":\"local_snapshot\"). With
--label, reads as a client with those labels (and so sees matching canary candidates).";

const WATCH_ABOUT: &str = "\
Print one line per change of a namespace until Ctrl-C (first its current keys).

Human lines look like `app/db.url v7 = postgres://db1/app` or `app/old v3 deleted`; --json
prints one JSON object per line. Versions of a key only go up: after a reconnect or a
session expiry everything is re-read and what changed meanwhile is printed once, with its
final value.";

const MIRROR_ABOUT: &str = "\
Mirror every namespace into Redis until Ctrl-C, for applications in any language.

Each namespace becomes the hash `zedis:config:<ns>` (field = key, value = the value) — read it
with `HGET zedis:config:<ns> <key>` — plus `{zedis:config:<ns>}:meta` (field = key, value =
JSON with version, format, time, author, deleted). Writes go through a version-checked
script, so Redis never goes back to an older version. Every change is published as JSON on
the channel `zedis:config:<ns>`. Point --redis at a zedis proxy to mirror into a zedis
cluster. The controller leader runs the same mirror; use this without a controller.

Prints a line containing `ready` after the first full sync.";

#[derive(Subcommand, Debug)]
pub enum CanaryCommand {
    /// Publish a candidate that only clients whose labels match --selector see; prints its version.
    Publish(CanaryPublishArgs),
    /// Release the candidate to everyone (under the candidate's version number).
    Promote(KeyArgs),
    /// Drop the candidate; its clients go back to the released value, as the next version.
    Abandon(KeyArgs),
    /// Show the candidate of NS/KEY, if there is one.
    Show(ShowCanaryArgs),
}

/// Value formats, validated on publish.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
    Toml,
    Properties,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
            FormatArg::Toml => Format::Toml,
            FormatArg::Properties => Format::Properties,
        }
    }
}

/// Where a value comes from, and how to read it.
#[derive(Args, Debug)]
pub struct ValueArgs {
    /// The value (or use --file).
    #[arg(allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Read the value from this file (`-`: standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "value")]
    pub file: Option<PathBuf>,
    /// Format to validate the value against [default: from the file's extension, else text].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Why, kept in the history.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Recorded as the author [default: USER@HOST].
    #[arg(long)]
    pub author: Option<String>,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// Namespace (letters, digits, '-', '_', '.').
    pub namespace: String,
    /// Key (letters, digits, '-', '_', '.', ':', '@').
    pub key: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Publish only if NS/KEY is at this version now (0: only if it never existed).
    #[arg(long, value_name = "V")]
    pub expect_version: Option<u64>,
    /// Print the new record as JSON instead of its version.
    #[arg(long)]
    pub json: bool,
}

/// How a reading client sees the configuration.
#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Read as a client with these labels, NAME=VALUE (repeat or separate with commas): sees
    /// the canary candidates whose selector matches.
    #[arg(long = "label", value_name = "NAME=VALUE")]
    pub labels: Vec<String>,
    /// Keep a snapshot of the namespace here and serve it when ZooKeeper is unreachable.
    #[arg(long, value_name = "DIR", env = "ZEDIS_CONFIG_SNAPSHOT_DIR")]
    pub snapshot_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    pub namespace: String,
    pub key: String,
    /// Print the value and its metadata as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    pub namespace: String,
    /// Print a JSON array of the keys' records.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    pub namespace: String,
    pub key: String,
    /// Print a JSON array of the records, newest first.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    pub namespace: String,
    pub key: String,
    /// The version whose value to publish again.
    #[arg(long, value_name = "V")]
    pub to: u64,
    /// Recorded as the author [default: USER@HOST].
    #[arg(long)]
    pub author: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub namespace: String,
    pub key: String,
    /// Recorded as the author [default: USER@HOST].
    #[arg(long)]
    pub author: Option<String>,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    pub namespace: String,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Args, Debug)]
pub struct CanaryPublishArgs {
    pub namespace: String,
    pub key: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Clients whose labels include all of these see the candidate: NAME=VALUE (repeat or
    /// separate with commas), e.g. --selector zone=eu-1.
    #[arg(long, value_name = "NAME=VALUE", required = true)]
    pub selector: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    pub namespace: String,
    pub key: String,
    /// Recorded as the author [default: USER@HOST].
    #[arg(long)]
    pub author: Option<String>,
}

#[derive(Args, Debug)]
pub struct ShowCanaryArgs {
    pub namespace: String,
    pub key: String,
    /// Print the candidate's record as JSON (`null` if none).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// Redis (or zedis proxy) to write to: URL or HOST:PORT, e.g. redis://127.0.0.1:6379.
    #[arg(long, value_name = "URL")]
    pub redis: String,
    /// How often every namespace is compared in full (repairs hand edits and FLUSHALL).
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub resync_interval_ms: u64,
    /// How often the mirror checks that Redis still has every namespace (a restarted server).
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    pub probe_interval_ms: u64,
}

pub async fn run(global: &Global, cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Set(args) => set(global, args).await,
        ConfigCommand::Get(args) => get(global, args).await,
        ConfigCommand::List(args) => list(global, args).await,
        ConfigCommand::History(args) => history(global, args).await,
        ConfigCommand::Rollback(args) => {
            let client = connect(global, options(global, args.author, None, &[])?).await?;
            let r = client
                .rollback(&args.namespace, &args.key, args.to)
                .await
                .with_context(|| format!("cannot roll {}/{} back", args.namespace, args.key))?;
            println!("{}", r.version);
            Ok(())
        }
        ConfigCommand::Delete(args) => {
            let client = connect(global, options(global, args.author, None, &[])?).await?;
            let r = client
                .delete(&args.namespace, &args.key)
                .await
                .with_context(|| format!("cannot delete {}/{}", args.namespace, args.key))?;
            println!("{}", r.version);
            Ok(())
        }
        ConfigCommand::Watch(args) => watch(global, args).await,
        ConfigCommand::Canary(cmd) => canary(global, cmd).await,
        ConfigCommand::Mirror(args) => mirror(global, args).await,
    }
}

fn options(
    global: &Global,
    author: Option<String>,
    snapshot_dir: Option<PathBuf>,
    labels: &[String],
) -> Result<ConfigOptions> {
    let mut options = ConfigOptions { root: global.root.clone(), snapshot_dir, ..ConfigOptions::default() };
    if let Some(author) = author {
        options.author = author;
    }
    options.labels = parse_labels(labels.iter().map(String::as_str))?;
    Ok(options)
}

async fn connect(global: &Global, options: ConfigOptions) -> Result<ConfigClient> {
    Ok(ConfigClient::connect(global.zk_options(), options).await?)
}

/// The value and format a write publishes.
fn read_value(args: &ValueArgs) -> Result<(String, Format)> {
    let value = match (&args.value, &args.file) {
        (Some(v), None) => v.clone(),
        (None, Some(path)) if path == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("cannot read the value from standard input")?;
            s
        }
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => bail!("give the value, or --file FILE (`-` for standard input)"),
        (Some(_), Some(_)) => bail!("give the value or --file, not both"),
    };
    let format = match (args.format, &args.file) {
        (Some(f), _) => f.into(),
        (None, Some(path)) => match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => Format::Json,
            Some("toml") => Format::Toml,
            Some("properties") => Format::Properties,
            _ => Format::Text,
        },
        (None, None) => Format::Text,
    };
    Ok((value, format))
}

async fn set(global: &Global, args: SetArgs) -> Result<()> {
    let (value, format) = read_value(&args.value)?;
    let client = connect(global, options(global, args.value.author.clone(), None, &[])?).await?;
    let publish = PublishOptions { format, expect_version: args.expect_version, comment: args.value.comment.clone() };
    let r = client
        .publish(&args.namespace, &args.key, value, publish)
        .await
        .with_context(|| format!("cannot set {}/{}", args.namespace, args.key))?;
    if args.json {
        print_json(&Entry::of(&args.namespace, &args.key, &r, None))?;
    } else {
        println!("{}", r.version);
    }
    Ok(())
}

async fn get(global: &Global, args: GetArgs) -> Result<()> {
    let client = connect(global, options(global, None, args.read.snapshot_dir.clone(), &args.read.labels)?).await?;
    let value = client.get(&args.namespace, &args.key).await?;
    let Some(value) = value else {
        bail!("{}/{} not found", args.namespace, args.key);
    };
    warn_if_stale(&args.namespace, value.source);
    if args.json {
        print_json(&Entry::of(&args.namespace, &args.key, &value.record, Some(value.source)))?;
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(value.record.value.as_bytes())?;
        if !value.record.value.ends_with('\n') {
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

async fn list(global: &Global, args: ListArgs) -> Result<()> {
    let client = connect(global, options(global, None, args.read.snapshot_dir.clone(), &args.read.labels)?).await?;
    let view = client.list(&args.namespace).await?;
    warn_if_stale(&args.namespace, view.source);
    if args.json {
        let entries: Vec<Entry> =
            view.entries.iter().map(|(k, r)| Entry::of(&args.namespace, k, r, Some(view.source))).collect();
        return print_json(&entries);
    }
    if view.entries.is_empty() {
        println!("(no keys in namespace {})", args.namespace);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = view
        .entries
        .iter()
        .map(|(k, r)| {
            vec![
                k.clone(),
                format!("v{}{}", r.version, if r.is_canary_candidate() { " (canary)" } else { "" }),
                r.format.to_string(),
                format_utc(r.time_ms),
                r.author.clone(),
                preview(&r.value),
            ]
        })
        .collect();
    print_table(&["KEY", "VERSION", "FORMAT", "UPDATED", "AUTHOR", "VALUE"], &rows);
    Ok(())
}

async fn history(global: &Global, args: HistoryArgs) -> Result<()> {
    let client = connect(global, options(global, None, None, &[])?).await?;
    let history = client.history(&args.namespace, &args.key).await?;
    if args.json {
        let entries: Vec<Entry> = history.iter().map(|r| Entry::of(&args.namespace, &args.key, r, None)).collect();
        return print_json(&entries);
    }
    let rows: Vec<Vec<String>> = history
        .iter()
        .map(|r| {
            let what = match (&r.canary, r.deleted) {
                (_, true) => "deleted".to_string(),
                (Some(c), _) => format!("canary {:?}", c.state).to_lowercase(),
                (None, false) => String::new(),
            };
            vec![
                format!("v{}", r.version),
                format_utc(r.time_ms),
                r.author.clone(),
                what,
                r.comment.clone(),
                if r.deleted { String::new() } else { preview(&r.value) },
            ]
        })
        .collect();
    print_table(&["VERSION", "TIME", "AUTHOR", "", "COMMENT", "VALUE"], &rows);
    Ok(())
}

async fn watch(global: &Global, args: WatchArgs) -> Result<()> {
    let signal = stop_signal()?;
    tokio::pin!(signal);
    let client = connect(global, options(global, None, args.read.snapshot_dir.clone(), &args.read.labels)?).await?;
    let mut watch = client.watch(&args.namespace)?;
    let mut stale_warned = false;
    loop {
        let event = tokio::select! {
            () = &mut signal => return Ok(()),
            event = watch.next() => event.ok_or_else(|| anyhow!("the watch stopped"))?,
        };
        if event.source.is_stale() && !stale_warned {
            warn_if_stale(&args.namespace, event.source);
            stale_warned = true;
        }
        let mut out = std::io::stdout().lock();
        if args.json {
            let entry = Entry::of(&event.namespace, &event.key, &event.record, Some(event.source));
            writeln!(out, "{}", serde_json::to_string(&entry)?)?;
        } else if event.is_deleted() {
            writeln!(out, "{}/{} v{} deleted", event.namespace, event.key, event.version())?;
        } else {
            writeln!(out, "{}/{} v{} = {}", event.namespace, event.key, event.version(), preview(&event.record.value))?;
        }
        // One line per change, visible at once even when piped.
        out.flush()?;
    }
}

async fn canary(global: &Global, cmd: CanaryCommand) -> Result<()> {
    match cmd {
        CanaryCommand::Publish(args) => {
            let (value, format) = read_value(&args.value)?;
            let selector = parse_labels(args.selector.iter().map(String::as_str))?;
            let client = connect(global, options(global, args.value.author.clone(), None, &[])?).await?;
            let canary = CanaryOptions { selector, format, comment: args.value.comment.clone() };
            let r = client
                .publish_canary(&args.namespace, &args.key, value, canary)
                .await
                .with_context(|| format!("cannot publish a canary of {}/{}", args.namespace, args.key))?;
            println!("{}", r.version);
        }
        CanaryCommand::Promote(args) => {
            let client = connect(global, options(global, args.author, None, &[])?).await?;
            let r = client
                .promote_canary(&args.namespace, &args.key)
                .await
                .with_context(|| format!("cannot promote the canary of {}/{}", args.namespace, args.key))?;
            println!("{}", r.version);
        }
        CanaryCommand::Abandon(args) => {
            let client = connect(global, options(global, args.author, None, &[])?).await?;
            let r = client
                .abandon_canary(&args.namespace, &args.key)
                .await
                .with_context(|| format!("cannot abandon the canary of {}/{}", args.namespace, args.key))?;
            println!("{}", r.version);
        }
        CanaryCommand::Show(args) => {
            let client = connect(global, options(global, None, None, &[])?).await?;
            let canary = client.canary(&args.namespace, &args.key).await?;
            match (canary, args.json) {
                (c, true) => print_json(&c.as_ref().map(|r| Entry::of(&args.namespace, &args.key, r, None)))?,
                (None, false) => println!("no canary of {}/{} in progress", args.namespace, args.key),
                (Some(r), false) => {
                    let selector: Vec<String> =
                        r.canary.iter().flat_map(|c| c.selector.iter().map(|(k, v)| format!("{k}={v}"))).collect();
                    println!(
                        "{}/{} v{} for {} (by {} at {}): {}",
                        args.namespace,
                        args.key,
                        r.version,
                        selector.join(","),
                        r.author,
                        format_utc(r.time_ms),
                        preview(&r.value)
                    );
                }
            }
        }
    }
    Ok(())
}

async fn mirror(global: &Global, args: MirrorArgs) -> Result<()> {
    let signal = stop_signal()?;
    tokio::pin!(signal);
    let redis = crate::common::redis_manager(global, &args.redis).await?;
    let client = connect(global, options(global, None, None, &[])?).await?;
    let options = MirrorOptions {
        resync_interval: Duration::from_millis(args.resync_interval_ms.max(100)),
        probe_interval: Duration::from_millis(args.probe_interval_ms.max(50)),
    };
    let mirror = client.mirror(redis, options);
    let mut stats = mirror.stats();
    println!("mirroring {}/config into {}", global.root.trim_end_matches('/'), args.redis);
    let mut running = Box::pin(mirror.run());
    let mut announced = false;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            () = &mut signal => return Ok(()),
            () = &mut running => bail!("the mirror stopped"),
            changed = stats.changed() => {
                if changed.is_err() {
                    bail!("the mirror stopped");
                }
                let s = stats.borrow_and_update().clone();
                if !announced && s.full_resyncs > 0 {
                    announced = true;
                    println!("ready: {} namespaces, {} keys mirrored", s.namespaces, s.keys);
                }
                if s.last_error != last_error {
                    if let Some(error) = &s.last_error {
                        eprintln!("zedis: mirror: {error} (retrying)");
                    }
                    last_error = s.last_error;
                }
            }
        }
    }
}

fn warn_if_stale(namespace: &str, source: Source) {
    if let Source::LocalSnapshot { taken_at_ms } = source {
        eprintln!(
            "zedis: warning: ZooKeeper is unreachable; {namespace} is served from the local snapshot taken at {}",
            format_utc(taken_at_ms)
        );
    }
}

/// What `--json` prints for one record.
#[derive(Serialize)]
struct Entry<'a> {
    namespace: &'a str,
    key: &'a str,
    #[serde(flatten)]
    record: &'a ConfigRecord,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
}

impl<'a> Entry<'a> {
    fn of(namespace: &'a str, key: &'a str, record: &'a ConfigRecord, source: Option<Source>) -> Entry<'a> {
        Entry { namespace, key, record, source }
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = if std::io::stdout().is_terminal() {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    println!("{text}");
    Ok(())
}

/// The value on one line, shortened for a table.
fn preview(value: &str) -> String {
    const MAX: usize = 60;
    let one_line: String = value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let one_line = one_line.trim();
    if one_line.chars().count() > MAX {
        format!("{}…", one_line.chars().take(MAX - 1).collect::<String>())
    } else {
        one_line.to_string()
    }
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.to_string() } else { format!("{c:<width$}", width = widths[i]) })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews() {
        assert_eq!(preview("a\nb"), "a b");
        assert_eq!(preview(&"x".repeat(100)).chars().count(), 60);
    }
}
