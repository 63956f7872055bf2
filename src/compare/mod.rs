//! Comparing the two answers of a shadowed request, off the request path: status, headers (as
//! sets of values, minus ignored ones), then the body: a structural diff when both are JSON,
//! otherwise byte equality with the first differing offset.
//!
//! [`findings`] counts each difference per endpoint and field next to what differs between two
//! answers of the *same* side (noise), and judges which are real; [`store`] keeps the recent
//! mismatches per route.

pub mod body;
pub mod difference;
pub mod endpoint;
pub mod findings;
pub mod json;
pub mod matchers;
pub mod path;
pub mod raw;
pub mod redact;
pub mod report;
pub mod store;

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use serde_json::Value;

pub use difference::{Difference, Field, LineDiff};
pub use findings::Findings;
pub use matchers::{MatchKind, Matcher};
pub use path::{JsonPath, Step};

/// Differences reported per pair at most; a pair with more says `truncated`.
pub const MAX_DIFFERENCES: usize = 50;

/// Headers that describe the transport, not the behaviour: never compared. Bodies are compared
/// decoded, so `content-encoding` and `content-length` are framing too.
const FRAMING_HEADERS: [&str; 6] =
    ["connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "x-strangler-side"];

/// One answer, as compared: status, headers and the decoded body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a comparison ignores, and how the fields with a matcher are compared.
pub struct Rules<'a> {
    pub ignore_headers: &'a [HeaderName],
    pub ignore_paths: &'a [JsonPath],
    /// The route's matchers that apply to the pair's endpoint.
    pub matchers: &'a [&'a Matcher],
}

static IGNORE: MatchKind = MatchKind::Ignore;

impl<'a> Rules<'a> {
    /// `name` is lowercase.
    fn ignores_header(&self, name: &str) -> bool {
        FRAMING_HEADERS.contains(&name)
            || self.ignore_headers.iter().any(|h| h.as_str() == name)
            || matches!(matchers::for_header(self.matchers, name), Some(MatchKind::Ignore))
    }

    /// Whether a header's two value sets are equal under a `same_shape` matcher: every value on
    /// both sides has the shape.
    fn header_equal(&self, name: &str, a: Option<&Value>, b: Option<&Value>) -> bool {
        let Some(MatchKind::SameShape(re)) = matchers::for_header(self.matchers, name) else { return false };
        let fits = |v: Option<&Value>| match v {
            Some(Value::String(s)) => re.is_match(s),
            Some(Value::Array(all)) => all.iter().all(|x| x.as_str().is_some_and(|s| re.is_match(s))),
            _ => false,
        };
        fits(a) && fits(b)
    }

    /// Whether two byte-equal bodies are the same under these rules: every matcher but
    /// `same_shape` only ever makes unequal values equal.
    fn equal_is_same(&self) -> bool {
        !self.matchers.iter().any(|m| matches!(m.kind, MatchKind::SameShape(_)))
    }

    fn rule(&self, path: &[Step]) -> Option<&'a MatchKind> {
        if self.ignore_paths.iter().any(|i| i.matches(path)) {
            return Some(&IGNORE);
        }
        matchers::for_path(self.matchers, path)
    }
}

/// The result for one pair: empty `differences` means a match.
#[derive(Debug, Default)]
pub struct Outcome {
    pub differences: Vec<Difference>,
    pub truncated: bool,
}

