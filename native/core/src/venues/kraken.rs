//! Kraken spot WebSocket, v1 and v2 frames on one feed, as `tickrelay/venues/kraken.py`. Pure.
//!
//! A frame's API is told by its shape: an array is v1 (`kraken_v1`), an object with `channel` is
//! v2 (`kraken_v2`), any other object an event or a method answer (here). The books, checksum
//! texts and requests both APIs share are `kraken_book`.

use std::borrow::Cow;

use super::feed::{Event, Feed, Stats};
use super::kraken_book::Books;
use super::kraken_v1::{self, int_token, Payload};
use super::typed::{too_deep, Reader};
use super::Params;

/// Why a frame is rejected: the reason it is counted under.
#[derive(Debug)]
pub enum Fail {
    Reject(Cow<'static, str>),
}

impl Fail {
    pub fn reject(reason: &'static str) -> Self {
        Self::Reject(Cow::Borrowed(reason))
    }
}

/// `Object`: any object frame, a v1 event, a v2 method answer or a v2 channel message.
#[derive(Debug, Default)]
struct Object<'a> {
    event: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
    channel_id: bool,
    pair: bool,
    error_message: Option<Cow<'a, str>>,
    method: Option<Cow<'a, str>>,
    success: Option<bool>,
    channel: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    data: Option<&'a [u8]>,
}

fn object(raw: &[u8]) -> Option<Object<'_>> {
    let mut o = Object::default();
    Reader::whole(raw, |r| {
        r.object(|r, key| match key {
            b"event" => r.opt_str().map(|v| o.event = v),
            b"status" => r.opt_str().map(|v| o.status = v),
            b"channelID" => r
                .null()
                .and_then(|n| if n { Ok(false) } else { int_token(r).map(|_| true) })
                .map(|v| o.channel_id = v),
            b"pair" => r.opt_str().map(|v| o.pair = v.is_some()),
            b"errorMessage" => r.opt_str().map(|v| o.error_message = v),
            b"method" => r.opt_str().map(|v| o.method = v),
            b"success" => {
                r.null().and_then(|n| if n { Ok(None) } else { r.bool().map(Some) }).map(|v| o.success = v)
            }
            b"channel" => r.opt_str().map(|v| o.channel = v),
            b"type" => r.str().map(|v| o.kind = Some(v)),
            b"data" => r.raw().map(|v| o.data = Some(v)),
            _ => r.skip(),
        })
    })
    .ok()?;
    Some(o)
}

/// The Kraken feed (`KrakenFeed`): one connection's parsing state, v1 and v2 frames alike.
#[derive(Debug)]
pub struct Kraken {
    pub books: Books,
}

impl Kraken {
    /// From `KrakenFeed.native_spec()`: depth, checksum_policy, precisions ("price qty symbol").
    pub fn from_params(params: &Params) -> Result<Self, String> {
        let depth = params.int("depth")?;
        let resync = match params.str("checksum_policy")? {
            "resync" => true,
            "ignore" => false,
            other => return Err(format!("checksum_policy must be 'resync' or 'ignore', not {other:?}")),
        };
        let mut feed = Self { books: Books::new(depth, resync) };
        for precision in params.list("precisions")? {
            let mut fields = precision.splitn(3, ' ');
            let mut places = || fields.next().and_then(|f| f.parse::<u8>().ok());
            let (Some(price), Some(qty)) = (places(), places()) else {
                return Err(format!("precision {precision:?} is not \"<price> <qty> <symbol>\""));
            };
            let symbol = fields.next().unwrap_or_default().to_owned();
            feed.books.precisions.insert(symbol, (price, qty));
        }
        Ok(feed)
    }

    /// `KrakenFeed._frame`, which rejects a frame nesting past `MAX_DEPTH` before reading it. Here
    /// the frame is read first and `too_deep` asked only when that fails: every path that changes
    /// state or makes events first reads the whole text with the depth counted ([`Reader`]), so a
    /// frame that gets that far is never too deep. A book snapshot's thousands of brackets are then
    /// not walked twice.
    fn frame(&mut self, raw: &[u8], out: &mut Vec<Event>) -> Result<(), Fail> {
        self.read(raw, out).map_err(|fail| if too_deep(raw) { Fail::reject("too_deep") } else { fail })
    }

    fn read(&mut self, raw: &[u8], out: &mut Vec<Event>) -> Result<(), Fail> {
        if raw.first() == Some(&b'[') {
            let mut payload = Payload::default();
            let (kind, name, pair) = kraken_v1::decode(raw, &mut payload)?;
            return self.v1(kind, &name, &pair, &payload, raw, out);
        }
        let o = object(raw).ok_or(Fail::reject("invalid_json"))?;
        match o.channel.as_deref() {
            Some(channel) => {
                let data = o.data.unwrap_or(b"null");
                let kind = o.kind.as_deref().unwrap_or_default();
                self.v2(channel, kind, data, raw, out)
            }
            None => self.event(&o, raw),
        }
    }

