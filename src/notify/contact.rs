//! Contact points: where notifications go — a generic webhook (HMAC-signed), a Slack incoming
//! webhook, SMS through Twilio's Messages API, email over SMTP — and the checks a definition passes before it is
//! stored.
//!
//! A definition arrives as JSON (GraphQL's `settings`) and leaves as two parts: what may be
//! shown (URLs without credentials, numbers) and the secrets (the webhook's signing key, the
//! Slack URL, which is itself the credential, the Twilio token, the SMTP password), which are stored encrypted
//! and never returned. An update that leaves a secret out keeps the stored one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use url::Url;

use crate::kpi::DefinitionError;
use crate::kpi::definition::check_name;

/// A contact point's id: its row in the app database. In JSON (the routing policy) it is
/// written as GraphQL's `ID`, a string, and read from a string or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactPointId(pub i64);

impl Serialize for ContactPointId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for ContactPointId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::Number(n) => n.as_i64().map(ContactPointId),
            Json::String(s) => s.parse().ok().map(ContactPointId),
            _ => None,
        }
        .ok_or_else(|| serde::de::Error::custom("a contact point id is a number"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Webhook,
    Slack,
    Twilio,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] =
        [ChannelKind::Webhook, ChannelKind::Slack, ChannelKind::Twilio, ChannelKind::Email];

    /// As stored and in metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Twilio => "twilio",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(name: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// Where one contact point sends, with its secrets.
#[derive(Clone, Debug, PartialEq)]
pub enum Channel {
    /// A JSON POST signed with HMAC-SHA256 over the body (`X-Opslive-Signature-256`).
    Webhook { url: Url, secret: String },
    /// A Slack incoming webhook (its URL is the credential).
    Slack { url: Url },
    /// Twilio's Messages API: one message per recipient.
    Twilio {
        base_url: Url,
        account_sid: String,
        /// Basic auth as an API key instead of the account SID, when set.
        api_key_sid: Option<String>,
        auth_token: String,
        from: Option<String>,
        messaging_service_sid: Option<String>,
        to: Vec<String>,
    },
    /// Email over SMTP (lettre): STARTTLS, implicit TLS, or plain for a local relay.
    Email {
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        password: Option<String>,
        from: String,
        to: Vec<String>,
        /// A CA (PEM) to trust besides the public roots: a company's own mail relay.
        ca_certificate: Option<String>,
    },
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain, then STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or network.
    None,
}

impl SmtpSecurity {
    pub fn name(self) -> &'static str {
        match self {
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::None => "none",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Channel::Webhook { .. } => ChannelKind::Webhook,
            Channel::Slack { .. } => ChannelKind::Slack,
            Channel::Twilio { .. } => ChannelKind::Twilio,
            Channel::Email { .. } => ChannelKind::Email,
        }
    }

    /// The part that may be shown.
    pub fn settings(&self) -> Json {
        match self {
            Channel::Webhook { url, .. } => json!({ "url": url.as_str() }),
            Channel::Slack { url } => json!({ "host": url.host_str().unwrap_or("") }),
            Channel::Twilio { base_url, account_sid, api_key_sid, from, messaging_service_sid, to, .. } => json!({
                "baseUrl": base_url.as_str(),
                "accountSid": account_sid,
                "apiKeySid": api_key_sid,
                "from": from,
                "messagingServiceSid": messaging_service_sid,
                "to": to,
            }),
            Channel::Email { host, port, security, username, from, to, ca_certificate, .. } => json!({
                "host": host,
                "port": port,
                "security": security.name(),
                "username": username,
                "from": from,
                "to": to,
                "caCertificate": ca_certificate,
            }),
        }
    }

    /// The secret part, to be encrypted.
    pub fn secrets(&self) -> Json {
        match self {
            Channel::Webhook { secret, .. } => json!({ "secret": secret }),
            Channel::Slack { url } => json!({ "url": url.as_str() }),
            Channel::Twilio { auth_token, .. } => json!({ "authToken": auth_token }),
            Channel::Email { password, .. } => json!({ "password": password }),
        }
    }

    /// The channel again from its stored parts.
    pub fn from_parts(kind: ChannelKind, settings: &Json, secrets: &Json) -> Result<Channel, DefinitionError> {
        let mut input = match settings {
            Json::Object(m) => m.clone(),
            _ => Map::new(),
        };
        if kind == ChannelKind::Slack {
            input.remove("host");
        }
        if let Json::Object(s) = secrets {
            input.extend(s.clone());
        }
        parse(kind, &Json::Object(input), None)
    }
}

