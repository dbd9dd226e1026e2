//! `/graphql/stream`: GraphQL over Server-Sent Events, as the graphql-sse protocol specifies,
//! for clients and networks where a WebSocket is not an option.
//!
//! - **Single connection mode** (browsers hold ~6 HTTP/1.1 connections per host): `PUT`
//!   reserves a stream for the caller's token and answers a stream token (201, text/plain);
//!   `GET` with that token (`X-GraphQL-Event-Stream-Token`, or `?token=`) opens the one event
//!   stream; `POST`s with the token run operations (202), whose results come on the stream as
//!   `next` `{id, payload}` and `complete` `{id}`, `id` being the request's
//!   `extensions.operationId`; `DELETE ?operationId=` stops one. When the stream closes, its
//!   operations end and the reservation is gone.
//! - **Distinct connections mode**: a `POST` (or `GET` with the query string) without a stream
//!   token, accepting `text/event-stream`, is one operation whose response is its own event
//!   stream: `next` events with the results, then `complete`, then the response ends. Errors
//!   before execution come as a `next` with `errors`, as the protocol asks (a browser's
//!   `EventSource` cannot read a 400).
//!
//! Operations run in a [`Session`] as over WebSocket: the same authentication, role policy,
//! compiled live queries and change streams, `[limits]` (connections per address and subject,
//! operations per stream, subscribe rate, pending bytes, write timeout), and the stream closes
//! when its token expires or is revoked, each open operation told why first.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::Request;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::GraphqlState;
use super::admission::Ticket;
use super::errors::Code;
use super::http::{authenticate, refuse};
use super::live::Delivery;
use super::media::Media;
use super::session::{Answer, Ending, Session, Vigil, errors_json};
use crate::auth::Principal;

/// The header that carries a reservation's token.
pub const TOKEN_HEADER: &str = "x-graphql-event-stream-token";
/// Between keep-alive comments: proxies close a response that is silent for long.
const KEEPALIVE: Duration = Duration::from_secs(12);
/// How long a reservation waits for its stream.
const RESERVATION_WAIT: Duration = Duration::from_secs(60);
/// Event-stream chunks buffered between the writer task and the response body.
const CHUNKS: usize = 8;

/// The reservations of single-connection streams, by token.
#[derive(Debug, Default)]
pub struct Streams {
    reserved: Mutex<HashMap<String, Arc<Reservation>>>,
}

#[derive(Debug)]
struct Reservation {
    principal: Principal,
    /// The client's operations: run by the `POST`s, written out by the stream's task (each
    /// holds the lock only for its step).
    session: tokio::sync::Mutex<Session>,
    made: Instant,
    connected: std::sync::atomic::AtomicBool,
    /// The subject's place in `[limits] connections_per_subject`.
    _subject: Option<Ticket>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Reservation>>> {
        self.reserved.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn find(&self, token: &str) -> Option<Arc<Reservation>> {
        self.lock().get(token).cloned()
    }
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text.into()).into_response()
}

fn stream_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.to_string());
    }
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

/// The caller, with its role checked against the policy, and its subject's place in
/// `[limits] connections_per_subject`.
async fn caller(state: &Arc<GraphqlState>, headers: &HeaderMap) -> Result<(Principal, Option<Ticket>), Response> {
    let principal = authenticate(state, headers, Media::Json).await?;
    if let Err((status, code, message)) = state.role_schema(&principal) {
        return Err(refuse(Media::Json, status, code, message));
    }
    let ticket = principal.subject.as_deref().map(|sub| state.admission.subject(sub)).transpose().map_err(too_many)?;
    Ok((principal, ticket))
}

fn too_many(message: String) -> Response {
    let mut answer = refuse(Media::Json, StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, message);
    answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    answer
}

