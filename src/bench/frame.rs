//! What a `graphql-transport-ws` server sends, read just far enough for the load tool.
//!
//! A thousand clients on one live query receive about 100,000 frames a second between them, on
//! the same two cores as the server: building a `serde_json::Value` tree of every row would make
//! the tool measure itself. So a frame is read in two passes over borrowed text: the envelope
//! (`type`, `id`, the payload left as raw JSON), then, for `next` only, the primary keys of the
//! rows — every other field is skipped by the parser without being built. The keys are all the
//! tool needs to tell which rows entered a client's result.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The two shapes of a live query's `next` payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// Every message is the whole result.
    Full,
    /// `reset` (the whole result) first, then `patch { upserts, removedKeys }`.
    Patches,
    /// The change stream (`ordersChanges`): one message per transaction, each row that entered
    /// or changed and each that left.
    Changes,
}

/// One message from the server.
#[derive(Debug)]
pub enum ServerMessage<'a> {
    ConnectionAck,
    Ping,
    Pong,
    Next {
        id: &'a str,
        payload: &'a RawValue,
    },
    /// GraphQL errors for one subscription (the payload is their list).
    Error {
        id: &'a str,
        payload: &'a RawValue,
    },
    Complete {
        id: &'a str,
    },
    /// A type this tool does not know (kept to be reported, not ignored silently).
    Other(&'a str),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("not a graphql-transport-ws message: {0}")]
    Malformed(String),
    #[error("GraphQL error{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Graphql { message: String, code: Option<String> },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    id: Option<&'a str>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// Reads the envelope of one text frame.
pub fn parse(text: &str) -> Result<ServerMessage<'_>, FrameError> {
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let id = || envelope.id.ok_or_else(|| FrameError::Malformed(format!("`{}` without an id", envelope.kind)));
    let payload =
        || envelope.payload.ok_or_else(|| FrameError::Malformed(format!("`{}` without a payload", envelope.kind)));
    Ok(match envelope.kind {
        "connection_ack" => ServerMessage::ConnectionAck,
        "ping" => ServerMessage::Ping,
        "pong" => ServerMessage::Pong,
        "next" => ServerMessage::Next { id: id()?, payload: payload()? },
        "error" => ServerMessage::Error { id: id()?, payload: payload()? },
        "complete" => ServerMessage::Complete { id: id()? },
        other => ServerMessage::Other(other),
    })
}

/// What one `next` says about the result's rows, as their keys (`orders.id`).
#[derive(Debug, PartialEq, Eq)]
pub enum Update {
    /// The whole result: the full form's every message, the patch form's first (`reset`).
    Whole(Vec<i64>),
    /// Rows that entered or changed, and keys that left.
    Patch { upserts: Vec<i64>, removed: Vec<i64> },
}

/// Reads the row keys out of a `next` payload of `form`, with the message's `seq` when it has
/// one; GraphQL errors inside it are returned as the error.
pub fn update(form: Form, payload: &RawValue) -> Result<(Update, Option<u64>), FrameError> {
    match form {
        Form::Full => {
            let p: Payload<Vec<Row>> = from_raw(payload)?;
            let seq = p.extensions.as_ref().and_then(|e| e.seq);
            Ok((Update::Whole(p.into_data()?.into_iter().map(|r| r.id.0).collect()), seq))
        }
        Form::Patches => {
            let p: Payload<Patches> = from_raw(payload)?;
            let patches = p.into_data()?;
            let update = match (patches.reset, patches.patch) {
                (Some(reset), _) => Update::Whole(reset.into_iter().map(|r| r.id.0).collect()),
                (None, Some(patch)) => Update::Patch {
                    upserts: patch.upserts.into_iter().map(|u| u.row.id.0).collect(),
                    removed: patch.removed_keys.into_iter().map(|r| r.id.0).collect(),
                },
                (None, None) => {
                    return Err(FrameError::Malformed("a patch message with neither `reset` nor `patch`".into()));
                }
            };
            Ok((update, patches.seq))
        }
        Form::Changes => {
            let p: Payload<Changes> = from_raw(payload)?;
            let events = p.into_data()?.events;
            // A message without events (where the stream starts, or a heartbeat) changes nothing.
            let (mut upserts, mut removed) = (Vec::new(), Vec::new());
            for event in events {
                match (event.kind.as_str(), event.after, event.key) {
                    ("ENTER" | "UPDATE", Some(row), _) => upserts.push(row.id.0),
                    ("LEAVE", _, Some(key)) => removed.push(key.id.0),
                    // A truncate: every row left; the tool writes none.
                    ("LEAVE", _, None) => {}
                    (kind, ..) => {
                        return Err(FrameError::Malformed(format!("a change event `{kind}` without its row")));
                    }
                }
            }
            Ok((Update::Patch { upserts, removed }, None))
        }
    }
}

