//! The fault script carried in the upstream key (grammar in the crate docs).

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer normally.
    Ok,
    /// Answer with this status in the dialect's error envelope
    /// (`retry_after` seconds as `Retry-After` for 429).
    Status { code: u16, retry_after: Option<u64> },
    /// Status 200, send this many stream events (or half of a JSON body), then reset.
    Reset(usize),
    /// Reset the connection before sending anything.
    Close,
    /// Status 200, send this many stream events, then the dialect's
    /// mid-stream error event and end the stream.
    MidError(usize),
    /// Wait this many milliseconds before the response header, then answer normally.
    Slow(u64),
    /// Never answer; wait until the client closes.
    Hang,
}

/// Resolve the fault for the `attempt`-th (0-based) request made with `key`.
pub(crate) fn resolve(key: &str, attempt: u64) -> Fault {
    match key.strip_prefix("seq-") {
        Some(steps) => {
            let n = steps.split(',').count() as u64;
            let i = attempt.min(n.saturating_sub(1)) as usize;
            let step = steps.split(',').nth(i).unwrap_or("ok").trim();
            parse_step(step, true)
        }
        None => parse_step(key, false),
    }
}

/// One fault. With `bare`, the `fail-` prefix is optional (`429`, `reset-2`).
fn parse_step(s: &str, bare: bool) -> Fault {
    if let Some(ms) = s.strip_prefix("slow-") {
        return ms.parse().map(Fault::Slow).unwrap_or(Fault::Ok);
    }
    if s == "hang" {
        return Fault::Hang;
    }
    match s.strip_prefix("fail-") {
        Some(rest) => parse_fail(rest),
        None if bare => parse_fail(s),
        None => Fault::Ok,
    }
}

fn parse_fail(s: &str) -> Fault {
    if let Some(n) = s.strip_prefix("reset-") {
        return n.parse().map(Fault::Reset).unwrap_or(Fault::Ok);
    }
    if let Some(n) = s.strip_prefix("mid-") {
        return n.parse().map(Fault::MidError).unwrap_or(Fault::Ok);
    }
    if s == "close" {
        return Fault::Close;
    }
    let (code, secs) = match s.split_once('-') {
        Some((c, secs)) => (c, secs.parse::<u64>().ok()),
        None => (s, None),
    };
    match code.parse::<u16>() {
        Ok(code @ 400..=599) => Fault::Status {
            code,
            retry_after: (code == 429).then(|| secs.unwrap_or(1)),
        },
        _ => Fault::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let st = |code, ra| Fault::Status {
            code,
            retry_after: ra,
        };
        assert_eq!(resolve("ok-1", 0), Fault::Ok);
        assert_eq!(resolve("sk-anything", 5), Fault::Ok);
        assert_eq!(resolve("fail-429-7", 0), st(429, Some(7)));
        assert_eq!(resolve("fail-429", 0), st(429, Some(1)));
        assert_eq!(resolve("fail-529", 0), st(529, None));
        assert_eq!(resolve("fail-401", 0), st(401, None));
        assert_eq!(resolve("fail-999", 0), Fault::Ok);
        assert_eq!(resolve("fail-reset-3", 0), Fault::Reset(3));
        assert_eq!(resolve("fail-mid-2", 0), Fault::MidError(2));
        assert_eq!(resolve("fail-close", 0), Fault::Close);
        assert_eq!(resolve("slow-250", 0), Fault::Slow(250));
        assert_eq!(resolve("hang", 0), Fault::Hang);
        assert_eq!(resolve("429", 0), Fault::Ok);
        let seq = "seq-429,ok,fail-500,reset-1";
        assert_eq!(resolve(seq, 0), st(429, Some(1)));
        assert_eq!(resolve(seq, 1), Fault::Ok);
        assert_eq!(resolve(seq, 2), st(500, None));
        assert_eq!(resolve(seq, 3), Fault::Reset(1));
        assert_eq!(resolve(seq, 99), Fault::Reset(1));
        assert_eq!(resolve("seq-429-3,slow-10,hang", 1), Fault::Slow(10));
        assert_eq!(resolve("seq-429-3,slow-10,hang", 0), st(429, Some(3)));
        assert_eq!(resolve("seq-429-3,slow-10,hang", 2), Fault::Hang);
    }
}
