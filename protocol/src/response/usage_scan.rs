//! A reader for the usage objects providers actually write: members that are unsigned integers,
//! `null`, plain strings, booleans and nested objects or arrays of those. It reads a usage
//! object in one pass with no per-member dispatch through serde (serde's derived reader was
//! four fifths of the cost of accounting a JSON answer).
//!
//! It answers only when it is sure to agree with serde: anything outside that subset (an escape
//! or a non-ASCII byte in a string, a fraction, an exponent, a negative or too long a number
//! where a count is expected, a repeated field, deep nesting, malformed JSON) is `None`, and the
//! caller asks serde, which decides. `usage::tests::the_scan_agrees_with_serde` holds it to that.

/// Where a member of a usage object goes.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    /// A count: `slots[i]` (`Option<u64>`: `null` is `None`).
    Count(usize),
    /// A nested object of counts: present (not `null`) sets `objects[i]`.
    Object(usize, &'static [(&'static [u8], Slot)]),
}

/// The counts and nested objects read from one usage object.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Read {
    pub slots: [Option<u64>; 8],
    pub objects: [bool; 4],
}

/// Reads the object `json` starts with against `fields`; the counts and where the object ended,
/// or `None` for serde to decide.
pub(super) fn read(json: &[u8], fields: &[(&'static [u8], Slot)]) -> Option<(Read, usize)> {
    let mut scan = Scan {
        b: json,
        i: 0,
        seen: 0,
        read: Read::default(),
    };
    scan.object(Some(fields), 0)?;
    Some((scan.read, scan.i))
}

/// Deeper than any usage object: nested `cache_creation`, Gemini's token-detail arrays.
const MAX_DEPTH: usize = 4;
/// 19 digits always fit in a `u64`; longer counts go to serde.
const MAX_DIGITS: usize = 19;

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// Known fields and nested objects met so far (bit per slot, then per object): serde's
    /// derived reader rejects a repeated field.
    seen: u32,
    read: Read,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// An object; `fields`: where its members go (`None`: an object nobody reads).
    fn object(&mut self, fields: Option<&[(&'static [u8], Slot)]>, depth: usize) -> Option<()> {
        if self.opened_empty(b'{', b'}', depth)? {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let slot = fields.and_then(|f| f.iter().find(|(name, _)| *name == key));
            match slot {
                Some(&(_, Slot::Count(i))) => {
                    self.first_time(i)?;
                    self.read.slots[i] = self.count()?;
                }
                Some(&(_, Slot::Object(i, nested))) => {
                    self.first_time(8 + i)?;
                    if self.peek()? == b'{' {
                        self.object(Some(nested), depth + 1)?;
                        self.read.objects[i] = true;
                    } else {
                        self.literal(b"null")?;
                    }
                }
                None => self.skip_value(depth + 1)?,
            }
            if self.closed_after_member(b'}')? {
                return Some(());
            }
        }
    }

    /// The start of an object or an array, within `MAX_DEPTH`: true when it closes at once.
    fn opened_empty(&mut self, open: u8, close: u8, depth: usize) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(open)?;
        self.ws();
        Some(self.eat(close).is_some())
    }

    /// After a member or an element: `,` (false: more follow) or `close` (true), else `None`.
    fn closed_after_member(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let c = self.peek()?;
        self.i += 1;
        if c == b',' {
            self.ws();
            Some(false)
        } else {
            (c == close).then_some(true)
        }
    }

    fn first_time(&mut self, bit: usize) -> Option<()> {
        let mask = 1 << bit;
        (self.seen & mask == 0).then(|| self.seen |= mask)
    }

    /// A string of printable ASCII without escapes; its contents.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        // Eight bytes at a time up to the first word that may hold the end or a byte outside the
        // subset, then byte by byte (names are a dozen bytes or more).
        while let Some(word) = self.b.get(self.i..self.i + 8) {
            if may_end_string(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
                break;
            }
            self.i += 8;
        }
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..=0x1f | 0x80..=0xff => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        Some(&self.b[start..self.i - 1])
    }

    /// A count: an unsigned integer or `null`.
    fn count(&mut self) -> Option<Option<u64>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.integer().map(Some)
    }

    /// `0` or a digit 1-9 followed by digits, not followed by a fraction or an exponent.
    fn integer(&mut self) -> Option<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if self.i - start == MAX_DIGITS {
                return None;
            }
            n = n * 10 + u64::from(d - b'0');
            self.i += 1;
        }
        let digits = self.i - start;
        let leading_zero = digits > 1 && self.b[start] == b'0';
        if digits == 0 || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(n)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A member nobody reads: skipped, within the subset.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(None, depth),
            b'[' => self.array(depth),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' => {
                self.i += 1;
                self.integer().map(drop)
            }
            _ => self.integer().map(drop),
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if self.opened_empty(b'[', b']', depth)? {
            return Some(());
        }
        loop {
            self.skip_value(depth + 1)?;
            if self.closed_after_member(b']')? {
                return Some(());
            }
        }
    }
}

/// Whether any byte of `w` may be a quote, a backslash, a control byte or non-ASCII. Exact
/// when none is; a byte above a real hit may show as one too (the caller then goes byte by byte).
fn may_end_string(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes below `n` (n <= 128) have their high bit set in `below(w, n)`.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let quote = below(w ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(w ^ (ONES * u64::from(b'\\')), 1);
    (quote | backslash | below(w, 0x20) | (w & HIGH)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_is_flagged_exactly_when_one_of_its_bytes_may_end_the_string() {
        for b in 0..=255u8 {
            let special = b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b);
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = b;
                assert_eq!(
                    may_end_string(u64::from_le_bytes(word)),
                    special,
                    "{b:#x} at {at}"
                );
            }
        }
    }
}
