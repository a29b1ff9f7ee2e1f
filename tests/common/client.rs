//! A deliberately small HTTP/1.1 client over one TCP connection: requests with Content-Length,
//! responses with Content-Length or chunked bodies, read incrementally with arrival times.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// How many TCP connections this client opened (keep-alive reuse checks).
    pub connections: usize,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Each body piece with the time it arrived, measured from the request being sent.
    pub pieces: Vec<(Duration, Vec<u8>)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `data:` payloads of an SSE body, in order, with their `event:` names (comment-only
    /// blocks such as `: keepalive` are not events).
    pub fn events(&self) -> Vec<(Option<String>, String)> {
        let text = self.text();
        text.split("\n\n")
            .filter(|e| e.lines().any(|l| l.starts_with("data:")))
            .map(|e| {
                let mut name = None;
                let mut data = String::new();
                for line in e.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                (name, data)
            })
            .collect()
    }
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            stream: None,
            buf: Vec::new(),
            connections: 0,
        }
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, b"").await
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Response {
        self.request("POST", path, headers, &serde_json::to_vec(body).unwrap())
            .await
    }

    /// Sends the request head and body, without reading the answer.
    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        if self.stream.is_none() {
            self.stream = Some(TcpStream::connect(self.addr).await.expect("connect"));
            self.connections += 1;
            self.buf.clear();
        }
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.stream.as_mut().unwrap();
        // A server may answer (413) and close before the whole body is written: the response
        // is still readable, so write errors are not failures here.
        if stream.write_all(head.as_bytes()).await.is_ok() {
            let _ = stream.write_all(body).await;
        }
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send(method, path, headers, body).await;
        self.read_response().await
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = self
            .stream
            .as_mut()
            .unwrap()
            .read(&mut chunk)
            .await
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.fill().await, "connection closed mid-line");
        }
    }

    async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "connection closed mid-body");
        }
        self.buf.drain(..n).collect()
    }

    pub async fn read_response(&mut self) -> Response {
        let started = Instant::now();
        let status_line = self.line().await;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("header line");
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let mut pieces = Vec::new();
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let size =
                    usize::from_str_radix(self.line().await.split(';').next().unwrap().trim(), 16)
                        .unwrap();
                if size == 0 {
                    self.line().await;
                    break;
                }
                let data = self.exact(size).await;
                self.exact(2).await;
                pieces.push((started.elapsed(), data));
            }
        } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let data = self.exact(len).await;
            pieces.push((started.elapsed(), data));
        } else {
            while self.fill().await {}
            pieces.push((started.elapsed(), std::mem::take(&mut self.buf)));
            self.stream = None;
        }
        if get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.stream = None;
        }
        let body = pieces.iter().flat_map(|(_, p)| p.clone()).collect();
        Response {
            status,
            headers,
            body,
            pieces,
        }
    }

    /// Drops the TCP connection (a client hanging up).
    pub fn hang_up(&mut self) {
        self.stream = None;
    }

    /// Reads whatever arrives within `wait` (for partial streams).
    pub async fn read_for(&mut self, wait: Duration) -> Vec<u8> {
        let _ = tokio::time::timeout(wait, async { while self.fill().await {} }).await;
        std::mem::take(&mut self.buf)
    }

    /// Reads until the bytes received so far contain `needle` (or `wait` passes, or the
    /// connection ends), and returns them all; for acting at a precise point of a stream.
    pub async fn read_until(&mut self, needle: &[u8], wait: Duration) -> Vec<u8> {
        let found = |buf: &[u8]| buf.windows(needle.len().max(1)).any(|w| w == needle);
        let _ = tokio::time::timeout(wait, async {
            while !found(&self.buf) {
                if !self.fill().await {
                    break;
                }
            }
        })
        .await;
        std::mem::take(&mut self.buf)
    }
}
