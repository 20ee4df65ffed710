//! A reliable queue on one Redis stream and one consumer group. Thin I/O: what to do with a
//! message that came back is decided by [`crate::decision`].
//!
//! Life of a message: [`Queue::push`] appends it to the stream; [`Queue::pop`] delivers it to
//! one consumer of the group (it is then *pending*); [`Queue::ack`] acknowledges and deletes
//! it. If its consumer dies or stalls, the message stays pending; once it has been idle for
//! the visibility timeout, the next `pop` of any consumer reclaims it (`XAUTOCLAIM`) and
//! delivers it again with its delivery count raised, or, after `max_deliveries` deliveries,
//! moves it to the dead-letter stream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::Value;

use crate::decision::{dead_letter_reason, disposition, retry_idle, Disposition};
use crate::error::QueueError;
use crate::keys::QueueKeys;
use crate::message::{decode, decode_dead, encode, is_entry_id, DeadLetter, Message};
use crate::options::QueueOptions;
use crate::reply;
use crate::scripts;
use crate::stats::{QueueStats, RawStats};

/// Where a reclaim scan starts when it has no cursor.
const SCAN_START: &str = "0-0";

/// A handle on one queue. Cheap to clone (clones share the connection, if it is a
/// [`ConnectionManager`], and the reclaim cursor).
pub struct Queue<C = ConnectionManager> {
    conn: C,
    name: String,
    keys: QueueKeys,
    options: QueueOptions,
    /// Where the next reclaim scan of the pending list starts (`XAUTOCLAIM`'s cursor), so
    /// successive pops walk the whole list instead of rescanning its head.
    cursor: Arc<Mutex<String>>,
}

impl<C: Clone> Clone for Queue<C> {
    fn clone(&self) -> Self {
        Queue {
            conn: self.conn.clone(),
            name: self.name.clone(),
            keys: self.keys.clone(),
            options: self.options.clone(),
            cursor: self.cursor.clone(),
        }
    }
}

impl<C> std::fmt::Debug for Queue<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).field("options", &self.options).finish()
    }
}

impl<C: ConnectionLike + Clone + Send + Sync> Queue<C> {
    /// Opens queue `name`: checks the name and options and creates the stream and its
    /// consumer group if they do not exist (idempotent; concurrent opens are fine).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: the group is created at most once, whichever call gets there.
    pub async fn open(conn: C, name: &str, options: QueueOptions) -> Result<Queue<C>, QueueError> {
        let queue = Queue::attach(conn, name, options)?;
        queue.ensure_group().await?;
        Ok(queue)
    }

    /// A handle on queue `name` without touching Redis: for reading stats or dead letters of
    /// a queue that may not exist (nothing is created). `pop` still creates the group if it
    /// is missing.
    pub fn attach(conn: C, name: &str, options: QueueOptions) -> Result<Queue<C>, QueueError> {
        options.validate()?;
        let keys = QueueKeys::new(name)?;
        Ok(Queue { conn, name: name.to_string(), keys, options, cursor: Arc::new(Mutex::new(SCAN_START.into())) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// `XGROUP CREATE ... 0 MKSTREAM`: from the start of the stream, so messages pushed
    /// before the group existed are delivered too.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let created: Result<Value, redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(&self.options.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => {
                tracing::debug!(queue = %self.name, group = %self.options.group, "consumer group created");
                Ok(())
            }
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends a message; returns its id.
    ///
    /// # Cancellation safety
    ///
    /// Not cancel-safe: once the command is sent, the message may be in the queue even though
    /// the id is never seen. Pushing again may then deliver it twice (as always with
    /// at-least-once delivery).
    pub async fn push(&self, payload: &[u8], headers: &BTreeMap<String, String>) -> Result<String, QueueError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.keys.stream);
        if let Some(maxlen) = self.options.maxlen {
            cmd.arg("MAXLEN").arg("~").arg(maxlen);
        }
        cmd.arg("*");
        for (field, value) in encode(payload, headers) {
            cmd.arg(field).arg(value);
        }
        let mut conn = self.conn.clone();
        let reply: Value = cmd.query_async(&mut conn).await?;
        let id = reply::string(&reply).ok_or_else(|| QueueError::reply("XADD", format!("not an id: {reply:?}")))?;
        tracing::debug!(queue = %self.name, id = %id, bytes = payload.len(), "pushed");
        Ok(id)
    }

