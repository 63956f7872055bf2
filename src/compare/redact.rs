//! What a stored mismatch must never hold: secrets. Before a diff record is kept (the API, the
//! console, the diffs file, the report's examples), every place a secret travels is scrubbed to
//! `[redacted]`:
//! - request headers and header differences whose name matches a pattern: the defaults
//!   (`*token*`, `*secret*`, `*auth*`, `*password*`, `*api-key*`, `*apikey*`, `*cookie*`,
//!   `*session*`) and what `redact_headers` adds (a name, or a pattern with `*`);
//! - query and path parameters (split on `&` and `;`) whose name contains a sensitive word
//!   (`token`, `password`, `secret`, `api_key`, `api-key`, `apikey`, `authorization`, plus
//!   `redact_query`), in the request's path and in URLs inside any header value (`Referer`,
//!   `Location`);
//! - JSON values under a key containing one of those words, or at a path in
//!   `redact_json_paths`, in differences and inside the values they show;
//! - `name=value` and `"name": value` pairs with such names in snippets of bodies that are not
//!   JSON (form posts, text).

use std::collections::BTreeMap;

use http::HeaderName;
use serde_json::Value;

use super::difference::{DiffRecord, Difference, Field};
use super::path::{JsonPath, PatStep, Step};

pub const REDACTED: &str = "[redacted]";

/// Header name patterns always redacted, whatever `redact_headers` adds: `*` is any run of
/// characters.
pub const DEFAULT_HEADERS: [&str; 8] =
    ["*token*", "*secret*", "*auth*", "*password*", "*api-key*", "*apikey*", "*cookie*", "*session*"];
/// Words that make a query parameter or a JSON key secret, anywhere in its name.
pub const DEFAULT_WORDS: [&str; 7] = ["token", "password", "secret", "api_key", "api-key", "apikey", "authorization"];

/// A route's redaction rules, built once per config.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    pub headers: Vec<HeaderName>,
    /// `headers` as patterns ready to match (every mismatch kept is checked against them).
    globs: Vec<Glob>,
    /// `words`, each with its searcher made once.
    finders: Vec<memchr::memmem::Finder<'static>>,
    /// Lowercase.
    pub words: Vec<String>,
    pub json_paths: Vec<JsonPath>,
}

impl Redaction {
    /// The defaults plus what the route adds.
    pub fn new(headers: Vec<HeaderName>, words: Vec<String>, json_paths: Vec<JsonPath>) -> Redaction {
        let mut all: Vec<HeaderName> = DEFAULT_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect();
        for h in headers {
            if !all.contains(&h) {
                all.push(h);
            }
        }
        let mut w: Vec<String> = DEFAULT_WORDS.iter().map(|w| w.to_string()).collect();
        for word in words {
            let word = word.to_ascii_lowercase();
            if !w.contains(&word) {
                w.push(word);
            }
        }
        let globs = all.iter().map(|h| Glob::new(h.as_str())).collect();
        let finders = w.iter().map(|w| memchr::memmem::Finder::new(w.as_bytes()).into_owned()).collect();
        Redaction { headers: all, globs, finders, words: w, json_paths }
    }

    fn secret_header(&self, name: &str) -> bool {
        let name = lowercase(name);
        self.globs.iter().any(|g| g.matches(&name))
    }

    fn secret_name(&self, name: &str) -> bool {
        let name = lowercase(name);
        self.finders.iter().any(|f| find(f, name.as_bytes()).is_some())
    }

    /// Scrub a record before it is stored anywhere.
    pub fn apply(&self, record: &mut DiffRecord) {
        self.headers(&mut record.request_headers);
        record.path = self.query(&record.path);
        self.differences(&mut record.differences);
    }

    /// Scrub request headers (as [`crate::compare::store::header_map`] shows them): secret
    /// ones whole, secret parameters of URLs in the others.
    pub fn headers(&self, headers: &mut BTreeMap<String, Value>) {
        for (name, v) in headers.iter_mut() {
            if self.secret_header(name) {
                *v = Value::from(REDACTED);
            } else {
                self.urls_in(v);
            }
        }
    }

    /// Secret parameters of URLs inside a header's value (a string or a list of them).
    fn urls_in(&self, v: &mut Value) {
        match v {
            Value::String(s) if s.contains(['?', ';']) => *s = self.query(s),
            Value::Array(list) => list.iter_mut().for_each(|x| self.urls_in(x)),
            _ => {}
        }
    }

