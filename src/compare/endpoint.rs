//! Endpoints: what a compared request is counted under, its method and a path template.
//!
//! Templates are declared per route (`[routes.compare] endpoints`, always first) or learned from
//! the traffic by a [`Learner`]: a tree of the path segments seen, one level per position. A
//! position becomes a parameter (`{id}`) in two ways:
//! - at once, when a segment has the shape of an identifier (a number, a UUID, 16+ hex digits, a
//!   20+ character token of letters and digits, an e-mail address, a date);
//! - by cardinality, whatever its alphabet or length: once [`FOLD_DISTINCT`] different values sat
//!   under one parent and at least three quarters of them were seen only once (slugs, short
//!   base64 ids, mixed-case hashes), the position folds. Values that repeat far more often than
//!   the rest (`/users/me`, `/v2`, `/search`) stay literals.
//!
//! A fold is for good: later values of that position go to the parameter unless they are one of
//! the literals kept, so a template once formed never splits again. The tree is bounded (nodes,
//! depth, segment length) and says how many bytes it holds, for the route's evidence budget.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Where requests go once a route has `max_endpoints` templates, or its evidence budget is
/// spent.
pub const OTHER: &str = "{other}";
/// An inferred parameter.
pub const PARAM: &str = "{id}";

/// Values under one parent before cardinality can fold the position.
pub const FOLD_DISTINCT: usize = 16;
/// Nodes a route's tree holds at most; unknown paths past it are counted under `{other}`.
pub const MAX_NODES: usize = 4096;
/// Path positions learned at most; deeper segments are all parameters.
pub const MAX_DEPTH: usize = 16;
/// A segment longer than this is a parameter whatever it looks like.
pub const MAX_SEGMENT: usize = 64;
/// Distinct values of a parameter counted exactly; past it the report says "at least".
pub const MAX_DISTINCT: usize = 256;
/// Estimated heap bytes of one node besides its segment.
const NODE_BYTES: usize = 120;
/// What learning one path can add to the tree at most.
pub const MAX_PATH_BYTES: usize = MAX_DEPTH * (NODE_BYTES + MAX_SEGMENT + 16);

/// A declared path template: literal segments and `{name}` segments matching any one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    /// `None` for a `{name}` segment.
    segments: Vec<Option<String>>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if !text.starts_with('/') {
            return Err("must start with '/', e.g. \"/orders/{id}\"".into());
        }
        let mut segments = Vec::new();
        for s in text[1..].split('/') {
            if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("{{{name}}} is not a parameter; write {{id}} or {{name}}"));
                }
                segments.push(None);
            } else if s.contains(['{', '}', '?', '#']) {
                return Err(format!("segment {s:?} mixes text and a parameter; a parameter is a whole segment"));
            } else {
                segments.push(Some(s.to_string()));
            }
        }
        Ok(Template { text: text.to_string(), segments })
    }

    /// Whether `path` (without its query) is this template.
    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (Some(lit), Some(p)) if lit == p => {}
                (None, Some(p)) if !p.is_empty() => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The template of a path by segment shape alone: identifier-like segments become `{id}`.
pub fn infer(path: &str) -> String {
    let path = bare(path);
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_identifier(seg) { PARAM } else { seg });
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The path without its query or fragment.
fn bare(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or("/")
}

/// A number, a UUID, 16+ hex digits, a token of 20+ letters, digits, `-`, `_` and `=` with both
/// letters and digits in it (base64url ids, ULIDs, Stripe-style `ch_3N...`), an e-mail address,
/// an ISO date, or anything longer than [`MAX_SEGMENT`].
fn is_identifier(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.len() > MAX_SEGMENT || b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let uuid = b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() });
    if uuid || (b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit)) {
        return true;
    }
    let email = seg.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
    let date = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| if matches!(i, 4 | 7) { *c == b'-' } else { c.is_ascii_digit() });
    email
        || date
        || (b.len() >= 20
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'='))
            && b.iter().any(u8::is_ascii_digit)
            && b.iter().any(u8::is_ascii_alphabetic))
}