    /// Up to `count` messages for `consumer`: first those whose previous consumer left them
    /// unacknowledged longer than the visibility timeout (dead-lettering those delivered
    /// `max_deliveries` times already), then new ones. Waits up to `options.block` when
    /// nothing is ready. Each message must be [`Queue::ack`]ed once handled.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe in the sense that nothing is lost: messages delivered by a cancelled call
    /// are pending for `consumer` and come back after the visibility timeout (with their
    /// delivery count raised).
    pub async fn pop(&self, consumer: &str, count: usize) -> Result<Vec<Message>, QueueError> {
        check_consumer(consumer)?;
        if count == 0 {
            return Ok(Vec::new());
        }
        match self.pop_once(consumer, count).await {
            Err(e) if e.is_missing_group() => {
                // The stream or group vanished (deleted, or data lost in a restart or failover).
                tracing::warn!(queue = %self.name, group = %self.options.group, "consumer group missing; recreating it");
                self.ensure_group().await?;
                self.pop_once(consumer, count).await
            }
            other => other,
        }
    }

    async fn pop_once(&self, consumer: &str, count: usize) -> Result<Vec<Message>, QueueError> {
        let mut out = self.reclaim(consumer, count).await?;
        if out.len() < count {
            let block = out.is_empty() && !self.options.block.is_zero();
            out.extend(self.read_new(consumer, count - out.len(), block).await?);
        }
        Ok(out)
    }

