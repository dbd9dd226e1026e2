//! The bus: the leader publishes every event its followers' replicas need to a Redis Stream per
//! source; each follower reads the streams in order and applies the same events.
//!
//! Streams, not Pub/Sub: a stream keeps its entries in order and keeps them for a reader that
//! looks away (a follower's hiccup, a restart, a new follower reading from where its bootstrap
//! left off), and each entry's id and sequence number say whether anything is missing. Pub/Sub
//! delivers only to whoever listens at that instant, so a follower that blinks would go on
//! with a hole in its replica.
//!
//! Each entry carries the leader's epoch (the write is refused inside Redis unless it is the
//! cluster's current one: see [`super::lease`]), a sequence number without gaps per stream
//! (continued by the next leader from the stream's last entry), the source position when the
//! event has one, and the event's wire form ([`super::codec`]). The leader counts an event's
//! position as made durable by the bus (see [`crate::watermark`]) once Redis has answered the
//! `XADD`: with `appendfsync always` that is on Redis's disk, and the source is acknowledged
//! only up to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::codec;
use crate::change::{Position, SourceEvent, SourceName};
use crate::registry::Registry;
use crate::replica::Replica;
use crate::watermark::DurableMarks;

/// Entries published in one round trip at most.
const PUBLISH_BATCH: usize = 256;

/// How long after the instance stops the publisher still waits for Redis: what the apply loop
/// drains at a stop is published (so the final checkpoint may acknowledge it), but a Redis that
/// does not answer is not waited for past this.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where a stream stands: its last entry's id and sequence number (`"0-0"` and 0 for a stream
/// with no entry yet).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamMark {
    pub id: String,
    pub seq: u64,
}

impl Default for StreamMark {
    fn default() -> StreamMark {
        StreamMark { id: "0-0".into(), seq: 0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(
        "this instance's epoch {0} is no longer the cluster's: another instance leads, so this one stops publishing"
    )]
    Fenced(u64),
    #[error(
        "the bus stream {stream} skips from entry {expected} to {found}: it no longer holds what this follower needs (trimmed, or Redis lost data); the follower must be rebuilt from the leader"
    )]
    Gap { stream: String, expected: u64, found: u64 },
    #[error("the bus stream {stream} holds an entry that cannot be read: {detail}")]
    Entry { stream: String, detail: String },
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

/// What the apply loop hands the publisher, in its own order.
pub enum Tapped {
    /// An event, after it was applied, with its source; a transaction the replica skipped (a
    /// source sending it again) is counted but not published.
    Event { event: SourceEvent, source: Option<SourceName>, skipped: bool },
    /// The replica after every event handed before it, for a follower's bootstrap.
    Replica(Arc<Replica>),
}

/// The apply loop's side of the bus: events go in order to the publisher; a bootstrap asks
/// for the replica as of the last event handed.
#[derive(Clone)]
pub struct Tap {
    pub events: mpsc::Sender<Tapped>,
    pub wanted: Arc<Notify>,
    pub marks: DurableMarks,
}

/// When the publisher starts publishing: after the first `after_events` events it is handed
/// (those a follower read from the bus itself before it took the lead), under `epoch`, each
/// stream continuing from its mark.
#[derive(Clone, Debug)]
pub struct Activation {
    pub after_events: u64,
    pub epoch: u64,
    pub streams: HashMap<SourceName, StreamMark>,
}

/// A follower's starting point: the leader's replica as of the last entry of each stream.
pub struct Bootstrap {
    pub replica: Arc<Replica>,
    pub epoch: u64,
    pub streams: HashMap<SourceName, StreamMark>,
}

/// Publishes an entry per event, batched, refused unless `ARGV[1]` is still the cluster's
/// epoch. `KEYS[1]` is the epoch key, the rest the streams; then per entry its stream's
/// index in KEYS, sequence number, position (or empty) and bytes.
const PUBLISH: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end
local ids = {}
local i = 4
while i <= #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', ARGV[2], '*',
    'epoch', ARGV[1], 'seq', ARGV[i + 1], 'position', ARGV[i + 2], 'event', ARGV[i + 3])
  i = i + 4
