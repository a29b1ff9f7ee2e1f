//! A tiny HTTP/1.1 client over tokio's TcpStream, strict about framing.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The HTTP chunks as received (chunked responses only).
    pub chunks: Vec<Vec<u8>>,
    pub chunked: bool,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("bad event JSON {e}: {}", self.data))
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON {e}: {}", self.text()))
    }

    /// Parse an SSE body strictly: events end with an empty line (`\n\n`,
    /// or `\r\n\r\n` when `crlf`), lines are `event:` or `data:` only.
    pub fn sse(&self, crlf: bool) -> Vec<Event> {
        parse_sse(self.text(), crlf)
    }
}

pub fn parse_sse(text: &str, crlf: bool) -> Vec<Event> {
    let (sep, nl) = if crlf {
        ("\r\n\r\n", "\r\n")
    } else {
        ("\n\n", "\n")
    };
    assert!(
        text.ends_with(sep),
        "SSE body must end with an empty line: {text:?}"
    );
    let mut out = Vec::new();
    for block in text[..text.len() - sep.len()].split(sep) {
        let mut ev = Event {
            event: None,
            data: String::new(),
        };
        let mut data_lines = 0;
        for line in block.split(nl) {
            assert!(
                !line.contains('\r') && !line.contains('\n'),
                "stray line break in {line:?}"
            );
            if let Some(v) = line.strip_prefix("event: ") {
                assert!(ev.event.is_none(), "two event lines");
                ev.event = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data_lines += 1;
                ev.data = v.to_string();
            } else {
                panic!("unexpected SSE line {line:?}");
            }
        }
        assert_eq!(data_lines, 1, "one data line per event: {block:?}");
        out.push(ev);
    }
    out
}

impl Client {
    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: mock\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "GET" || !body.is_empty() {
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).await
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send(method, path, headers, body).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 16384];
        let n = self.stream.read(&mut tmp).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    /// Read the status line and headers.
    pub async fn read_head(&mut self) -> io::Result<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) =
                resp.parse(&self.buf).expect("valid response head")
            {
                let r = Response {
                    status: resp.code.unwrap(),
                    headers: resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8(h.value.to_vec()).unwrap(),
                            )
                        })
                        .collect(),
                    ..Default::default()
                };
                self.buf.drain(..n);
                return Ok(Response {
                    chunked: r.header("transfer-encoding") == Some("chunked"),
                    ..r
                });
            }
            self.fill().await?;
        }
    }

    /// Next HTTP chunk of a chunked body; `None` at the terminating chunk.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Ok(httparse::Status::Complete((skip, size))) =
                httparse::parse_chunk_size(&self.buf)
            {
                let size = size as usize;
                if size == 0 {
                    while self.buf.len() < skip + 2 {
                        self.fill().await?;
                    }
                    assert_eq!(&self.buf[skip..skip + 2], b"\r\n", "no trailers expected");
                    self.buf.drain(..skip + 2);
                    return Ok(None);
                }
                if self.buf.len() >= skip + size + 2 {
                    assert_eq!(
                        &self.buf[skip + size..skip + size + 2],
                        b"\r\n",
                        "chunk CRLF"
                    );
                    let data = self.buf[skip..skip + size].to_vec();
                    self.buf.drain(..skip + size + 2);
                    return Ok(Some(data));
                }
            }
            self.fill().await?;
        }
    }

    /// Read a whole response (Content-Length or chunked).
    pub async fn read_response(&mut self) -> io::Result<Response> {
        let mut r = self.read_head().await?;
        if r.chunked {
            while let Some(c) = self.next_chunk().await? {
                r.body.extend_from_slice(&c);
                r.chunks.push(c);
            }
        } else if let Some(len) = r.header("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                self.fill().await?;
            }
            r.body = self.buf.drain(..len).collect();
        } else {
            // Close-delimited (HTTP/1.0 streams).
            loop {
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            r.body = std::mem::take(&mut self.buf);
        }
        Ok(r)
    }

    /// True if the peer sends nothing within `d`.
    pub async fn silent_for(&mut self, d: Duration) -> bool {
        let mut tmp = [0u8; 64];
        tokio::time::timeout(d, self.stream.read(&mut tmp))
            .await
            .is_err()
    }
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    Client::connect(addr)
        .await
        .request(method, path, headers, body.as_bytes())
        .await
        .expect("response")
}

pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Response {
    request(addr, "POST", path, headers, &body.to_string()).await
}
