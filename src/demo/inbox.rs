//! The demo's stand-ins for the services notifications go to — a Slack incoming webhook,
//! Twilio's Messages API, a webhook receiver and a mail server — so that a newcomer sees alerts
//! delivered with no account anywhere. One HTTP server takes the Slack, Twilio and webhook
//! requests (answering as those services do, checking Twilio's basic auth and the webhook's
//! signature) and shows everything received at `/` (newest first, refreshing itself); a plain
//! SMTP sink on another port takes the email. The demo then defines one contact point of each
//! kind pointing here, and a routing policy (see [`seed`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::notify::contact::{self, ChannelKind};
use crate::notify::route::{Policy, Route};
use crate::notify::secret::SecretBox;
use crate::store::Store;

/// The demo's Twilio account, webhook secret and addresses: stand-ins, not credentials.
pub const TWILIO_SID: &str = "AC00000000000000000000000000000000";
const TWILIO_TOKEN: &str = "demo-twilio-token";
pub const WEBHOOK_SECRET: &str = "demo-webhook-secret-0123456789";
/// Messages kept for the page.
const KEPT: usize = 500;

/// One message a stand-in received.
#[derive(Clone, Debug, Serialize)]
pub struct Received {
    /// `slack`, `sms`, `webhook`, `email`.
    pub channel: &'static str,
    /// µs since the Unix epoch.
    pub at: i64,
    /// What a person would see first: Slack's text, the SMS, the email's subject.
    pub title: String,
    /// The request or message as received.
    pub body: String,
    /// What the stand-in checked (the webhook's signature, Twilio's credentials).
    pub check: String,
    /// The message's buttons as (label, URL): Slack's "Acknowledge" and "Open in opslive".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<VecDeque<Received>>>);

impl Log {
    fn push(&self, channel: &'static str, title: String, body: String, check: String) {
        self.push_with_links(channel, title, body, check, Vec::new());
    }

    fn push_with_links(
        &self,
        channel: &'static str,
        title: String,
        body: String,
        check: String,
        links: Vec<(String, String)>,
    ) {
        tracing::info!(channel, title = %title, "the demo's stand-in received a notification");
        let mut log = self.0.lock().expect("the inbox lock");
        let at = chrono::Utc::now().timestamp_micros();
        log.push_front(Received { channel, at, title, body, check, links });
        log.truncate(KEPT);
    }
}

/// The running stand-ins.
#[derive(Clone)]
pub struct Inbox {
    /// The HTTP stand-ins and the page.
    pub http: SocketAddr,
    /// The SMTP sink.
    pub smtp: SocketAddr,
    log: Log,
}

impl Inbox {
    /// Starts both servers on loopback ports of their own; they stop with `cancel`.
    pub async fn start(cancel: CancellationToken) -> std::io::Result<Inbox> {
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let smtp = TcpListener::bind("127.0.0.1:0").await?;
        let inbox = Inbox { http: http.local_addr()?, smtp: smtp.local_addr()?, log: Log::default() };
        let app = Router::new()
            .route("/", get(page))
            .route(
                "/messages.json",
                get(|State(log): State<Log>| async move { axum::Json(log.0.lock().expect("lock").clone()) }),
            )
            .fallback(receive)
            .with_state(inbox.log.clone());
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(http, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        });
        let log = inbox.log.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = smtp.accept() => match accepted {
                        Ok((stream, _)) => { tokio::spawn(mail_session(stream, log.clone())); }
                        Err(_) => return,
                    },
                    _ = cancel.cancelled() => return,
                }
            }
        });
        Ok(inbox)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.0.lock().expect("the inbox lock").iter().cloned().collect()
    }
}

