//! JSON's number grammar (RFC 8259), for the typed reader ([`super::typed`]): where a number token
//! ends. Numbers stay text, so prices and sizes go to fixed point exactly (`protocol::fixed`), never
//! through a float.

/// The token at the given offset is not a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidNumber;

/// The end of the number starting at `i`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub(crate) fn number_end(b: &[u8], mut i: usize) -> Result<usize, InvalidNumber> {
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i),
        _ => return Err(InvalidNumber),
    }
    if b.get(i) == Some(&b'.') {
        let j = digits(i + 1);
        if j == i + 1 {
            return Err(InvalidNumber);
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
            return Err(InvalidNumber);
        }
        i = j;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        for (text, end) in [
            ("0", Ok(1)),
            ("-0.5e+3,", Ok(7)),
            ("12.25]", Ok(5)),
            ("01", Ok(1)),
            ("1E9", Ok(3)),
            ("-", Err(InvalidNumber)),
            ("1.", Err(InvalidNumber)),
            (".5", Err(InvalidNumber)),
            ("1e", Err(InvalidNumber)),
            ("+1", Err(InvalidNumber)),
        ] {
            assert_eq!(number_end(text.as_bytes(), 0), end, "{text}");
        }
    }
}
