//! Server-sent events: an incremental parser and two tiny writers.
//!
//! The parser splits the byte stream into lines *before* decoding UTF-8, so a multi-byte character
//! cut across two network reads survives. It accepts `\n` and `\r\n` line ends, joins multi-line
//! `data:` fields with `\n`, records `event:`, ignores comments (`: ...`), `id:` and `retry:`, and
//! yields an event as soon as its terminating blank line has arrived. The unterminated tail is kept
//! for the next [`SseParser::feed`]. Buffers are reused across events; single-line events borrow
//! their data straight from the input buffer.

/// One event, borrowed from the parser until the next call to [`SseParser::next_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, `""` when absent.
    pub event: &'a str,
    /// The joined `data:` lines; `None` when the block had no `data:` field (only comments,
    /// `event:`, `retry:` …). Per the SSE spec such blocks dispatch nothing; they are still
    /// reported so that a byte-faithful forwarder sees every block.
    pub data: Option<&'a str>,
    /// The exact bytes of this block, from its first line through its terminating blank line.
    pub raw: &'a [u8],
}

impl SseEvent<'_> {
    /// The data of a block that carries any.
    pub fn data(&self) -> Option<&str> {
        self.data
    }
}

/// Incremental SSE parser. Feed bytes with [`feed`](Self::feed) in any split, then drain complete
/// events with [`next_event`](Self::next_event); at end of input call [`finish`](Self::finish)
/// once and drain again to get a last block that lacked its blank line.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Unconsumed input; `buf[start..]` is the current (incomplete) block.
    buf: Vec<u8>,
    /// Start of the current block in `buf`.
    start: usize,
    /// Scan position: every line before it belongs to the current block.
    pos: usize,
    /// Joined data of the current block when it has more than one data line, or needed decoding.
    data: Vec<u8>,
    /// Single data line of the current block, as a range into `buf` (no copy).
    data_range: Option<(usize, usize)>,
    data_lines: usize,
    event: (usize, usize),
    /// Lossily decoded data or event name when the bytes were not UTF-8.
    scratch: String,
    scratch_event: String,
    eof: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends upstream bytes. Consumed bytes of earlier blocks are released first.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            let shift = self.start;
            self.buf.drain(..shift);
            self.pos -= shift;
            if let Some((a, b)) = self.data_range.as_mut() {
                *a -= shift;
                *b -= shift;
            }
            if self.event.1 > 0 {
                self.event.0 -= shift;
                self.event.1 -= shift;
            }
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Marks the end of input: a last block without its blank line is then reported too.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Bytes received but not yet reported as part of a complete block.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The next complete block, if its blank line has arrived.
    pub fn next_event(&mut self) -> Option<SseEvent<'_>> {
        loop {
            let rest = &self.buf[self.pos..];
            let (line_end, next) = match memchr(b'\n', rest) {
                Some(i) => {
                    let end = if i > 0 && rest[i - 1] == b'\r' {
                        i - 1
                    } else {
                        i
                    };
                    (self.pos + end, self.pos + i + 1)
                }
                None => {
                    if self.eof && self.pos < self.buf.len() {
                        let len = self.buf.len();
                        let mut end = len;
                        if self.buf[end - 1] == b'\r' {
                            end -= 1;
                        }
                        (end, len)
                    } else if self.eof && self.start < self.buf.len() {
                        // Block complete up to EOF without a blank line.
                        return Some(self.dispatch(self.buf.len()));
                    } else {
                        return None;
                    }
                }
            };
            let line_start = self.pos;
            self.pos = next;
            if line_end == line_start {
                // Blank line: the block is complete.
                return Some(self.dispatch(next));
            }
            self.field(line_start, line_end);
        }
    }

    fn field(&mut self, a: usize, b: usize) {
        let line = &self.buf[a..b];
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match memchr(b':', line) {
            Some(i) => {
                let mut v = a + i + 1;
                if v < b && self.buf[v] == b' ' {
                    v += 1;
                }
                (&line[..i], (v, b))
            }
            None => (line, (b, b)),
        };
        match name {
            b"data" => {
                match self.data_lines {
                    0 => self.data_range = Some(value),
                    1 => {
                        let (x, y) = self.data_range.take().expect("one data line recorded");
                        self.data.clear();
                        self.data.extend_from_slice(&self.buf[x..y]);
                        self.data.push(b'\n');
                        self.data.extend_from_slice(&self.buf[value.0..value.1]);
                    }
                    _ => {
                        self.data.push(b'\n');
                        self.data.extend_from_slice(&self.buf[value.0..value.1]);
                    }
                }
                self.data_lines += 1;
            }
            b"event" => self.event = value,
            _ => {} // id, retry, unknown fields
        }
    }

    fn dispatch(&mut self, end: usize) -> SseEvent<'_> {
        let start = self.start;
        self.start = end;
        self.pos = end;
        let lines = std::mem::take(&mut self.data_lines);
        let range = self.data_range.take();
        let event = std::mem::take(&mut self.event);
        let event = match crate::utf8(&self.buf[event.0..event.1]) {
            Ok(s) => s,
            Err(_) => {
                self.scratch_event = String::from_utf8_lossy(&self.buf[event.0..event.1]).into();
                &self.scratch_event
            }
        };
        let bytes: Option<&[u8]> = match (lines, range) {
            (0, _) => None,
            (1, Some((x, y))) => Some(&self.buf[x..y]),
            _ => Some(&self.data),
        };
        let data = bytes.map(|b| match crate::utf8(b) {
            Ok(s) => s,
            Err(_) => {
                self.scratch = String::from_utf8_lossy(b).into_owned();
                self.scratch.as_str()
            }
        });
        SseEvent {
            event,
            data,
            raw: &self.buf[start..end],
        }
    }
}