end
return ids
";

/// The leader's publisher: reads what the apply loop hands it and writes it to the streams.
pub struct Publisher {
    pub redis: ConnectionManager,
    pub keys: super::lease::Keys,
    pub max_len: u64,
    pub marks: DurableMarks,
    pub activation: watch::Receiver<Option<Activation>>,
    pub bootstraps: mpsc::Receiver<oneshot::Sender<Bootstrap>>,
    pub wanted: Arc<Notify>,
    pub stats: Arc<BusStats>,
    /// The instance stops: the publisher goes on until the apply loop has handed it everything,
    /// but gives up waiting for Redis [`SHUTDOWN_GRACE`] later (what it then held is not
    /// durable, so no source was acknowledged for it).
    pub stop: tokio_util::sync::CancellationToken,
    /// This instance lost the lead: whatever it publishes now would be refused, so a publish
    /// waiting for Redis is given up at once, stop or not.
    pub lost: tokio_util::sync::CancellationToken,
    /// Replicas that must have each publish (`WAIT`) before its positions are durable.
    pub replicas: Option<Replicas>,
}

/// `WAIT numreplicas timeout`, asked after each publish on the publisher's own connection.
#[derive(Clone, Copy, Debug)]
pub struct Replicas {
    pub count: u32,
    pub timeout_ms: u64,
}

/// Counters of the bus, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct BusStats {
    pub published: std::sync::atomic::AtomicU64,
    pub read: std::sync::atomic::AtomicU64,
    pub leader: std::sync::atomic::AtomicBool,
    pub epoch: std::sync::atomic::AtomicU64,
    /// Whether the last exchange with Redis (a publish, a read) went through: an instance cut
    /// off from the bus is not ready, whatever its replica says.
    pub redis_down: std::sync::atomic::AtomicBool,
}

struct Pending {
    source: SourceName,
    position: Option<Position>,
    bytes: Vec<u8>,
}

impl Publisher {
    /// Runs until the apply loop has stopped and everything it handed is published (`Ok`), or
    /// another instance took the lead (`Fenced`). A Redis that cannot be reached is retried:
    /// events wait, and with them the sources' acknowledgement; after a stop, only for
    /// [`SHUTDOWN_GRACE`].
    ///
    /// A stop does not end it by itself: the apply loop still applies what the sources sent
    /// before they stopped and hands each event on, marked as waiting for the bus. Left
    /// unpublished, those marks would hold back the final checkpoint, and a follower taking
    /// over would not have them.
    pub async fn run(mut self, mut events: mpsc::Receiver<Tapped>) -> Result<(), BusError> {
        let give_up = give_up_after_grace(&self.stop, &self.lost);
        let _give_up_when_done = give_up.clone().drop_guard();
        let mut seen = 0u64;
        let mut active: Option<Activation> = None;
        let mut waiting: Vec<oneshot::Sender<Bootstrap>> = Vec::new();
        let mut batch: Vec<Pending> = Vec::new();
        loop {
            if give_up.is_cancelled() {
                return Ok(());
            }
            let item = tokio::select! {
                biased;
                Some(reply) = self.bootstraps.recv() => {
                    self.activate(&mut active, seen);
                    // Only a leader hands out its replica; a follower's answer is no answer.
                    if active.is_some() {
                        waiting.push(reply);
                        self.wanted.notify_one();
                    }
                    continue;
                }
                item = events.recv() => item,
            };
            let Some(mut item) = item else { break };
            loop {
                match item {
                    Tapped::Event { event, source, skipped } => {
                        seen += 1;
                        self.activate(&mut active, seen - 1);
                        let position = position_of(&event);
                        match (&active, source, skipped) {
                            (Some(_), Some(source), false) => {
                                batch.push(Pending { source, position, bytes: codec::encode(&event) })
                            }
                            // Read from the bus itself (a follower's): already there.
                            (None, Some(source), false) => {
                                if let Some(position) = position {
                                    self.marks.durable(&source, position);
                                }
                            }
                            _ => {}
                        }
                    }
                    Tapped::Replica(replica) => {
                        self.flush(&mut batch, active.as_mut(), &give_up).await?;
                        if let Some(a) = &active {
                            for reply in waiting.drain(..) {
                                let _ = reply.send(Bootstrap {
                                    replica: replica.clone(),
                                    epoch: a.epoch,
                                    streams: a.streams.clone(),
                                });
                            }
                        }
                    }
                }
                if batch.len() >= PUBLISH_BATCH {
                    break;
                }
                match events.try_recv() {
                    Ok(next) => item = next,
                    Err(_) => break,
                }
            }
            self.flush(&mut batch, active.as_mut(), &give_up).await?;
        }
        self.flush(&mut batch, active.as_mut(), &give_up).await
    }

