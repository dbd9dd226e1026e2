//! A GraphQL-over-WebSocket client for tests: `graphql-transport-ws` or the legacy
//! `graphql-ws`, speaking the protocol's messages as a client library would, and answering the
//! server's pings.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TRANSPORT_WS: &str = "graphql-transport-ws";
pub const LEGACY: &str = "graphql-ws";

/// How long a test waits for a message it expects.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: &'static str,
}

/// How the server ended a connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl WsClient {
    /// Opens `/graphql` with `protocol` (its name is offered as the subprotocol).
    pub async fn open(addr: SocketAddr, protocol: &'static str) -> WsClient {
        WsClient::try_open(addr, protocol).await.expect("websocket connect")
    }

    /// Like [`WsClient::open`], returning a refused upgrade (an HTTP answer) as the error.
    pub async fn try_open(
        addr: SocketAddr,
        protocol: &'static str,
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{addr}/graphql").into_client_request().expect("request");
        request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        let chosen = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        assert_eq!(chosen, Some(protocol), "the server picks the offered subprotocol");
        Ok(WsClient { socket, protocol })
    }

    /// Opens and initialises with `Authorization: Bearer <token>` in the payload.
    pub async fn connect(addr: SocketAddr, protocol: &'static str, token: &str) -> WsClient {
        let mut client = WsClient::open(addr, protocol).await;
        client.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})).await;
        let ack = client.message().await.expect("connection_ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    pub async fn send(&mut self, message: Json) {
        self.socket.send(Message::Text(message.to_string().into())).await.expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Json) {
        let kind = if self.protocol == LEGACY { "start" } else { "subscribe" };
        self.send(json!({"id": id, "type": kind, "payload": {"query": query, "variables": variables}})).await;
    }

    pub async fn stop(&mut self, id: &str) {
        let kind = if self.protocol == LEGACY { "stop" } else { "complete" };
        self.send(json!({"id": id, "type": kind})).await;
    }

    /// The next protocol message other than keepalives (pings are answered), or how the
    /// connection closed.
    pub async fn message(&mut self) -> Result<Json, Closed> {
        // One deadline for the whole wait: keepalives must not extend it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.expect("a message within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Json = serde_json::from_str(&text).expect("server messages are JSON");
                    match message["type"].as_str() {
                        Some("ping") => self.send(json!({"type": "pong"})).await,
                        Some("ka") | Some("pong") => {}
                        _ => return Ok(message),
                    }
                }
                Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Closed { code: 0, reason: e.to_string() }),
                None => return Err(Closed { code: 0, reason: "closed without a close frame".into() }),
            }
        }
    }

    /// The next result (`next`/`data`) for `id`, as its payload; panics on anything else.
    pub async fn next(&mut self, id: &str) -> Json {
        let message = self.message().await.unwrap_or_else(|c| panic!("closed while waiting for {id}: {c:?}"));
        let kind = if self.protocol == LEGACY { "data" } else { "next" };
        assert_eq!((message["type"].as_str(), message["id"].as_str()), (Some(kind), Some(id)), "{message}");
        message["payload"].clone()
    }

    /// Waits for the connection to close.
    pub async fn closed(&mut self) -> Closed {
        loop {
            match self.message().await {
                Ok(_) => {}
                Err(closed) => return closed,
            }
        }
    }
}

fn closed(frame: Option<CloseFrame>) -> Closed {
    match frame {
        Some(f) => Closed { code: f.code.into(), reason: f.reason.to_string() },
        None => Closed { code: 1005, reason: String::new() },
    }
}
