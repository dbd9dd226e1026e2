//! The two GraphQL-over-WebSocket subprotocols, as messages: `graphql-transport-ws` (the
//! graphql-ws library's protocol, what current clients speak) and the legacy `graphql-ws`
//! (subscriptions-transport-ws, still spoken by many clients and tools).
//!
//! Parsing is strict about what each protocol allows — a message of the wrong type, or a
//! subscribe without an id, is a protocol error with the code the spec gives — and lenient
//! about what does not matter (unknown extra fields).

use async_graphql::Request;
use serde::Deserialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

impl Protocol {
    pub const NAMES: [&'static str; 2] = ["graphql-transport-ws", "graphql-ws"];

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "graphql-transport-ws" => Some(Protocol::TransportWs),
            "graphql-ws" => Some(Protocol::Legacy),
            _ => None,
        }
    }
}

/// What a client can say.
#[derive(Debug)]
pub enum ClientMessage {
    Init(Option<Value>),
    Ping,
    Pong,
    /// `subscribe` (or legacy `start`): an operation under the client's id.
    Subscribe {
        id: String,
        request: Box<Request>,
    },
    /// `complete` (or legacy `stop`): the client no longer wants operation `id`.
    Stop {
        id: String,
    },
    /// Legacy `connection_terminate`.
    Terminate,
}

/// A message that breaks the protocol: the connection closes with 4400 and this reason.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

pub fn parse(protocol: Protocol, text: &str) -> Result<ClientMessage, ProtocolError> {
    let raw: Raw = serde_json::from_str(text)
        .map_err(|e| ProtocolError(format!("not a protocol message (JSON with a `type`): {e}")))?;
    let id = |raw: &Raw| -> Result<String, ProtocolError> {
        match &raw.id {
            Some(id) if !id.is_empty() => Ok(id.clone()),
            _ => Err(ProtocolError(format!("`{}` needs a non-empty `id`", raw.kind))),
        }
    };
    let request = |raw: &Raw| -> Result<Box<Request>, ProtocolError> {
        let payload = raw.payload.clone().ok_or_else(|| ProtocolError(format!("`{}` needs a `payload`", raw.kind)))?;
        serde_json::from_value::<Request>(payload)
            .map(Box::new)
            .map_err(|e| ProtocolError(format!("`{}` payload is not a GraphQL request: {e}", raw.kind)))
    };
    match (protocol, raw.kind.as_str()) {
        (_, "connection_init") => Ok(ClientMessage::Init(raw.payload)),
        (Protocol::TransportWs, "ping") => Ok(ClientMessage::Ping),
        (Protocol::TransportWs, "pong") => Ok(ClientMessage::Pong),
        (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => {
            Ok(ClientMessage::Subscribe { id: id(&raw)?, request: request(&raw)? })
        }
        (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => Ok(ClientMessage::Stop { id: id(&raw)? }),
        (Protocol::Legacy, "connection_terminate") => Ok(ClientMessage::Terminate),
        (_, other) => Err(ProtocolError(format!("unknown message type `{other}`"))),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Frames the server sends, written straight as text (payloads are pre-serialised JSON).
pub struct Frames(pub Protocol);

impl Frames {
    pub fn ack(&self) -> String {
        r#"{"type":"connection_ack"}"#.into()
    }

    /// The server's keepalive: `ping` (answered by `pong`), or the legacy `ka`.
    pub fn keepalive(&self) -> String {
        match self.0 {
            Protocol::TransportWs => r#"{"type":"ping"}"#.into(),
            Protocol::Legacy => r#"{"type":"ka"}"#.into(),
        }
    }

    pub fn pong(&self) -> String {
        r#"{"type":"pong"}"#.into()
    }

    /// A result of operation `id`.
    pub fn next(&self, id: &str, payload: &str) -> String {
        let kind = match self.0 {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        };
        let id = json_string(id);
        let mut out = String::with_capacity(payload.len() + id.len() + 32);
        out.push_str("{\"id\":");
        out.push_str(&id);
        out.push_str(",\"type\":\"");
        out.push_str(kind);
        out.push_str("\",\"payload\":");
        out.push_str(payload);
        out.push('}');
        out
    }

    /// Operation `id` failed: `errors` is a JSON array of GraphQL errors. graphql-transport-ws
    /// has an `error` message (which ends the operation); the legacy protocol reports errors
    /// of a started operation as a result with `errors`, then `complete`.
    pub fn error(&self, id: &str, errors: &str) -> Vec<String> {
        match self.0 {
            Protocol::TransportWs => {
                vec![format!("{{\"id\":{},\"type\":\"error\",\"payload\":{errors}}}", json_string(id))]
            }
            Protocol::Legacy => {
                vec![self.next(id, &format!("{{\"data\":null,\"errors\":{errors}}}")), self.complete(id)]
            }
        }
    }

    pub fn complete(&self, id: &str) -> String {
        format!("{{\"id\":{},\"type\":\"complete\"}}", json_string(id))
    }

    /// Legacy only: the connection is refused (graphql-transport-ws closes with 4403 instead).
    pub fn connection_error(&self, message: &str) -> String {
        format!("{{\"type\":\"connection_error\",\"payload\":{{\"message\":{}}}}}", json_string(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_reads_its_own_messages() {
        let sub = r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { orders { id } }"}}"#;
        assert!(matches!(parse(Protocol::TransportWs, sub), Ok(ClientMessage::Subscribe { .. })));
        assert!(parse(Protocol::Legacy, sub).is_err());
        let start = r#"{"id":"1","type":"start","payload":{"query":"subscription { orders { id } }","variables":{}}}"#;
        assert!(matches!(parse(Protocol::Legacy, start), Ok(ClientMessage::Subscribe { .. })));
        assert!(matches!(parse(Protocol::Legacy, r#"{"id":"1","type":"stop"}"#), Ok(ClientMessage::Stop { .. })));
        assert!(matches!(parse(Protocol::TransportWs, r#"{"type":"ping"}"#), Ok(ClientMessage::Ping)));
        let no_id = r#"{"type":"subscribe","payload":{"query":"{ x }"}}"#;
        assert_eq!(
            parse(Protocol::TransportWs, no_id).err(),
            Some(ProtocolError("`subscribe` needs a non-empty `id`".into()))
        );
        assert!(parse(Protocol::TransportWs, "not json").is_err());
    }

    #[test]
    fn frames_carry_the_payload_untouched() {
        let f = Frames(Protocol::TransportWs);
        assert_eq!(f.next("a\"b", r#"{"data":{}}"#), r#"{"id":"a\"b","type":"next","payload":{"data":{}}}"#);
        let legacy = Frames(Protocol::Legacy);
        assert_eq!(legacy.next("1", "{}"), r#"{"id":"1","type":"data","payload":{}}"#);
        assert_eq!(legacy.error("1", "[]").len(), 2);
    }
}
