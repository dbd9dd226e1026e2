//! Acknowledging from a message: Slack and email carry a link to the dashboard's confirmation
//! page, which acknowledges with a POST (link scanners and unfurlers follow GETs, and must not
//! acknowledge anything). The link holds a ticket signed for one firing of one alert instance,
//! sent to one contact point, so it acknowledges nothing else: a later firing of the same
//! instance has another `since`, and a ticket altered in any byte fails its signature.
//!
//! The signing key is derived from `notifications.secret_key` (HMAC-SHA256 of a fixed label),
//! so the key that seals contact points' secrets never signs anything itself.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use super::contact::ContactPointId;

/// The bytes of the signature kept in a ticket (128 bits).
const SIGNATURE: usize = 16;
const LABEL: &[u8] = b"opslive acknowledgement links v1";

/// What a link acknowledges: one firing (`since`, µs) of one instance, sent to one contact point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckTicket {
    pub rule: i64,
    pub instance: String,
    pub since: i64,
    pub contact_point: ContactPointId,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error("the link is incomplete or altered (copy the whole link from the message)")]
    Malformed,
    #[error("the link's signature does not hold: it was altered, or made with another key")]
    Forged,
}

/// Signs and checks tickets.
#[derive(Clone)]
pub struct AckKey(Hmac<Sha256>);

impl std::fmt::Debug for AckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckKey(…)")
    }
}

impl AckKey {
    /// Derived from the notifications secret key's bytes.
    pub fn derive(secret: &[u8]) -> AckKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(LABEL);
        let derived = mac.finalize().into_bytes();
        AckKey(<Hmac<Sha256> as Mac>::new_from_slice(&derived).expect("HMAC takes any key length"))
    }

    /// `<payload>.<signature>`, both base64url; the payload is the ticket's fields joined by NUL.
    pub fn sign(&self, ticket: &AckTicket) -> String {
        let payload =
            format!("{}\0{}\0{}\0{}", ticket.rule, ticket.since, ticket.contact_point.0, ticket.instance).into_bytes();
        let mut mac = self.0.clone();
        mac.update(&payload);
        let signature = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(&signature[..SIGNATURE]))
    }

    pub fn open(&self, token: &str) -> Result<AckTicket, TicketError> {
        let (payload, signature) = token.trim().split_once('.').ok_or(TicketError::Malformed)?;
        let payload = B64.decode(payload).map_err(|_| TicketError::Malformed)?;
        let signature = B64.decode(signature).map_err(|_| TicketError::Malformed)?;
        if signature.len() != SIGNATURE {
            return Err(TicketError::Malformed);
        }
        let mut mac = self.0.clone();
        mac.update(&payload);
        mac.verify_truncated_left(&signature).map_err(|_| TicketError::Forged)?;
        let text = String::from_utf8(payload).map_err(|_| TicketError::Malformed)?;
        let mut parts = text.splitn(4, '\0');
        let mut number = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or(TicketError::Malformed);
        let (rule, since, contact_point) = (number()?, number()?, number()?);
        let instance = parts.next().ok_or(TicketError::Malformed)?.to_string();
        Ok(AckTicket { rule, instance, since, contact_point: ContactPointId(contact_point) })
    }

    /// The dashboard's confirmation page for `ticket`: `<public_url>ack/?t=<ticket>`.
    pub fn link(&self, base: &Url, ticket: &AckTicket) -> Option<String> {
        let mut url = base.join("ack/").ok()?;
        url.query_pairs_mut().append_pair("t", &self.sign(ticket));
        Some(url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> AckTicket {
        AckTicket {
            rule: 7,
            instance: r#"{"id":42,"note":"a.b\u0000c"}"#.into(),
            since: 1_700_000_000_123_456,
            contact_point: ContactPointId(3),
        }
    }

    #[test]
    fn a_signed_ticket_opens_to_itself_and_an_altered_one_does_not() {
        let key = AckKey::derive(&[1; 32]);
        let token = key.sign(&ticket());
        assert_eq!(key.open(&token), Ok(ticket()));

        let other = AckTicket { since: ticket().since + 1, ..ticket() };
        let (_, signature) = token.split_once('.').unwrap();
        let (payload, _) = key.sign(&other).split_once('.').map(|(p, s)| (p.to_string(), s.to_string())).unwrap();
        assert_eq!(key.open(&format!("{payload}.{signature}")), Err(TicketError::Forged), "another firing");
        assert_eq!(AckKey::derive(&[2; 32]).open(&token), Err(TicketError::Forged), "another key");
        assert_eq!(key.open("nonsense"), Err(TicketError::Malformed));
        assert_eq!(key.open(&token[..token.len() - 2]), Err(TicketError::Malformed), "cut short");
    }

    #[test]
    fn the_link_points_at_the_confirmation_page_under_the_public_url() {
        let key = AckKey::derive(&[1; 32]);
        let link = key.link(&Url::parse("https://ops.example/app/").unwrap(), &ticket()).unwrap();
        let url = Url::parse(&link).unwrap();
        assert_eq!(url.path(), "/app/ack/");
        let token = url.query_pairs().find(|(k, _)| k == "t").unwrap().1.to_string();
        assert_eq!(key.open(&token), Ok(ticket()));
    }
}
