//! `/api/ack`: what the dashboard's confirmation page behind a message's
//! "Acknowledge" link reads (GET, which changes nothing, so link scanners and unfurlers that
//! follow it acknowledge nothing) and posts to acknowledge (POST `{ "t": <ticket>, "note" }`).
//!
//! The ticket (see [`crate::notify::ack`]) is the authority: it names one firing of one alert
//! instance, signed by this server. The acknowledgement is recorded as by the person signed in
//! to the dashboard when the POST carries their token, else as by the recipient the contact
//! point names (an email's single address), else as by the contact point.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use crate::alert::runtime::{AlertBoard, AlertHub};
use crate::alert::{Ack, AlertState, Instance, RuleId};
use crate::auth::Authenticator;
use crate::notify::ack::{AckKey, AckTicket};
use crate::notify::rfc3339;
use crate::store::Store;

/// What the endpoints need.
#[derive(Clone)]
pub struct AckApi {
    pub key: AckKey,
    pub alerts: AlertHub,
    pub auth: Authenticator,
    pub store: Store,
}

type Answer = (StatusCode, Json<JsonValue>);

fn refusal(status: StatusCode, message: impl Into<String>) -> Answer {
    (status, Json(json!({ "error": message.into() })))
}

pub fn router(api: AckApi) -> Router {
    Router::new().route("/api/ack", get(read).post(acknowledge)).with_state(Arc::new(api))
}

#[derive(Deserialize)]
struct Ticket {
    t: String,
    #[serde(default)]
    note: Option<String>,
}

impl AckApi {
    fn open(&self, token: &str) -> Result<AckTicket, Answer> {
        self.key.open(token).map_err(|e| refusal(StatusCode::BAD_REQUEST, e.to_string()))
    }

    /// The alert the ticket names, as `board` holds it; `current` is the instance when it is
    /// still the firing the ticket was made for (see [`firing`]).
    fn view(&self, board: &AlertBoard, ticket: &AckTicket, current: Option<&Instance>) -> Result<JsonValue, Answer> {
        let rule = board
            .rules
            .get(&RuleId(ticket.rule))
            .ok_or_else(|| refusal(StatusCode::NOT_FOUND, "the alert rule this message was about has been deleted"))?;
        let d = &rule.record.definition;
        Ok(json!({
            "ruleId": ticket.rule.to_string(),
            "rule": d.name,
            "severity": d.severity.name().to_lowercase(),
            "instance": ticket.instance,
            "firingSince": rfc3339(ticket.since),
            "firing": current.is_some(),
            "labels": current.map(|i| &i.labels),
            "summary": current.map(|i| i.summary.as_str()),
            "value": current.and_then(|i| i.value.as_deref()),
            "acknowledged": current.and_then(|i| i.acknowledged.as_ref()).map(|a| json!({
                "by": a.by, "at": rfc3339(a.at), "note": a.note,
            })),
        }))
    }

    /// Who acknowledges: the signed-in person, else the recipient the contact point names.
    async fn who(&self, headers: &HeaderMap, ticket: &AckTicket) -> Result<Option<String>, Answer> {
        let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if bearer.is_some() && self.auth.is_configured() {
            let principal = self
                .auth
                .from_header(bearer)
                .await
                .map_err(|e| refusal(e.http_status(), format!("your sign-in was not accepted: {e}")))?;
            if let Some(subject) = principal.and_then(|p| p.subject) {
                return Ok(Some(subject));
            }
        }
        let point = self.store.contact_point(ticket.contact_point).await.ok().flatten();
        Ok(point.map(|p| {
            let to: Vec<&str> =
                p.settings["to"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
            match to.as_slice() {
                [one] if p.kind == crate::notify::contact::ChannelKind::Email => one.to_string(),
                _ => format!("{} ({} message)", p.name, p.kind.name()),
            }
        }))
    }
}

/// The ticket's instance on `board` while it is still the firing the ticket was made for: not
/// resolved, and not fired again since (a later firing has another `since`).
fn firing<'b>(board: &'b AlertBoard, ticket: &AckTicket) -> Option<&'b Instance> {
    let instance = board.instances.get(&(RuleId(ticket.rule), ticket.instance.clone()))?;
    is_firing(instance, ticket).then_some(&**instance)
}

fn is_firing(instance: &Instance, ticket: &AckTicket) -> bool {
    instance.since == ticket.since && instance.state == AlertState::Firing
}

async fn read(State(api): State<Arc<AckApi>>, Query(ticket): Query<Ticket>) -> Answer {
    let ticket = match api.open(&ticket.t) {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let board = api.alerts.current();
    match api.view(&board, &ticket, firing(&board, &ticket)) {
        Ok(view) => (StatusCode::OK, Json(json!({ "alert": view }))),
        Err(refused) => refused,
    }
}

async fn acknowledge(State(api): State<Arc<AckApi>>, headers: HeaderMap, Json(body): Json<Ticket>) -> Answer {
    let ticket = match api.open(&body.t) {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let board = api.alerts.current();
    let Some(current) = firing(&board, &ticket) else {
        return match api.view(&board, &ticket, None) {
            Ok(view) => (
                StatusCode::CONFLICT,
                Json(
                    json!({ "error": "this alert is no longer the firing the message was about: it resolved (or fired again since)", "alert": view }),
                ),
            ),
            Err(refused) => refused,
        };
    };
    if current.acknowledged.is_some() {
        return match api.view(&board, &ticket, Some(current)) {
            Ok(view) => (StatusCode::OK, Json(json!({ "alert": view, "already": true }))),
            Err(refused) => refused,
        };
    }
    let by = match api.who(&headers, &ticket).await {
        Ok(by) => by,
        Err(refused) => return refused,
    };
    let note = body.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let ack = Ack {
        by,
        at: chrono::Utc::now().timestamp_micros(),
        note: Some(note.unwrap_or_else(|| "acknowledged from the notification".to_string())),
    };
    match api.alerts.acknowledge(RuleId(ticket.rule), ticket.instance.clone(), ack).await {
        Ok(instance) => match api.view(&board, &ticket, Some(&instance).filter(|i| is_firing(i, &ticket))) {
            Ok(view) => (StatusCode::OK, Json(json!({ "alert": view, "already": false }))),
            Err(refused) => refused,
        },
        Err(e) => refusal(StatusCode::CONFLICT, e),
    }
}
