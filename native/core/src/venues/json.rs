//! A JSON scanner for exchange frames. Pure: no I/O; no allocation once warm.
//!
//! One pass over a frame checks it against the JSON grammar (RFC 8259: UTF-8, string escapes,
//! numbers; nesting on an explicit stack, so no depth overflows the call stack) and writes a
//! tape: one entry per value (and per object key) with its byte span and the index of its next
//! sibling, as simdjson does. Navigation then costs no rescanning: an object's field
//! ([`Value::get`]), an array's items ([`Value::items`]), a number's or a string's text as sent,
//! borrowed from the frame. Numbers stay text, so prices and sizes go to fixed point exactly
//! (`protocol::fixed`), never through a float. A [`Scanner`] keeps its tape between frames.
//!
//! Chosen over serde_json after measuring both on the Coinbase recording (README, "The compiled
//! core"): the feeds read a few fields of each frame and the decimal text of each number.

use std::fmt;

/// Why a frame is not JSON; the byte offset where the scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    start: u32,
    end: u32,
    /// The tape index just past this value and everything inside it.
    after: u32,
}

/// Scans frames; its tape is reused, so a warm scanner allocates nothing.
#[derive(Debug, Default)]
pub struct Scanner {
    tape: Vec<Node>,
    open: Vec<(u32, u8)>, // tape index and bracket of each open container
}

/// A value of a scanned frame.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    frame: &'a [u8],
    tape: &'a [Node],
    at: usize,
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks that `frame` is one JSON value (surrounding whitespace allowed) and returns it.
    pub fn scan<'a>(&'a mut self, frame: &'a [u8]) -> Result<Value<'a>, JsonError> {
        if u32::try_from(frame.len()).is_err() {
            return Err(JsonError { offset: 0, what: "frame over 4 GiB" });
        }
        std::str::from_utf8(frame)
            .map_err(|e| JsonError { offset: e.valid_up_to(), what: "invalid UTF-8" })?;
        self.tape.clear();
        self.open.clear();
        let end = self.check(frame, skip_ws(frame, 0))?;
        if skip_ws(frame, end) != frame.len() {
            return Err(JsonError { offset: skip_ws(frame, end), what: "extra data after the value" });
        }
        Ok(Value { frame, tape: &self.tape, at: 0 })
    }

    fn push(&mut self, start: usize, end: usize) {
        let after = self.tape.len() as u32 + 1;
        self.tape.push(Node { start: start as u32, end: end as u32, after });
    }

    /// Scans the value at `i` and everything after it up to the end of the outermost container;
    /// returns the offset after it.
    fn check(&mut self, b: &[u8], mut i: usize) -> Result<usize, JsonError> {
        let err = |offset, what| Err(JsonError { offset, what });
        loop {
            // a value at i
            i = skip_ws(b, i);
            match b.get(i) {
                Some(&c @ (b'{' | b'[')) => {
                    self.open.push((self.tape.len() as u32, c));
                    self.push(i, i);
                    i = skip_ws(b, i + 1);
                    if b.get(i) != Some(if c == b'{' { &b'}' } else { &b']' }) {
                        if c == b'{' {
                            i = self.key(b, i)?;
                        }
                        continue;
                    }
                    // empty: closed by the loop below
                }
                Some(b'"') => {
                    let end = string_end(b, i)?;
                    self.push(i, end);
                    i = end;
                }
                Some(b'-' | b'0'..=b'9') => {
                    let end = number_end(b, i)?;
                    self.push(i, end);
                    i = end;
                }
                Some(b't') => i = self.literal(b, i, b"true")?,
                Some(b'f') => i = self.literal(b, i, b"false")?,
                Some(b'n') => i = self.literal(b, i, b"null")?,
                Some(_) => return err(i, "unexpected character"),
                None => return err(i, "unexpected end"),
            }
            // after a value: close containers or go on to the next item
            loop {
                let Some(&(node, open)) = self.open.last() else { return Ok(i) };
                i = skip_ws(b, i);
                match (open, b.get(i)) {
                    (_, Some(b',')) => {
                        i += 1;
                        if open == b'{' {
                            i = self.key(b, skip_ws(b, i))?;
                        }
                        break;
                    }
                    (b'[', Some(b']')) | (b'{', Some(b'}')) => {
                        self.open.pop();
                        i += 1;
                        let after = self.tape.len() as u32;
                        let n = &mut self.tape[node as usize];
                        (n.end, n.after) = (i as u32, after);
                    }
                    (_, None) => return err(i, "unexpected end"),
                    _ => return err(i, "expected ',' or a closing bracket"),
                }
            }
        }
    }

    /// An object key (`"..." :`) at `i`, put on the tape; returns the offset of its value.
    fn key(&mut self, b: &[u8], i: usize) -> Result<usize, JsonError> {
        if b.get(i) != Some(&b'"') {
            return Err(JsonError { offset: i, what: "expected a string key" });
        }
        let end = string_end(b, i)?;
        self.push(i, end);
        let i = skip_ws(b, end);
        if b.get(i) != Some(&b':') {
            return Err(JsonError { offset: i, what: "expected ':'" });
        }
        Ok(i + 1)
    }

    fn literal(&mut self, b: &[u8], i: usize, word: &[u8]) -> Result<usize, JsonError> {
        let end = literal(b, i, word)?;
        self.push(i, end);
        Ok(end)
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, JsonError> {
    match b.get(i..i + word.len()) {
        Some(w) if w == word => Ok(i + word.len()),
        _ => Err(JsonError { offset: i, what: "invalid literal" }),
    }
}

/// The end of the string whose opening quote is at `i` (escapes checked; UTF-8 was checked).
fn string_end(b: &[u8], mut i: usize) -> Result<usize, JsonError> {
    i += 1;
    loop {
        match b.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') if b.get(i + 2..i + 6).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => {
                    i += 6
                }
                _ => return Err(JsonError { offset: i, what: "invalid escape" }),
            },
            Some(c) if *c < 0x20 => {
                return Err(JsonError { offset: i, what: "control character in a string" })
            }
            Some(_) => i += 1,
            None => return Err(JsonError { offset: i, what: "unterminated string" }),
        }
    }
}

