//! `/graphql` over WebSocket: `graphql-transport-ws` and the legacy `graphql-ws`.
//!
//! One task per connection. It waits for `connection_init` (token in its payload), then reads
//! client messages and writes what its outbox holds, until either side closes, the token
//! expires, or the server stops. Operations run in a [`Session`], as over SSE: subscriptions
//! compiled by async-graphql (parse, validate, bind variables) through the role's schema and
//! handed to the live runtime, the change log or a forwarding task (the KPI subscriptions,
//! each result a full one through the outbox, so a slow client gets the newest, with
//! `extensions.seq` counting them); queries and other operations sent over the socket are
//! executed as over HTTP and answered once. This module only frames and writes.
//!
//! Refusals follow graphql-transport-ws's close codes: 4400 bad message, 4401 subscribe before
//! the ack, 4403 refused token or role, 4408 no `connection_init` in time, 4409 a duplicate
//! operation id, 4429 a second `connection_init` or a subject over `[limits]
//! connections_per_subject`; the legacy protocol gets `connection_error` before its close. A token that
//! expires or is revoked while the connection is open closes it with 4403. Frames larger
//! than [`MAX_MESSAGE_BYTES`] close the connection with 1009.
//!
//! Tens of thousands of connections sit idle most of the time, so what one holds while it
//! waits is kept small (about 8 KB each at 10,000, measured with `opslive bench`): one task
//! both reads and writes; its loop's state is about 2 KB, because the handshake and each
//! client message (async-graphql's execution, 4–5 KB of state) run boxed and only while they
//! last; its read buffer is [`READ_BUFFER_BYTES`]. Its waits on the server's stop, on
//! revocations and on policy reloads stay registered across turns of the loop (made anew for
//! each message, they were linked into and out of lists shared by every connection, per
//! message per connection), and a write arms its timer only when it does not complete at once.

pub mod protocol;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::GraphqlState;
use super::admission::Ticket;
use super::errors;
use super::live::Delivery;
use super::session::{Answer, Ending, Session, Vigil, errors_json};
use crate::auth::Principal;
use protocol::{ClientMessage, Frames, Protocol};

/// The largest client message accepted: GraphQL documents are small; anything bigger is a
/// mistake or an attack, and closes the connection rather than being buffered.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// What one read from a client's socket takes in. tungstenite zeroes this much before every
/// read attempt, so each idle connection holds it resident: at 4 KiB it was a third of what a
/// connection cost at 10,000 of them. Client messages are a few hundred bytes (a token, a
/// document); a longer one takes more reads, and the buffer grows to it.
pub const READ_BUFFER_BYTES: usize = 1024;
/// Frames gathered before a write to the socket; the buffer grows only to what is written.
pub const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Time a client has to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for its last frames to be taken.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Between keepalives (`ping`, or the legacy `ka`).
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// Upgrades the request and serves the connection, which holds `ticket` (its place in the
/// per-address count) until it ends.
pub fn upgrade(state: Arc<GraphqlState>, ws: WebSocketUpgrade, ticket: Option<Ticket>) -> Response {
    let protocol = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .flat_map(|p| p.split(','))
        .find_map(|p| Protocol::from_name(p.trim()))
        // A client that names no subprotocol gets the current one.
        .unwrap_or(Protocol::TransportWs);
    ws.protocols(Protocol::NAMES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let cancel = state.shutdown.clone();
            let frames = Frames(protocol);
            let tickets = ticket.into_iter().collect();
            Connection { session: Session::new(state), socket, frames, _tickets: tickets }.serve(cancel).await
        })
}

/// How a connection ends.
struct Close(u16, String);

struct Connection {
    /// The client's operations, and where their results wait.
    session: Session,
    socket: WebSocket,
    frames: Frames,
    /// The connection's places in the per-address and per-subject counts, given back when it ends.
    _tickets: Vec<Ticket>,
}

