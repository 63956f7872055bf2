//! Endpoints: what a compared request is counted under, its method and a path template.
//! Templates are declared per route (`[routes.compare] endpoints`) or inferred: a path segment
//! that looks like an identifier (a number, a UUID, long hex, a long base64-like token) becomes
//! `{id}`, so `/orders/123/items/9f8e7d6c5b4a39281706` is `/orders/{id}/items/{id}`.

use std::fmt;

/// Where requests go once a route has `max_endpoints` templates.
pub const OTHER: &str = "{other}";

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

/// The template of a path no declared template matches: identifier-like segments become `{id}`.
pub fn infer(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_identifier(seg) { "{id}" } else { seg });
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// A number, a UUID, 16+ hex digits, or a token of 20+ letters, digits, `-` and `_` with both
/// letters and digits in it (base64url ids, ULIDs, Stripe-style `ch_3N...`).
fn is_identifier(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let uuid = b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() });
    if uuid || (b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit)) {
        return true;
    }
    b.len() >= 20
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'='))
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
}

/// The endpoint a request is counted under: `METHOD TEMPLATE`, the first declared template that
/// matches winning over an inferred one.
pub fn endpoint(method: &str, path: &str, declared: &[Template]) -> String {
    let bare = path.split(['?', '#']).next().unwrap_or("/");
    match declared.iter().find(|t| t.matches(bare)) {
        Some(t) => format!("{method} {t}"),
        None => format!("{method} {}", infer(bare)),
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
}
