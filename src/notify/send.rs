//! Sending one notification over its channel, and what the answer means for the outbox:
//! sent, try again later (429 with its `Retry-After`, 408, 5xx, a connection that failed or
//! timed out), or give up (any other 4xx: the request itself is wrong and will stay wrong).
//!
//! Errors never carry a secret: reqwest's errors name the URL (a Slack URL is the credential),
//! so it is stripped, and bodies quoted back are clipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use sha2::Sha256;

use super::contact::{Channel, SmtpSecurity};
use super::message::{self, Content, clip};
use crate::error::chain;

/// The header carrying the webhook body's HMAC-SHA256, as `sha256=<hex>` (GitHub's form).
pub const SIGNATURE_HEADER: &str = "X-Opslive-Signature-256";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Temporary { error: String, retry_after: Option<Duration> },
    Permanent { error: String },
}

/// What sends: one HTTP client for every HTTP channel (a timeout per request, so a hanging
/// receiver delays only its own contact point), and one pooled SMTP transport per mail relay
/// setting, so a burst of emails reuses its connections instead of a TLS handshake and a login
/// per message.
#[derive(Clone)]
pub struct Senders {
    http: reqwest::Client,
    smtp: Arc<Mutex<HashMap<String, AsyncSmtpTransport<Tokio1Executor>>>>,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Senders(…)")
    }
}

/// Distinct relay settings whose transports are kept (an edited contact point leaves its old
/// one behind; past this many they are all dropped and built again as needed).
const MOST_RELAYS: usize = 64;