/// Compare legacy's answer with new's.
pub fn compare(legacy: &Answer, new: &Answer, rules: &Rules) -> Outcome {
    let mut out = Outcome::default();
    if legacy.status != new.status {
        out.differences.push(Difference {
            field: Field::Status,
            legacy: Some(legacy.status.into()),
            new: Some(new.status.into()),
            offset: None,
            lines: None,
        });
    }
    for (name, l, n) in header_differences(&legacy.headers, &new.headers, &|h| rules.ignores_header(h)) {
        if !rules.header_equal(&name, l.as_ref(), n.as_ref()) {
            out.differences.push(Difference {
                field: Field::Header(name),
                legacy: l,
                new: n,
                offset: None,
                lines: None,
            });
        }
    }
    match body_difference(&legacy.body, &new.body, &|p| rules.rule(p), rules.equal_is_same()) {
        BodyDiff::Same => {}
        BodyDiff::Json(found, truncated) => {
            out.truncated = truncated;
            out.differences.extend(found.into_iter().map(|f| Difference {
                field: Field::Json(f.path),
                legacy: f.legacy,
                new: f.new,
                offset: None,
                lines: None,
            }));
        }
        BodyDiff::Bytes { offset, legacy, new, lines } => out.differences.push(Difference {
            field: Field::Body,
            legacy: Some(legacy.into()),
            new: Some(new.into()),
            offset: Some(offset),
            lines,
        }),
    }
    if out.differences.len() > MAX_DIFFERENCES {
        out.differences.truncate(MAX_DIFFERENCES);
        out.truncated = true;
    }
    out
}

/// What differs between two answers of the same side, minus what `rules` ignore: the fields
/// (headers, JSON paths with indices generalised) that are noise on this sighting. Two statuses
/// of one side are flakiness, not noise in a field, and are not reported.
pub fn noise_between(first: &Answer, second: &Answer, rules: &Rules) -> Vec<Field> {
    let headers = header_differences(&first.headers, &second.headers, &|h| rules.ignores_header(h))
        .into_iter()
        .map(|d| Field::Header(d.0));
    let body = match body_difference(&first.body, &second.body, &|p| rules.rule(p), rules.equal_is_same()) {
        BodyDiff::Json(found, _) => found.into_iter().map(|f| Field::Json(f.general.to_string())).collect(),
        BodyDiff::Bytes { .. } => vec![Field::Body],
        BodyDiff::Same => Vec::new(),
    };
    headers.chain(body).collect()
}

type HeaderDiff = (String, Option<Value>, Option<Value>);

/// Headers whose sets of values differ, by lowercase name, in name order. A header with the same
/// values in the same order on both sides (most of them) is passed over without a copy.
fn header_differences(a: &HeaderMap, b: &HeaderMap, ignored: &dyn Fn(&str) -> bool) -> Vec<HeaderDiff> {
    fn values(m: &HeaderMap, name: &str) -> Vec<String> {
        let mut v: Vec<String> = m.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into()).collect();
        v.sort();
        v
    }
    fn shown(v: Vec<String>) -> Option<Value> {
        match v.len() {
            0 => None,
            1 => v.into_iter().next().map(Value::String),
            _ => Some(v.into()),
        }
    }
    let mut names: Vec<&str> = a.keys().chain(b.keys()).map(HeaderName::as_str).filter(|n| !ignored(n)).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        if a.get_all(name).iter().eq(b.get_all(name).iter()) {
            continue;
        }
        let (x, y) = (values(a, name), values(b, name));
        if x != y {
            out.push((name.to_string(), shown(x), shown(y)));
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum BodyDiff {
    Same,
    Json(Vec<json::Found>, bool),
    /// Not JSON: the first differing byte, what is around it (for text, the first differing
    /// lines) and, for text, a line diff summary.
    Bytes {
        offset: usize,
        legacy: String,
        new: String,
        lines: Option<LineDiff>,
    },
}

/// Longest line shown for a text body's first differing line.
const LINE: usize = 200;

/// A line diff of two text bodies: where the first difference is and how many lines each side
/// has that the other has not, with the first differing line of each (`None` when the bodies are
/// not both UTF-8 text of several lines). The diff gives up refining after 50 ms on huge, very
/// different bodies; its counts are then an upper bound.
fn line_diff(a: &[u8], b: &[u8]) -> Option<(LineDiff, String, String)> {
    let (a, b) = (std::str::from_utf8(a).ok()?, std::str::from_utf8(b).ok()?);
    if !a.contains('\n') && !b.contains('\n') {
        return None;
    }
    let diff = similar::TextDiff::configure().timeout(std::time::Duration::from_millis(50)).diff_lines(a, b);
    let (mut removed, mut added, mut first) = (0, 0, None);
    for op in diff.ops() {
        match *op {
            similar::DiffOp::Equal { .. } => {}
            similar::DiffOp::Delete { old_index, old_len, new_index, .. } => {
                removed += old_len;
                first.get_or_insert((old_index, new_index));
            }
            similar::DiffOp::Insert { old_index, new_index, new_len } => {
                added += new_len;
                first.get_or_insert((old_index, new_index));
            }
            similar::DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                removed += old_len;
                added += new_len;
                first.get_or_insert((old_index, new_index));
            }
        }
    }
    let (old_at, new_at) = first?;
    let line = |text: &str, i: usize| {
        let l = text.lines().nth(i).unwrap_or("");
        match l.char_indices().nth(LINE) {
            Some((cut, _)) => format!("{}…", &l[..cut]),
            None => l.to_string(),
        }
    };
    Some((LineDiff { first: old_at + 1, removed, added }, line(a, old_at), line(b, new_at)))
}

