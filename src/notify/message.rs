//! What a notification says, once, whatever the channel ([`Content`], stored with it in the
//! outbox), and how each channel spells it: Slack's Block Kit, an SMS body, the webhook's JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    Firing,
    Resolved,
    Test,
}

impl NoticeKind {
    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::Firing => "firing",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Test => "test",
        }
    }
}

/// A notification's content, with the provenance of the transition behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub kind: NoticeKind,
    pub rule_id: Option<i64>,
    pub rule: String,
    /// `info`, `warning`, `critical`.
    pub severity: String,
    pub instance: String,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    pub value: Option<String>,
    /// The transaction that caused it: source, position and commit time (RFC 3339); absent for
    /// a transition that time made.
    pub source: Option<String>,
    pub position: Option<String>,
    pub commit_ts: Option<String>,
    /// When the transition happened (RFC 3339).
    pub at: String,
    /// The alert in the dashboard, when `notifications.public_url` is set.
    pub link: Option<String>,
    /// A reminder of an alert still firing unacknowledged: the how-manieth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<i64>,
    /// The dashboard's page that acknowledges this firing (see [`super::ack`]); only on a
    /// firing notification of one alert, and only with `public_url` and `secret_key` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_link: Option<String>,
}

impl Content {
    /// Several notifications of one group as one: the first's rule and kind, the highest
    /// severity, one line per member in the summary, the labels all members share, and the
    /// provenance of the latest.
    pub fn group(members: &[Content]) -> Content {
        const LISTED: usize = 20;
        let first = &members[0];
        let last = &members[members.len() - 1];
        let rank = |s: &str| ["info", "warning", "critical"].iter().position(|x| *x == s).unwrap_or(0);
        let severity = members.iter().map(|c| c.severity.as_str()).max_by_key(|s| rank(s)).unwrap_or("info");
        let same_rule = members.iter().all(|c| c.rule_id == first.rule_id);
        let mut lines: Vec<String> = members
            .iter()
            .take(LISTED)
            .map(|c| {
                let text = if c.summary.is_empty() { c.instance.clone() } else { c.summary.clone() };
                if same_rule { format!("• {text}") } else { format!("• {}: {text}", c.rule) }
            })
            .collect();
        if members.len() > LISTED {
            lines.push(format!("… and {} more", members.len() - LISTED));
        }
        let labels = first
            .labels
            .iter()
            .filter(|(k, v)| members.iter().all(|c| c.labels.get(*k) == Some(v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Content {
            kind: first.kind,
            rule_id: if same_rule { first.rule_id } else { None },
            rule: if same_rule {
                format!("{} ({} alerts)", first.rule, members.len())
            } else {
                format!("{} alerts", members.len())
            },
            severity: severity.to_string(),
            instance: String::new(),
            labels,
            summary: lines.join("\n"),
            value: None,
            source: last.source.clone(),
            position: last.position.clone(),
            commit_ts: last.commit_ts.clone(),
            at: last.at.clone(),
            link: first.link.as_ref().map(|l| l.split("&instance=").next().unwrap_or(l).to_string()),
            reminder: members.iter().filter_map(|c| c.reminder).max(),
            // One link acknowledges one alert: a group of several has none.
            ack_link: if members.len() == 1 { first.ack_link.clone() } else { None },
        }
    }

    fn headline(&self) -> String {
        if let Some(n) = self.reminder {
            return format!("Still firing (reminder {n}): {}", self.rule);
        }
        let state = match self.kind {
            NoticeKind::Firing => "Firing",
            NoticeKind::Resolved => "Resolved",
            NoticeKind::Test => "Test",
        };
        format!("{state}: {}", self.rule)
    }

    fn provenance(&self) -> String {
        match (&self.source, &self.position) {
            (Some(source), Some(position)) => {
                let when = self.commit_ts.as_deref().map(|t| format!(", committed {t}")).unwrap_or_default();
                format!("{source} at {position}{when}")
            }
            _ => format!("time passed ({})", self.at),
        }
    }
}

fn colour(content: &Content) -> &'static str {
    match (content.kind, content.severity.as_str()) {
        (NoticeKind::Resolved, _) => "#2eb67d",
        (NoticeKind::Test, _) => "#4aa3ff",
        (_, "critical") => "#e01e5a",
        (_, "warning") => "#ecb22e",
        _ => "#4aa3ff",
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `most` characters, the last an ellipsis when something was cut.
pub(super) fn clip(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_string();
    }
    let mut out: String = text.chars().take(most.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A Slack incoming webhook's body: a fallback `text` and one attachment coloured by severity
/// whose blocks carry the summary, the facts and a link to the alert.
pub fn slack(content: &Content) -> Json {
    let labels = content.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let mut fields = vec![json!({ "type": "mrkdwn", "text": format!("*Severity*\n{}", escape(&content.severity)) })];
    if let Some(value) = &content.value {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*Value*\n{}", escape(value)) }));
    }
    if !labels.is_empty() {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*Labels*\n{}", clip(&escape(&labels), 1900)) }));
    }
    fields.push(json!({ "type": "mrkdwn", "text": format!("*Caused by*\n{}", escape(&content.provenance())) }));
    let summary = if content.summary.is_empty() { content.headline() } else { content.summary.clone() };
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": clip(&content.headline(), 150) } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(&escape(&summary), 3000) } }),
        json!({ "type": "section", "fields": fields }),
    ];
    let mut buttons = Vec::new();
    if let Some(link) = &content.ack_link {
        buttons.push(json!({ "type": "button", "style": "primary", "action_id": "acknowledge",
                             "text": { "type": "plain_text", "text": "Acknowledge" }, "url": link }));
    }
    if let Some(link) = &content.link {
        buttons.push(json!({ "type": "button", "action_id": "open",
                             "text": { "type": "plain_text", "text": "Open in opslive" }, "url": link }));
    }
    if !buttons.is_empty() {
        blocks.push(json!({ "type": "actions", "elements": buttons }));
    }
    json!({
        "text": format!("[{}] {}", content.kind.name().to_uppercase(), clip(&summary, 200)),
        "attachments": [{ "color": colour(content), "blocks": blocks }],
    })
}

/// An SMS: the state, severity, rule and summary first (what a phone's preview shows), then
/// the value, the provenance and the link; at most two segments' worth.
pub fn sms(content: &Content) -> String {
    let mut out = format!("[{} {}] {}", content.kind.name().to_uppercase(), content.severity, content.rule);
    if !content.summary.is_empty() {
        out.push_str(": ");
        out.push_str(&content.summary);
    }
    if let Some(value) = &content.value {
        out.push_str(&format!(" (value {value})"));
    }
    out.push_str(&format!(" · {}", content.provenance()));
    if let Some(link) = &content.link {
        out.push(' ');
        out.push_str(link);
    }
    clip(&out, 320)
}

/// An email's subject: what an inbox's list shows.
pub fn email_subject(content: &Content) -> String {
    let summary = if content.summary.is_empty() { String::new() } else { format!(": {}", content.summary) };
    clip(&format!("[{} {}] {}{summary}", content.kind.name().to_uppercase(), content.severity, content.rule), 200)
}

/// The facts, one per line: the email's text part and the rows of its HTML part.
fn facts(content: &Content) -> Vec<(&'static str, String)> {
    let mut out = vec![("Rule", content.rule.clone()), ("Severity", content.severity.clone())];
    if let Some(value) = &content.value {
        out.push(("Value", value.clone()));
    }
    if !content.labels.is_empty() {
        out.push(("Labels", content.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")));
    }
    out.push(("Caused by", content.provenance()));
    out
}

pub fn email_text(content: &Content) -> String {
    let mut out = format!("{}\n\n", content.headline());
    if !content.summary.is_empty() {
        out.push_str(&format!("{}\n\n", content.summary));
    }
    for (name, value) in facts(content) {
        out.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(link) = &content.ack_link {
        out.push_str(&format!("\nAcknowledge (stops reminders): {link}\n"));
    }
    if let Some(link) = &content.link {
        out.push_str(&format!("\nOpen in opslive: {link}\n"));
    }
    out
}

pub fn email_html(content: &Content) -> String {
    let rows: String = facts(content)
        .into_iter()
        .map(|(name, value)| format!("<tr><th align=\"left\">{name}</th><td>{}</td></tr>", escape(&value)))
        .collect();
    let anchor = |l: &String, text: &str| format!("<a href=\"{}\">{text}</a>", escape(l).replace('"', "&quot;"));
    let links: Vec<String> = [(&content.ack_link, "Acknowledge"), (&content.link, "Open in opslive")]
        .into_iter()
        .filter_map(|(l, text)| l.as_ref().map(|l| anchor(l, text)))
        .collect();
    let link = if links.is_empty() { String::new() } else { format!("<p>{}</p>", links.join(" · ")) };
    format!(
        "<html><body><h2 style=\"border-left:6px solid {};padding-left:8px\">{}</h2><p>{}</p><table>{rows}</table>{link}</body></html>",
        colour(content),
        escape(&content.headline()),
        escape(&content.summary),
    )
}

/// The webhook's body: the content with a version and the idempotency key, and for a group
/// every member's own content in `alerts` (one alert: `alerts` holds it alone).
pub fn webhook(content: &Content, members: &[Content], idempotency_key: &str) -> Json {
    let mut body = serde_json::to_value(content).expect("content serialises");
    body["version"] = json!(1);
    body["idempotencyKey"] = json!(idempotency_key);
    let alerts = if members.is_empty() { std::slice::from_ref(content) } else { members };
    body["alerts"] = serde_json::to_value(alerts).expect("content serialises");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        Content {
            kind: NoticeKind::Firing,
            rule_id: Some(3),
            rule: "Orders per minute".into(),
            severity: "critical".into(),
            instance: "{\"channel\":\"web\"}".into(),
            labels: [("channel".to_string(), "web<1>".to_string())].into(),
            summary: "web takes 91 orders/min".into(),
            value: Some("91".into()),
            source: Some("shop".into()),
            position: Some("0/16B3F20".into()),
            commit_ts: Some("2026-12-05T10:00:00Z".into()),
            at: "2026-12-05T10:00:00Z".into(),
            link: Some("https://ops.example/alerts/?rule=3".into()),
            reminder: None,
            ack_link: None,
        }
    }

    #[test]
    fn slack_carries_severity_colour_summary_value_provenance_and_link() {
        let body = slack(&content());
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], "#e01e5a");
        let text = attachment["blocks"].to_string();
        for part in [
            "Firing: Orders per minute",
            "web takes 91 orders/min",
            "*Value*\\n91",
            "shop at 0/16B3F20",
            "https://ops.example/alerts/?rule=3",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        assert!(text.contains("web&lt;1&gt;"), "labels are escaped for mrkdwn: {text}");
        let resolved = slack(&Content { kind: NoticeKind::Resolved, ..content() });
        assert_eq!(resolved["attachments"][0]["color"], "#2eb67d");
    }

    #[test]
    fn slack_and_email_carry_the_acknowledgement_link_when_there_is_one() {
        let ack = "https://ops.example/ack/?t=abc.def";
        let with = Content { ack_link: Some(ack.into()), ..content() };
        let buttons = &slack(&with)["attachments"][0]["blocks"][3]["elements"];
        assert_eq!(buttons[0]["text"]["text"], "Acknowledge");
        assert_eq!(buttons[0]["url"], ack);
        assert_eq!(buttons[1]["url"], "https://ops.example/alerts/?rule=3");
        assert!(email_text(&with).contains(&format!("Acknowledge (stops reminders): {ack}")));
        assert!(email_html(&with).contains(&format!("<a href=\"{ack}\">Acknowledge</a>")));
        assert_eq!(slack(&content())["attachments"][0]["blocks"][3]["elements"].as_array().unwrap().len(), 1);
        assert!(!email_text(&content()).contains("Acknowledge"));
        let pair = Content::group(&[with.clone(), with.clone()]);
        assert_eq!(pair.ack_link, None, "one link acknowledges one alert, not a group");
        assert_eq!(Content::group(&[with]).ack_link.as_deref(), Some(ack));
    }

    #[test]
    fn a_group_lists_its_members_under_the_highest_severity_and_shared_labels() {
        let a = content();
        let b = Content {
            severity: "warning".into(),
            summary: "app takes 130 orders/min".into(),
            labels: [("channel".to_string(), "app".to_string())].into(),
            position: Some("0/16B4000".into()),
            ..content()
        };
        let g = Content::group(&[a, b]);
        assert_eq!(g.rule, "Orders per minute (2 alerts)");
        assert_eq!(g.severity, "critical");
        assert_eq!(g.summary, "• web takes 91 orders/min\n• app takes 130 orders/min");
        assert!(g.labels.is_empty(), "no label is shared");
        assert_eq!(g.position.as_deref(), Some("0/16B4000"), "the latest member's provenance");
        assert_eq!(g.link.as_deref(), Some("https://ops.example/alerts/?rule=3"));
        let many: Vec<Content> = (0..25).map(|_| content()).collect();
        assert!(Content::group(&many).summary.ends_with("… and 5 more"));
    }

    #[test]
    fn an_email_has_a_subject_a_text_part_and_an_escaped_html_part() {
        let c = content();
        assert_eq!(email_subject(&c), "[FIRING critical] Orders per minute: web takes 91 orders/min");
        let text = email_text(&c);
        assert!(text.contains("Value: 91\n") && text.contains("Caused by: shop at 0/16B3F20"), "{text}");
        let html = email_html(&c);
        assert!(html.contains("channel=web&lt;1&gt;"), "{html}");
        assert!(html.contains("href=\"https://ops.example/alerts/?rule=3\""), "{html}");
    }

    #[test]
    fn an_sms_leads_with_the_state_and_stays_within_two_segments() {
        let body = sms(&content());
        assert!(body.starts_with("[FIRING critical] Orders per minute: web takes 91 orders/min (value 91)"), "{body}");
        let long = sms(&Content { summary: "x".repeat(1000), ..content() });
        assert_eq!(long.chars().count(), 320);
    }
}
