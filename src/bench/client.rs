//! One subscriber: a WebSocket client speaking `graphql-transport-ws`, on one live query.
//!
//! It does what a dashboard would (connection_init with the token, one subscription, pong to
//! every ping) and, for the measurement, notes the instant each frame is read — before any
//! parsing, so the tool's own JSON work is not counted as the server's latency — then finds the
//! rows that entered its result and hands their keys to the ledger. A thousand of these run as
//! tasks in one process: each keeps a 4 KiB read buffer (tungstenite's default is 128 KiB) and
//! its result as a sorted list of keys, nothing else.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::frame::{self, Form, ServerMessage, Update};
use super::latency::LatencyRecorder;
use super::ledger::{Delivery, Ledger};
use super::mirror::Mirror;

/// The subscription's id on its connection (one per connection).
const SUBSCRIPTION_ID: &str = "1";
/// Distinct error messages kept; the rest are only counted.
const KEPT_ERRORS: usize = 20;

/// Where and as whom every client connects.
pub struct Endpoint {
    /// `ws://host:port/graphql`.
    pub url: String,
    pub addr: SocketAddr,
    /// More instances of one cluster: client `i` connects to the `i mod n`-th of the first and
    /// these.
    pub also: Vec<(String, SocketAddr)>,
    pub token: String,
    /// Local addresses to connect from, round robin by client (empty: the system's choice).
    pub source_ips: Vec<IpAddr>,
    /// How long the handshake and the first result may take.
    pub setup_timeout: Duration,
}

/// What all clients count together.
#[derive(Default)]
pub struct Tally {
    pub messages: AtomicU64,
    /// Text payload bytes (WebSocket framing not included).
    pub bytes: AtomicU64,
    /// Rows of the run's writer that entered a result before the writer's commit call returned.
    pub early: AtomicU64,
    /// Rows that entered a result but were not written by the run (seed data, other traffic).
    pub foreign: AtomicU64,
    /// Upserts of rows a client already held.
    pub changed: AtomicU64,
    /// Patches that did not fit the client's result (see `mirror`).
    pub inconsistencies: AtomicU64,
    /// Patches whose `seq` was not the previous message's + 1: a patch was lost on the way (a
    /// client that falls behind must get a reset instead).
    pub seq_gaps: AtomicU64,
    /// Frozen clients the server closed with 1008 (they stopped reading).
    pub frozen_closed: AtomicU64,
    /// Whole results in the patch form after the first: the server coalesced patches a client
    /// had not taken yet, or the table was reset.
    pub resets: AtomicU64,
    pub errors: AtomicU64,
    error_messages: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    pub fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.error_messages.lock().unwrap_or_else(|p| p.into_inner());
        let n = kept.len();
        match kept.get_mut(&message) {
            Some(count) => *count += 1,
            None if n < KEPT_ERRORS => {
                kept.insert(message, 1);
            }
            None => {}
        }
    }

    /// Distinct error messages with how often each came.
    pub fn error_messages(&self) -> Vec<(String, u64)> {
        let kept = self.error_messages.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().map(|(m, c)| (m.clone(), *c)).collect()
    }
}

/// What a client needs beside its query.
pub struct Shared {
    pub endpoint: Endpoint,
    pub ledger: Arc<Ledger>,
    pub latency: LatencyRecorder,
    pub tally: Tally,
    pub form: Form,
}

/// One client's subscription.
pub struct Subscriber {
    pub index: usize,
    /// Index of its live query in the scenario's list.
    pub query: usize,
    pub document: Arc<str>,
    pub limit: usize,
    /// Stops reading after its first result (`--frozen`).
    pub frozen: bool,
}

type Socket = WebSocketStream<TcpStream>;

