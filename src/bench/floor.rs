//! The fan-out floor: what delivering each insert to thousands of WebSocket clients costs on
//! this machine and this stack when the server does nothing else.
//!
//! `opslive bench --floor` runs the same clients, writer and measurement against this server
//! instead of `opslive serve`. It learns of each insert into `orders` from PostgreSQL itself — a
//! trigger's `pg_notify` carrying the row as JSON, delivered at commit to a connection that
//! `LISTEN`s, as the walsender delivers WAL — and sends it as a `graphql-transport-ws` patch to
//! every subscribed client: the payload written once, one task per connection, on tokio, axum
//! and tungstenite with the buffer sizes opslive uses. No decoding, no replica, no query, no
//! policy, no outbox, no limits. What `opslive serve` adds to this run's figures is opslive's
//! own cost; what this run costs is the machine's (loopback TCP, the scheduler, the clients on
//! the same two cores) and the stack's.
//!
//! It keeps the newest `limit` keys, so every client's copy stays consistent: each insert
//! enters, and past the limit the oldest key leaves — what the unfiltered live query of
//! `--queries 1` does. Clients that subscribe get that window as their `reset`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

/// The channel the trigger notifies on.
const CHANNEL: &str = "opslive_floor";
/// Updates a client may fall behind before it is dropped (the floor does not pace anyone).
const BACKLOG: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("the database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// The newest keys and the updates that moved them, under one lock so a new subscriber's
/// `reset` and the first patch it receives follow on from each other.
struct Feed {
    /// Oldest first.
    window: VecDeque<i64>,
    limit: usize,
    seq: u64,
    updates: broadcast::Sender<Arc<str>>,
}

impl Feed {
    /// An inserted row (`row_to_json`): the patch that brings it in, written once for everyone.
    fn insert(&mut self, row: &str) -> Option<()> {
        #[derive(serde::Deserialize)]
        struct Key {
            id: i64,
        }
        let key: Key = serde_json::from_str(row).ok()?;
        self.window.push_back(key.id);
        let removed = if self.window.len() > self.limit { self.window.pop_front() } else { None };
        self.seq += 1;
        let removed = removed.map(|k| format!(r#"{{"id":"{k}"}}"#)).unwrap_or_default();
        let payload = format!(
            r#"{{"data":{{"ordersPatches":{{"seq":{},"reset":null,"patch":{{"upserts":[{{"row":{row}}}],"removedKeys":[{removed}]}}}}}}}}"#,
            self.seq
        );
        // No receiver yet is not an error: nobody has subscribed.
        let _ = self.updates.send(Arc::from(payload));
        Some(())
    }

    fn reset(&self) -> String {
        let rows: Vec<String> = self.window.iter().map(|k| format!(r#"{{"id":"{k}"}}"#)).collect();
        format!(r#"{{"data":{{"ordersPatches":{{"seq":{},"reset":[{}],"patch":null}}}}}}"#, self.seq, rows.join(","))
    }
}

/// Serves the floor on `listen` for the `orders` of `database` until `cancel`; `on_listening`
/// is told the bound address once clients can connect.
pub async fn serve(
    database: &str,
    listen: SocketAddr,
    limit: usize,
    cancel: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), FloorError> {
    let (updates, _) = broadcast::channel(BACKLOG);
    let feed = Arc::new(Mutex::new(Feed { window: VecDeque::new(), limit: limit.max(1), seq: 1, updates }));
    let (client, mut connection) = tokio_postgres::connect(database, tokio_postgres::NoTls).await?;
    let notified = feed.clone();
    let listener_cancel = cancel.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        loop {
            let message = tokio::select! {
                m = messages.next() => m,
                () = listener_cancel.cancelled() => return,
            };
            match message {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                    let mut feed = notified.lock().unwrap_or_else(|p| p.into_inner());
                    if feed.insert(n.payload()).is_none() {
                        eprintln!("fanout-floor: a notification without an integer id: {}", n.payload());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    eprintln!("fanout-floor: the database connection failed: {e}");
                    listener_cancel.cancel();
                    return;
                }
                None => {
                    listener_cancel.cancel();
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION opslive_floor_notify() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('{CHANNEL}', row_to_json(NEW)::text); RETURN NULL; END $$; \
             DROP TRIGGER IF EXISTS opslive_floor ON orders; \
             CREATE TRIGGER opslive_floor AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION opslive_floor_notify(); \
             LISTEN {CHANNEL};"
        ))
        .await?;

    let app = axum::Router::new()
        .route("/graphql", get(upgrade))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(feed);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| FloorError::Listen(listen, e))?;
    on_listening(listener.local_addr().map_err(|e| FloorError::Listen(listen, e))?);
    let shutdown = cancel.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(FloorError::Serve)?;
    // Keeps the listening connection (and so the LISTEN) alive for the whole run.
    drop(client);
    Ok(())
}

async fn upgrade(State(feed): State<Arc<Mutex<Feed>>>, ws: WebSocketUpgrade) -> Response {
    ws.protocols(["graphql-transport-ws"])
        .read_buffer_size(crate::api::graphql::ws::READ_BUFFER_BYTES)
        .write_buffer_size(crate::api::graphql::ws::WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| connection(socket, feed))
}

/// One client: `connection_init` → ack, `subscribe` → the window as `reset`, then every update
/// as it comes; pings answered. One task, reading and writing.
async fn connection(mut socket: WebSocket, feed: Arc<Mutex<Feed>>) {
    let mut subscription: Option<(String, broadcast::Receiver<Arc<str>>)> = None;
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(Message::Text(text))) = message else {
                    match message {
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                        _ => return,
                    }
                };
                let Ok(message) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { return };
                let reply = match message["type"].as_str() {
                    Some("connection_init") => r#"{"type":"connection_ack"}"#.to_string(),
                    Some("ping") => r#"{"type":"pong"}"#.to_string(),
                    Some("subscribe") => {
                        let id = message["id"].as_str().unwrap_or_default().to_string();
                        let feed = feed.lock().unwrap_or_else(|p| p.into_inner());
                        let reset = next(&id, &feed.reset());
                        subscription = Some((id, feed.updates.subscribe()));
                        reset
                    }
                    Some("complete") => {
                        subscription = None;
                        continue;
                    }
                    _ => continue,
                };
                if socket.send(Message::Text(Utf8Bytes::from(reply))).await.is_err() {
                    return;
                }
            }
            update = async {
                match subscription.as_mut() {
                    Some((_, updates)) => updates.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let Ok(payload) = update else { return };
                let id = subscription.as_ref().map(|(id, _)| id.as_str()).unwrap_or_default();
                if socket.send(Message::Text(Utf8Bytes::from(next(id, &payload)))).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn next(id: &str, payload: &str) -> String {
    let id = serde_json::to_string(id).expect("strings serialise");
    format!(r#"{{"id":{id},"type":"next","payload":{payload}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_newest_keys_and_each_patch_says_what_left() {
        let (updates, mut rx) = broadcast::channel(16);
        let mut feed = Feed { window: VecDeque::new(), limit: 2, seq: 1, updates };
        for id in 1..=3 {
            feed.insert(&format!(r#"{{"id":{id},"status":"paid"}}"#)).unwrap();
        }
        let patches: Vec<_> = (0..3).map(|_| rx.try_recv().unwrap()).collect();
        use super::super::frame::{Form, Update, update};
        let read = |p: &str| {
            let raw: Box<serde_json::value::RawValue> = serde_json::from_str(p).unwrap();
            update(Form::Patches, &raw).unwrap()
        };
        assert_eq!(read(&patches[0]), (Update::Patch { upserts: vec![1], removed: vec![] }, Some(2)));
        assert_eq!(read(&patches[2]), (Update::Patch { upserts: vec![3], removed: vec![1] }, Some(4)));
        assert_eq!(read(&feed.reset()), (Update::Whole(vec![2, 3]), Some(4)));
        assert!(feed.insert("not a row").is_none());
    }
}