/// Bytes shown on each side of a differing offset.
const SNIPPET: usize = 48;

/// `equal_is_same`: byte-equal bodies compare equal without a parse or a walk (most pairs of a
/// service close to cutover are these), and two JSON bodies are compared without being parsed,
/// value by value where their bytes differ ([`raw`]). True unless a `same_shape` matcher applies:
/// it checks each side's shape, so two equal values of the wrong shape are still reported.
fn body_difference(a: &[u8], b: &[u8], rule: json::RuleFor, equal_is_same: bool) -> BodyDiff {
    if equal_is_same {
        if a == b {
            return BodyDiff::Same;
        }
        if let (Some(x), Some(y)) = (raw::Doc::scan(a), raw::Doc::scan(b)) {
            if let Some((found, truncated)) = raw::diff(&x, &y, rule, MAX_DIFFERENCES) {
                return if found.is_empty() { BodyDiff::Same } else { BodyDiff::Json(found, truncated) };
            }
        }
    }
    parsed_body_difference(a, b, rule)
}

/// The body comparison without the byte-equality shortcut: parse when both are JSON, walk.
fn parsed_body_difference(a: &[u8], b: &[u8], rule: json::RuleFor) -> BodyDiff {
    if let (Some(x), Some(y)) = (parse_json(a), parse_json(b)) {
        let (found, truncated) = json::diff(&x, &y, rule, MAX_DIFFERENCES);
        return if found.is_empty() { BodyDiff::Same } else { BodyDiff::Json(found, truncated) };
    }
    if a == b {
        return BodyDiff::Same;
    }
    let offset = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    // From the start of the field the difference is in (`name=value`, a word, a line; both
    // bodies are the same up to `offset`), so a value is never shown cut: redaction can then
    // recognise `password=...` and a reader sees what differs in context.
    let from = offset.saturating_sub(SNIPPET);
    let start = a[from..offset]
        .iter()
        .rposition(|c| matches!(c, b'&' | b'\n' | b',' | b'{' | b' ' | b';' | b'?'))
        .map_or(from, |i| from + i + 1);
    if let Some((lines, legacy, new)) = line_diff(a, b) {
        return BodyDiff::Bytes { offset, legacy, new, lines: Some(lines) };
    }
    let snippet = |s: &[u8]| {
        let end = (offset + SNIPPET).min(s.len());
        String::from_utf8_lossy(&s[start.min(end)..end]).into_owned()
    };
    BodyDiff::Bytes { offset, legacy: snippet(a), new: snippet(b), lines: None }
}