    /// Starts publishing once the activation is set and every event before it has passed.
    fn activate(&self, active: &mut Option<Activation>, passed: u64) {
        if active.is_none()
            && let Some(a) = &*self.activation.borrow()
            && passed >= a.after_events
        {
            *active = Some(a.clone());
        }
    }

    /// Once `replicas` of Redis's replicas have every write this connection made (at once
    /// without replicas configured); asked again until they do. `false`: given up at a stop.
    async fn replicated(&self, give_up: &tokio_util::sync::CancellationToken) -> bool {
        let Some(replicas) = self.replicas else { return true };
        loop {
            let mut con = self.redis.clone();
            let wait = redis::cmd("WAIT").arg(replicas.count).arg(replicas.timeout_ms).to_owned();
            let acknowledged: redis::RedisResult<u32> = tokio::select! {
                n = wait.query_async(&mut con) => n,
                _ = give_up.cancelled() => return false,
            };
            match acknowledged {
                Ok(n) if n >= replicas.count => return true,
                Ok(n) => tracing::warn!(
                    replicas = n,
                    wanted = replicas.count,
                    "too few Redis replicas have the bus's last entries; the sources are not acknowledged past them until enough do"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot ask Redis how many replicas have the bus's entries; asking again")
                }
            }
            if give_up.is_cancelled() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes the batch, retrying while Redis cannot be reached until `give_up`; each entry's
    /// position is then durable on the bus.
    async fn flush(
        &mut self,
        batch: &mut Vec<Pending>,
        active: Option<&mut Activation>,
        give_up: &tokio_util::sync::CancellationToken,
    ) -> Result<(), BusError> {
        let Some(active) = active else {
            batch.clear();
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        let mut streams: Vec<SourceName> = Vec::new();
        for p in batch.iter() {
            if !streams.contains(&p.source) {
                streams.push(p.source.clone());
            }
        }
        let mut delay = Duration::from_millis(50);
        loop {
            let publish = redis::Script::new(PUBLISH);
            let mut script = publish.prepare_invoke();
            script.key(&self.keys.epoch);
            for s in &streams {
                script.key(self.keys.stream(s));
            }
            script.arg(active.epoch).arg(self.max_len).arg(0);
            let mut seqs: HashMap<SourceName, u64> =
                streams.iter().map(|s| (s.clone(), active.streams.get(s).map_or(0, |m| m.seq))).collect();
            let mut assigned = Vec::with_capacity(batch.len());
            for p in batch.iter() {
                let seq = seqs.get_mut(&p.source).expect("every stream counted");
                *seq += 1;
                assigned.push(*seq);
                let index = streams.iter().position(|s| *s == p.source).expect("listed") + 2;
                script.arg(index).arg(*seq).arg(p.position.map(|p| p.to_string()).unwrap_or_default()).arg(&p.bytes);
            }
            let mut con = self.redis.clone();
            let published = tokio::select! {
                published = script.invoke_async::<Vec<String>>(&mut con) => published,
                _ = give_up.cancelled() => {
                    gave_up(batch.len());
                    return Ok(());
                }
            };
            match published {
                Ok(ids) => {
                    for ((p, seq), id) in batch.iter().zip(assigned).zip(ids) {
                        active.streams.insert(p.source.clone(), StreamMark { id, seq });
                    }
                    // In the stream, not yet durable when replicas must have it too: the
                    // entries stay (never written twice), the positions wait.
                    if !self.replicated(give_up).await {
                        gave_up(batch.len());
                        return Ok(());
                    }
                    for p in batch.iter() {
                        if let Some(position) = p.position {
                            self.marks.durable(&p.source, position);
                        }
                    }
                    self.stats.published.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    self.stats.redis_down.store(false, std::sync::atomic::Ordering::Relaxed);
                    batch.clear();
                    return Ok(());
                }
                Err(e) if e.code() == Some("FENCED") || e.to_string().contains("FENCED") => {
                    return Err(BusError::Fenced(active.epoch));
                }
                Err(e) => {
                    self.stats.redis_down.store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "cannot publish to the bus; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = give_up.cancelled() => {
                            gave_up(batch.len());
                            return Ok(());
                        }
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

fn gave_up(events: usize) {
    tracing::warn!(
        events,
        "gave up publishing to the bus (the instance stops, or lost the lead): Redis did not take the last events, so the sources are not acknowledged past them"
    );
}

/// A token cancelled [`SHUTDOWN_GRACE`] after `stop`, at once when the lead is `lost` (or by
/// the caller, when it is done).
fn give_up_after_grace(
    stop: &tokio_util::sync::CancellationToken,
    lost: &tokio_util::sync::CancellationToken,
) -> tokio_util::sync::CancellationToken {
    let give_up = lost.child_token();
    let (stop, cancel) = (stop.clone(), give_up.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = cancel.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => cancel.cancel(),
            _ = cancel.cancelled() => {}
        }
    });
    give_up
}

/// The position an event moves its source to on the bus: its transaction's (the last part's:
/// an earlier part's position is not yet the commit's), progress or a consistent point.
pub fn position_of(event: &SourceEvent) -> Option<Position> {
    match event {
        SourceEvent::Transaction(tx) => Some(tx.position),
        SourceEvent::Part(part) if part.last => Some(part.tx.position),
        SourceEvent::Progress { position, .. } | SourceEvent::Consistent { position, .. } => Some(*position),
        _ => None,
    }
}

/// A stream's last entry, if it has one.
pub async fn last_entry(
    con: &mut impl redis::aio::ConnectionLike,
    key: &str,
) -> redis::RedisResult<Option<redis::streams::StreamId>> {
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1).query_async(con).await?;
    Ok(reply.ids.into_iter().next())
}

/// The last entry of each source's stream: where a new leader continues.
pub async fn stream_marks(
    redis: &ConnectionManager,
    keys: &super::lease::Keys,
    sources: impl Iterator<Item = SourceName>,
) -> Result<HashMap<SourceName, StreamMark>, BusError> {
    let mut marks = HashMap::new();
    let mut con = redis.clone();
    for source in sources {
        let key = keys.stream(&source);
        let mark = match last_entry(&mut con, &key).await? {
            Some(entry) => StreamMark { id: entry.id.clone(), seq: field_u64(&key, &entry, "seq")? },
            None => StreamMark::default(),
        };
        marks.insert(source, mark);
    }
    Ok(marks)
}

fn field_u64(stream: &str, entry: &redis::streams::StreamId, field: &str) -> Result<u64, BusError> {
    entry.get::<u64>(field).ok_or_else(|| BusError::Entry { stream: stream.to_string(), detail: format!("no {field}") })
}

/// A connection of its own for blocking reads of a stream (a blocking `XREAD` holds its
/// connection): opened when first needed and again after a failure, each retry after a
/// doubling pause (50 ms up to 2 s) so that a Redis that is away is not hammered.
pub struct StreamConnection {
    client: redis::Client,
    con: Option<redis::aio::MultiplexedConnection>,
    delay: Duration,
}

impl StreamConnection {
    pub fn new(client: redis::Client) -> StreamConnection {
        StreamConnection { client, con: None, delay: Duration::from_millis(50) }
    }

    /// The connection, opened if it is not.
    pub async fn get(&mut self) -> redis::RedisResult<&mut redis::aio::MultiplexedConnection> {
        if self.con.is_none() {
            // Longer than a read's block, short enough that a Redis that stopped answering
            // (a partition) makes the instance not ready in seconds.
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(READ_TIMEOUT));
            self.con = Some(self.client.get_multiplexed_async_connection_with_config(&config).await?);
        }
        Ok(self.con.as_mut().expect("connected"))
    }

    /// One `XREAD` of `key` after `from`.
    pub async fn read(
        &mut self,
        key: &str,
        from: &str,
        options: &StreamReadOptions,
    ) -> redis::RedisResult<Option<StreamReadReply>> {
        let con = self.get().await?;
        let reply = redis::AsyncCommands::xread_options(con, &[key], &[from], options).await?;
        self.delay = Duration::from_millis(50);
        Ok(reply)
    }

    /// After a failure: drops the connection and waits before the next try.
    pub async fn failed(&mut self) {
        self.con = None;
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(2));
    }
}

/// A follower's reader of one source's stream: hands each entry's event to the apply loop, in
/// order, after checking that none is missing; returns where it stopped once told to drain
/// (the instance takes the lead) and the stream has nothing more.
pub struct Reader {
    pub client: redis::Client,
    pub key: String,
    pub registry: Arc<Registry>,
    pub from: StreamMark,
    pub stats: Arc<BusStats>,
    /// The source's own counters: "connected" while the stream is followed.
    pub source: Arc<crate::source::SourceStats>,
}

/// How long a follower waits for an answer to a blocking read of the bus.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

impl Reader {
    pub async fn run(
        self,
        tx: mpsc::Sender<SourceEvent>,
        mut drain: watch::Receiver<bool>,
        sent: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<StreamMark, BusError> {
        let mut mark = self.from.clone();
        let mut epoch = 0u64;
        let mut con = StreamConnection::new(self.client.clone());
        loop {
            let draining = *drain.borrow();
            // Blocks for a while when following; when draining, one look at what is left.
            let options = if draining {
                StreamReadOptions::default().count(512)
            } else {
                StreamReadOptions::default().count(512).block(500)
            };
            let read = tokio::select! {
                read = con.read(&self.key, &mark.id, &options) => read,
                _ = drain.changed(), if !draining => continue,
            };
            let reply = match read {
                Ok(reply) => reply,
                Err(e) => {
                    self.lost(&e);
                    tracing::warn!(error = %e, stream = %self.key, "lost Redis while following the bus; reconnecting");
                    con.failed().await;
                    continue;
                }
            };
            self.source.set_connected(true);
            self.stats.redis_down.store(false, std::sync::atomic::Ordering::Relaxed);
            let entries: Vec<redis::streams::StreamId> =
                reply.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect()).unwrap_or_default();
            if entries.is_empty() {
                if draining {
                    return Ok(mark);
                }
                continue;
            }
            for entry in entries {
                let seq = field_u64(&self.key, &entry, "seq")?;
                let entry_epoch = field_u64(&self.key, &entry, "epoch")?;
                if entry_epoch < epoch {
                    // Fencing makes this impossible; a stale leader's entry is never applied.
                    tracing::warn!(stream = %self.key, epoch = entry_epoch, current = epoch, "ignored a bus entry from an earlier leader");
                    continue;
                }
                if seq != mark.seq + 1 {
                    return Err(BusError::Gap { stream: self.key.clone(), expected: mark.seq + 1, found: seq });
                }
                epoch = entry_epoch;
                let bytes: Vec<u8> = entry
                    .get("event")
                    .ok_or_else(|| BusError::Entry { stream: self.key.clone(), detail: "no event".into() })?;
                let event = codec::decode(&bytes, &self.registry)?;
                mark = StreamMark { id: entry.id.clone(), seq };
                if tx.send(event).await.is_err() {
                    return Ok(mark);
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.stats.read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

impl Reader {
    fn lost(&self, e: &redis::RedisError) {
        self.source.failed(format!("the bus: {e}"));
        self.stats.redis_down.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