/// The endpoint of a request by declared templates and segment shape alone, without learning:
/// `METHOD TEMPLATE`.
pub fn endpoint(method: &str, path: &str, declared: &[Template]) -> String {
    let bare = bare(path);
    match declared.iter().find(|t| t.matches(bare)) {
        Some(t) => format!("{method} {t}"),
        None => format!("{method} {}", infer(bare)),
    }
}

// === impl Learner ===

/// One path position under a parent.
#[derive(Debug, Default, Clone)]
struct Node {
    hits: u64,
    literals: BTreeMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    /// The position folded by cardinality: every value not among `literals` is the parameter.
    folded: bool,
    /// Hashes of the distinct values counted into `param`, up to [`MAX_DISTINCT`].
    values: HashSet<u64>,
}

impl Node {
    /// Fold `other` (a subtree that becomes part of this one) in. Returns the nodes removed from
    /// the count (both trees had them).
    fn absorb(&mut self, other: Node) -> usize {
        let mut merged = 0;
        self.hits += other.hits;
        self.folded |= other.folded;
        for v in other.values {
            if self.values.len() < MAX_DISTINCT {
                self.values.insert(v);
            }
        }
        for (seg, child) in other.literals {
            match self.literals.get_mut(&seg) {
                Some(mine) => merged += 1 + mine.absorb(child),
                None => {
                    self.literals.insert(seg, child);
                }
            }
        }
        if let Some(p) = other.param {
            match self.param.as_mut() {
                Some(mine) => merged += 1 + mine.absorb(*p),
                None => self.param = Some(p),
            }
        }
        merged
    }

    /// Whether the literal children are many values that rarely repeat.
    fn should_fold(&self) -> bool {
        let n = self.literals.len();
        n >= FOLD_DISTINCT && self.literals.values().filter(|c| c.hits == 1).count() * 4 >= n * 3
    }

    /// Fold the rarely seen literal children into the parameter; those seen far more often than
    /// the average stay.
    fn fold(&mut self) -> usize {
        let total: u64 = self.literals.values().map(|c| c.hits).sum();
        let mean = total as f64 / self.literals.len().max(1) as f64;
        let keep = |c: &Node| c.hits >= 3 && c.hits as f64 >= 4.0 * mean;
        let folded: Vec<Box<str>> = self.literals.iter().filter(|(_, c)| !keep(c)).map(|(s, _)| s.clone()).collect();
        let new_param = self.param.is_none();
        let mut param = self.param.take().map_or_else(Node::default, |p| *p);
        let mut merged = 0;
        for seg in folded {
            if let Some(child) = self.literals.remove(&seg) {
                if param.values.len() < MAX_DISTINCT {
                    param.values.insert(hash(&seg));
                }
                // The literal's node itself becomes part of the parameter's.
                merged += 1 + param.absorb(child);
            }
        }
        self.param = Some(Box::new(param));
        self.folded = true;
        // A parameter node made here is one node more.
        merged - usize::from(new_param && merged > 0)
    }
}

fn hash(seg: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(seg.as_bytes())
}

/// What [`Learner::learn`] found for a path.
#[derive(Debug, PartialEq, Eq)]
pub struct Learned {
    /// The template, `/users/{id}/posts`; `None` when the tree is full and the path is new.
    pub template: Option<String>,
    /// A position folded while learning this path: earlier templates may have changed.
    pub folded: bool,
}

/// A route's tree of path segments; see the module doc.
#[derive(Debug, Default, Clone)]
pub struct Learner {
    root: Node,
    nodes: usize,
    bytes: usize,
}

