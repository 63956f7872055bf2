//! The comparison of two JSON bodies without building either document: one pass over each body
//! checks it and records where every value starts and ends (a tape), then the walk compares
//! the two bodies' bytes value by value and goes into a value only where its bytes differ. Only
//! the values reported (and those a matcher has to judge) are ever parsed.
//!
//! It gives exactly what [`super::json::diff`] gives on the parsed documents. To keep that
//! promise simply, the scan accepts a strict subset of what `serde_json` accepts and gives up on
//! anything unusual (a key with an escape, an escaped surrogate, nesting deeper than 100, a body
//! that is not UTF-8): the caller then parses both documents and walks them as before.

use std::cmp::Ordering;

use serde_json::Value;

use super::json::{numbers_equal, Found, RuleFor, Walk};
use super::matchers::{judge, MatchKind};
use super::path::{render, JsonPath, Step};

/// Nesting deeper than this is left to the parser (its own limit is 128).
const DEPTH: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    String,
    /// A string with at least one escape: compared decoded.
    Escaped,
    Number,
    /// `true`, `false` or `null`.
    Literal,
}

/// One value of a body: its bytes are `start..end`, and the value after it (and after all it
/// contains) is at `next` on the tape. An object's members follow it as key, value, key, ...
#[derive(Debug, Clone, Copy)]
struct Node {
    start: u32,
    end: u32,
    next: u32,
    kind: Kind,
}

/// A body that scanned as JSON: its text and its tape (the root value is node 0).
pub struct Doc<'a> {
    text: &'a str,
    tape: Vec<Node>,
}

impl<'a> Doc<'a> {
    /// The body as a document, or `None` when it is not JSON or is JSON the scan leaves to the
    /// parser.
    pub fn scan(body: &'a [u8]) -> Option<Doc<'a>> {
        let text = std::str::from_utf8(body).ok()?;
        if body.len() >= u32::MAX as usize {
            return None;
        }
        let mut tape = TAPES.with_borrow_mut(Vec::pop).unwrap_or_default();
        tape.clear();
        let mut s = Scanner { b: body, i: 0, tape, open: [0; DEPTH], depth: 0 };
        let scanned = s.value().is_some() && {
            s.ws();
            s.i == body.len()
        };
        let doc = Doc { text, tape: s.tape };
        scanned.then_some(doc)
    }

    fn bytes(&self, n: usize) -> &'a [u8] {
        let node = self.tape[n];
        &self.text.as_bytes()[node.start as usize..node.end as usize]
    }

    /// The value at `n`, parsed.
    fn value(&self, n: usize) -> Option<Value> {
        serde_json::from_slice(self.bytes(n)).ok()
    }

    /// The key at `n` (keys have no escapes: the scan gives up on those).
    fn key(&self, n: usize) -> &'a str {
        let node = self.tape[n];
        &self.text[node.start as usize + 1..node.end as usize - 1]
    }

    /// The element nodes of the array at `n`.
    fn elements(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.tape[n].next as usize;
        let mut at = n + 1;
        std::iter::from_fn(move || {
            (at < end).then(|| {
                let here = at;
                at = self.tape[here].next as usize;
                here
            })
        })
    }

    /// The members of the object at `n` by key, the last of a repeated key winning: the order
    /// and the choice of a parsed document's map.
    fn members(&self, n: usize, out: &mut Vec<Member<'a>>) {
        out.clear();
        let (mut at, end) = (n + 1, self.tape[n].next as usize);
        while at < end {
            let value = at + 1;
            out.push(Member::new(self.key(at), value));
            at = self.tape[value].next as usize;
        }
        if !out.windows(2).all(|w| w[0].cmp(&w[1]).is_lt()) {
            // Reversed, then sorted stably: a repeated key's last member comes first, and is the
            // one `dedup_by` keeps.
            out.reverse();
            out.sort_by(Member::cmp);
            out.dedup_by(|later, kept| later.cmp(kept).is_eq());
        }
    }
}

/// A member of an object: its key, the key's first eight bytes as a number (most keys are told
/// apart by these without a call to `memcmp`), and its value's node.
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    head: u64,
    key: &'a str,
    value: usize,
}

