//! A local SMTP server standing in for a company's mail relay: it speaks enough ESMTP for a
//! real client (EHLO, STARTTLS with a certificate from a test CA, AUTH PLAIN and LOGIN checked
//! against one user, MAIL, RCPT, DATA, QUIT) and records each accepted message with how it
//! arrived. It refuses AUTH before TLS, as a relay should.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// The user that authenticated, if any.
    pub user: Option<String>,
    /// Whether the message came over TLS (after STARTTLS).
    pub tls: bool,
    /// When its data was complete.
    pub at: std::time::Instant,
}

#[derive(Clone)]
pub struct SmtpStandIn {
    pub port: u16,
    /// The test CA's certificate (PEM): what a client must trust.
    pub ca_pem: String,
    mails: Arc<Mutex<Vec<Mail>>>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl SmtpStandIn {
    /// Listens on 127.0.0.1 with a certificate for `localhost`; AUTH takes `user`/`password`.
    pub async fn start(user: &'static str, password: &'static str) -> SmtpStandIn {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let super::tls::Issued { ca_pem, cert: leaf, key: leaf_key } = super::tls::issue(&["localhost"]);
        let config = tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let kept = mails.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (acceptor, mails) = (acceptor.clone(), kept.clone());
                tokio::spawn(async move {
                    let mut plain = BufReader::new(stream);
                    if session(&mut plain, false, user, password, &mails).await == Next::StartTls {
                        let Ok(tls) = acceptor.accept(plain.into_inner()).await else { return };
                        let mut tls = BufReader::new(tls);
                        session(&mut tls, true, user, password, &mails).await;
                    }
                });
            }
        });
        SmtpStandIn { port, ca_pem, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub async fn wait(&self, what: &str, done: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.mails();
            if done(&got) {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: the SMTP stand-in has {got:#?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

#[derive(PartialEq, Eq)]
enum Next {
    StartTls,
    Done,
}

/// One SMTP session over `io` (plain, or TLS after STARTTLS, where it starts with EHLO again).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    tls: bool,
    user: &str,
    password: &str,
    mails: &Mutex<Vec<Mail>>,
) -> Next {
    async fn say<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, text: &str) -> bool {
        io.get_mut().write_all(text.as_bytes()).await.is_ok() && io.get_mut().flush().await.is_ok()
    }
    async fn line<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>) -> Option<String> {
        let mut l = String::new();
        match io.read_line(&mut l).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_string()),
        }
    }
    if !tls && !say(io, "220 standin ESMTP\r\n").await {
        return Next::Done;
    }
    let (mut from, mut to, mut authed) = (String::new(), Vec::new(), None);
    while let Some(command) = line(io).await {
        let upper = command.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if tls {
                "250-standin\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
            } else {
                "250-standin\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
            }
            .to_string()
        } else if upper == "STARTTLS" && !tls {
            say(io, "220 go ahead\r\n").await;
            return Next::StartTls;
        } else if upper.starts_with("AUTH") && !tls {
            "530 5.7.0 must issue STARTTLS first\r\n".into()
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let encoded = command[command.len() - rest.len()..].trim().to_string();
            let encoded = if encoded.is_empty() {
                say(io, "334 \r\n").await;
                line(io).await.unwrap_or_default()
            } else {
                encoded
            };
            let decoded = B64.decode(encoded.trim()).unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            if parts.len() == 3 && parts[1] == user.as_bytes() && parts[2] == password.as_bytes() {
                authed = Some(user.to_string());
                "235 2.7.0 ok\r\n".into()
            } else {
                "535 5.7.8 bad credentials\r\n".into()
            }
        } else if upper == "AUTH LOGIN" {
            say(io, "334 VXNlcm5hbWU6\r\n").await;
            let u = B64.decode(line(io).await.unwrap_or_default()).unwrap_or_default();
            say(io, "334 UGFzc3dvcmQ6\r\n").await;
            let p = B64.decode(line(io).await.unwrap_or_default()).unwrap_or_default();
            if u == user.as_bytes() && p == password.as_bytes() {
                authed = Some(user.to_string());
                "235 2.7.0 ok\r\n".into()
            } else {
                "535 5.7.8 bad credentials\r\n".into()
            }
        } else if upper.starts_with("MAIL FROM:") {
            if authed.is_none() {
                "530 5.7.0 authentication required\r\n".into()
            } else {
                from = command[10..].trim().trim_matches(['<', '>']).to_string();
                to.clear();
                "250 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().trim_matches(['<', '>']).to_string());
            "250 ok\r\n".into()
        } else if upper == "DATA" {
            say(io, "354 end with .\r\n").await;
            let mut data = String::new();
            while let Some(l) = line(io).await {
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(&l));
                data.push('\n');
            }
            mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
                user: authed.clone(),
                tls,
                at: std::time::Instant::now(),
            });
            "250 2.0.0 queued\r\n".into()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".into()
        } else if upper == "QUIT" {
            say(io, "221 bye\r\n").await;
            return Next::Done;
        } else {
            "502 5.5.2 not implemented\r\n".into()
        };
        if !say(io, &reply).await {
            break;
        }
    }
    Next::Done
}