impl Learner {
    /// Count `path` and return its template.
    pub fn learn(&mut self, path: &str) -> Learned {
        let path = bare(path);
        let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
        let mut out = String::with_capacity(path.len().min(256));
        let mut folded = false;
        let mut node = &mut self.root;
        node.hits += 1;
        let mut depth = 0;
        for seg in segments.by_ref() {
            out.push('/');
            depth += 1;
            if depth > MAX_DEPTH {
                out.push_str(PARAM);
                continue;
            }
            let known = node.literals.contains_key(seg);
            if !known && (node.folded || is_identifier(seg)) {
                if node.param.is_none() {
                    if self.nodes >= MAX_NODES {
                        return Learned { template: None, folded };
                    }
                    self.nodes += 1;
                    self.bytes += NODE_BYTES;
                }
                let p = node.param.get_or_insert_with(Box::default);
                if p.values.len() < MAX_DISTINCT && p.values.insert(hash(seg)) {
                    self.bytes += 16;
                }
                out.push_str(PARAM);
                node = p;
                node.hits += 1;
                continue;
            }
            if !known {
                if self.nodes >= MAX_NODES {
                    return Learned { template: None, folded };
                }
                self.nodes += 1;
                self.bytes += NODE_BYTES + seg.len();
                node.literals.insert(seg.into(), Node::default());
            }
            if let Some(child) = node.literals.get_mut(seg) {
                child.hits += 1;
            }
            if !known && node.should_fold() {
                let removed = node.fold();
                folded = true;
                self.nodes -= removed;
                self.bytes = self.bytes.saturating_sub(removed * NODE_BYTES);
                if !node.literals.contains_key(seg) {
                    out.push_str(PARAM);
                    // The literal's node, this request's hit included, is part of the parameter's.
                    let Some(p) = node.param.as_deref_mut() else { return Learned { template: None, folded } };
                    node = p;
                    continue;
                }
            }
            out.push_str(seg);
            let Some(child) = node.literals.get_mut(seg) else { return Learned { template: None, folded } };
            node = child;
        }
        if out.is_empty() {
            out.push('/');
        }
        Learned { template: Some(out), folded }
    }