/// Connects, subscribes, reports on `ready` (the query index, or why it could not), then reads
/// frames until `cancel`.
pub async fn run(
    sub: Subscriber,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<Result<usize, String>>,
    cancel: CancellationToken,
) {
    let setup = tokio::time::timeout(shared.endpoint.setup_timeout, subscribe(&sub, &shared));
    let (mut ws, mut mirror, mut last_seq) = tokio::select! {
        () = cancel.cancelled() => return,
        r = setup => match r {
            Ok(Ok(subscribed)) => subscribed,
            Ok(Err(e)) => {
                let _ = ready.send(Err(e));
                return;
            }
            Err(_) => {
                let _ = ready.send(Err(format!(
                    "no first result within {} s",
                    shared.endpoint.setup_timeout.as_secs()
                )));
                return;
            }
        },
    };
    let _ = ready.send(Ok(sub.query));
    if sub.frozen {
        return frozen(ws, &shared, cancel).await;
    }
    let mut latencies = Vec::new();
    loop {
        let message = tokio::select! {
            () = cancel.cancelled() => break,
            m = ws.next() => m,
        };
        // Taken first: parsing is the tool's time, not the server's.
        let arrival = Instant::now();
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                shared.tally.error("a binary frame (graphql-transport-ws sends text)".into());
                continue;
            }
            Some(Ok(Message::Close(close))) => {
                let why = close.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default();
                shared.tally.error(format!("the server closed the connection ({why})"));
                return;
            }
            Some(Err(e)) => {
                shared.tally.error(format!("connection lost: {e}"));
                return;
            }
            None => {
                shared.tally.error("connection lost: end of stream".into());
                return;
            }
        };
        shared.tally.messages.fetch_add(1, Ordering::Relaxed);
        shared.tally.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        match frame::parse(text.as_str()) {
            Ok(ServerMessage::Next { payload, .. }) => match frame::update(shared.form, payload) {
                Ok((update, seq)) => {
                    let entered = match update {
                        Update::Whole(keys) => {
                            if shared.form == Form::Patches {
                                shared.tally.resets.fetch_add(1, Ordering::Relaxed);
                            }
                            mirror.replace(keys)
                        }
                        Update::Patch { upserts, removed } => {
                            if let (Some(seq), Some(last)) = (seq, last_seq)
                                && seq != last + 1
                            {
                                shared.tally.seq_gaps.fetch_add(1, Ordering::Relaxed);
                            }
                            mirror.patch(&upserts, &removed)
                        }
                    };
                    last_seq = seq.or(last_seq);
                    for id in entered.new {
                        match shared.ledger.deliver(id, arrival) {
                            Delivery::Foreign => {
                                shared.tally.foreign.fetch_add(1, Ordering::Relaxed);
                            }
                            Delivery::Warmup => {}
                            Delivery::Measured { latency_us, early } => {
                                latencies.push(latency_us);
                                if early {
                                    shared.tally.early.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    if !entered.changed.is_empty() {
                        shared.tally.changed.fetch_add(entered.changed.len() as u64, Ordering::Relaxed);
                    }
                    if mirror.inconsistencies > 0 {
                        shared.tally.inconsistencies.fetch_add(mirror.inconsistencies, Ordering::Relaxed);
                        mirror.inconsistencies = 0;
                    }
                    shared.latency.record(sub.index, &latencies);
                    latencies.clear();
                }
                Err(e) => shared.tally.error(e.to_string()),
            },
            Ok(ServerMessage::Ping) => {
                if let Err(e) = ws.send(text_message(r#"{"type":"pong"}"#)).await {
                    shared.tally.error(format!("cannot answer a ping: {e}"));
                    return;
                }
            }
            Ok(ServerMessage::Pong) => {}
            Ok(ServerMessage::Error { payload, .. }) => {
                shared.tally.error(format!("subscription error: {}", frame::first_error(payload)));
                return;
            }
            Ok(ServerMessage::Complete { .. }) => {
                shared.tally.error("the server completed the subscription".into());
                return;
            }
            Ok(ServerMessage::ConnectionAck) => shared.tally.error("a second connection_ack".into()),
            Ok(ServerMessage::Other(kind)) => shared.tally.error(format!("an unknown message type `{kind}`")),
            Err(e) => shared.tally.error(e.to_string()),
        }
    }
    // A polite end, so a long-running server sees a closed subscription, not a reset.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = ws.send(text_message(&format!(r#"{{"id":"{SUBSCRIPTION_ID}","type":"complete"}}"#))).await;
        let _ = ws.close(None).await;
    })
    .await;
}

/// A client that reads nothing more until the run ends; then it reads what its buffers hold, to
/// learn whether the server closed it.
async fn frozen(mut ws: Socket, shared: &Shared, cancel: CancellationToken) {
    cancel.cancelled().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(Some(close))) if u16::from(close.code) == 1008 => {
                    shared.tally.frozen_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Connection, `connection_init`, `subscribe`, and the first result (not counted: its rows were
/// there before the run).
async fn subscribe(sub: &Subscriber, shared: &Shared) -> Result<(Socket, Mirror, Option<u64>), String> {
    let endpoint = &shared.endpoint;
    let mut ws = connect(endpoint, sub.index).await?;
    let init = serde_json::json!({
        "type": "connection_init",
        "payload": { "Authorization": format!("Bearer {}", endpoint.token) },
    });
    ws.send(text_message(&init.to_string())).await.map_err(|e| format!("sending connection_init: {e}"))?;
    let subscribe = serde_json::json!({
        "id": SUBSCRIPTION_ID,
        "type": "subscribe",
        "payload": { "query": &*sub.document, "variables": {} },
    });
    let mut acked = false;
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                let why = close.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default();
                return Err(format!("the server closed the connection while subscribing ({why})"));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("connection lost while subscribing: {e}")),
            None => return Err("connection lost while subscribing: end of stream".into()),
        };
        shared.tally.messages.fetch_add(1, Ordering::Relaxed);
        shared.tally.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        match frame::parse(text.as_str()).map_err(|e| e.to_string())? {
            ServerMessage::ConnectionAck if !acked => {
                acked = true;
                ws.send(text_message(&subscribe.to_string())).await.map_err(|e| format!("sending subscribe: {e}"))?;
            }
            ServerMessage::Ping => {
                ws.send(text_message(r#"{"type":"pong"}"#)).await.map_err(|e| format!("answering a ping: {e}"))?
            }
            ServerMessage::Pong => {}
            ServerMessage::Next { payload, .. } if acked => {
                // A change stream has no page: its copy holds every row the filter let in.
                let limit = if shared.form == Form::Changes { usize::MAX } else { sub.limit };
                let mut mirror = Mirror::new(limit);
                let (update, seq) = frame::update(shared.form, payload).map_err(|e| format!("first result: {e}"))?;
                match update {
                    Update::Whole(keys) => mirror.replace(keys),
                    // A change stream starts with its cursor and no events: an empty copy.
                    Update::Patch { upserts, removed }
                        if shared.form == Form::Changes && upserts.is_empty() && removed.is_empty() =>
                    {
                        mirror.patch(&[], &[])
                    }
                    Update::Patch { .. } => return Err("the first message is a patch, not the whole result".into()),
                };
                return Ok((ws, mirror, seq));
            }
            ServerMessage::Error { payload, .. } => {
                return Err(format!("subscription refused: {}", frame::first_error(payload)));
            }
            other => return Err(format!("unexpected while subscribing: {other:?}")),
        }
    }
}

impl Endpoint {
    /// The instance client `index` connects to.
    fn instance(&self, index: usize) -> (&str, SocketAddr) {
        match index % (1 + self.also.len()) {
            0 => (&self.url, self.addr),
            k => (&self.also[k - 1].0, self.also[k - 1].1),
        }
    }
}

async fn connect(endpoint: &Endpoint, index: usize) -> Result<Socket, String> {
    let (url, addr) = endpoint.instance(index);
    let socket =
        if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| format!("a socket: {e}"))?;
    if !endpoint.source_ips.is_empty() {
        let ip = endpoint.source_ips[index % endpoint.source_ips.len()];
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| format!("binding to {ip}: {e}"))?;
    }
    let stream = socket.connect(addr).await.map_err(|e| format!("connecting to {addr}: {e}"))?;
    // Frames are small and latency is what is measured: no Nagle delay on pongs and subscribes.
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let mut request = url.into_client_request().map_err(|e| format!("{url}: {e}"))?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(ws)
}