impl<'a> Member<'a> {
    fn new(key: &'a str, value: usize) -> Member<'a> {
        let head = key.bytes().take(8).enumerate().fold(0u64, |h, (i, c)| h | u64::from(c) << (56 - 8 * i));
        Member { head, key, value }
    }

    /// The order of the keys' bytes: a key has no NUL byte (the scan refuses control
    /// characters and gives up on escaped keys), so zero padding sorts a shorter key first.
    fn cmp(&self, other: &Member) -> Ordering {
        match self.head.cmp(&other.head) {
            Ordering::Equal if self.key.len() > 8 || other.key.len() > 8 => self.key.cmp(other.key),
            o => o,
        }
    }
}

thread_local! {
    /// Tapes to reuse: a comparison thread scans two bodies at a time, and a tape is as long as
    /// its body has values.
    static TAPES: std::cell::RefCell<Vec<Vec<Node>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A tape is kept for reuse unless it grew past this many nodes (a 4 MiB one).
const KEPT: usize = 1 << 18;

impl Drop for Doc<'_> {
    fn drop(&mut self) {
        if self.tape.capacity() <= KEPT {
            let tape = std::mem::take(&mut self.tape);
            TAPES.with_borrow_mut(|kept| {
                if kept.len() < 2 {
                    kept.push(tape)
                }
            });
        }
    }
}

/// The end of the run of string bytes from `i` that need no attention: up to the first quote,
/// backslash or control character, eight bytes at a time.
#[inline(always)]
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero: its high bit set in the result (exact up to the first such byte).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte below 0x20 borrows in `x - 0x20` and had its high bit clear.
        let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let found = zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\'))) | below;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20) {
        i += 1;
    }
    i
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    tape: Vec<Node>,
    /// The containers open around the scan: their nodes, `depth` of them.
    open: [u32; DEPTH],
    depth: usize,
}

impl Scanner<'_> {
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn push(&mut self, start: usize, kind: Kind) -> usize {
        self.tape.push(Node { start: start as u32, end: 0, next: 0, kind });
        self.tape.len() - 1
    }

    #[inline(always)]
    fn close(&mut self, n: usize) {
        let next = self.tape.len() as u32;
        let node = &mut self.tape[n];
        node.end = self.i as u32;
        node.next = next;
    }

    /// One value and all it contains, iteratively (depth is bounded by `DEPTH`, not the stack).
    fn value(&mut self) -> Option<()> {
        loop {
            self.ws();
            let start = self.i;
            match *self.b.get(self.i)? {
                c @ (b'{' | b'[') => {
                    let n = self.push(start, if c == b'{' { Kind::Object } else { Kind::Array });
                    self.i += 1;
                    if self.depth == DEPTH {
                        return None;
                    }
                    self.open[self.depth] = n as u32;
                    self.depth += 1;
                    self.ws();
                    if self.b.get(self.i) == Some(&(c + 2)) {
                        // `{}` or `[]`: `}` and `]` are two after `{` and `[`.
                        self.i += 1;
                        self.depth -= 1;
                        self.close(n);
                    } else {
                        if c == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    let escaped = self.string()?;
                    let n = self.push(start, if escaped { Kind::Escaped } else { Kind::String });
                    self.close(n);
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                    let n = self.push(start, Kind::Number);
                    self.close(n);
                }
                _ => {
                    let rest = &self.b[self.i..];
                    let len = [&b"true"[..], b"false", b"null"].into_iter().find(|w| rest.starts_with(w))?.len();
                    self.i += len;
                    let n = self.push(start, Kind::Literal);
                    self.close(n);
                }
            }
            // After a value: the next member or element, or the end of containers.
            loop {
                let Some(n) = self.depth.checked_sub(1).map(|top| self.open[top] as usize) else { return Some(()) };
                self.ws();
                let object = self.tape[n].kind == Kind::Object;
                match *self.b.get(self.i)? {
                    b',' => {
                        self.i += 1;
                        if object {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.i += 1;
                self.depth -= 1;
                self.close(n);
            }
        }
    }

    /// A member's key and its colon.
    #[inline(always)]
    fn key(&mut self) -> Option<()> {
        let start = self.i;
        if self.b.get(self.i) != Some(&b'"') || self.string()? {
            return None;
        }
        let n = self.push(start, Kind::String);
        self.close(n);
        self.ws();
        (self.b.get(self.i) == Some(&b':')).then(|| self.i += 1)
    }

    /// A string from its opening quote; whether it has escapes. Gives up on control characters
    /// (invalid) and escaped surrogates (left to the parser).
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        let mut escaped = false;
        self.i += 1;
        loop {
            self.i = plain_run(self.b, self.i);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(escaped);
                }
                b'\\' => escaped = true,
                _ => return None,
            }
            self.i += 1;
            match *self.b.get(self.i)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                b'u' => {
                    let hex = self.b.get(self.i + 1..self.i + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    let unit = hex.iter().fold(0u32, |n, &c| n * 16 + (c as char).to_digit(16).unwrap_or(0));
                    if (0xD800..0xE000).contains(&unit) {
                        return None;
                    }
                    self.i += 5;
                }
                _ => return None,
            }
        }
    }

    /// A number as JSON writes them. One with an exponent or many digits is checked by the
    /// parser itself, which refuses what does not fit an `f64`.
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.b.get(s.i).is_some_and(u8::is_ascii_digit) {
                s.i += 1;
            }
            s.i - from
        };
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        let mut unusual = self.i - start > 18;
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
            unusual = true;
        }
        if unusual && serde_json::from_slice::<Value>(&self.b[start..self.i]).is_err() {
            return None;
        }
        Some(())
    }
}