    /// Takes messages idle longer than the visibility timeout and sorts them into redeliveries
    /// and dead letters.
    async fn reclaim(&self, consumer: &str, count: usize) -> Result<Vec<Message>, QueueError> {
        let mut conn = self.conn.clone();
        let start = self.cursor.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.keys.stream)
            .arg(&self.options.group)
            .arg(consumer)
            .arg(millis(self.options.visibility_timeout))
            .arg(&start)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let claim = reply::autoclaim(&reply).map_err(|d| QueueError::reply("XAUTOCLAIM", d))?;
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = claim.next.clone();
        if !claim.deleted.is_empty() {
            tracing::warn!(queue = %self.name, ids = ?claim.deleted, "pending messages were trimmed before being acknowledged");
        }
        if claim.claimed.is_empty() {
            return Ok(Vec::new());
        }
        // XAUTOCLAIM does not say how often each was delivered; XPENDING does. The claimed
        // entries are ours now with idle 0, so nobody else can take them in between.
        let mut pipe = redis::pipe();
        for entry in &claim.claimed {
            pipe.cmd("XPENDING").arg(&self.keys.stream).arg(&self.options.group).arg(&entry.id).arg(&entry.id).arg(1);
        }
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        if replies.len() != claim.claimed.len() {
            return Err(QueueError::reply(
                "XPENDING",
                format!("{} replies for {} ids", replies.len(), claim.claimed.len()),
            ));
        }
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (entry, pending) in claim.claimed.into_iter().zip(replies) {
            let pending = reply::pending(&pending).map_err(|d| QueueError::reply("XPENDING", d))?;
            // Gone: acknowledged meanwhile by its slow first consumer. Or taken by another
            // consumer, which only a visibility timeout shorter than a round trip allows.
            let Some(p) = pending.into_iter().next().filter(|p| p.consumer == consumer) else { continue };
            // XAUTOCLAIM counted this delivery already.
            let delivered = p.deliveries.saturating_sub(1);
            match disposition(delivered, self.options.max_deliveries) {
                Disposition::Redeliver => match &entry.fields {
                    Some(fields) => out.push(decode(&entry.id, fields, p.deliveries)),
                    None => {
                        tracing::warn!(queue = %self.name, id = %entry.id, "pending message no longer in the stream")
                    }
                },
                Disposition::DeadLetter => dead.push((entry.id, delivered)),
            }
        }
        if !dead.is_empty() {
            self.dead_letter(consumer, &dead).await?;
        }
        if !out.is_empty() {
            tracing::debug!(queue = %self.name, consumer, count = out.len(), "redelivering reclaimed messages");
        }
        Ok(out)
    }

    async fn dead_letter(&self, consumer: &str, dead: &[(String, u64)]) -> Result<(), QueueError> {
        let mut invocation = scripts::DEAD_LETTER.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.dead)
            .arg(&self.options.group)
            .arg(consumer)
            .arg(self.options.dead_maxlen.unwrap_or(0))
            .arg(now_ms());
        for (id, delivered) in dead {
            let reason = dead_letter_reason(*delivered, self.options.max_deliveries, self.options.visibility_timeout);
            invocation.arg(id).arg(*delivered).arg(reason);
        }
        let mut conn = self.conn.clone();
        let moved: Vec<String> = invocation.invoke_async(&mut conn).await?;
        for id in &moved {
            tracing::warn!(queue = %self.name, id = %id, max_deliveries = self.options.max_deliveries, "message moved to the dead letters");
        }
        Ok(())
    }

    async fn read_new(&self, consumer: &str, count: usize, block: bool) -> Result<Vec<Message>, QueueError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&self.options.group).arg(consumer).arg("COUNT").arg(count);
        if block {
            // BLOCK 0 would wait forever.
            cmd.arg("BLOCK").arg(millis(self.options.block).max(1));
        }
        cmd.arg("STREAMS").arg(&self.keys.stream).arg(">");
        let mut conn = self.conn.clone();
        let reply: Value = cmd.query_async(&mut conn).await?;
        let entries = reply::read_group(&reply).map_err(|d| QueueError::reply("XREADGROUP", d))?;
        Ok(entries.into_iter().filter_map(|e| e.fields.map(|f| decode(&e.id, &f, 1))).collect())
    }

    /// Acknowledges messages (by id) and deletes them from the stream; returns how many were
    /// still pending. Ids already acknowledged, or dead-lettered meanwhile, are skipped.
    ///
    /// # Cancellation safety
    ///
    /// Idempotent: if cancelled, call again with the same ids.
    pub async fn ack<S: AsRef<str> + Sync>(&self, ids: &[S]) -> Result<usize, QueueError> {
        check_ids(ids)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = scripts::ACK.prepare_invoke();
        invocation.key(&self.keys.stream).arg(&self.options.group);
        for id in ids {
            invocation.arg(id.as_ref());
        }
        let mut conn = self.conn.clone();
        let acked: i64 = invocation.invoke_async(&mut conn).await?;
        tracing::debug!(queue = %self.name, acked, asked = ids.len(), "acknowledged");
        Ok(usize::try_from(acked).unwrap_or(0))
    }

    /// Gives messages `consumer` holds back to the queue, to be delivered again (to any
    /// consumer) after `delay` rather than after the full visibility timeout. The delivery
    /// count is kept, so retries still end in the dead letters. Returns how many it holds.
    ///
    /// # Cancellation safety
    ///
    /// Idempotent: if cancelled, call again.
    pub async fn retry_after<S: AsRef<str> + Sync>(
        &self,
        consumer: &str,
        ids: &[S],
        delay: Duration,
    ) -> Result<usize, QueueError> {
        self.touch(consumer, ids, retry_idle(self.options.visibility_timeout, delay)).await
    }

    /// [`Queue::retry_after`] with no delay: visible to the next pop.
    pub async fn nack<S: AsRef<str> + Sync>(&self, consumer: &str, ids: &[S]) -> Result<usize, QueueError> {
        self.retry_after(consumer, ids, Duration::ZERO).await
    }

    /// Restarts the visibility timeout of messages `consumer` still holds, for handlers that
    /// run longer than it. Returns how many it still holds (a message reclaimed by another
    /// consumer meanwhile is not taken back).
    ///
    /// # Cancellation safety
    ///
    /// Idempotent: if cancelled, call again.
    pub async fn extend<S: AsRef<str> + Sync>(&self, consumer: &str, ids: &[S]) -> Result<usize, QueueError> {
        self.touch(consumer, ids, Duration::ZERO).await
    }

    async fn touch<S: AsRef<str> + Sync>(
        &self,
        consumer: &str,
        ids: &[S],
        idle: Duration,
    ) -> Result<usize, QueueError> {
        check_consumer(consumer)?;
        check_ids(ids)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = scripts::TOUCH.prepare_invoke();
        invocation.key(&self.keys.stream).arg(&self.options.group).arg(consumer).arg(millis(idle));
        for id in ids {
            invocation.arg(id.as_ref());
        }
        let mut conn = self.conn.clone();
        let touched: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(usize::try_from(touched).unwrap_or(0))
    }

    /// Lengths, pending and waiting counts, consumers, dead letters and the oldest pending
    /// message.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: reads only.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&self.keys.stream).cmd("XLEN").arg(&self.keys.dead);
        let lengths: Vec<Value> = pipe.query_async(&mut conn).await?;
        let length = |i: usize| lengths.get(i).and_then(reply::int).and_then(|n| u64::try_from(n).ok());
        let (Some(length), Some(dead_length)) = (length(0), length(1)) else {
            return Err(QueueError::reply("XLEN", format!("{lengths:?}")));
        };
        let mut raw = RawStats { length, dead_length, ..Default::default() };
        let mut pipe = redis::pipe();
        pipe.cmd("XINFO").arg("GROUPS").arg(&self.keys.stream);
        pipe.cmd("XPENDING").arg(&self.keys.stream).arg(&self.options.group).arg("-").arg("+").arg(1);
        match pipe.query_async::<Vec<Value>>(&mut conn).await {
            Ok(replies) if replies.len() == 2 => {
                raw.group = reply::group_info(&replies[0], &self.options.group)
                    .map_err(|d| QueueError::reply("XINFO GROUPS", d))?;
                raw.oldest =
                    reply::pending(&replies[1]).map_err(|d| QueueError::reply("XPENDING", d))?.into_iter().next();
            }
            Ok(replies) => return Err(QueueError::reply("XINFO GROUPS", format!("{} replies", replies.len()))),
            // No stream or no group: report it rather than fail.
            Err(e) if e.code() == Some("NOGROUP") || e.to_string().contains("no such key") => {}
            Err(e) => return Err(e.into()),
        }
        Ok(QueueStats::derive(&self.name, &self.options.group, raw))
    }

    /// The oldest `limit` dead letters.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: reads only.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("XRANGE")
            .arg(&self.keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await?;
        let entries = reply::entries(&reply).map_err(|d| QueueError::reply("XRANGE", d))?;
        Ok(entries.into_iter().filter_map(|e| e.fields.map(|f| decode_dead(&e.id, &f))).collect())
    }

    /// Puts dead letters (by their dead-letter id) back on the queue as new messages, with
    /// the delivery count starting again; returns their new ids. Unknown ids are skipped.
    ///
    /// # Cancellation safety
    ///
    /// Each letter moves in one atomic step, so nothing is lost or doubled; after a cancel,
    /// call again with the same ids (those already moved are skipped).
    pub async fn requeue_dead<S: AsRef<str> + Sync>(&self, dead_ids: &[S]) -> Result<Vec<String>, QueueError> {
        check_ids(dead_ids)?;
        if dead_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::REQUEUE.prepare_invoke();
        invocation.key(&self.keys.stream).key(&self.keys.dead).arg(self.options.maxlen.unwrap_or(0));
        for id in dead_ids {
            invocation.arg(id.as_ref());
        }
        let mut conn = self.conn.clone();
        let ids: Vec<String> = invocation.invoke_async(&mut conn).await?;
        tracing::info!(queue = %self.name, requeued = ids.len(), "dead letters requeued");
        Ok(ids)
    }

    /// Requeues the oldest `limit` dead letters.
    pub async fn requeue_all_dead(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        let ids: Vec<String> = self.dead_letters(limit).await?.into_iter().map(|d| d.id).collect();
        self.requeue_dead(&ids).await
    }
}

fn check_consumer(consumer: &str) -> Result<(), QueueError> {
    if consumer.is_empty() || !consumer.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(QueueError::BadName {
            name: consumer.to_string(),
            why: "a consumer is a printable name without spaces",
        });
    }
    Ok(())
}

fn check_ids<S: AsRef<str>>(ids: &[S]) -> Result<(), QueueError> {
    match ids.iter().find(|id| !is_entry_id(id.as_ref())) {
        Some(bad) => Err(QueueError::BadId(bad.as_ref().to_string())),
        None => Ok(()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(millis).unwrap_or(0)
}