    /// Scrub the values of differences (and of anything shown the way a difference is).
    pub fn differences(&self, differences: &mut [Difference]) {
        for d in differences.iter_mut() {
            let whole = match &d.field {
                Field::Header(name) => self.secret_header(name),
                Field::Json(path) => self.secret_path(path),
                Field::Status | Field::Body => false,
            };
            for side in [&mut d.legacy, &mut d.new] {
                let Some(v) = side.as_mut() else { continue };
                if whole {
                    *v = Value::from(REDACTED);
                    continue;
                }
                match &d.field {
                    Field::Json(path) => {
                        if let Ok(at) = JsonPath::parse(path) {
                            let mut segs = at
                                .steps()
                                .filter_map(|s| match s {
                                    PatStep::Key(k) => Some(Seg::Key(k.clone())),
                                    PatStep::Index(i) => Some(Seg::Index(*i)),
                                    PatStep::AnyIndex => None,
                                })
                                .collect();
                            self.walk(v, &mut segs);
                        }
                    }
                    Field::Body => {
                        if let Value::String(s) = v {
                            *s = self.pairs(s);
                        }
                    }
                    Field::Header(_) => self.urls_in(v),
                    Field::Status => {}
                }
            }
        }
    }

    /// A difference's path is secret when a key on it is, or a configured path covers it.
    fn secret_path(&self, path: &str) -> bool {
        let Ok(at) = JsonPath::parse(path) else { return false };
        at.keys().any(|k| self.secret_name(k)) || self.json_paths.iter().any(|p| p.covers(&at))
    }

    /// Inside a value shown for a difference: secret keys and configured paths below it.
    fn walk(&self, v: &mut Value, at: &mut Vec<Seg>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    at.push(Seg::Key(k.clone()));
                    if self.secret_name(k) || self.configured(at) {
                        *child = Value::from(REDACTED);
                    } else {
                        self.walk(child, at);
                    }
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    at.push(Seg::Index(i));
                    if self.configured(at) {
                        *child = Value::from(REDACTED);
                    } else {
                        self.walk(child, at);
                    }
                    at.pop();
                }
            }
            _ => {}
        }
    }

    fn configured(&self, at: &[Seg]) -> bool {
        if self.json_paths.is_empty() {
            return false;
        }
        let steps: Vec<Step> = at
            .iter()
            .map(|s| match s {
                Seg::Key(k) => Step::Key(k),
                Seg::Index(i) => Step::Index(*i),
            })
            .collect();
        self.json_paths.iter().any(|p| p.matches(&steps))
    }

    /// A path and query (or a URL) with the values of secret parameters redacted: query
    /// parameters split on `&` and `;`, and `;name=value` path parameters:
    /// `/pay;jsessionid=x?a=1;api_key=y` -> `/pay;jsessionid=x?a=1;api_key=[redacted]` (with
    /// `session` a configured word, the first too).
    pub fn query(&self, path: &str) -> String {
        let mut out = String::with_capacity(path.len());
        let mut rest = path;
        let mut in_query = false;
        // Text up to the first `?` or `;` is a path and holds no parameter.
        match rest.find(['?', ';']) {
            Some(i) => {
                out.push_str(&rest[..i]);
                rest = &rest[i..];
            }
            None => return path.to_string(),
        }
        while let Some(sep) = rest.chars().next() {
            in_query |= sep == '?';
            out.push(sep);
            rest = &rest[sep.len_utf8()..];
            // A parameter ends at the next separator; in the path, a `/` also ends it.
            let end = rest
                .find(|c: char| matches!(c, '&' | ';' | '?' | '#') || (!in_query && c == '/'))
                .unwrap_or(rest.len());
            let (param, after) = rest.split_at(end);
            match param.split_once('=') {
                Some((k, _)) if self.secret_name(&percent_encoding::percent_decode_str(k).decode_utf8_lossy()) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(param),
            }
            rest = after;
            if let Some(next) = rest.find(['&', ';', '?', '#']).filter(|_| !rest.starts_with(['&', ';', '?', '#'])) {
                // A `/` ended a path parameter: the path goes on to the next separator.
                out.push_str(&rest[..next]);
                rest = &rest[next..];
            }
            if rest.starts_with('#') {
                out.push_str(rest);
                break;
            }
            if !rest.starts_with(['&', ';', '?']) {
                out.push_str(rest);
                break;
            }
        }
        out
    }

    /// In a text snippet: the value after `name=` or `"name":` for a secret name, up to the
    /// next `&`, `,`, `}`, quote or white space.
    fn pairs(&self, text: &str) -> String {
        // ASCII lower-casing keeps every byte offset.
        let lower = text.to_ascii_lowercase();
        let mut ranges = Vec::new();
        for word in &self.words {
            let mut from = 0;
            while let Some(found) = lower[from..].find(word.as_str()) {
                from += found + word.len();
                ranges.extend(value_range(lower.as_bytes(), from));
            }
        }
        ranges.sort_unstable();
        splice(text, &ranges)
    }
}