/// `PUT`: reserves a single-connection stream.
pub async fn reserve(State(state): State<Arc<GraphqlState>>, headers: HeaderMap) -> Response {
    let (principal, subject) = match caller(&state, &headers).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let token = format!("{:032x}", rand::random::<u128>());
    let reservation = Arc::new(Reservation {
        principal,
        session: tokio::sync::Mutex::new(Session::new(state.clone())),
        made: Instant::now(),
        connected: Default::default(),
        _subject: subject,
    });
    let mut reserved = state.sse.lock();
    // Reservations nobody came for are dropped, with their places.
    reserved.retain(|_, r| r.connected.load(Relaxed) || r.made.elapsed() < RESERVATION_WAIT);
    reserved.insert(token.clone(), reservation);
    plain(StatusCode::CREATED, token)
}

/// `GET`: the single-connection stream of a reservation, or a distinct-connection operation
/// from the query string.
pub async fn get(
    State(state): State<Arc<GraphqlState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let address = match admit_address(&state, peer) {
        Ok(ticket) => ticket,
        Err(message) => return too_many(message),
    };
    let Some(token) = stream_token(&headers, query.as_deref()) else {
        let request = match async_graphql::http::parse_query_string(query.as_deref().unwrap_or("")) {
            Ok(r) if !r.query.is_empty() => r,
            _ => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "GET /graphql/stream needs a stream token (X-GraphQL-Event-Stream-Token, from PUT) or a `query`",
                );
            }
        };
        return distinct(state, &headers, request, address).await;
    };
    let Some(reservation) = state.sse.find(&token) else {
        return plain(StatusCode::NOT_FOUND, "no stream is reserved under this token: PUT /graphql/stream first");
    };
    if reservation.connected.swap(true, Relaxed) {
        return plain(StatusCode::CONFLICT, "this reservation's stream is already open");
    }
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS);
    let streams = state.clone();
    tokio::spawn(async move {
        pump(&reservation.session, &reservation.principal, &tx, Framing::Single, &streams.shutdown).await;
        reservation.session.lock().await.close();
        streams.sse.lock().remove(&token);
        drop(address);
    });
    event_stream(rx)
}