pub fn client(timeout: Duration) -> Senders {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("opslive/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with rustls");
    Senders { http, smtp: Arc::default() }
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends `content` over `channel` (for a group, `members` are its notifications one by one,
/// which the webhook also carries); `timeout` bounds an SMTP session (HTTP requests have the
/// client's). `delivered_to` counts the recipients that have their message (Twilio sends one
/// per recipient): the first that many are skipped, and it grows with each one sent, so a
/// retry after a later recipient failed does not send to the earlier ones again.
pub async fn send(
    senders: &Senders,
    channel: &Channel,
    content: &Content,
    members: &[Content],
    idempotency_key: &str,
    timeout: Duration,
    delivered_to: &mut usize,
) -> Outcome {
    let client = &senders.http;
    match channel {
        Channel::Webhook { url, secret } => {
            let body = serde_json::to_vec(&message::webhook(content, members, idempotency_key)).expect("JSON");
            let request = client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature(secret, &body))
                .header(IDEMPOTENCY_HEADER, idempotency_key)
                .body(body);
            answer(request.send().await).await
        }
        Channel::Slack { url } => answer(client.post(url.clone()).json(&message::slack(content)).send().await).await,
        Channel::Twilio { base_url, account_sid, api_key_sid, auth_token, from, messaging_service_sid, to } => {
            let Ok(url) = base_url.join(&format!("2010-04-01/Accounts/{account_sid}/Messages.json")) else {
                return Outcome::Permanent { error: "the Twilio base URL cannot take the Messages path".into() };
            };
            let body = message::sms(content);
            let user = api_key_sid.as_deref().unwrap_or(account_sid);
            // One message per recipient, in order, from the first without one.
            for number in to.iter().skip(*delivered_to) {
                let mut form = vec![("To", number.as_str()), ("Body", body.as_str())];
                match (from, messaging_service_sid) {
                    (Some(from), _) => form.push(("From", from)),
                    (None, Some(service)) => form.push(("MessagingServiceSid", service)),
                    (None, None) => return Outcome::Permanent { error: "no sender configured".into() },
                }
                let request = client
                    .post(url.clone())
                    .basic_auth(user, Some(auth_token))
                    .header(IDEMPOTENCY_HEADER, format!("{idempotency_key}:{number}"))
                    .form(&form);
                match answer(request.send().await).await {
                    Outcome::Sent => *delivered_to += 1,
                    Outcome::Temporary { error, retry_after } => {
                        return Outcome::Temporary { error: format!("to {number}: {error}"), retry_after };
                    }
                    Outcome::Permanent { error } => {
                        return Outcome::Permanent { error: format!("to {number}: {error}") };
                    }
                }
            }
            Outcome::Sent
        }
        Channel::Email { .. } => email(senders, channel, content, idempotency_key, timeout).await,
    }
}

/// One email to every recipient, as text and HTML; its Message-ID carries the idempotency key,
/// so a receiving system can tell a repeat. A 5xx reply is permanent, the rest (4xx, a lost
/// connection, a timeout, a TLS handshake that failed) is worth another try.
async fn email(
    senders: &Senders,
    channel: &Channel,
    content: &Content,
    idempotency_key: &str,
    timeout: Duration,
) -> Outcome {
    use lettre::message::{Mailbox, MultiPart};
    use lettre::{AsyncTransport, Message};

    let Channel::Email { host, port, security, username, password, from, to, ca_certificate } = channel else {
        unreachable!("an email channel");
    };
    let permanent = |error: String| Outcome::Permanent { error };
    let mailbox = |text: &str| text.parse::<Mailbox>().map_err(|e| permanent(format!("`{text}`: {e}")));
    let mut builder = match mailbox(from) {
        Ok(from) => Message::builder()
            .from(from)
            .subject(message::email_subject(content))
            .message_id(Some(format!("<{idempotency_key}@opslive>"))),
        Err(outcome) => return outcome,
    };
    for address in to {
        match mailbox(address) {
            Ok(mailbox) => builder = builder.to(mailbox),
            Err(outcome) => return outcome,
        }
    }
    let parts = MultiPart::alternative_plain_html(message::email_text(content), message::email_html(content));
    let email = match builder.multipart(parts) {
        Ok(email) => email,
        Err(e) => return permanent(format!("cannot build the email: {e}")),
    };
    let relay = format!("{host}\0{port}\0{security:?}\0{username:?}\0{password:?}\0{ca_certificate:?}\0{timeout:?}");
    let transport = {
        let mut kept = senders.smtp.lock().expect("the SMTP transports lock");
        match kept.get(&relay) {
            Some(t) => t.clone(),
            None => {
                let built = match mailer(host, *port, *security, username, password, ca_certificate, timeout) {
                    Ok(t) => t,
                    Err(outcome) => return outcome,
                };
                if kept.len() >= MOST_RELAYS {
                    kept.clear();
                }
                kept.insert(relay, built.clone());
                built
            }
        }
    };
    match transport.send(email).await {
        Ok(_) => Outcome::Sent,
        Err(e) if e.is_permanent() => permanent(format!("SMTP: {}", chain(&e))),
        Err(e) => Outcome::Temporary { error: format!("SMTP: {}", chain(&e)), retry_after: None },
    }
}

/// A pooled transport to one relay (lettre keeps its connections open between messages).
fn mailer(
    host: &str,
    port: u16,
    security: SmtpSecurity,
    username: &Option<String>,
    password: &Option<String>,
    ca_certificate: &Option<String>,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, Outcome> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let permanent = |error: String| Outcome::Permanent { error };
    let tls = match security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::StartTls | SmtpSecurity::Tls => {
            let mut parameters = TlsParameters::builder(host.to_string());
            if let Some(pem) = ca_certificate {
                match Certificate::from_pem(pem.as_bytes()) {
                    Ok(ca) => parameters = parameters.add_root_certificate(ca),
                    Err(e) => return Err(permanent(format!("the CA certificate: {e}"))),
                }
            }
            let parameters = match parameters.build_rustls() {
                Ok(p) => p,
                Err(e) => return Err(permanent(format!("TLS settings: {e}"))),
            };
            if security == SmtpSecurity::StartTls { Tls::Required(parameters) } else { Tls::Wrapper(parameters) }
        }
    };
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).tls(tls).timeout(Some(timeout));
    if let (Some(user), Some(password)) = (username, password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(transport.build())
}

async fn answer(result: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let e = e.without_url();
            let kind = if e.is_timeout() { "timed out" } else { "could not connect or send" };
            return Outcome::Temporary { error: format!("{kind}: {}", chain(&e)), retry_after: None };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Sent;
    }
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let error = format!("HTTP {}: {}", status.as_u16(), clip(text.trim(), 300));
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        Outcome::Temporary { error, retry_after }
    } else {
        Outcome::Permanent { error }
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = when.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(wait.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs_form_of_hmac_sha256() {
        // RFC 4231 test case 2.
        let key = "Jefe";
        let sig = signature(key, b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