/// Byte equality, without a call to `memcmp` for the short values most members hold.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Something the walk cannot decide without the parser (it never happens on a scanned body:
/// every value on the tape parses).
struct GiveUp;

/// Differences between two scanned documents, exactly as [`super::json::diff`] reports them on
/// the parsed documents, or `None` to parse and walk them instead. Byte-equal values are equal:
/// the caller uses this only when no matcher can find two equal values different
/// (`same_shape`).
pub fn diff(legacy: &Doc, new: &Doc, rule: RuleFor, limit: usize) -> Option<(Vec<Found>, bool)> {
    let mut w = RawWalk {
        a: legacy,
        b: new,
        path: Vec::new(),
        rule,
        out: Vec::new(),
        limit,
        truncated: false,
        scratch: Vec::new(),
    };
    w.walk(Some(0), Some(0)).ok()?;
    Some((w.out, w.truncated))
}

struct RawWalk<'d, 'a, 'f> {
    a: &'d Doc<'a>,
    b: &'d Doc<'a>,
    path: Vec<Step<'a>>,
    rule: RuleFor<'f>,
    out: Vec<Found>,
    limit: usize,
    truncated: bool,
    /// Member lists to reuse, two per object being walked.
    scratch: Vec<Vec<Member<'a>>>,
}

impl<'a> RawWalk<'_, 'a, '_> {
    fn walk(&mut self, x: Option<usize>, y: Option<usize>) -> Result<(), GiveUp> {
        if let (Some(x), Some(y)) = (x, y) {
            if same(self.a.bytes(x), self.b.bytes(y)) {
                return Ok(());
            }
        }
        if let Some(kind) = (self.rule)(&self.path) {
            if matches!(kind, MatchKind::Ignore) {
                return Ok(());
            }
            // A matcher judges values: parse these two and walk them as parsed documents.
            let (va, vb) = (self.parsed(self.a, x)?, self.parsed(self.b, y)?);
            if judge(kind, va.as_ref(), vb.as_ref()).is_some() {
                let mut walk = Walk {
                    path: self.path.clone(),
                    rule: self.rule,
                    out: std::mem::take(&mut self.out),
                    limit: self.limit,
                    truncated: self.truncated,
                };
                walk.walk(va.as_ref(), vb.as_ref());
                (self.out, self.truncated) = (walk.out, walk.truncated);
                return Ok(());
            }
        }
        let (Some(x), Some(y)) = (x, y) else { return self.report(x, y) };
        match (self.a.tape[x].kind, self.b.tape[y].kind) {
            (Kind::Object, Kind::Object) => self.members(x, y),
            (Kind::Array, Kind::Array) => self.elements(x, y),
            (Kind::Number, Kind::Number) => match (self.parsed(self.a, Some(x))?, self.parsed(self.b, Some(y))?) {
                (Some(Value::Number(m)), Some(Value::Number(n))) if numbers_equal(&m, &n) => Ok(()),
                _ => self.report(Some(x), Some(y)),
            },
            (Kind::String | Kind::Escaped, Kind::String | Kind::Escaped)
                if self.a.tape[x].kind == Kind::Escaped || self.b.tape[y].kind == Kind::Escaped =>
            {
                if self.parsed(self.a, Some(x))? == self.parsed(self.b, Some(y))? {
                    Ok(())
                } else {
                    self.report(Some(x), Some(y))
                }
            }
            _ => self.report(Some(x), Some(y)),
        }
    }