/// `POST`: an operation on a reserved stream (with its token), or a distinct-connection one.
pub async fn post(
    State(state): State<Arc<GraphqlState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let request = match serde_json::from_slice::<Request>(&body) {
        Ok(r) if !r.query.is_empty() => r,
        Ok(_) => {
            return refuse(Media::Json, StatusCode::BAD_REQUEST, Code::BadRequest, "the body has no `query`");
        }
        Err(e) => {
            return refuse(
                Media::Json,
                StatusCode::BAD_REQUEST,
                Code::BadRequest,
                format!("not a GraphQL request: {e}"),
            );
        }
    };
    let Some(token) = stream_token(&headers, query.as_deref()) else {
        let address = match admit_address(&state, peer) {
            Ok(ticket) => ticket,
            Err(message) => return too_many(message),
        };
        return distinct(state, &headers, request, address).await;
    };
    let Some(reservation) = state.sse.find(&token) else {
        return plain(StatusCode::NOT_FOUND, "no stream is reserved under this token: PUT /graphql/stream first");
    };
    let Some(id) = request.extensions.get("operationId").and_then(|v| match v {
        async_graphql::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }) else {
        return refuse(
            Media::Json,
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            "a request on a reserved stream needs `extensions.operationId`",
        );
    };
    let id: Arc<str> = Arc::from(id);
    let mut session = reservation.session.lock().await;
    if session.outbox.is_closed() {
        return plain(StatusCode::NOT_FOUND, "this reservation's stream has closed: PUT /graphql/stream again");
    }
    if session.is_open(&id) {
        return plain(StatusCode::CONFLICT, format!("operation {id} is already running on this stream"));
    }
    if let Err(message) = session.admit() {
        return too_many(message);
    }
    match session.run(&reservation.principal, id.clone(), request).await {
        Answer::Open => StatusCode::ACCEPTED.into_response(),
        Answer::Once(payload) => {
            // A query's one result goes the way of every result: on the stream.
            session.hold(id.clone());
            session
                .outbox
                .push(&id, Delivery::Next { payload: Arc::from(payload), kind: super::live::outbox::Kind::Event });
            session.outbox.push(&id, Delivery::Complete);
            StatusCode::ACCEPTED.into_response()
        }
        // Request problems are answered as GraphQL over HTTP answers them.
        Answer::Refused(errors) => {
            let body = format!("{{\"errors\":{errors}}}");
            (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

/// `DELETE ?operationId=`: stops one operation of a reserved stream.
pub async fn delete(State(state): State<Arc<GraphqlState>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let Some(token) = stream_token(&headers, query.as_deref()) else {
        return plain(StatusCode::BAD_REQUEST, "DELETE needs the stream token (X-GraphQL-Event-Stream-Token)");
    };
    let Some(reservation) = state.sse.find(&token) else {
        return plain(StatusCode::NOT_FOUND, "no stream is reserved under this token");
    };
    let id = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "operationId")
        .map(|(_, v)| v.into_owned());
    let Some(id) = id else { return plain(StatusCode::BAD_REQUEST, "DELETE needs `?operationId=`") };
    let mut session = reservation.session.lock().await;
    if session.stop(&id) {
        // Held open until the stream has said `complete`.
        let id: Arc<str> = Arc::from(id.as_str());
        session.hold(id.clone());
        session.outbox.push(&id, Delivery::Complete);
    }
    StatusCode::OK.into_response()
}

/// The client address's place in `[limits] connections_per_address`, or the refusal's message.
fn admit_address(
    state: &Arc<GraphqlState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Option<Ticket>, String> {
    peer.map(|Extension(ConnectInfo(addr))| state.admission.address(addr.ip())).transpose()
}

/// One operation whose response is its own event stream.
async fn distinct(
    state: Arc<GraphqlState>,
    headers: &HeaderMap,
    request: Request,
    address: Option<Ticket>,
) -> Response {
    let (principal, subject) = match caller(&state, headers).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS);
    tokio::spawn(async move {
        let session = tokio::sync::Mutex::new(Session::new(state.clone()));
        let id: Arc<str> = Arc::from("");
        let answer = session.lock().await.run(&principal, id.clone(), request).await;
        match answer {
            Answer::Open => pump(&session, &principal, &tx, Framing::Distinct, &state.shutdown).await,
            Answer::Once(payload) => {
                let _ = tx.send(Framing::Distinct.next(&id, &payload)).await;
                let _ = tx.send(Framing::Distinct.complete(&id)).await;
            }
            // Refused before execution: told on the stream, which the protocol asks for.
            Answer::Refused(errors) => {
                let _ = tx.send(Framing::Distinct.next(&id, &format!("{{\"errors\":{errors}}}"))).await;
                let _ = tx.send(Framing::Distinct.complete(&id)).await;
            }
        }
        // The session closes as it drops; the places are given back after it.
        drop(session);
        drop((address, subject));
    });
    event_stream(rx)
}

fn event_stream(rx: mpsc::Receiver<Bytes>) -> Response {
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    }));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// How events name their operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `data: {"id": …, "payload": …}`.
    Single,
    /// `data: <payload>`: the stream is the operation.
    Distinct,
}

impl Framing {
    fn next(self, id: &str, payload: &str) -> Bytes {
        match self {
            Framing::Single => {
                let id = serde_json::to_string(id).unwrap_or_default();
                Bytes::from(format!("event: next\ndata: {{\"id\":{id},\"payload\":{payload}}}\n\n"))
            }
            Framing::Distinct => Bytes::from(format!("event: next\ndata: {payload}\n\n")),
        }
    }

    fn complete(self, id: &str) -> Bytes {
        match self {
            Framing::Single => {
                let id = serde_json::to_string(id).unwrap_or_default();
                Bytes::from(format!("event: complete\ndata: {{\"id\":{id}}}\n\n"))
            }
            Framing::Distinct => Bytes::from_static(b"event: complete\ndata:\n\n"),
        }
    }

    fn error(self, id: &str, errors: &str) -> [Bytes; 2] {
        [self.next(id, &format!("{{\"errors\":{errors}}}")), self.complete(id)]
    }
}

