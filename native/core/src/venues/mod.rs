//! The venue feeds, as `tickrelay.venues`: the feed contract ([`feed`]), the order book
//! ([`book`]), the typed JSON reader the feeds read frames with ([`typed`]) and the finisher that stamps
//! their events into messages ([`finish`]). [`build`] makes the feed of a venue API from the
//! parameters its Python twin gives (`VenueFeed.native_spec()`).

pub mod binance;
pub mod binance_wire;
pub mod book;
pub mod coinbase;
pub mod coinbase_advanced;
pub mod common;
pub mod feed;
pub mod finish;
mod json;
pub mod kraken;
pub mod kraken_book;
pub mod kraken_text;
pub mod kraken_v1;
pub mod kraken_v2;
pub mod numbers;
pub mod typed;

use std::collections::BTreeMap;

use feed::Feed;

/// One parameter of a feed, as the Python feed's `native_spec()` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<String>),
}

/// A feed's parameters by name (`native_spec()`'s dict).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub BTreeMap<String, Param>);

impl Params {
    fn get(&self, name: &str) -> Result<&Param, String> {
        self.0.get(name).ok_or_else(|| format!("parameter {name:?} is missing"))
    }

    fn wrong(name: &str, what: &str, got: &Param) -> String {
        format!("parameter {name:?} must be {what}, got {got:?}")
    }

    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.get(name)? {
            Param::Bool(b) => Ok(*b),
            other => Err(Self::wrong(name, "a bool", other)),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.get(name)? {
            Param::Int(i) => Ok(*i),
            other => Err(Self::wrong(name, "an int", other)),
        }
    }

    /// An int that may be None (`depth: int | None`).
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, String> {
        match self.get(name)? {
            Param::None => Ok(None),
            Param::Int(i) => Ok(Some(*i)),
            other => Err(Self::wrong(name, "an int or None", other)),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, String> {
        match self.get(name)? {
            Param::Str(s) => Ok(s),
            other => Err(Self::wrong(name, "a str", other)),
        }
    }

    pub fn list(&self, name: &str) -> Result<&[String], String> {
        match self.get(name)? {
            Param::List(items) => Ok(items),
            other => Err(Self::wrong(name, "a list of str", other)),
        }
    }
}

/// The native feed of venue API `api` (`native_spec()[0]`), made from `params`. `None`: that API
/// has no native feed (yet), and the Python one runs; `Some(Err)`: the parameters are wrong.
pub fn build(api: &str, params: &Params) -> Option<Result<Box<dyn Feed>, String>> {
    // One arm per venue API, added by each port:
    //   "coinbase" | "coinbase_advanced" (ncoinbase), "binance" (nbinance), "kraken_v1" | "kraken_v2" (nkraken)
    // (the products are the Python feed's: it writes the subscribe frames)
    match api {
        "binance" => Some(binance::BinanceFeed::from_params(params).map(|f| Box::new(f) as Box<dyn Feed>)),
        "coinbase" => Some(
            params
                .str("level2_channel")
                .map(|channel| Box::new(coinbase::CoinbaseFeed::new(channel)) as Box<dyn Feed>),
        ),
        "coinbase_advanced" => Some(Ok(Box::new(coinbase_advanced::AdvancedTradeFeed::new()))),
        // one feed reads both Kraken APIs' frames; the API only names the Python side's subscriptions
        "kraken_v1" | "kraken_v2" => {
            Some(kraken::Kraken::from_params(params).map(|f| Box::new(f) as Box<dyn Feed>))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_say_what_is_missing_or_of_the_wrong_type() {
        let p = Params(BTreeMap::from([
            ("depth".to_owned(), Param::None),
            ("products".to_owned(), Param::List(vec!["BTC-USD".to_owned()])),
            ("strict".to_owned(), Param::Bool(true)),
            ("n".to_owned(), Param::Int(5)),
            ("url".to_owned(), Param::Str("x".to_owned())),
        ]));
        assert_eq!(p.opt_int("depth"), Ok(None));
        assert_eq!(p.opt_int("n"), Ok(Some(5)));
        assert_eq!(p.int("n"), Ok(5));
        assert_eq!(p.bool("strict"), Ok(true));
        assert_eq!(p.str("url"), Ok("x"));
        assert_eq!(p.list("products").map(<[String]>::len), Ok(1));
        assert_eq!(p.int("nope"), Err("parameter \"nope\" is missing".to_owned()));
        assert_eq!(p.str("n"), Err("parameter \"n\" must be a str, got Int(5)".to_owned()));
        assert!(p.bool("n").is_err() && p.list("n").is_err() && p.opt_int("url").is_err());
        assert!(build("no_such_api", &p).is_none());
    }
}