/// The Twilio API's address unless a contact point names another (tests, proxies).
pub const TWILIO_API: &str = "https://api.twilio.com/";

/// Reads and checks a contact point's `settings`. `previous` is the stored channel of the same
/// kind on an update: a secret left out keeps its value there.
pub fn parse(kind: ChannelKind, settings: &Json, previous: Option<&Channel>) -> Result<Channel, DefinitionError> {
    let Json::Object(map) = settings else {
        return Err(DefinitionError::new("settings", "must be an object"));
    };
    let known: &[&str] = match kind {
        ChannelKind::Webhook => &["url", "secret"],
        ChannelKind::Slack => &["url"],
        ChannelKind::Twilio => {
            &["baseUrl", "accountSid", "apiKeySid", "authToken", "from", "messagingServiceSid", "to"]
        }
        ChannelKind::Email => &["host", "port", "security", "username", "password", "from", "to", "caCertificate"],
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(DefinitionError::new(
            format!("settings.{unknown}"),
            format!("unknown for a {} contact point (it takes {})", kind.name(), known.join(", ")),
        ));
    }
    let text = |field: &str| -> Result<Option<String>, DefinitionError> {
        match map.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(DefinitionError::new(format!("settings.{field}"), "must be a string")),
        }
    };
    let required = |field: &str, kept: Option<&String>| -> Result<String, DefinitionError> {
        text(field)?
            .or_else(|| kept.cloned())
            .ok_or_else(|| DefinitionError::new(format!("settings.{field}"), "is required"))
    };
    match kind {
        ChannelKind::Webhook => {
            let kept = match previous {
                Some(Channel::Webhook { secret, .. }) => Some(secret),
                _ => None,
            };
            let url = http_url("settings.url", &required("url", None)?)?;
            let secret = required("secret", kept)?;
            if secret.len() < 16 {
                return Err(DefinitionError::new("settings.secret", "use at least 16 characters to sign with"));
            }
            Ok(Channel::Webhook { url, secret })
        }
        ChannelKind::Slack => {
            let kept = match previous {
                Some(Channel::Slack { url }) => Some(url.to_string()),
                _ => None,
            };
            let url = http_url("settings.url", &required("url", kept.as_ref())?)?;
            Ok(Channel::Slack { url })
        }
        ChannelKind::Twilio => {
            let kept = match previous {
                Some(Channel::Twilio { auth_token, .. }) => Some(auth_token),
                _ => None,
            };
            let base_url = http_url("settings.baseUrl", &text("baseUrl")?.unwrap_or_else(|| TWILIO_API.into()))?;
            let account_sid = required("accountSid", None)?;
            sid("settings.accountSid", &account_sid, "AC")?;
            let api_key_sid = text("apiKeySid")?;
            if let Some(key) = &api_key_sid {
                sid("settings.apiKeySid", key, "SK")?;
            }
            let auth_token = required("authToken", kept)?;
            let from = text("from")?;
            let messaging_service_sid = text("messagingServiceSid")?;
            match (&from, &messaging_service_sid) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(DefinitionError::new(
                        "settings.from",
                        "give either `from` (a phone number) or `messagingServiceSid`, not both",
                    ));
                }
                (Some(number), None) => phone("settings.from", number)?,
                (None, Some(service)) => sid("settings.messagingServiceSid", service, "MG")?,
            }
            let to = list(map, "to", phone)?;
            Ok(Channel::Twilio { base_url, account_sid, api_key_sid, auth_token, from, messaging_service_sid, to })
        }
        ChannelKind::Email => {
            let kept = match previous {
                Some(Channel::Email { password, .. }) => password.clone(),
                _ => None,
            };
            let host = required("host", None)?;
            if host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
                return Err(DefinitionError::new("settings.host", "a host name or address, without a port or scheme"));
            }
            let security = match text("security")?.as_deref() {
                None | Some("starttls") => SmtpSecurity::StartTls,
                Some("tls") => SmtpSecurity::Tls,
                Some("none") => SmtpSecurity::None,
                Some(other) => {
                    return Err(DefinitionError::new(
                        "settings.security",
                        format!("`{other}` is not one of starttls, tls, none"),
                    ));
                }
            };
            let port = match map.get("port") {
                None | Some(Json::Null) => security.default_port(),
                Some(v) => v
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| DefinitionError::new("settings.port", "a port number"))?,
            };
            let username = text("username")?;
            let password = text("password")?.or(kept);
            if username.is_some() && password.is_none() {
                return Err(DefinitionError::new("settings.password", "is required with a username"));
            }
            if username.is_some() && security == SmtpSecurity::None {
                return Err(DefinitionError::new(
                    "settings.security",
                    "a password is never sent without TLS: use starttls or tls",
                ));
            }
            let from = required("from", None)?;
            mailbox("settings.from", &from)?;
            let to = list(map, "to", mailbox)?;
            let ca_certificate = text("caCertificate")?;
            if let Some(pem) = &ca_certificate {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let bad = |why: String| DefinitionError::new("settings.caCertificate", why);
                let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
                if certificates.is_empty() {
                    return Err(bad("no `-----BEGIN CERTIFICATE-----` block in it".into()));
                }
            }
            Ok(Channel::Email { host, port, security, username, password, from, to, ca_certificate })
        }
    }
}