    /// `_event`: heartbeats, status, subscription answers and method acknowledgements.
    fn event(&mut self, e: &Object<'_>, raw: &[u8]) -> Result<(), Fail> {
        let stats = &mut self.books.stats;
        let kind = e.event.as_deref();
        match (kind, e.method.as_deref()) {
            (None, Some(method)) => {
                if e.success == Some(false) {
                    stats.venue_errors += 1;
                    stats.reject("venue_error", raw);
                } else {
                    stats.ignore(&format!("method:{method}"));
                }
            }
            (Some(k @ ("heartbeat" | "systemStatus" | "pong" | "subscriptionStatus")), _) => {
                if e.status.as_deref() == Some("error")
                    || e.error_message.as_deref().is_some_and(|m| !m.is_empty())
                {
                    stats.venue_errors += 1;
                    stats.reject("venue_error", raw);
                    return Ok(());
                }
                if k == "subscriptionStatus"
                    && e.status.as_deref() == Some("subscribed")
                    && !(e.channel_id && e.pair)
                {
                    return Err(Fail::reject("bad_event"));
                }
                stats.ignore(k);
            }
            (Some("error"), _) => {
                stats.venue_errors += 1;
                stats.reject("venue_error", raw);
            }
            (k, _) => stats.reject(&format!("unknown:{}", k.unwrap_or("None")), raw),
        }
        Ok(())
    }
}

impl Feed for Kraken {
    fn on_frame(&mut self, raw: &[u8], _ts_recv_ns: i64, out: &mut Vec<Event>) {
        let start = out.len();
        self.books.stats.frames += 1;
        match self.frame(raw, out) {
            Ok(()) => {
                let b = &mut self.books;
                b.stats.rounded += std::mem::take(&mut b.dec.rounded);
                b.stats.count(&out[start..]);
            }
            Err(Fail::Reject(reason)) => {
                out.truncate(start);
                self.books.dec.rounded = 0;
                self.books.stats.reject(&reason, raw);
            }
        }
    }

    fn on_disconnect(&mut self, _ts_ns: i64, out: &mut Vec<Event>) {
        self.books.on_disconnect(out);
    }

    fn take_requests(&mut self) -> Vec<Vec<u8>> {
        self.books.take_requests()
    }

    fn stats(&self) -> &Stats {
        &self.books.stats
    }
}

/// The requests the feed sends, as msgspec.json.encode writes them.
impl Books {
    /// `_v1_request`, as msgspec.json.encode writes it.
    pub fn v1_request(&self, kind: &str, name: &str, pairs: &[&str]) -> Vec<u8> {
        let mut b = format!("{{\"event\":{},\"pair\":", json_str(kind)).into_bytes();
        json_list(&mut b, pairs);
        b.extend_from_slice(format!(",\"subscription\":{{\"name\":{}", json_str(name)).as_bytes());
        if name == "book" {
            b.extend_from_slice(format!(",\"depth\":{}", self.depth).as_bytes());
        }
        b.extend_from_slice(b"}}");
        b
    }

    /// `_v2_request`, as msgspec.json.encode writes it.
    pub fn v2_request(&self, kind: &str, channel: &str, pairs: &[&str]) -> Vec<u8> {
        let mut b = format!(
            "{{\"method\":{},\"params\":{{\"channel\":{},\"symbol\":",
            json_str(kind),
            json_str(channel)
        )
        .into_bytes();
        json_list(&mut b, pairs);
        if channel == "book" {
            b.extend_from_slice(format!(",\"depth\":{}", self.depth).as_bytes());
        }
        b.extend_from_slice(b"}}");
        b
    }
}

/// A string as msgspec.json.encode writes it.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list(b: &mut Vec<u8>, items: &[&str]) {
    b.push(b'[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            b.push(b',');
        }
        b.extend_from_slice(json_str(item).as_bytes());
    }
    b.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_msgspec_s() {
        let b = Books::new(1000, true);
        assert_eq!(
            b.v1_request("subscribe", "book", &["XBT/USD"]),
            br#"{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"book","depth":1000}}"#
        );
        assert_eq!(
            b.v2_request("unsubscribe", "book", &["A\"\u{1}\n"]),
            br#"{"method":"unsubscribe","params":{"channel":"book","symbol":["A\"\u0001\n"],"depth":1000}}"#
        );
    }
}