fn text_message(text: &str) -> Message {
    Message::Text(Utf8Bytes::from(text.to_string()))
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

    use super::*;

    /// The handshake's answer: the client asks for graphql-transport-ws and gets it.
    #[allow(clippy::result_large_err)] // the signature of tungstenite's handshake callback
    fn answer_protocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
        let asked = req.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(asked, "graphql-transport-ws");
        resp.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
        Ok(resp)
    }

    /// A stand-in server: the protocol's steps in order, checking what the client sends.
    async fn serve_one(listener: TcpListener, frames: Vec<String>, handled: tokio::sync::oneshot::Sender<()>) {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, answer_protocol).await.unwrap();
        let next_json = async |ws: &mut WebSocketStream<TcpStream>| -> serde_json::Value {
            loop {
                if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
                    return serde_json::from_str(t.as_str()).unwrap();
                }
            }
        };
        let init = next_json(&mut ws).await;
        assert_eq!(init["type"], "connection_init");
        assert_eq!(init["payload"]["Authorization"], "Bearer T");
        ws.send(text_message(r#"{"type":"connection_ack"}"#)).await.unwrap();
        let subscribe = next_json(&mut ws).await;
        assert_eq!(subscribe["type"], "subscribe");
        assert_eq!(subscribe["id"], "1");
        assert!(subscribe["payload"]["query"].as_str().unwrap().starts_with("subscription"));
        ws.send(text_message(r#"{"type":"ping"}"#)).await.unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "pong");
        for f in frames {
            ws.send(text_message(&f)).await.unwrap();
        }
        // The client reads in order: its pong means every frame before it was handled.
        ws.send(text_message(r#"{"type":"ping"}"#)).await.unwrap();
        assert_eq!(next_json(&mut ws).await["type"], "pong");
        handled.send(()).unwrap();
        // Until the client ends the subscription and closes.
        assert_eq!(next_json(&mut ws).await["type"], "complete");
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    }

    fn patch(seq: u64, upserts: &[i64], removed: &[i64]) -> String {
        let upserts: Vec<_> =
            upserts.iter().map(|id| serde_json::json!({"index": 0, "row": {"id": id.to_string()}})).collect();
        let removed: Vec<_> = removed.iter().map(|id| serde_json::json!({"id": id.to_string()})).collect();
        serde_json::json!({"id": "1", "type": "next", "payload": {"data": {"ordersPatches": {
            "seq": seq, "reset": null, "patch": {"upserts": upserts, "removedKeys": removed}}}}})
        .to_string()
    }

    /// What a test client needs to reach the test server at `addr`.
    fn shared_on(addr: SocketAddr, ledger: Arc<Ledger>, form: Form) -> Arc<Shared> {
        Arc::new(Shared {
            endpoint: Endpoint {
                url: format!("ws://{addr}/graphql"),
                addr,
                also: vec![],
                token: "T".into(),
                source_ips: vec![],
                setup_timeout: Duration::from_secs(10),
            },
            ledger,
            latency: LatencyRecorder::new(1),
            tally: Tally::default(),
            form,
        })
    }

    #[tokio::test]
    async fn a_client_follows_its_live_query_and_records_each_entering_row() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let epoch = Instant::now();
        // Changes 0..3 have ids 100..103; 0 is warm-up, 1 and 2 measured, 2 not yet committed.
        let ledger = Arc::new(Ledger::new(epoch, 100, 3, 1));
        ledger.committed(0, epoch);
        ledger.committed(1, epoch);
        let reset = r#"{"id":"1","type":"next","payload":{"data":{"ordersPatches":{"seq":1,"reset":[{"id":"5"},{"id":"4"}],"patch":null}}}}"#;
        let frames = vec![
            reset.to_string(),
            patch(2, &[100], &[4]),
            patch(3, &[101], &[5]),
            patch(4, &[101], &[]),
            patch(5, &[102], &[100]),
            patch(6, &[42], &[101]),
            patch(8, &[], &[7]),
        ];
        let (handled_tx, handled) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(serve_one(listener, frames, handled_tx));
        let shared = shared_on(addr, ledger.clone(), Form::Patches);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let sub = Subscriber { index: 0, query: 3, document: Arc::from("subscription { x }"), limit: 2, frozen: false };
        let client = tokio::spawn(run(sub, shared.clone(), ready_tx, cancel.clone()));
        assert_eq!(ready_rx.recv().await, Some(Ok(3)));
        handled.await.unwrap();
        cancel.cancel();
        client.await.unwrap();
        server.await.unwrap();

        let t = &shared.tally;
        assert_eq!(t.errors.load(Ordering::Relaxed), 0, "{:?}", t.error_messages());
        assert_eq!(t.messages.load(Ordering::Relaxed), 10, "ack, 2 pings, reset, 6 patches");
        assert_eq!(t.foreign.load(Ordering::Relaxed), 1, "42 is not the writer's");
        assert_eq!(t.changed.load(Ordering::Relaxed), 1, "101 was held already");
        assert_eq!(t.early.load(Ordering::Relaxed), 1, "102 came before its commit returned");
        assert_eq!(t.inconsistencies.load(Ordering::Relaxed), 1, "7 was never held");
        assert_eq!(t.seq_gaps.load(Ordering::Relaxed), 1, "patch 7 never came");
        // The writer's call for 102 returns only now: every change reached its one subscriber.
        ledger.committed(2, Instant::now());
        let count = ledger.count(|_| 1);
        assert_eq!((count.changes, count.delivered, count.missing, count.extra), (3, 3, 0, 0), "{count:?}");
        assert_eq!(shared.latency.summary().samples, 2, "101 and 102 measured, 100 is warm-up");
    }

    #[tokio::test]
    async fn a_refused_subscription_is_reported_not_waited_for() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_hdr_async(stream, answer_protocol).await.unwrap();
            let _init = ws.next().await;
            ws.send(text_message(r#"{"type":"connection_ack"}"#)).await.unwrap();
            let _subscribe = ws.next().await;
            let error = r#"{"id":"1","type":"error","payload":[{"message":"no","extensions":{"code":"FORBIDDEN"}}]}"#;
            ws.send(text_message(error)).await.unwrap();
        });
        let shared = shared_on(addr, Arc::new(Ledger::new(Instant::now(), 0, 1, 0)), Form::Full);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let sub = Subscriber { index: 0, query: 0, document: Arc::from("subscription { x }"), limit: 2, frozen: false };
        tokio::spawn(run(sub, shared, ready_tx, CancellationToken::new()));
        let answer = ready_rx.recv().await.unwrap().unwrap_err();
        assert!(answer.contains("FORBIDDEN"), "{answer}");
        server.await.unwrap();
    }
}