/// `text` with each of `ranges` (sorted by start; overlapping ones skipped) replaced by
/// `[redacted]`.
pub(crate) fn splice(text: &str, ranges: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for &(start, end) in ranges {
        if start < copied {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Where `f`'s needle is in `hay`. Names are short: below 64 bytes a plain scan is cheaper than
/// the searcher's set-up for each call.
fn find(f: &memchr::memmem::Finder, hay: &[u8]) -> Option<usize> {
    let needle = f.needle();
    match needle.first() {
        Some(&first) if hay.len() < 64 => hay.windows(needle.len()).position(|w| w[0] == first && w == needle),
        _ => f.find(hay),
    }
}

/// `name` in ASCII lowercase, copied only when it has an uppercase letter.
fn lowercase(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Whether `name` (lowercase) matches `pattern`, where `*` is any run of characters.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    Glob::new(pattern).matches(name)
}

/// A name pattern where `*` is any run of characters, with a searcher made once for each part
/// between two stars.
#[derive(Debug, Clone)]
struct Glob {
    first: String,
    middle: Vec<memchr::memmem::Finder<'static>>,
    /// `None` when the pattern has no star: the name is `first`.
    last: Option<String>,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        let mut parts = pattern.split('*');
        let first = parts.next().unwrap_or("").to_string();
        let rest: Vec<&str> = parts.collect();
        let Some((last, middle)) = rest.split_last() else { return Glob { first, middle: Vec::new(), last: None } };
        let middle = middle.iter().map(|p| memchr::memmem::Finder::new(p.as_bytes()).into_owned()).collect();
        Glob { first, middle, last: Some(last.to_string()) }
    }

    fn matches(&self, name: &str) -> bool {
        let Some(mut rest) = name.as_bytes().strip_prefix(self.first.as_bytes()) else { return false };
        let Some(last) = &self.last else { return rest.is_empty() };
        for p in &self.middle {
            match find(p, rest) {
                Some(i) => rest = &rest[i + p.needle().len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last.as_bytes())
    }
}

/// The value of a `name=value` / `"name": "value"` pair whose name's secret word ends at `at`.
fn value_range(b: &[u8], mut i: usize) -> Option<(usize, usize)> {
    let skip = |i: &mut usize, f: &dyn Fn(u8) -> bool| {
        while *i < b.len() && f(b[*i]) {
            *i += 1;
        }
    };
    skip(&mut i, &|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    skip(&mut i, &|c| c == b'"' || c == b'\'');
    skip(&mut i, &|c| c == b' ');
    if !matches!(b.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    skip(&mut i, &|c| c == b' ');
    skip(&mut i, &|c| c == b'"' || c == b'\'');
    let start = i;
    skip(&mut i, &|c| !matches!(c, b'&' | b',' | b'}' | b'"' | b'\'' | b' ' | b'\n' | b'\r' | b'\t'));
    (i > start).then_some((start, i))
}

/// One step of a concrete path inside a value being scrubbed.
enum Seg {
    Key(String),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::compare::difference::{Difference, SideAnswer};
    use crate::config::Side;

    fn record(path: &str, differences: Vec<Difference>) -> DiffRecord {
        let mut request_headers = BTreeMap::new();
        request_headers.insert("authorization".to_string(), json!("Bearer hunter2"));
        request_headers.insert("x-trace".to_string(), json!("t-1"));
        DiffRecord {
            at: String::new(),
            route: "r".into(),
            method: "GET".into(),
            path: path.into(),
            served_by: Side::Legacy,
            legacy: SideAnswer { status: 200, duration_ms: 1.0 },
            new: SideAnswer { status: 200, duration_ms: 1.0 },
            differences,
            truncated: false,
            request_headers,
        }
    }

    fn diff(field: &str, legacy: Value, new: Value) -> Difference {
        Difference { field: field.parse().unwrap(), legacy: Some(legacy), new: Some(new), offset: None, lines: None }
    }

    #[test]
    fn a_secret_in_each_place_is_redacted_and_the_rest_is_kept() {
        let r = Redaction::new(
            vec![HeaderName::from_static("x-session")],
            vec!["ssn".into()],
            vec![JsonPath::parse("$.card.number").unwrap()],
        );
        let mut rec = record(
            "/pay?user=7&api_key=k-123&Access_Token=t-9&%70assword=p-1",
            vec![
                diff("header:set-cookie", json!("s=legacy-secret"), json!("s=new-secret")),
                diff("header:x-session", json!("sess-1"), json!("sess-2")),
                diff("json:$.user.password", json!("pw-1"), json!("pw-2")),
                diff(
                    "json:$.user",
                    json!({"name": "ann", "client_secret": "cs-1", "ssn": "123"}),
                    json!({"name": "bob"}),
                ),
                diff(
                    "json:$.card",
                    json!({"number": "4111", "exp": "12/30"}),
                    json!({"number": "4242", "exp": "12/30"}),
                ),
                diff("json:$.items[0]", json!([{"token": "tk-1"}]), json!(null)),
                diff("body", json!("a=1&password=hunter3&b=2"), json!("{\"secret\": \"s3\", \"x\": 1}")),
            ],
        );
        r.apply(&mut rec);
        let text = serde_json::to_string(&rec).unwrap();
        for secret in [
            "hunter2",
            "k-123",
            "t-9",
            "p-1",
            "legacy-secret",
            "new-secret",
            "sess-1",
            "pw-1",
            "cs-1",
            "\"123\"",
            "4111",
            "4242",
            "tk-1",
            "hunter3",
            "s3",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        for kept in ["user=7", "x-trace", "t-1", "ann", "bob", "12/30", "a=1", "b=2", "\\\"x\\\": 1"] {
            assert!(text.contains(kept), "{kept} was redacted too: {text}");
        }
        assert_eq!(rec.path, "/pay?user=7&api_key=[redacted]&Access_Token=[redacted]&%70assword=[redacted]");
    }

    #[test]
    fn configured_headers_add_to_the_defaults() {
        let r = Redaction::new(vec![HeaderName::from_static("x-api-key")], vec![], vec![]);
        let mut rec = record("/", vec![]);
        r.apply(&mut rec);
        assert_eq!(rec.request_headers["authorization"], json!(REDACTED), "the default stays");
    }

    /// Every gap an audit found: `;` separated parameters, token headers by pattern, and URLs
    /// with secrets inside other headers' values, in the request and in header differences.
    #[test]
    fn no_gap_in_parameters_header_patterns_or_urls() {
        let r = Redaction::new(vec![HeaderName::from_static("x-*-pin")], vec![], vec![]);
        let mut rec = record(
            "/pay;jsessionid=j1;token=p-1/x?a=1;token=q-1&b=2;api-key=k-1#top",
            vec![diff("header:location", json!("/next?token=l-1&page=2"), json!("/next?page=2"))],
        );
        for (name, value) in [
            ("x-auth-token", "a-1"),
            ("x-vault-token", "v-1"),
            ("x-csrf-token", "c-1"),
            ("x-card-pin", "n-1"),
            ("referer", "https://shop.example/cart?token=r-1;lang=en"),
        ] {
            rec.request_headers.insert(name.into(), json!(value));
        }
        r.apply(&mut rec);
        let text = serde_json::to_string(&rec).unwrap();
        for secret in ["p-1", "q-1", "k-1", "l-1", "a-1", "v-1", "c-1", "n-1", "r-1", "hunter2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(rec.path, "/pay;jsessionid=j1;token=[redacted]/x?a=1;token=[redacted]&b=2;api-key=[redacted]#top");
        assert_eq!(rec.request_headers["referer"], json!("https://shop.example/cart?token=[redacted];lang=en"));
        assert_eq!(rec.differences[0].legacy, Some(json!("/next?token=[redacted]&page=2")));
        assert_eq!(r.query("/plain/path"), "/plain/path");
        assert_eq!(r.query("/a?x=1&&y"), "/a?x=1&&y");
    }

    #[test]
    fn header_patterns() {
        assert!(glob("*token*", "x-auth-token") && glob("*token*", "token") && glob("x-*-pin", "x-card-pin"));
        assert!(!glob("x-*-pin", "x-card-pins") && !glob("*secret*", "x-secre"));
        assert!(glob("authorization", "authorization") && !glob("authorization", "x-authorization"));
    }
}