async fn receive(State(log): State<Log>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    let text = String::from_utf8_lossy(&body).to_string();
    if path.starts_with("/slack/") {
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let title = json["text"].as_str().unwrap_or("(no text)").to_string();
        let pretty = serde_json::to_string_pretty(&json).unwrap_or(text);
        log.push_with_links("slack", title, pretty, "Block Kit JSON".into(), slack_buttons(&json));
        return (StatusCode::OK, "ok").into_response();
    }
    if path.starts_with("/twilio/2010-04-01/Accounts/") && path.ends_with("/Messages.json") {
        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"))
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            let body = json!({ "code": 20003, "message": "Authenticate", "status": 401 });
            return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
        let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
        let to = form.get("To").cloned().unwrap_or_default();
        let sms = form.get("Body").cloned().unwrap_or_default();
        log.push(
            "sms",
            sms.clone(),
            format!("To: {to}\nFrom: {}\n\n{sms}", form.get("From").cloned().unwrap_or_default()),
            "basic auth ok".into(),
        );
        let answer = json!({ "sid": "SM00000000000000000000000000000000", "status": "queued", "to": to });
        return (StatusCode::CREATED, axum::Json(answer)).into_response();
    }
    if path == "/webhook" {
        let signature = headers.get(crate::notify::send::SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        let valid = signature == Some(crate::notify::send::signature(WEBHOOK_SECRET, &body).as_str());
        let key = headers.get(crate::notify::send::IDEMPOTENCY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let title = format!("{} {}", json["kind"].as_str().unwrap_or("?"), json["rule"].as_str().unwrap_or("?"));
        let check = format!("signature {}; idempotency key {key}", if valid { "valid" } else { "INVALID" });
        log.push("webhook", title, serde_json::to_string_pretty(&json).unwrap_or(text), check);
        return (if valid { StatusCode::OK } else { StatusCode::UNAUTHORIZED }, "").into_response();
    }
    (StatusCode::NOT_FOUND, "the demo's stand-ins take /slack/…, /twilio/…, /webhook").into_response()
}

/// A Slack message's link buttons, as a person in Slack would see them.
fn slack_buttons(message: &serde_json::Value) -> Vec<(String, String)> {
    let blocks = message["attachments"][0]["blocks"].as_array().cloned().unwrap_or_default();
    blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| Some((e["text"]["text"].as_str()?.to_string(), e["url"].as_str()?.to_string())))
        .collect()
}

async fn page(State(log): State<Log>) -> Html<String> {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let rows: String = log
        .0
        .lock()
        .expect("the inbox lock")
        .iter()
        .map(|r| {
            let links: String = r
                .links
                .iter()
                .map(|(label, url)| {
                    format!(" <a href=\"{}\">{}</a>", escape(url).replace('"', "&quot;"), escape(label))
                })
                .collect();
            format!(
                "<details><summary><b>{}</b> · {} · {} <small>({})</small>{links}</summary><pre>{}</pre></details>",
                r.channel,
                crate::notify::rfc3339(r.at),
                escape(&r.title),
                escape(&r.check),
                escape(&r.body)
            )
        })
        .collect();
    let empty = if rows.is_empty() { "<p>Nothing yet: notifications appear here as alerts fire.</p>" } else { "" };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"3\">\
         <title>opslive demo · notifications received</title>\
         <style>body{{font:14px system-ui;margin:2em;background:#111;color:#ddd}}pre{{white-space:pre-wrap}}\
         summary{{cursor:pointer;padding:4px 0}}</style></head><body>\
         <h1>What the demo's Slack, SMS, email and webhook stand-ins received</h1>{empty}{rows}</body></html>"
    ))
}