/// A JSON document, if the body is one (an empty body is not).
fn parse_json(body: &[u8]) -> Option<Value> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if !matches!(first, b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') {
        return None;
    }
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
        }
        Answer { status, headers: h, body: Bytes::from(body.to_string()) }
    }

    fn wheres(a: &Answer, b: &Answer, ignore_headers: &[&'static str], ignore_paths: &[&str]) -> Vec<String> {
        let ih: Vec<HeaderName> = ignore_headers.iter().map(|h| HeaderName::from_static(h)).collect();
        let ip: Vec<JsonPath> = ignore_paths.iter().map(|p| JsonPath::parse(p).expect("path")).collect();
        let rules = Rules { ignore_headers: &ih, ignore_paths: &ip, matchers: &[] };
        compare(a, b, &rules).differences.into_iter().map(|d| d.field.to_string()).collect()
    }

    #[test]
    fn status_headers_and_json_each_reported() {
        let l = answer(200, &[("x-a", "1"), ("date", "x")], r#"{"total": 3, "at": 1}"#);
        let n = answer(404, &[("x-a", "2"), ("date", "y")], r#"{"amount": 3, "at": 2}"#);
        assert_eq!(wheres(&l, &n, &["date"], &["$.at"]), ["status", "header:x-a", "json:$.total", "json:$.amount"]);
        assert_eq!(wheres(&l, &n, &[], &[]).len(), 6);
    }

    #[test]
    fn multi_valued_headers_are_sets_and_framing_is_ignored() {
        let l = answer(200, &[("vary", "a"), ("vary", "b"), ("content-length", "3")], "abc");
        let n = answer(200, &[("vary", "b"), ("vary", "a"), ("transfer-encoding", "chunked")], "abc");
        assert!(wheres(&l, &n, &[], &[]).is_empty());
        let n = answer(200, &[("vary", "a")], "abc");
        assert_eq!(wheres(&l, &n, &[], &[]), ["header:vary"]);
    }

    #[test]
    fn non_json_bodies_report_the_first_differing_offset() {
        let rules = Rules { ignore_headers: &[], ignore_paths: &[], matchers: &[] };
        let out = compare(&answer(200, &[], "hello world"), &answer(200, &[], "hello there"), &rules);
        assert_eq!(out.differences.len(), 1);
        let d = &out.differences[0];
        assert_eq!((&d.field, d.offset), (&Field::Body, Some(6)));
        assert_eq!(d.legacy, Some(Value::from("world")));
        let out = compare(&answer(200, &[], "abc"), &answer(200, &[], "abcdef"), &rules);
        assert_eq!(out.differences[0].offset, Some(3));
    }

    #[test]
    fn text_bodies_get_a_line_diff() {
        let rules = Rules { ignore_headers: &[], ignore_paths: &[], matchers: &[] };
        let legacy = "<html>\n<h1>Orders</h1>\n<p>3 orders</p>\n<footer>v1</footer>\n</html>\n";
        let new = "<html>\n<h1>Orders</h1>\n<p>4 orders</p>\n<p>1 pending</p>\n<footer>v1</footer>\n</html>\n";
        let out = compare(&answer(200, &[], legacy), &answer(200, &[], new), &rules);
        assert_eq!(out.differences.len(), 1);
        let d = &out.differences[0];
        assert_eq!(d.lines, Some(LineDiff { first: 3, removed: 1, added: 2 }));
        assert_eq!((d.legacy.clone(), d.new.clone()), (Some("<p>3 orders</p>".into()), Some("<p>4 orders</p>".into())));
        assert_eq!(d.offset, Some(legacy.find('3').expect("3")));
        // One line of text, or bytes that are not UTF-8: the offset and what is around it.
        let out = compare(&answer(200, &[], "a=1&b=2"), &answer(200, &[], "a=1&b=3"), &rules);
        assert_eq!(out.differences[0].lines, None);
    }

    #[test]
    fn noise_between_two_answers_of_one_side() {
        let a = answer(200, &[("x-request-id", "1"), ("etag", "e")], r#"{"items":[{"id":"r1","n":1}],"at":5}"#);
        let b = answer(200, &[("x-request-id", "2"), ("etag", "e")], r#"{"items":[{"id":"r2","n":1}],"at":6}"#);
        let fields =
            |rules: &Rules| -> Vec<String> { noise_between(&a, &b, rules).iter().map(|f| f.to_string()).collect() };
        assert_eq!(
            fields(&Rules { ignore_headers: &[], ignore_paths: &[], matchers: &[] }),
            ["header:x-request-id", "json:$.at", "json:$.items[*].id"]
        );
        // What the config already ignores is not learned again.
        let at = JsonPath::parse("$.at").expect("path");
        let ignored =
            Rules { ignore_headers: &[HeaderName::from_static("x-request-id")], ignore_paths: &[at], matchers: &[] };
        assert_eq!(fields(&ignored), ["json:$.items[*].id"]);
    }

    proptest::proptest! {
        /// Header sets compare as the maps of sorted values they are: any names, repeats and
        /// orders, against that definition written out.
        #[test]
        fn header_sets_compare_as_sorted_value_maps(
            a in proptest::collection::vec(("x-[ab]|date|vary", "[12]"), 0..6),
            b in proptest::collection::vec(("x-[ab]|date|vary", "[12]"), 0..6),
        ) {
            let map = |pairs: &[(String, String)]| {
                let mut m = HeaderMap::new();
                for (k, v) in pairs {
                    m.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
                }
                m
            };
            let sets = |pairs: &[(String, String)]| {
                let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
                for (k, v) in pairs.iter().filter(|(k, _)| k != "date") {
                    m.entry(k.clone()).or_default().push(v.clone());
                }
                m.values_mut().for_each(|v| v.sort());
                m
            };
            let (sa, sb) = (sets(&a), sets(&b));
            let mut expected: Vec<&String> = sa.keys().chain(sb.keys()).filter(|k| sa.get(*k) != sb.get(*k)).collect();
            expected.sort();
            expected.dedup();
            let got = header_differences(&map(&a), &map(&b), &|h| h == "date");
            let names: Vec<&String> = got.iter().map(|d| &d.0).collect();
            proptest::prop_assert_eq!(names, expected);
            for (name, l, n) in &got {
                let shown = |s: Option<&Vec<String>>| s.map(|v| if v.len() == 1 { Value::from(v[0].clone()) } else { Value::from(v.clone()) });
                proptest::prop_assert_eq!(l, &shown(sa.get(name)));
                proptest::prop_assert_eq!(n, &shown(sb.get(name)));
            }
        }
    }

    mod fast_path {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::super::*;

        /// Any JSON document a service could answer: nested objects and arrays of scalars.
        fn document() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                (-1000i64..1000).prop_map(Value::from),
                (-1e6f64..1e6).prop_map(Value::from),
                "[a-zA-Z0-9 -]{0,8}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::btree_map("[a-e]{1,2}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn kinds() -> Vec<Option<MatchKind>> {
            vec![
                None,
                Some(MatchKind::Ignore),
                Some(MatchKind::Tolerance { absolute: 0.5, relative: 1.0 }),
                Some(MatchKind::Unordered),
                Some(MatchKind::Present),
                Some(MatchKind::CaseInsensitive),
                Some(MatchKind::SameShape(regex::Regex::new("^[a-z]*$").expect("regex"))),
            ]
        }

        /// A JSON text as services write it: any key order, repeated keys, escapes, numbers
        /// written several ways, whitespace; some are not JSON at all (`1e400`), some are JSON the
        /// scan leaves to the parser (an escaped key, a surrogate pair).
        #[derive(Debug, Clone)]
        enum Text {
            Leaf(&'static str),
            Array(Vec<Text>),
            Object(Vec<(&'static str, Text)>),
        }

        const LEAVES: [&str; 20] = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "1.0",
            "1e0",
            "10",
            "2.5",
            "-3",
            "123456789012345678901",
            "1e400",
            r#""a""#,
            r#""b""#,
            r#""\u0061""#,
            r#""\n""#,
            r#""é""#,
            r#""\ud83d\ude00""#,
            r#""a\/b""#,
        ];
        const KEYS: [&str; 6] =
            [r#""a""#, r#""b""#, r#""c""#, r#""a\u0062""#, r#""longer-than-eight""#, r#""longer-than-eightX""#];

        fn text() -> impl Strategy<Value = Text> {
            let leaf = proptest::sample::select(&LEAVES[..]).prop_map(Text::Leaf);
            leaf.prop_recursive(4, 40, 5, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..5).prop_map(Text::Array),
                    proptest::collection::vec((proptest::sample::select(&KEYS[..]), inner), 0..5)
                        .prop_map(Text::Object),
                ]
            })
        }

        /// `t` written out; `spaced` puts whitespace around everything, `reversed` writes every
        /// object's members the other way round, `respelled` writes some values another way
        /// that means the same (or, for `1e0`, nearly).
        fn write(t: &Text, spaced: bool, reversed: bool, respelled: bool) -> String {
            let gap = if spaced { " \n\t" } else { "" };
            match t {
                Text::Leaf(s) if respelled => match *s {
                    "1" => "1.0",
                    "1.0" => "1e0",
                    "0" => "-0",
                    "2.5" => "2.50",
                    r#""a""# => r#""\u0061""#,
                    r#""a\/b""# => r#""a/b""#,
                    other => other,
                }
                .to_string(),
                Text::Leaf(s) => s.to_string(),
                Text::Array(items) => {
                    let all: Vec<String> = items.iter().map(|i| write(i, spaced, reversed, respelled)).collect();
                    format!("[{gap}{}{gap}]", all.join(&format!("{gap},{gap}")))
                }
                Text::Object(members) => {
                    let mut all: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("{k}{gap}:{gap}{}", write(v, spaced, reversed, respelled)))
                        .collect();
                    if reversed {
                        all.reverse();
                    }
                    format!("{{{gap}{}{gap}}}", all.join(&format!("{gap},{gap}")))
                }
            }
        }

        /// The shortcuts and the full parse-and-walk give the same result on `left` and `right`,
        /// under every kind of matcher applying from depth `deep` down, as a route's would on a
        /// subtree (`same_shape`, which judges each side's shape, turns the shortcuts off).
        fn agree(left: &str, right: &str, deep: usize) -> Result<(), TestCaseError> {
            for kind in kinds() {
                let rule = |p: &[Step]| if p.len() >= deep { kind.as_ref() } else { None };
                let shortcut = !matches!(kind, Some(MatchKind::SameShape(_)));
                let fast = body_difference(left.as_bytes(), right.as_bytes(), &rule, shortcut);
                let full = parsed_body_difference(left.as_bytes(), right.as_bytes(), &rule);
                prop_assert_eq!(fast, full, "{} vs {} under {:?}", left, right, kind);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

            /// The byte-equality shortcut and the full parse-and-walk agree on every pair: equal
            /// documents, documents that differ, one side not JSON, under every kind of matcher
            /// on every path (`same_shape`, which judges each side's shape, turns it off).
            #[test]
            fn the_fast_path_and_the_full_path_agree(
                a in document(),
                b in document(),
                same in any::<bool>(),
                text in any::<bool>(),
                deep in 0usize..7,
            ) {
                let left = if text { format!("not json {a}") } else { a.to_string() };
                let right = if same { left.clone() } else { b.to_string() };
                agree(&left, &right, deep)?;
            }

            /// The same on texts as services write them: the walk of the two bodies' bytes (and,
            /// where it gives up, the parse) reports what the walk of the parsed documents does.
            #[test]
            fn written_texts_compare_as_their_parsed_documents(
                a in text(),
                b in text(),
                same in any::<bool>(),
                spaced in any::<bool>(),
                reversed in any::<bool>(),
                respelled in any::<bool>(),
                deep in 0usize..6,
            ) {
                let left = write(&a, false, false, false);
                let right = write(if same { &a } else { &b }, spaced, reversed, respelled);
                agree(&left, &right, deep)?;
            }
        }
    }
}