impl Connection {
    async fn serve(mut self, cancel: CancellationToken) {
        let close = self.run(&cancel).await.err();
        self.session.close();
        if let Some(Close(code, reason)) = close {
            // A client that stopped reading may never take these: they wait a little, behind
            // what its buffers hold, then the socket is dropped.
            let goodbye = async {
                if self.frames.0 == Protocol::Legacy && code == 4403 {
                    let _ = self.socket.send(text(self.frames.connection_error(&reason))).await;
                }
                // Close reasons are limited to 123 bytes.
                let reason: String = reason.chars().take(120).collect();
                let _ =
                    self.socket.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }))).await;
            };
            // Boxed, as the handshake and messages are: a connection's task holds only its loop.
            let _ = tokio::time::timeout(CLOSE_GRACE, Box::pin(goodbye)).await;
        }
    }

    async fn run(&mut self, cancel: &CancellationToken) -> Result<(), Close> {
        // Boxed: the handshake's and a message's states are large (async-graphql's execution)
        // and short-lived; inline, every idle connection's task would carry their size.
        let principal = Box::pin(self.handshake()).await?;
        let state = self.session.state.clone();
        let vigil = Vigil::new(state.clone(), &principal).map_err(|e| Close(4403, format!("Forbidden: {e}")))?;
        // What ends the connection stays registered across turns of the loop: made anew for
        // every message, the waits on the server's stop and on revocations and policy reloads
        // (lists shared by every connection) would be locked and unlinked per message.
        let mut endings = std::pin::pin!(vigil.endings());
        let shutdown = cancel.cancelled();
        tokio::pin!(shutdown);
        let outbox = self.session.outbox.clone();
        let overflow = outbox.overflowed();
        tokio::pin!(overflow);
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        let stopping = || Close(1001, "the server is shutting down".into());
        loop {
            tokio::select! {
                // In this order, so a connection kept busy by its client or its results still
                // sees a revocation or the server's stop; polling a registered wait is cheap.
                biased;
                message = self.socket.recv() => match message {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(socket_error(&e)),
                    Some(Ok(Message::Text(text))) => Box::pin(self.message(&principal, text.as_str())).await?,
                    Some(Ok(Message::Binary(_))) => return Err(Close(4400, "send text frames".into())),
                    Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(_)) => {}
                },
                Some(ending) = endings.next() => match ending {
                    Ending::Expired => return Err(Close(4403, "the token expired: connect again with a new one".into())),
                    Ending::Revoked(e) => return Err(Close(4403, format!("Forbidden: {e}"))),
                    // Row filters and columns were compiled under the old rules: the
                    // subscriptions end rather than keep sending what the role may no longer see.
                    Ending::PolicyChanged => self.end_all("the role policy changed: subscribe again").await?,
                    Ending::Closed => return Ok(()),
                },
                () = &mut shutdown => return Err(stopping()),
                () = &mut overflow => return Err(frozen(&state)),
                _ = outbox.ready() => {
                    let mut write = std::pin::pin!(self.write_waiting());
                    // Most writes complete at once: the timer is armed only for one that waits
                    // (a client that stopped reading), which the cap and the server's stop end too.
                    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
                    match first {
                        Poll::Ready(written) => written?,
                        Poll::Pending => {
                            let timeout = state.admission.limits.write_timeout();
                            tokio::select! {
                                biased;
                                written = tokio::time::timeout(timeout, write) => written.map_err(|_| stalled(&state))??,
                                () = &mut overflow => return Err(frozen(&state)),
                                () = &mut shutdown => return Err(stopping()),
                            }
                        }
                    }
                }
                _ = keepalive.tick() => self.send(self.frames.keepalive()).await?,
            }
        }
    }

    /// Waits for `connection_init`, authenticates it and acknowledges.
    async fn handshake(&mut self) -> Result<Principal, Close> {
        let first = tokio::time::timeout(INIT_TIMEOUT, self.socket.recv())
            .await
            .map_err(|_| Close(4408, "connection initialisation timeout".into()))?;
        let text = match first {
            None | Some(Ok(Message::Close(_))) => return Err(Close(1000, String::new())),
            Some(Err(e)) => return Err(socket_error(&e)),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => return Err(Close(4400, "expected connection_init".into())),
        };
        let payload = match protocol::parse(self.frames.0, text.as_str()) {
            Ok(ClientMessage::Init(payload)) => payload,
            Ok(ClientMessage::Subscribe { .. }) => return Err(Close(4401, "Unauthorized".into())),
            Ok(_) => return Err(Close(4400, "expected connection_init".into())),
            Err(e) => return Err(Close(4400, e.0)),
        };
        let state = self.session.state.clone();
        let principal = match state.auth.from_init_payload(payload.as_ref()).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(Close(
                    4403,
                    "Forbidden: put `Authorization: Bearer <token>` in the connection_init payload".into(),
                ));
            }
            Err(e) => return Err(Close(4403, format!("Forbidden: {e}"))),
        };
        if !state.policy.current().policy.has_role(&principal.role) {
            return Err(Close(4403, format!("Forbidden: role `{}` is not in the policy", principal.role)));
        }
        if let Some(sub) = principal.subject.as_deref() {
            let ticket = state.admission.subject(sub).map_err(|message| Close(4429, message))?;
            self._tickets.push(ticket);
        }
        self.send(self.frames.ack()).await?;
        Ok(principal)
    }

    async fn message(&mut self, principal: &Principal, text: &str) -> Result<(), Close> {
        match protocol::parse(self.frames.0, text).map_err(|e| Close(4400, e.0))? {
            ClientMessage::Init(_) => Err(Close(4429, "Too many initialisation requests".into())),
            ClientMessage::Ping => self.send(self.frames.pong()).await,
            ClientMessage::Pong => Ok(()),
            ClientMessage::Terminate => Err(Close(1000, String::new())),
            ClientMessage::Stop { id } => {
                self.session.stop(&id);
                Ok(())
            }
            ClientMessage::Subscribe { id, request } => {
                let id: Arc<str> = Arc::from(id);
                if self.session.is_open(&id) {
                    return Err(Close(4409, format!("Subscriber for {id} already exists")));
                }
                if let Err(message) = self.session.admit() {
                    let e = errors_json(errors::Code::RateLimited, &message);
                    return self.send_all(self.frames.error(&id, &e)).await;
                }
                match self.session.run(principal, id.clone(), *request).await {
                    Answer::Open => Ok(()),
                    Answer::Once(payload) => {
                        self.send(self.frames.next(&id, &payload)).await?;
                        self.send(self.frames.complete(&id)).await
                    }
                    Answer::Refused(errors) => self.send_all(self.frames.error(&id, &errors)).await,
                }
            }
        }
    }

    /// Writes everything the outbox holds, then flushes once.
    async fn write_waiting(&mut self) -> Result<(), Close> {
        let waiting = self.session.outbox.take();
        for (id, delivery) in waiting {
            // A message for an operation the client has stopped meanwhile is dropped.
            if !self.session.is_open(&id) {
                continue;
            }
            match delivery {
                Delivery::Next { payload, .. } => {
                    self.socket.feed(text(self.frames.next(&id, &payload))).await.map_err(|e| socket_error(&e))?
                }
                Delivery::Error(errors) => {
                    self.session.ended(&id);
                    for frame in self.frames.error(&id, &errors) {
                        self.socket.feed(text(frame)).await.map_err(|e| socket_error(&e))?;
                    }
                }
                Delivery::Complete => {
                    self.session.ended(&id);
                    self.socket.feed(text(self.frames.complete(&id))).await.map_err(|e| socket_error(&e))?;
                }
            }
        }
        self.socket.flush().await.map_err(|e| socket_error(&e))
    }

    async fn end_all(&mut self, reason: &str) -> Result<(), Close> {
        let e = errors_json(errors::Code::Forbidden, reason);
        for id in self.session.stop_all() {
            for frame in self.frames.error(&id, &e) {
                self.socket.feed(text(frame)).await.map_err(|e| socket_error(&e))?;
            }
        }
        self.socket.flush().await.map_err(|e| socket_error(&e))
    }

    /// Sends one frame (an ack, a pong, a keepalive); one that waits on a client that stopped
    /// reading ends when its outbox overflows.
    async fn send(&mut self, frame: String) -> Result<(), Close> {
        let outbox = self.session.outbox.clone();
        let timeout = self.session.state.admission.limits.write_timeout();
        let sent = tokio::select! {
            sent = tokio::time::timeout(timeout, self.socket.send(text(frame))) => Some(sent),
            () = outbox.overflowed() => None,
        };
        match sent {
            Some(Ok(sent)) => sent.map_err(|e| socket_error(&e)),
            Some(Err(_)) => Err(stalled(&self.session.state)),
            None => Err(frozen(&self.session.state)),
        }
    }

    async fn send_all(&mut self, frames: Vec<String>) -> Result<(), Close> {
        for frame in frames {
            self.socket.feed(text(frame)).await.map_err(|e| socket_error(&e))?;
        }
        self.socket.flush().await.map_err(|e| socket_error(&e))
    }
}

