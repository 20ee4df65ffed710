//! `zedis queue ...`: operate queues on Redis Streams through the zedis proxy (or any Redis).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use zedis_queue::{DeadLetter, Message, Queue, QueueOptions, QueueStats};

use crate::common::Global;

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Append a message to a queue; prints its id.
    Push(PushArgs),
    /// Take messages for a consumer (first those whose consumer left them unacknowledged
    /// longer than the visibility timeout). Ack them with `zedis queue ack`, or they come back
    /// after the visibility timeout.
    Pop(PopArgs),
    /// Acknowledge messages by id (they are then deleted).
    Ack(AckArgs),
    /// Length, pending, waiting, consumers, dead letters, oldest pending message.
    Stats(StatsArgs),
    /// List the dead letters: messages not acknowledged after the maximum deliveries.
    Dead(DeadArgs),
    /// Put dead letters back on the queue as new messages (by dead-letter id, or --all).
    Requeue(RequeueArgs),
}

#[derive(Args, Debug)]
pub struct Conn {
    /// Redis URL of the zedis proxy (or of one Redis server), `redis://[:PASSWORD@]HOST:PORT`.
    #[arg(long = "redis", env = "ZEDIS_REDIS", default_value = "redis://127.0.0.1:6380", value_name = "URL")]
    pub url: String,
    /// Consumer group of the queue's workers.
    #[arg(long, default_value = "workers")]
    pub group: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    pub name: String,
    /// The message body (text; use --file for bytes).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub payload: Option<String>,
    /// Read the message body from a file (`-` for stdin).
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,
    /// A header, `KEY=VALUE`; repeat for more.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Approximate cap on the queue's length (oldest entries dropped, even undelivered ones).
    #[arg(long)]
    pub maxlen: Option<usize>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args, Debug)]