/// Writes what the session's outbox holds as events until the client goes, the token expires
/// or is revoked, the client stops reading, or (distinct mode) the operation ends.
async fn pump(
    session: &tokio::sync::Mutex<Session>,
    principal: &Principal,
    tx: &mpsc::Sender<Bytes>,
    framing: Framing,
    cancel: &CancellationToken,
) {
    let (state, outbox) = {
        let s = session.lock().await;
        (s.state.clone(), s.outbox.clone())
    };
    let timeout = state.admission.limits.write_timeout();
    let send = |chunk: Bytes| async move { matches!(tokio::time::timeout(timeout, tx.send(chunk)).await, Ok(Ok(()))) };
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    // Opening bytes: some clients wait for the first chunk before they call the stream open.
    if !send(Bytes::from_static(b":\n\n")).await {
        return;
    }
    let end_all = |session: &mut Session, code: Code, reason: &str| {
        let errors = errors_json(code, reason);
        session.stop_all().into_iter().flat_map(|id| framing.error(&id, &errors)).collect::<Vec<_>>()
    };
    let vigil = match Vigil::new(state.clone(), principal) {
        Ok(vigil) => vigil,
        Err(e) => {
            for part in end_all(&mut *session.lock().await, Code::Forbidden, &format!("Forbidden: {e}")) {
                let _ = send(part).await;
            }
            return;
        }
    };
    // Registered once, as over WebSocket: made anew per message, these waits would be linked
    // into and out of lists every stream shares.
    let mut endings = std::pin::pin!(vigil.endings());
    let shutdown = cancel.cancelled();
    tokio::pin!(shutdown);
    loop {
        let goodbye = tokio::select! {
            _ = outbox.ready() => {
                let mut chunk = Vec::new();
                let mut done = false;
                let mut session = session.lock().await;
                for (id, delivery) in outbox.take() {
                    if !session.is_open(&id) {
                        continue;
                    }
                    match delivery {
                        Delivery::Next { payload, .. } => chunk.extend_from_slice(&framing.next(&id, &payload)),
                        Delivery::Error(errors) => {
                            session.ended(&id);
                            for part in framing.error(&id, &errors) {
                                chunk.extend_from_slice(&part);
                            }
                            done = framing == Framing::Distinct;
                        }
                        Delivery::Complete => {
                            session.ended(&id);
                            chunk.extend_from_slice(&framing.complete(&id));
                            done = framing == Framing::Distinct;
                        }
                    }
                }
                drop(session);
                if !chunk.is_empty() && !send(Bytes::from(chunk)).await {
                    // The client stopped reading for the write timeout, or is gone.
                    state.admission.stats.closed_stalled.fetch_add(1, Relaxed);
                    return;
                }
                if done {
                    return;
                }
                continue;
            }
            () = outbox.overflowed() => {
                state.admission.stats.closed_frozen.fetch_add(1, Relaxed);
                return;
            }
            _ = keepalive.tick() => {
                if !send(Bytes::from_static(b":\n\n")).await {
                    return;
                }
                continue;
            }
            () = tx.closed() => return,
            Some(ending) = endings.next() => match ending {
                Ending::Expired => {
                    end_all(&mut *session.lock().await, Code::Unauthenticated, "the token expired: connect again with a new one")
                }
                Ending::Revoked(e) => end_all(&mut *session.lock().await, Code::Forbidden, &format!("Forbidden: {e}")),
                Ending::PolicyChanged => {
                    let parts = end_all(&mut *session.lock().await, Code::Forbidden, "the role policy changed: subscribe again");
                    for part in parts {
                        if !send(part).await {
                            return;
                        }
                    }
                    continue;
                }
                Ending::Closed => return,
            },
            () = &mut shutdown => end_all(&mut *session.lock().await, Code::NotReady, "the server is shutting down"),
        };
        for part in goodbye {
            let _ = send(part).await;
        }
        return;
    }
}