/// The end of the number starting at `i`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub(crate) fn number_end(b: &[u8], mut i: usize) -> Result<usize, JsonError> {
    let start = i;
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let bad = Err(JsonError { offset: start, what: "invalid number" });
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i),
        _ => return bad,
    }
    if b.get(i) == Some(&b'.') {
        let j = digits(i + 1);
        if j == i + 1 {
            return bad;
        }
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let j = digits(i);
        if j == i {
            return bad;
        }
        i = j;
    }
    Ok(i)
}

impl<'a> Value<'a> {
    fn node(&self) -> Node {
        self.tape[self.at]
    }

    /// The value's bytes as sent.
    pub fn raw(&self) -> &'a [u8] {
        let n = self.node();
        &self.frame[n.start as usize..n.end as usize]
    }

    fn first(&self) -> Option<u8> {
        self.frame.get(self.node().start as usize).copied()
    }

    pub fn is_object(&self) -> bool {
        self.first() == Some(b'{')
    }

    pub fn is_array(&self) -> bool {
        self.first() == Some(b'[')
    }

    pub fn is_null(&self) -> bool {
        self.first() == Some(b'n')
    }

    /// `Some(true|false)` for a boolean.
    pub fn bool(&self) -> Option<bool> {
        match self.first() {
            Some(b't') => Some(true),
            Some(b'f') => Some(false),
            _ => None,
        }
    }

    /// A number's text (`None`: not a number).
    pub fn number(&self) -> Option<&'a [u8]> {
        matches!(self.first(), Some(b'-' | b'0'..=b'9')).then(|| self.raw())
    }

    /// A string's text between its quotes, escapes as sent (`None`: not a string).
    pub fn str_raw(&self) -> Option<&'a [u8]> {
        let raw = self.raw();
        (self.first() == Some(b'"')).then(|| &raw[1..raw.len() - 1])
    }

    /// A string's text when it holds no escape (every exchange's symbols, sides, prices and
    /// times); `None` for other values and escaped strings.
    pub fn str(&self) -> Option<&'a str> {
        self.str_raw().filter(|s| !s.contains(&b'\\')).and_then(|s| std::str::from_utf8(s).ok())
    }

    /// The items of an array (nothing for other values), in order.
    pub fn items(&self) -> Items<'a> {
        let end = if self.is_array() { self.node().after as usize } else { self.at + 1 };
        Items { value: Value { at: self.at + 1, ..*self }, end }
    }

    /// The members of an object as (key text as sent, value), in order.
    pub fn members(&self) -> Members<'a> {
        let end = if self.is_object() { self.node().after as usize } else { self.at + 1 };
        Members { value: Value { at: self.at + 1, ..*self }, end }
    }

    /// The value of the member named `key` (compared with the key's text as sent); of the last
    /// one when a frame repeats a key, as Python's json and msgspec decode it.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.members().filter(|(k, _)| *k == key.as_bytes()).last().map(|(_, v)| v)
    }
}

pub struct Items<'a> {
    value: Value<'a>,
    end: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        (self.value.at < self.end).then(|| {
            let item = self.value;
            self.value.at = item.node().after as usize;
            item
        })
    }
}

pub struct Members<'a> {
    value: Value<'a>,
    end: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        (self.value.at < self.end).then(|| {
            let key = self.value;
            let value = Value { at: key.at + 1, ..key };
            self.value.at = value.node().after as usize;
            (key.str_raw().unwrap_or_default(), value)
        })
    }
}
