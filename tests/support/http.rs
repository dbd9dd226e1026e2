//! A minimal HTTP/1.1 client for the server's endpoints (a client library would add a large
//! dependency tree for three requests).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Response {
    pub status: u16,
    pub content_type: String,
    /// Where a redirect points.
    pub location: Option<String>,
    pub body: String,
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], "").await
}

/// One request: `method path`, extra headers, a body.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 60 s"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Response { status, content_type: header("content-type").unwrap_or_default(), location: header("location"), body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// One sample of a Prometheus text exposition: name, labels (sorted), value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// The samples of a Prometheus text exposition.
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let mut labels: Vec<(String, String)> = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                labels.sort();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        out.push((name, labels, value));
    }
    out
}

/// The value of the one sample named `name` whose labels include all of `want`.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| n == name && want.iter().all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| *v)
}

/// One sample of `/metrics` (`None` when the series is absent).
pub async fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    value(&samples(&get(addr, "/metrics").await.body), name, labels)
}

/// Waits until the server has applied `source` up to `target` (its `applied` watermark).
pub async fn applied_up_to(addr: SocketAddr, source: &str, target: opslive::change::Position) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let applied =
            metric(addr, "opslive_source_position_bytes", &[("source", source), ("watermark", "applied")]).await;
        if applied.is_some_and(|a| a as u64 >= target.0) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not caught up with {target} (applied {applied:?})");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