pub struct PopArgs {
    pub name: String,
    /// Consumer name (messages it does not ack come back to any consumer after the
    /// visibility timeout).
    #[arg(long, default_value = "cli")]
    pub consumer: String,
    /// At most this many messages.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub count: usize,
    /// Milliseconds a message may stay unacknowledged before it is redelivered; use the
    /// workers' value.
    #[arg(long, default_value_t = QueueOptions::default().visibility_timeout.as_millis() as u64, value_name = "MS")]
    pub visibility_timeout_ms: u64,
    /// Deliveries after which an unacknowledged message goes to the dead letters; use the
    /// workers' value.
    #[arg(long, default_value_t = QueueOptions::default().max_deliveries)]
    pub max_deliveries: u32,
    /// Wait up to this many milliseconds for a message when none is ready (at most 5000).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub block_ms: u64,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args, Debug)]
pub struct AckArgs {
    pub name: String,
    /// Message ids, as `pop` printed them.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    pub name: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args, Debug)]
pub struct DeadArgs {
    pub name: String,
    /// At most this many, oldest first.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Args, Debug)]
pub struct RequeueArgs {
    pub name: String,
    /// Dead-letter ids, as `dead` printed them.
    #[arg(value_name = "ID", required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Requeue every dead letter (up to 10000 at a time).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// Longest `--block-ms`: well under the connection's response timeout.
const MAX_BLOCK_MS: u64 = 5000;

pub async fn run(_global: &Global, cmd: QueueCommand) -> Result<()> {
    match cmd {
        QueueCommand::Push(args) => push(args).await,
        QueueCommand::Pop(args) => pop(args).await,
        QueueCommand::Ack(args) => {
            let q = attach(&args.name, &args.conn).await?;
            let acked = q.ack(&args.ids).await?;
            println!("acknowledged {acked} of {}", args.ids.len());
            if acked < args.ids.len() {
                eprintln!("zedis: the others were not pending (acknowledged already, dead-lettered, or unknown)");
            }
            Ok(())
        }
        QueueCommand::Stats(args) => {
            let q = attach(&args.name, &args.conn).await?;
            let stats = q.stats().await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", render_stats(&stats));
            }
            Ok(())
        }
        QueueCommand::Dead(args) => {
            let q = attach(&args.name, &args.conn).await?;
            let dead = q.dead_letters(args.limit).await?;
            if args.json {
                let list: Vec<Value> = dead.iter().map(dead_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if dead.is_empty() {
                println!("no dead letters in queue {}", args.name);
            } else {
                for d in &dead {
                    println!(
                        "{}  original {}  deliveries {}  {}  {}",
                        d.id,
                        d.original_id,
                        d.deliveries,
                        d.reason,
                        printable(&d.payload)
                    );
                }
            }
            Ok(())
        }
        QueueCommand::Requeue(args) => {
            let q = attach(&args.name, &args.conn).await?;
            let ids = if args.all { q.requeue_all_dead(10_000).await? } else { q.requeue_dead(&args.ids).await? };
            println!("requeued {} dead letters", ids.len());
            Ok(())
        }
    }
}

/// Opens the queue, creating it if missing (push, pop).
async fn open(name: &str, conn: &Conn, mut options: QueueOptions) -> Result<Queue> {
    options.group = conn.group.clone();
    let redis = zedis_queue::connect(&conn.url).await.with_context(|| format!("cannot reach Redis at {}", conn.url))?;
    Ok(Queue::open(redis, name, options).await?)
}

/// A handle on the queue that creates nothing (ack, stats, dead letters): a typo in the
/// name reads as an empty queue instead of making one.
async fn attach(name: &str, conn: &Conn) -> Result<Queue> {
    let options = QueueOptions { group: conn.group.clone(), ..QueueOptions::default() };
    let redis = zedis_queue::connect(&conn.url).await.with_context(|| format!("cannot reach Redis at {}", conn.url))?;
    Ok(Queue::attach(redis, name, options)?)
}

async fn push(args: PushArgs) -> Result<()> {
    let payload = match (&args.payload, &args.file) {
        (Some(p), _) => p.clone().into_bytes(),
        (None, Some(path)) if path == "-" => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading stdin")?;
            buf
        }
        (None, Some(path)) => std::fs::read(path).with_context(|| format!("reading {path}"))?,
        (None, None) => bail!("give a PAYLOAD or --file"),
    };
    let headers = parse_headers(&args.headers)?;
    let options = QueueOptions { maxlen: args.maxlen, ..QueueOptions::default() };
    let q = open(&args.name, &args.conn, options).await?;
    let id = q.push(&payload, &headers).await?;
    if args.json {
        println!("{}", json!({ "id": id }));
    } else {
        println!("{id}");
    }
    Ok(())
}

async fn pop(args: PopArgs) -> Result<()> {
    if args.block_ms > MAX_BLOCK_MS {
        bail!("--block-ms is at most {MAX_BLOCK_MS}");
    }
    let options = QueueOptions {
        visibility_timeout: Duration::from_millis(args.visibility_timeout_ms),
        max_deliveries: args.max_deliveries,
        block: Duration::from_millis(args.block_ms),
        ..QueueOptions::default()
    };
    let q = open(&args.name, &args.conn, options).await?;
    let messages = q.pop(&args.consumer, args.count).await?;
    if args.json {
        let list: Vec<Value> = messages.iter().map(message_json).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for m in &messages {
            let headers: Vec<String> = m.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let headers = if headers.is_empty() { String::new() } else { format!("  [{}]", headers.join(" ")) };
            println!("{}  deliveries {}{headers}  {}", m.id, m.deliveries, printable(&m.payload));
        }
        if messages.is_empty() {
            eprintln!("zedis: queue {} has no message ready", args.name);
        }
    }
    Ok(())
}

/// `KEY=VALUE` words → headers.
fn parse_headers(words: &[String]) -> Result<BTreeMap<String, String>> {
    let mut headers = BTreeMap::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else { bail!("header {w:?} is not KEY=VALUE") };
        if k.is_empty() {
            bail!("header {w:?} has an empty key");
        }
        if headers.insert(k.to_string(), v.to_string()).is_some() {
            bail!("header {k:?} is given twice");
        }
    }
    Ok(headers)
}

/// The payload as text when it is UTF-8, else as JSON would quote it (escapes visible).
fn printable(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => format!("{:?}", String::from_utf8_lossy(payload)),
    }
}

/// Payload as `payload` when UTF-8, else as `payload_hex`.
fn payload_json(payload: &[u8]) -> (&'static str, Value) {
    match std::str::from_utf8(payload) {
        Ok(s) => ("payload", json!(s)),
        Err(_) => ("payload_hex", json!(payload.iter().map(|b| format!("{b:02x}")).collect::<String>())),
    }
}

fn message_json(m: &Message) -> Value {
    let (key, payload) = payload_json(&m.payload);
    let mut v = json!({ "id": m.id, "deliveries": m.deliveries, "headers": m.headers });
    v[key] = payload;
    v
}

fn dead_json(d: &DeadLetter) -> Value {
    let (key, payload) = payload_json(&d.payload);
    let mut v = json!({
        "id": d.id,
        "original_id": d.original_id,
        "deliveries": d.deliveries,
        "reason": d.reason,
        "time_ms": d.time_ms,
        "headers": d.headers,
    });
    v[key] = payload;
    v
}

fn render_stats(s: &QueueStats) -> String {
    let mut out = format!("queue {} (group {})\n", s.queue, s.group);
    if !s.group_exists {
        out.push_str("  the stream or its group does not exist (yet); the next pop creates it\n");
    }
    out.push_str(&format!("  length        {}\n", s.length));
    out.push_str(&format!("  waiting       {}\n", s.waiting));
    out.push_str(&format!("  pending       {}\n", s.pending));
    out.push_str(&format!("  consumers     {}\n", s.consumers));
    out.push_str(&format!("  dead letters  {}\n", s.dead_letters));
    if let (Some(id), Some(idle), Some(d)) =
        (&s.oldest_pending_id, s.oldest_pending_idle_ms, s.oldest_pending_deliveries)
    {
        out.push_str(&format!("  oldest pending {id}: idle {idle} ms, {d} deliveries\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let got = parse_headers(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(got.get("b").map(String::as_str), Some("x=y"));
        assert_eq!(got.get("c").map(String::as_str), Some(""));
        for (bad, needle) in [("nokey", "KEY=VALUE"), ("=v", "empty key")] {
            let err = parse_headers(&[bad.into()]).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
        assert!(parse_headers(&["a=1".into(), "a=2".into()]).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn payloads_for_people_and_json() {
        assert_eq!(printable(b"hello"), "hello");
        assert_eq!(printable(b"a\nb"), "\"a\\nb\"");
        let m = Message { id: "1-0".into(), payload: vec![0xff, 0x00], headers: BTreeMap::new(), deliveries: 2 };
        let v = message_json(&m);
        assert_eq!(v["payload_hex"], "ff00");
        assert_eq!(v["deliveries"], 2);
        let m = Message { payload: b"hi".to_vec(), ..m };
        assert_eq!(message_json(&m)["payload"], "hi");
    }

    #[test]
    fn stats_text() {
        let s = QueueStats {
            queue: "q".into(),
            group: "workers".into(),
            length: 3,
            pending: 1,
            waiting: 2,
            consumers: 1,
            dead_letters: 0,
            oldest_pending_id: Some("1-0".into()),
            oldest_pending_idle_ms: Some(40),
            oldest_pending_deliveries: Some(1),
            last_delivered_id: Some("1-0".into()),
            group_exists: true,
        };
        let text = render_stats(&s);
        assert!(text.contains("waiting       2") && text.contains("oldest pending 1-0: idle 40 ms"), "{text}");
    }
}