/// The close of a connection whose socket took no write for the write timeout.
fn stalled(state: &GraphqlState) -> Close {
    let admission = &state.admission;
    admission.stats.closed_stalled.fetch_add(1, Relaxed);
    let seconds = admission.limits.write_timeout_seconds;
    Close(1008, format!("you stopped reading: a write waited {seconds} s (limits.write_timeout_seconds); reconnect"))
}

/// The close of a connection whose client stopped reading while results piled up.
fn frozen(state: &GraphqlState) -> Close {
    let admission = &state.admission;
    admission.stats.closed_frozen.fetch_add(1, Relaxed);
    let cap = admission.limits.max_pending_bytes;
    Close(1008, format!("you stopped reading: over {cap} bytes waited (limits.max_pending_bytes); reconnect"))
}

fn text(frame: String) -> Message {
    Message::Text(Utf8Bytes::from(frame))
}

/// A read or write failed: an oversized frame gets 1009 and a reason; anything else means the
/// peer is gone.
fn socket_error(e: &axum::Error) -> Close {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Message too big") || text.contains("Space limit") {
        Close(1009, format!("message larger than {MAX_MESSAGE_BYTES} bytes"))
    } else {
        Close(1011, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without making one.
    fn future_size<A, B, F: std::future::Future>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn an_idle_connection_holds_only_its_loop() {
        // Each connection's task is this future: with a message's handling inline (async-graphql's
        // execution) it was over 6 KB, held by every idle connection.
        let size = future_size(Connection::serve);
        assert!(size < 4096, "a connection's task state is {size} bytes");
    }
}