/// A non-empty list of strings (or one string), each checked.
fn list(
    map: &Map<String, Json>,
    name: &str,
    check: impl Fn(&str, &str) -> Result<(), DefinitionError>,
) -> Result<Vec<String>, DefinitionError> {
    let field = format!("settings.{name}");
    let items = match map.get(name) {
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let field = format!("{field}[{i}]");
                let item = v.as_str().ok_or_else(|| DefinitionError::new(&field, "must be a string"))?.trim();
                check(&field, item)?;
                Ok(item.to_string())
            })
            .collect::<Result<Vec<_>, DefinitionError>>()?,
        Some(Json::String(one)) => {
            check(&field, one.trim())?;
            vec![one.trim().to_string()]
        }
        _ => return Err(DefinitionError::new(&field, "give the recipients as a list")),
    };
    if items.is_empty() {
        return Err(DefinitionError::new(&field, "give at least one recipient"));
    }
    Ok(items)
}

/// An address, or a name and an address (`Ops <ops@example.com>`).
fn mailbox(field: &str, text: &str) -> Result<(), DefinitionError> {
    text.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| DefinitionError::new(field, format!("`{text}` is not an email address: {e}")))
}

/// Checks a contact point's name.
pub fn check_contact_name(name: &str) -> Result<(), DefinitionError> {
    check_name("name", name)
}

