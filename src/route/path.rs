//! The path routing sees is the path the upstream acts on. A client could otherwise reach a route
//! at weight 0 through another route's prefix: `/x/../payments/1`, `/%70ayments/1` and
//! `//payments/1` do not start with `/payments` as written, but most upstreams serve them as
//! `/payments/1`. So before matching, the path is normalised the way RFC 3986 says every
//! server may (percent-encoded unreserved characters decoded, dot segments removed) plus
//! duplicate slashes merged, and the normalised path is what is forwarded.
//!
//! What cannot be normalised without guessing how the upstream reads it is refused (400): an
//! encoded slash or backslash (`%2F`, `%5C`: one segment or two?), a backslash, an encoded NUL
//! or a malformed escape.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguous {
    /// `%2F` or `%5C`: a separator the upstream may or may not decode.
    EncodedSeparator,
    /// A `\`, which some servers read as `/`.
    Backslash,
    /// `%00`.
    EncodedNul,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A dot segment with parameters (`..;x`, `.;x`): Tomcat and Spring read `..;` as `..`.
    DotParameter,
}

impl Ambiguous {
    pub fn reason(self) -> &'static str {
        match self {
            Ambiguous::EncodedSeparator => "an encoded slash or backslash (%2F, %5C)",
            Ambiguous::Backslash => "a backslash",
            Ambiguous::EncodedNul => "an encoded NUL (%00)",
            Ambiguous::BadEscape => "a malformed percent escape",
            Ambiguous::DotParameter => "a dot segment with parameters (..;)",
        }
    }
}

/// The normalised form of `path` (without its query): borrowed when it is already normal (the
/// common case costs one scan and no allocation).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, Ambiguous> {
    let bytes = path.as_bytes();
    let mut plain = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err(Ambiguous::Backslash),
            b'%' => plain = false,
            b'/' if bytes.get(i + 1) == Some(&b'/') => plain = false,
            b'.' if bytes[..i].ends_with(b"/") => plain = false,
            _ => {}
        }
    }
    if plain && bytes.first() == Some(&b'/') {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes)?;
    let dot_parameter =
        decoded.split('/').any(|seg| seg.split_once(';').is_some_and(|(name, _)| name == "." || name == ".."));
    if dot_parameter {
        return Err(Ambiguous::DotParameter);
    }
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decode `%XX` of unreserved characters; keep other escapes as they are, with upper-case hex
/// (RFC 3986 §6.2.2.1), so two spellings of one path are one string.
fn decode_unreserved(bytes: &[u8]) -> Result<String, Ambiguous> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        else {
            return Err(Ambiguous::BadEscape);
        };
        let c = hi << 4 | lo;
        match c {
            b'/' | b'\\' => return Err(Ambiguous::EncodedSeparator),
            0 => return Err(Ambiguous::EncodedNul),
            c if unreserved(c) => out.push(c as char),
            c => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(c >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(c & 15)]));
            }
        }
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on the segments, with empty segments (`//`) merged; a path that climbs above
/// the root stays at the root. A trailing `/`, `/.` or `/..` leaves a trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "" | "." => trailing = i == last && i > 0,
            ".." => {
                kept.pop();
                trailing = i == last;
            }
            s => {
                kept.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing || kept.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_path_routes_as_that_path() {
        for (given, want) in [
            ("/payments/1", "/payments/1"),
            ("/x/../payments/1", "/payments/1"),
            ("/%70ayments/1", "/payments/1"),
            ("//payments/1", "/payments/1"),
            ("/payments//1", "/payments/1"),
            ("/payments/./1", "/payments/1"),
            ("/%2e%2e/payments/1", "/payments/1"),
            ("/a/%2E/b/%2e%2E/c", "/a/c"),
            ("/../../payments", "/payments"),
            ("/payments/", "/payments/"),
            ("/payments/.", "/payments/"),
            ("/payments/x/..", "/payments/"),
            ("/", "/"),
            ("/..", "/"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/a.b/.well-known", "/a.b/.well-known"),
        ] {
            assert_eq!(normalize(given).as_deref(), Ok(want), "{given}");
        }
        assert!(matches!(normalize("/payments/1"), Ok(Cow::Borrowed(_))), "a normal path is not copied");
        assert_eq!(normalize("/cart;jsessionid=1/items").ok(), Some(Cow::Borrowed("/cart;jsessionid=1/items")));
    }

    #[test]
    fn what_the_upstream_could_read_two_ways_is_refused() {
        for (given, why) in [
            ("/payments%2f1", Ambiguous::EncodedSeparator),
            ("/payments%2F1", Ambiguous::EncodedSeparator),
            ("/a%5cb", Ambiguous::EncodedSeparator),
            ("/a\\b", Ambiguous::Backslash),
            ("/a%00b", Ambiguous::EncodedNul),
            ("/a%zz", Ambiguous::BadEscape),
            ("/a%2", Ambiguous::BadEscape),
            ("/x/..;/payments", Ambiguous::DotParameter),
            ("/x/%2e%2e;jsessionid=1/payments", Ambiguous::DotParameter),
            ("/x/.;/payments", Ambiguous::DotParameter),
        ] {
            assert_eq!(normalize(given), Err(why), "{given}");
        }
    }
}
