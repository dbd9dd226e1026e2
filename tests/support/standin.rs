//! A local HTTP server standing in for Slack's incoming webhooks, Twilio's Messages API and a
//! webhook receiver (no network is reachable here). It records every request, answers like
//! the real service (Slack `200 ok`, Twilio `201` with a message resource), and can be told to
//! answer a path otherwise for a while: a 429 with `Retry-After`, a 500, no answer at all, or
//! its usual answer late (so a send stays in flight for a while).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{}: not JSON ({e})", self.path))
    }

    /// The form fields of a form POST.
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// How a path answers its next request.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16, &'static str),
    TooMany {
        retry_after_secs: u64,
    },
    /// Never answers (the sender's timeout ends it).
    Hang,
    /// The service's usual answer, after this long.
    Slow(Duration),
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Answers queued per path prefix, taken one per request.
    script: HashMap<String, VecDeque<Answer>>,
    /// Answers per path prefix used when nothing is queued (instead of the service's own).
    sticky: HashMap<String, Answer>,
}

#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    seen: tokio::sync::watch::Receiver<usize>,
    seen_tx: Arc<tokio::sync::watch::Sender<usize>>,
}

impl StandIn {
    pub async fn start() -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen) = tokio::sync::watch::channel(0);
        let standin = StandIn { addr, inner: Arc::default(), seen, seen_tx: Arc::new(seen_tx) };
        let app = Router::new().fallback(handle).with_state(standin.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        standin
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next requests to paths starting with `prefix` get these answers, in turn.
    pub fn script(&self, prefix: &str, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().script.entry(prefix.to_string()).or_default().extend(answers);
    }

    /// Paths starting with `prefix` answer `answer` until [`StandIn::recover`].
    pub fn fail(&self, prefix: &str, answer: Answer) {
        self.inner.lock().unwrap().sticky.insert(prefix.to_string(), answer);
    }

    pub fn recover(&self, prefix: &str) {
        self.inner.lock().unwrap().sticky.remove(prefix);
    }

    pub fn received(&self, prefix: &str) -> Vec<Received> {
        self.inner.lock().unwrap().received.iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
    }

    /// Waits until `done` holds for the requests to `prefix`.
    pub async fn wait(&self, prefix: &str, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let mut seen = self.seen.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            seen.borrow_and_update();
            let got = self.received(prefix);
            if done(&got) {
                return got;
            }
            let paths: Vec<_> = got.iter().map(|r| r.path.clone()).collect();
            tokio::time::timeout_at(deadline, seen.changed())
                .await
                .unwrap_or_else(|_| panic!("{what}: {prefix} received {paths:?}"))
                .unwrap();
        }
    }
}

async fn handle(State(s): State<StandIn>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let answer = {
        let mut inner = s.inner.lock().unwrap();
        inner.received.push(Received {
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body,
            at: Instant::now(),
        });
        let scripted = inner.script.iter_mut().find(|(p, q)| path.starts_with(p.as_str()) && !q.is_empty());
        match scripted {
            Some((_, queue)) => queue.pop_front(),
            None => inner.sticky.iter().find(|(p, _)| path.starts_with(p.as_str())).map(|(_, a)| a.clone()),
        }
    };
    s.seen_tx.send_modify(|n| *n += 1);
    match answer {
        Some(Answer::Status(code, body)) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
        Some(Answer::TooMany { retry_after_secs }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_secs.to_string())],
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
        )
            .into_response(),
        Some(Answer::Hang) => std::future::pending().await,
        Some(Answer::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            usual(&path)
        }
        None => usual(&path),
    }
}

/// What the real service answers.
fn usual(path: &str) -> Response {
    if path.contains("/Messages.json") {
        return (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}"#,
        )
            .into_response();
    }
    (StatusCode::OK, "ok").into_response()
}