/// A change-stream message: only the events' kinds and keys are read.
#[derive(Deserialize)]
struct Changes {
    events: Vec<ChangeEvent>,
}

#[derive(Deserialize)]
struct ChangeEvent {
    kind: String,
    #[serde(default)]
    key: Option<Row>,
    #[serde(default)]
    after: Option<Row>,
}

/// The first error's message and code from an `error` message's payload.
pub fn first_error(payload: &RawValue) -> FrameError {
    match serde_json::from_str::<Vec<GraphqlError>>(payload.get()) {
        Ok(errors) => errors
            .into_iter()
            .next()
            .map(GraphqlError::into_frame_error)
            .unwrap_or_else(|| FrameError::Graphql { message: "an `error` message with no errors".into(), code: None }),
        Err(e) => FrameError::Malformed(format!("an `error` payload that is not a list of errors: {e}")),
    }
}

fn from_raw<T: DeserializeOwned>(payload: &RawValue) -> Result<T, FrameError> {
    serde_json::from_str(payload.get()).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[derive(Deserialize)]
struct Payload<T> {
    #[serde(default = "Option::default")]
    data: Option<OnlyField<T>>,
    #[serde(default)]
    errors: Vec<GraphqlError>,
    #[serde(default)]
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct Extensions {
    #[serde(default)]
    seq: Option<u64>,
}

impl<T> Payload<T> {
    fn into_data(self) -> Result<T, FrameError> {
        if let Some(first) = self.errors.into_iter().next() {
            return Err(first.into_frame_error());
        }
        match self.data {
            Some(OnlyField(t)) => Ok(t),
            None => Err(FrameError::Malformed("a `next` payload without data".into())),
        }
    }
}

#[derive(Deserialize)]
struct GraphqlError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    extensions: Option<ErrorExtensions>,
}

#[derive(Deserialize)]
struct ErrorExtensions {
    #[serde(default)]
    code: Option<String>,
}

impl GraphqlError {
    fn into_frame_error(self) -> FrameError {
        FrameError::Graphql { message: self.message, code: self.extensions.and_then(|e| e.code) }
    }
}

#[derive(Deserialize)]
struct Patches {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    reset: Option<Vec<Row>>,
    #[serde(default)]
    patch: Option<Patch>,
}

#[derive(Deserialize)]
struct Patch {
    #[serde(default)]
    upserts: Vec<Upsert>,
    #[serde(rename = "removedKeys", default)]
    removed_keys: Vec<Row>,
}

#[derive(Deserialize)]
struct Upsert {
    row: Row,
}

/// A row or a key: only `id` is read, the other columns are skipped unbuilt.
#[derive(Deserialize)]
struct Row {
    id: OrderId,
}

/// `orders.id` is an int8, which the canonical JSON form writes as a string; a number is taken
/// too, so the tool does not break on a server that writes small ints as numbers.
struct OrderId(i64);

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OrderId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an int8 key as a string or a number")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OrderId, E> {
                s.parse().map(OrderId).map_err(|_| E::custom(format!("`{s}` is not an int8 key")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OrderId, E> {
                Ok(OrderId(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OrderId, E> {
                i64::try_from(v).map(OrderId).map_err(|_| E::custom("key out of int8 range"))
            }
        }
        d.deserialize_any(V)
    }
}

/// `data` holds one field, named after the subscription's root field (`orders`,
/// `ordersPatches`, or an alias): its value is taken whatever the name.
struct OnlyField<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OnlyField<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OnlyField<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with one field")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OnlyField<T>, A::Error> {
                let Some((_, value)) = map.next_entry::<IgnoredAny, T>()? else {
                    return Err(de::Error::custom("`data` has no field"));
                };
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(OnlyField(value))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(text: &str) -> &RawValue {
        match parse(text).unwrap() {
            ServerMessage::Next { payload, .. } => payload,
            other => panic!("not a next: {other:?}"),
        }
    }

    #[test]
    fn envelopes() {
        assert!(matches!(parse(r#"{"type":"connection_ack"}"#), Ok(ServerMessage::ConnectionAck)));
        assert!(matches!(parse(r#"{"type":"ping","payload":{}}"#), Ok(ServerMessage::Ping)));
        assert!(matches!(parse(r#"{"id":"7","type":"complete"}"#), Ok(ServerMessage::Complete { id: "7" })));
        assert!(matches!(parse(r#"{"type":"ka"}"#), Ok(ServerMessage::Other("ka"))));
        assert!(matches!(parse(r#"{"type":"next"}"#), Err(FrameError::Malformed(_))));
        assert!(matches!(parse("not json"), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn full_form_keys_in_result_order() {
        let text = r#"{"id":"1","type":"next","payload":{"data":{"orders":[
            {"id":"40012","status":"paid","createdAt":"2026-11-28T12:00:00.123456Z"},
            {"id":"17","status":"paid","createdAt":"2026-11-28T11:00:00Z","nested":{"a":[1,2,{"id":"x"}]}}]},
            "extensions":{"asOf":{"position":"0/1A2B3C8","commitTs":"2026-11-28T12:00:00.123456Z"},"seq":7}}}"#;
        assert_eq!(update(Form::Full, next(text)).unwrap(), (Update::Whole(vec![40012, 17]), Some(7)));
        let empty = r#"{"id":"1","type":"next","payload":{"data":{"orders":[]}}}"#;
        assert_eq!(update(Form::Full, next(empty)).unwrap(), (Update::Whole(vec![]), None));
    }

    #[test]
    fn patch_form_reset_then_patches() {
        let reset = r#"{"id":"1","type":"next","payload":{"data":{"ordersPatches":{"seq":1,
            "asOf":{"position":"0/16B3748","commitTs":"2026-11-28T12:00:00Z"},
            "reset":[{"id":"3","status":"paid"},{"id":"2","status":"paid"}],"patch":null}}}}"#;
        assert_eq!(update(Form::Patches, next(reset)).unwrap(), (Update::Whole(vec![3, 2]), Some(1)));
        let patch = r#"{"id":"1","type":"next","payload":{"data":{"ordersPatches":{"seq":8,
            "asOf":{"position":"0/1A2B3C8","commitTs":"2026-11-28T12:00:00.123456Z"},"reset":null,
            "patch":{"upserts":[{"index":0,"row":{"id":"123","status":"paid"}}],"removedKeys":[{"id":"99"}]}}}}}"#;
        assert_eq!(
            update(Form::Patches, next(patch)).unwrap(),
            (Update::Patch { upserts: vec![123], removed: vec![99] }, Some(8))
        );
        // Field order is free in JSON: `patch` before `reset`, keys as numbers.
        let reordered = r#"{"payload":{"data":{"p":{"patch":{"removedKeys":[],"upserts":[{"row":{"id":5},"index":1}]},
            "reset":null}}},"type":"next","id":"1"}"#;
        assert_eq!(
            update(Form::Patches, next(reordered)).unwrap(),
            (Update::Patch { upserts: vec![5], removed: vec![] }, None)
        );
    }

    #[test]
    fn errors_are_read_with_their_code() {
        let in_next = r#"{"id":"1","type":"next","payload":{"data":null,
            "errors":[{"message":"orders is loading","extensions":{"code":"NOT_READY"}}]}}"#;
        assert_eq!(
            update(Form::Full, next(in_next)).unwrap_err(),
            FrameError::Graphql { message: "orders is loading".into(), code: Some("NOT_READY".into()) }
        );
        let error = r#"{"id":"1","type":"error","payload":[{"message":"bad","extensions":{"code":"FORBIDDEN"}}]}"#;
        let ServerMessage::Error { payload, .. } = parse(error).unwrap() else { panic!() };
        assert_eq!(first_error(payload), FrameError::Graphql { message: "bad".into(), code: Some("FORBIDDEN".into()) });
    }

    #[test]
    fn bad_keys_are_errors_not_zeroes() {
        let text = r#"{"id":"1","type":"next","payload":{"data":{"orders":[{"id":"abc"}]}}}"#;
        assert!(matches!(update(Form::Full, next(text)), Err(FrameError::Malformed(_))));
        let missing = r#"{"id":"1","type":"next","payload":{"data":{"orders":[{"status":"paid"}]}}}"#;
        assert!(matches!(update(Form::Full, next(missing)), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn change_events_are_read_as_rows_that_entered_or_left() {
        let text = r#"{"type":"next","id":"1","payload":{"data":{"ordersChanges":{"cursor":"c","events":[
            {"kind":"ENTER","op":"INSERT","key":{"id":"7"},"after":{"id":"7","status":"paid"}},
            {"kind":"UPDATE","op":"UPDATE","key":{"id":"3"},"after":{"id":"3"}},
            {"kind":"LEAVE","op":"DELETE","key":{"id":"2"},"after":null},
            {"kind":"LEAVE","op":"TRUNCATE","key":null,"after":null}]}}}}"#;
        assert_eq!(
            update(Form::Changes, next(text)).unwrap(),
            (Update::Patch { upserts: vec![7, 3], removed: vec![2] }, None)
        );
        let start = r#"{"type":"next","id":"1","payload":{"data":{"ordersChanges":{"cursor":"c","events":[]}}}}"#;
        let nothing = Update::Patch { upserts: vec![], removed: vec![] };
        assert_eq!(update(Form::Changes, next(start)).unwrap(), (nothing, None), "a start or a heartbeat");
        let broken = r#"{"type":"next","id":"1","payload":{"data":{"ordersChanges":{"events":[{"kind":"ENTER","key":{"id":"1"}}]}}}}"#;
        assert!(matches!(update(Form::Changes, next(broken)), Err(FrameError::Malformed(_))));
    }
}