#[inline]
/// SIMD byte search: SSE lines are mostly long JSON payloads.
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

/// Appends `data: <data>\n\n` (one `data:` line per line of `data`).
pub fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    write_data_lines(out, data);
    out.push(b'\n');
}

/// Appends `event: <event>\ndata: <data>\n\n`.
pub fn write_event(out: &mut Vec<u8>, event: &str, data: &[u8]) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    write_data(out, data);
}

fn write_data_lines(out: &mut Vec<u8>, data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(p: &mut SseParser) -> Vec<(String, Option<String>)> {
        let mut v = Vec::new();
        while let Some(e) = p.next_event() {
            v.push((e.event.to_string(), e.data.map(str::to_string)));
        }
        v
    }

    #[test]
    fn lf_and_crlf_events() {
        let mut p = SseParser::new();
        p.feed(b"event: a\r\ndata: {\"x\":1}\r\n\r\ndata: two\n\n");
        assert_eq!(
            collect(&mut p),
            vec![
                ("a".into(), Some("{\"x\":1}".into())),
                ("".into(), Some("two".into()))
            ]
        );
    }

    #[test]
    fn multi_line_data_is_joined_and_comments_ignored() {
        let mut p = SseParser::new();
        p.feed(b": keepalive\nretry: 100\nid: 7\ndata: a\ndata:b\ndata\n\n");
        assert_eq!(collect(&mut p), vec![("".into(), Some("a\nb\n".into()))]);
    }

    #[test]
    fn comment_only_block_has_no_data_but_keeps_raw() {
        let mut p = SseParser::new();
        p.feed(b": ping\n\ndata: x\n\n");
        let e = p.next_event().unwrap();
        assert_eq!(e.data, None);
        assert_eq!(e.raw, b": ping\n\n");
        let e = p.next_event().unwrap();
        assert_eq!(e.raw, b"data: x\n\n");
        assert!(p.next_event().is_none());
    }

    #[test]
    fn split_inside_utf8_and_crlf() {
        let input = "data: h\u{e9}llo \u{1f600}\r\n\r\n".as_bytes();
        for cut in 0..input.len() {
            let mut p = SseParser::new();
            p.feed(&input[..cut]);
            let mut got = collect(&mut p);
            p.feed(&input[cut..]);
            got.extend(collect(&mut p));
            assert_eq!(
                got,
                vec![("".into(), Some("h\u{e9}llo \u{1f600}".into()))],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn event_yielded_as_soon_as_blank_line_arrives_and_tail_kept() {
        let mut p = SseParser::new();
        p.feed(b"data: 1\n\ndata: 2");
        assert_eq!(collect(&mut p).len(), 1);
        assert_eq!(p.pending(), b"data: 2");
        p.feed(b"\n");
        assert!(p.next_event().is_none());
        p.feed(b"\n");
        assert_eq!(collect(&mut p), vec![("".into(), Some("2".into()))]);
    }

    #[test]
    fn last_block_without_blank_line_is_reported_at_eof() {
        let mut p = SseParser::new();
        p.feed(b"data: 1\n\ndata: last");
        assert_eq!(collect(&mut p).len(), 1);
        p.finish();
        assert_eq!(collect(&mut p), vec![("".into(), Some("last".into()))]);
        assert!(p.next_event().is_none());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut p = SseParser::new();
        p.feed(b"data: a\xffb\n\n");
        assert_eq!(
            collect(&mut p),
            vec![("".into(), Some("a\u{fffd}b".into()))]
        );
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        write_data(&mut out, b"{}");
        write_event(&mut out, "ping", b"{\"type\":\"ping\"}");
        write_data(&mut out, b"a\nb");
        assert_eq!(
            out,
            b"data: {}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\ndata: a\ndata: b\n\n"
        );
    }
}