fn http_url(field: &str, text: &str) -> Result<Url, DefinitionError> {
    let url = Url::parse(text).map_err(|e| DefinitionError::new(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(DefinitionError::new(field, "must be an http:// or https:// URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DefinitionError::new(field, "must not carry credentials"));
    }
    Ok(url)
}

/// A Twilio SID: two letters then 32 hexadecimal digits.
fn sid(field: &str, text: &str, prefix: &str) -> Result<(), DefinitionError> {
    let ok = text.len() == 34 && text.starts_with(prefix) && text[2..].chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(DefinitionError::new(field, format!("must be `{prefix}` followed by 32 hexadecimal digits")))
    }
}

/// A phone number in E.164: `+`, then 8 to 15 digits.
fn phone(field: &str, text: &str) -> Result<(), DefinitionError> {
    let digits = text.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DefinitionError::new(field, format!("`{text}` is not a phone number in E.164 form (+4930123456)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn each_kind_splits_into_what_is_shown_and_what_is_secret() {
        let hook =
            parse(ChannelKind::Webhook, &json!({"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef"}), None)
                .unwrap();
        assert_eq!(hook.settings(), json!({"url": "http://127.0.0.1:9/hook"}));
        assert_eq!(hook.secrets(), json!({"secret": "0123456789abcdef"}));
        assert_eq!(Channel::from_parts(ChannelKind::Webhook, &hook.settings(), &hook.secrets()).unwrap(), hook);

        let slack = parse(ChannelKind::Slack, &json!({"url": "https://hooks.slack.com/services/T/B/x"}), None).unwrap();
        assert_eq!(
            slack.settings(),
            json!({"host": "hooks.slack.com"}),
            "the URL is the credential: only its host shows"
        );
        assert_eq!(Channel::from_parts(ChannelKind::Slack, &slack.settings(), &slack.secrets()).unwrap(), slack);

        let sms = parse(
            ChannelKind::Twilio,
            &json!({"accountSid": SID, "authToken": "t0ken", "from": "+4930123456", "to": ["+4915112345678"]}),
            None,
        )
        .unwrap();
        assert!(!sms.settings().to_string().contains("t0ken"));
        assert_eq!(sms.settings()["baseUrl"], json!(TWILIO_API));
        assert_eq!(Channel::from_parts(ChannelKind::Twilio, &sms.settings(), &sms.secrets()).unwrap(), sms);

        let mail = parse(
            ChannelKind::Email,
            &json!({"host": "smtp.example.com", "username": "ops", "password": "pa55", "from": "Opslive <ops@example.com>",
                    "to": ["oncall@example.com"]}),
            None,
        )
        .unwrap();
        assert_eq!(mail.settings()["port"], 587, "STARTTLS's port unless given");
        assert!(!mail.settings().to_string().contains("pa55"));
        assert_eq!(Channel::from_parts(ChannelKind::Email, &mail.settings(), &mail.secrets()).unwrap(), mail);
    }

    #[test]
    fn an_update_without_a_secret_keeps_the_stored_one() {
        let old =
            parse(ChannelKind::Webhook, &json!({"url": "http://a.example/h", "secret": "0123456789abcdef"}), None)
                .unwrap();
        let new = parse(ChannelKind::Webhook, &json!({"url": "http://b.example/h"}), Some(&old)).unwrap();
        assert_eq!(
            new,
            Channel::Webhook { url: Url::parse("http://b.example/h").unwrap(), secret: "0123456789abcdef".into() }
        );
        let err = parse(ChannelKind::Webhook, &json!({"url": "http://b.example/h"}), None).unwrap_err();
        assert_eq!(err.field, "settings.secret");
    }

    #[test]
    fn invalid_contact_points_name_the_field_at_fault() {
        let cases = [
            (ChannelKind::Webhook, json!({"url": "ftp://x/y", "secret": "0123456789abcdef"}), "settings.url"),
            (ChannelKind::Webhook, json!({"url": "not a url", "secret": "0123456789abcdef"}), "settings.url"),
            (ChannelKind::Webhook, json!({"url": "http://u:p@x/y", "secret": "0123456789abcdef"}), "settings.url"),
            (ChannelKind::Webhook, json!({"url": "http://x/y", "secret": "short"}), "settings.secret"),
            (ChannelKind::Slack, json!({"url": "https://x/y", "channel": "#ops"}), "settings.channel"),
            (ChannelKind::Slack, json!({}), "settings.url"),
            (
                ChannelKind::Twilio,
                json!({"accountSid": "AC12", "authToken": "t", "from": "+4930123456", "to": ["+4915112345678"]}),
                "settings.accountSid",
            ),
            (
                ChannelKind::Twilio,
                json!({"accountSid": SID, "from": "+4930123456", "to": ["+4915112345678"]}),
                "settings.authToken",
            ),
            (
                ChannelKind::Twilio,
                json!({"accountSid": SID, "authToken": "t", "to": ["+4915112345678"]}),
                "settings.from",
            ),
            (
                ChannelKind::Twilio,
                json!({"accountSid": SID, "authToken": "t", "from": "030 123", "to": ["+4915112345678"]}),
                "settings.from",
            ),
            (
                ChannelKind::Twilio,
                json!({"accountSid": SID, "authToken": "t", "from": "+4930123456", "to": []}),
                "settings.to",
            ),
            (
                ChannelKind::Twilio,
                json!({"accountSid": SID, "authToken": "t", "from": "+4930123456", "to": ["12"]}),
                "settings.to[0]",
            ),
            (ChannelKind::Email, json!({"from": "a@example.com", "to": ["b@example.com"]}), "settings.host"),
            (
                ChannelKind::Email,
                json!({"host": "smtp.example.com:25", "from": "a@example.com", "to": ["b@example.com"]}),
                "settings.host",
            ),
            (
                ChannelKind::Email,
                json!({"host": "smtp.example.com", "from": "nobody", "to": ["b@example.com"]}),
                "settings.from",
            ),
            (
                ChannelKind::Email,
                json!({"host": "smtp.example.com", "from": "a@example.com", "to": ["b@", "c"]}),
                "settings.to[0]",
            ),
            (ChannelKind::Email, json!({"host": "smtp.example.com", "from": "a@example.com", "to": []}), "settings.to"),
            (
                ChannelKind::Email,
                json!({"host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com", "username": "u"}),
                "settings.password",
            ),
            (
                ChannelKind::Email,
                json!({"host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com", "username": "u", "password": "p", "security": "none"}),
                "settings.security",
            ),
            (
                ChannelKind::Email,
                json!({"host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com", "caCertificate": "nope"}),
                "settings.caCertificate",
            ),
            (
                ChannelKind::Email,
                json!({"host": "smtp.example.com", "from": "a@example.com", "to": "b@example.com", "port": 70000}),
                "settings.port",
            ),
        ];
        for (kind, settings, field) in cases {
            let err = parse(kind, &settings, None).expect_err(&settings.to_string());
            assert_eq!(err.field, field, "{settings}: {}", err.message);
        }
    }
}