    /// Every key of legacy's object in order, then the keys only new's has, as the walk of
    /// parsed maps goes.
    fn members(&mut self, x: usize, y: usize) -> Result<(), GiveUp> {
        let (mut mx, mut my) = (self.scratch.pop().unwrap_or_default(), self.scratch.pop().unwrap_or_default());
        self.a.members(x, &mut mx);
        self.b.members(y, &mut my);
        let mut walked = Ok(());
        let mut j = 0;
        for m in &mx {
            while my.get(j).is_some_and(|o| o.cmp(m).is_lt()) {
                j += 1;
            }
            let vy = my.get(j).filter(|o| o.cmp(m).is_eq()).map(|o| o.value);
            walked = walked.and_then(|_| self.step(Step::Key(m.key), Some(m.value), vy));
        }
        let mut i = 0;
        for m in &my {
            while mx.get(i).is_some_and(|o| o.cmp(m).is_lt()) {
                i += 1;
            }
            if mx.get(i).is_none_or(|o| o.cmp(m).is_ne()) {
                walked = walked.and_then(|_| self.step(Step::Key(m.key), None, Some(m.value)));
            }
        }
        self.scratch.extend([mx, my]);
        walked
    }

    fn elements(&mut self, x: usize, y: usize) -> Result<(), GiveUp> {
        let (mut xs, mut ys) = (self.a.elements(x), self.b.elements(y));
        for i in 0.. {
            let (ex, ey) = (xs.next(), ys.next());
            if ex.is_none() && ey.is_none() {
                break;
            }
            self.step(Step::Index(i), ex, ey)?;
        }
        Ok(())
    }

    fn step(&mut self, s: Step<'a>, x: Option<usize>, y: Option<usize>) -> Result<(), GiveUp> {
        if self.truncated {
            return Ok(());
        }
        self.path.push(s);
        let walked = self.walk(x, y);
        self.path.pop();
        walked
    }

    fn parsed(&self, doc: &Doc, n: Option<usize>) -> Result<Option<Value>, GiveUp> {
        n.map(|n| doc.value(n).ok_or(GiveUp)).transpose()
    }

    fn report(&mut self, x: Option<usize>, y: Option<usize>) -> Result<(), GiveUp> {
        if self.out.len() >= self.limit {
            self.truncated = true;
            return Ok(());
        }
        self.out.push(Found {
            path: render(&self.path),
            general: JsonPath::generalise(&self.path),
            legacy: self.parsed(self.a, x)?,
            new: self.parsed(self.b, y)?,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan accepts only what the parser accepts, and the plain JSON services send.
    #[test]
    fn the_scan_accepts_a_subset_of_what_the_parser_accepts() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let mut texts: Vec<String> = [
            r#"{"a": [1, 2.5, -0, 1e3, "x\n\u00e9", true, null], "b": {}}"#,
            " [ ] ",
            "0",
            r#""plain""#,
            "{\"a\":1,}",
            "[1,]",
            "01",
            "1.",
            ".5",
            "+1",
            "1e400",
            "123456789012345678901234567890",
            "\"tab\there\"",
            r#""\x""#,
            r#""\ud800""#,
            r#"{"k\u0061": 1}"#,
            "[1] x",
            "[1",
            "{\"a\" 1}",
            "tru",
            "nulls",
            "",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        texts.extend([deep(100), deep(101), deep(129)]);
        for t in &texts {
            let parsed = serde_json::from_str::<Value>(t).is_ok();
            let scanned = Doc::scan(t.as_bytes()).is_some();
            assert!(!scanned || parsed, "{t:?} scans but does not parse");
        }
        for plain in [&texts[0], &texts[1], &texts[2], &texts[3], &deep(100), &texts[11]] {
            assert!(Doc::scan(plain.as_bytes()).is_some(), "{plain:?} should scan");
        }
        assert!(Doc::scan(deep(101).as_bytes()).is_none(), "deeper than 100 is left to the parser");
        assert!(Doc::scan(br#"{"k\u0061": 1}"#).is_none(), "an escaped key is left to the parser");
    }

    #[test]
    fn plain_runs_stop_at_quotes_backslashes_and_control_characters() {
        let text = b"abcdefghijklmnop\"";
        assert_eq!(plain_run(text, 0), 16);
        assert_eq!(plain_run(b"abcdefghij\\x", 0), 10);
        assert_eq!(plain_run(b"abcdefg\x01hij", 0), 7);
        assert_eq!(plain_run("h\u{e9}llo w\u{f6}rld!\"".as_bytes(), 0), 14);
        assert_eq!(plain_run(b"ab", 0), 2);
    }
}