    /// The template a path (or an earlier template) has now, without counting it: what an
    /// endpoint named before a fold is called after it.
    pub fn resolve(&self, template: &str) -> String {
        let template = bare(template);
        let mut out = String::with_capacity(template.len());
        let mut node = Some(&self.root);
        for seg in template.strip_prefix('/').unwrap_or(template).split('/') {
            out.push('/');
            let Some(n) = node else {
                out.push_str(seg);
                continue;
            };
            match n.literals.get_key_value(seg) {
                Some((lit, child)) => {
                    out.push_str(lit);
                    node = Some(child);
                }
                None if n.param.is_some() => {
                    out.push_str(PARAM);
                    node = n.param.as_deref();
                }
                None => {
                    out.push_str(seg);
                    node = None;
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// For each `{id}` of `template`, how many distinct values it was inferred from (at most
    /// [`MAX_DISTINCT`]: then at least that many).
    pub fn distinct_values(&self, template: &str) -> Vec<u64> {
        let mut out = Vec::new();
        let mut node = Some(&self.root);
        for seg in template.strip_prefix('/').unwrap_or(template).split('/') {
            let Some(n) = node else { break };
            if seg == PARAM {
                node = n.param.as_deref();
                out.push(node.map_or(0, |p| p.values.len() as u64));
            } else {
                node = n.literals.get(seg);
            }
        }
        out
    }

    /// Estimated heap bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no more nodes can be added.
    pub fn is_full(&self) -> bool {
        self.nodes >= MAX_NODES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_fold_and_words_stay() {
        assert_eq!(infer("/orders/123/items/9f8e7d6c5b4a39281706"), "/orders/{id}/items/{id}");
        assert_eq!(infer("/users/3f2504e0-4f89-11d3-9a0c-0305e82c3301"), "/users/{id}");
        assert_eq!(infer("/charges/ch_3NQx8vLkdIwHu7ix0abcDEF"), "/charges/{id}");
        assert_eq!(infer("/files/01HGW2N7QX3M5K8ZJ4R6T9V0YB/raw?x=1"), "/files/{id}/raw");
        assert_eq!(infer("/people/ann@example.com"), "/people/{id}");
        assert_eq!(infer("/reports/2026-12-05/summary"), "/reports/{id}/summary");
        assert_eq!(infer("/search"), "/search");
        assert_eq!(infer("/v2/orders/latest"), "/v2/orders/latest", "short words and versions are not ids");
        assert_eq!(infer("/internationalization-settings"), "/internationalization-settings", "no digits");
        assert_eq!(infer("/"), "/");
        assert_eq!(infer(""), "/");
    }

    #[test]
    fn declared_templates_win_and_are_validated() {
        let declared = [Template::parse("/orders/{order}").expect("valid"), Template::parse("/search").expect("valid")];
        assert_eq!(endpoint("GET", "/orders/abc", &declared), "GET /orders/{order}", "a word as an id");
        assert_eq!(endpoint("GET", "/search?q=1", &declared), "GET /search");
        assert_eq!(endpoint("GET", "/orders/abc/items", &declared), "GET /orders/abc/items");
        assert_eq!(endpoint("POST", "/orders/7/items", &declared), "POST /orders/{id}/items");
        assert!(!declared[0].matches("/orders/"), "a parameter needs a segment");
        assert!(Template::parse("orders").is_err());
        assert!(Template::parse("/orders/{}").is_err());
        assert!(Template::parse("/orders/id-{id}").is_err());
    }

    fn slug(i: usize) -> String {
        char::from(b'a' + (i % 26) as u8).to_string().repeat(i / 26 + 1)
    }

    /// Real-world id shapes that no segment rule knows fold by cardinality; the literals beside
    /// them stay, and the template never splits again.
    #[test]
    fn ids_of_any_shape_fold_by_cardinality_and_repeating_literals_stay() {
        type Shape = (&'static str, fn(usize) -> String);
        let shapes: [Shape; 5] = [
            ("/posts/{id}", |i| format!("/posts/cooking-{}-{}", ["eggs", "rice", "beans", "corn"][i % 4], slug(i))),
            ("/b64/{id}", |i| {
                format!("/b64/{}==", ["QUJD", "REVG", "R0hJ", "SktM"][i % 4].repeat(i % 7 + 1) + &"x".repeat(i))
            }),
            ("/url/{id}", |i| format!("/url/aB-_{}", "cD".repeat(i + 1))),
            ("/hash/{id}", |i| format!("/hash/AbCdEf{}", "Gh".repeat(i + 1))),
            ("/tags/{id}", |i| format!("/tags/t{}", slug(i))),
        ];
        for (want, make) in shapes {
            let mut l = Learner::default();
            for _ in 0..50 {
                assert_eq!(l.learn("/posts/latest").template.as_deref().map(|t| t.starts_with("/posts")), Some(true));
            }
            let mut last = String::new();
            for i in 0..40 {
                last = l.learn(&make(i)).template.expect("room");
            }
            assert_eq!(last, want, "{}", make(39));
            assert_eq!(l.resolve(&make(3)), want, "an early value is now under the template too");
            assert_eq!(
                l.learn("/posts/latest").template.as_deref(),
                Some("/posts/latest"),
                "a repeating literal stays"
            );
            assert_eq!(l.learn(&format!("{}/x", make(100))).template.expect("room"), format!("{want}/x"), "no split");
            assert!(l.distinct_values(want)[0] >= 38, "{:?}", l.distinct_values(want));
        }
    }

    #[test]
    fn a_few_literals_never_fold() {
        let mut l = Learner::default();
        for round in 0..30 {
            for r in ["users", "orders", "search", "v2", "health", "me"] {
                assert_eq!(l.learn(&format!("/{r}?round={round}")).template.expect("room"), format!("/{r}"));
            }
        }
        for i in 0..12 {
            assert_eq!(l.learn(&format!("/users/name{i}x")).template.expect("room"), format!("/users/name{i}x"));
        }
        assert_eq!(l.learn("/users/123").template.expect("room"), "/users/{id}", "numbers at once");
    }

    #[test]
    fn the_tree_is_bounded() {
        let mut l = Learner::default();
        let mut none = 0;
        for i in 0..(MAX_NODES * 2) {
            // Each parent sees two values only: nothing folds.
            let p = format!("/p{}/{}", i / 2, if i % 2 == 0 { "a" } else { "b" });
            if l.learn(&p).template.is_none() {
                none += 1;
            }
        }
        assert!(l.is_full() && none > 0);
        assert!(l.bytes() < MAX_NODES * (NODE_BYTES + MAX_SEGMENT + 16), "{}", l.bytes());
        let deep = "/a".repeat(100);
        let mut l = Learner::default();
        let t = l.learn(&deep).template.expect("room");
        assert_eq!(t.matches(PARAM).count(), 100 - MAX_DEPTH);
        let long = format!("/x/{}", "y".repeat(10_000));
        assert_eq!(l.learn(&long).template.as_deref(), Some("/x/{id}"));
    }
}