/// A plain ESMTP session: takes any message, keeps its subject and text.
async fn mail_session(stream: tokio::net::TcpStream, log: Log) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    if write.write_all(b"220 opslive-demo ESMTP\r\n").await.is_err() {
        return;
    }
    let mut to = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-opslive-demo\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            b"250 ok\r\n"
        } else if upper == "DATA" {
            if write.write_all(b"354 end with .\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            // A long subject is folded onto lines that start with white space.
            let subject = format!("\n{data}")
                .split_once("\nSubject: ")
                .map(|(_, rest)| {
                    let mut lines = rest.lines();
                    let mut subject = lines.next().unwrap_or("").to_string();
                    for more in lines.take_while(|l| l.starts_with([' ', '\t'])) {
                        subject.push_str(more);
                    }
                    subject
                })
                .unwrap_or_else(|| "(no subject)".into());
            log.push("email", subject, format!("To: {}\n\n{data}", to.join(", ")), "SMTP".into());
            to.clear();
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 ok\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// The demo's contact points (one of each kind, at the stand-ins) and its routing policy: the
/// burst's "Order intake spike" everywhere; finance's reconciliation exceptions (dozens open at
/// the start, one per batch) grouped into one email per rule; the platform's alerts by Slack
/// and SMS. Stock below reorder point (one alert per SKU) is left to the screen.
pub async fn seed(store: &Store, key: &SecretBox, inbox: &Inbox) -> Result<usize, String> {
    let http = format!("http://{}", inbox.http);
    let points = [
        ("Demo Slack #ops", ChannelKind::Slack, json!({ "url": format!("{http}/slack/T0DEMO/B0DEMO/demo") })),
        (
            "Demo on-call SMS",
            ChannelKind::Twilio,
            json!({ "baseUrl": format!("{http}/twilio/"), "accountSid": TWILIO_SID, "authToken": TWILIO_TOKEN,
                    "from": "+15005550006", "to": ["+15005550001"] }),
        ),
        (
            "Demo ops email",
            ChannelKind::Email,
            json!({ "host": inbox.smtp.ip().to_string(), "port": inbox.smtp.port(), "security": "none",
                    "from": "opslive demo <alerts@demo.opslive>", "to": ["ops@demo.opslive"] }),
        ),
        ("Demo webhook", ChannelKind::Webhook, json!({ "url": format!("{http}/webhook"), "secret": WEBHOOK_SECRET })),
    ];
    let mut ids = Vec::new();
    for (name, kind, settings) in points {
        let channel = contact::parse(kind, &settings, None).map_err(|e| format!("{name}: {e}"))?;
        let sealed = key.seal(channel.secrets().to_string().as_bytes());
        let row = store
            .insert_contact_point(name, kind, &channel.settings(), Some(&sealed), Some(super::monitoring::AUTHOR))
            .await
            .map_err(|e| e.to_string())?;
        ids.push(row.id);
    }
    let [slack, sms, email, hook] = [ids[0], ids[1], ids[2], ids[3]];
    let matcher = |label: &str, value: &str| crate::alert::silence::Matcher {
        label: label.into(),
        value: value.into(),
        negated: false,
    };
    let policy = Policy {
        routes: vec![
            // Reminded every 2 minutes until someone acknowledges (the Slack message's button).
            Route {
                matchers: vec![matcher("alertname", "Order intake spike")],
                contact_points: vec![slack, sms, email, hook],
                repeat_interval: Some("2m".into()),
                ..Route::default()
            },
            // A batch per alert, dozens at the start: one email per rule, after 10 s.
            Route {
                matchers: vec![matcher("team", "finance")],
                contact_points: vec![email],
                group_by: vec!["alertname".into()],
                group_wait: Some("10s".into()),
                ..Route::default()
            },
            // The platform's pages stay quiet in the weekly maintenance window.
            Route {
                matchers: vec![matcher("team", "platform")],
                contact_points: vec![slack, sms],
                mute_timings: vec!["maintenance".into()],
                ..Route::default()
            },
        ],
        mute_timings: vec![
            serde_json::from_value(json!({
                "name": "maintenance", "timeZone": "Europe/Berlin",
                "intervals": [{ "weekdays": ["sunday"], "times": [{ "start": "03:00", "end": "05:00" }] }]
            }))
            .map_err(|e| e.to_string())?,
        ],
    };
    let routes = serde_json::to_value(&policy).map_err(|e| e.to_string())?;
    store.set_notification_policy(&routes, Some(super::monitoring::AUTHOR)).await.map_err(|e| e.to_string())?;
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::{Content, NoticeKind};

    /// Each of the demo's channels, sent to by the product's own senders, arrives at its
    /// stand-in and passes its check.
    #[tokio::test]
    async fn the_stand_ins_take_what_each_channel_sends() {
        let inbox = Inbox::start(CancellationToken::new()).await.unwrap();
        let http = format!("http://{}", inbox.http);
        let channels = [
            contact::parse(ChannelKind::Slack, &json!({ "url": format!("{http}/slack/T/B/x") }), None),
            contact::parse(
                ChannelKind::Twilio,
                &json!({ "baseUrl": format!("{http}/twilio/"), "accountSid": TWILIO_SID, "authToken": TWILIO_TOKEN,
                         "from": "+15005550006", "to": ["+15005550001"] }),
                None,
            ),
            contact::parse(
                ChannelKind::Email,
                &json!({ "host": "127.0.0.1", "port": inbox.smtp.port(), "security": "none",
                         "from": "a@demo.opslive", "to": ["b@demo.opslive"] }),
                None,
            ),
            contact::parse(
                ChannelKind::Webhook,
                &json!({ "url": format!("{http}/webhook"), "secret": WEBHOOK_SECRET }),
                None,
            ),
        ];
        let content = Content {
            kind: NoticeKind::Firing,
            rule_id: Some(1),
            rule: "Order intake spike".into(),
            severity: "warning".into(),
            instance: String::new(),
            labels: Default::default(),
            // Long enough that the email's subject is folded.
            summary: "121 orders in the last minute for channel=marketplace (> 120)".into(),
            value: Some("91".into()),
            source: Some("shop".into()),
            position: Some("0/16B3F20".into()),
            commit_ts: None,
            at: "2026-12-05T10:00:00Z".into(),
            link: None,
            reminder: None,
            ack_link: Some("http://127.0.0.1:1/ack/?t=x.y".into()),
        };
        let client = crate::notify::send::client(std::time::Duration::from_secs(5));
        for channel in channels {
            let channel = channel.unwrap();
            let outcome = crate::notify::send::send(
                &client,
                &channel,
                &content,
                &[],
                "key-1",
                std::time::Duration::from_secs(5),
                &mut 0,
            )
            .await;
            assert_eq!(outcome, crate::notify::send::Outcome::Sent, "{:?}", channel.kind());
        }
        let got = inbox.received();
        let mut channels: Vec<_> = got.iter().map(|r| r.channel).collect();
        channels.sort();
        assert_eq!(channels, ["email", "slack", "sms", "webhook"]);
        let hook = got.iter().find(|r| r.channel == "webhook").unwrap();
        assert!(hook.check.starts_with("signature valid"), "{}", hook.check);
        let mail = got.iter().find(|r| r.channel == "email").unwrap();
        assert_eq!(
            mail.title,
            "[FIRING warning] Order intake spike: 121 orders in the last minute for channel=marketplace (> 120)"
        );
        let sms = got.iter().find(|r| r.channel == "sms").unwrap();
        assert!(sms.title.starts_with("[FIRING warning] Order intake spike"), "{}", sms.title);
        let slack = got.iter().find(|r| r.channel == "slack").unwrap();
        assert_eq!(slack.links, [("Acknowledge".to_string(), "http://127.0.0.1:1/ack/?t=x.y".to_string())]);
    }
}
