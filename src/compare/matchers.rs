//! Matchers: per route (optionally per endpoint), how one field is compared when plain equality
//! is the wrong question: `ignore`, a numeric `tolerance`, `unordered` arrays, `same_shape` (both
//! match a pattern), `present` (both there, any value), `case_insensitive` strings.

use std::cmp::Ordering;

use http::HeaderName;
use regex::Regex;
use serde_json::Value;

use super::path::{JsonPath, Step};

#[derive(Debug, Clone)]
pub enum MatchKind {
    Ignore,
    /// Equal when `|a - b| <= absolute` or `|a - b| <= relative% of max(|a|, |b|)`.
    Tolerance {
        absolute: f64,
        relative: f64,
    },
    /// Arrays equal as multisets: the same elements in any order.
    Unordered,
    /// Both strings match the pattern (UUIDs, timestamps).
    SameShape(Regex),
    /// Both present, whatever the values.
    Present,
    /// Strings equal ignoring case.
    CaseInsensitive,
}

#[derive(Debug, Clone)]
pub enum MatcherField {
    Header(HeaderName),
    Json(JsonPath),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub field: MatcherField,
    /// `METHOD /template` or `/template` (any method); `None`: every endpoint.
    pub endpoint: Option<String>,
    pub kind: MatchKind,
}

impl Matcher {
    /// Whether the matcher applies to requests counted under `endpoint` (`METHOD /template`).
    pub fn applies_to(&self, endpoint: &str) -> bool {
        match &self.endpoint {
            None => true,
            Some(e) if e.starts_with('/') => endpoint.split_once(' ').is_some_and(|(_, t)| t == e),
            Some(e) => e == endpoint,
        }
    }
}

/// The verdict of a matcher on two values at its path: `None` when it has no say (plain
/// comparison goes on, into the values), else whether they are equal.
pub fn judge(kind: &MatchKind, a: Option<&Value>, b: Option<&Value>) -> Option<bool> {
    match (kind, a, b) {
        (MatchKind::Ignore, _, _) => Some(true),
        (MatchKind::Present, a, b) => Some(a.is_some() && b.is_some()),
        (MatchKind::Tolerance { absolute, relative }, Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64()?, y.as_f64()?);
            let d = (x - y).abs();
            Some(d <= *absolute || d <= relative / 100.0 * x.abs().max(y.abs()))
        }
        (MatchKind::Unordered, Some(Value::Array(x)), Some(Value::Array(y))) => Some(same_elements(x, y)),
        (MatchKind::SameShape(re), Some(Value::String(x)), Some(Value::String(y))) => {
            Some(re.is_match(x) && re.is_match(y))
        }
        (MatchKind::SameShape(_), _, _) => Some(false),
        (MatchKind::CaseInsensitive, Some(Value::String(x)), Some(Value::String(y))) => {
            Some(x.to_lowercase() == y.to_lowercase())
        }
        _ => None,
    }
}

/// Two arrays with the same elements, each as often, in any order.
fn same_elements(x: &[Value], y: &[Value]) -> bool {
    if x.len() != y.len() {
        return false;
    }
    let (mut x, mut y): (Vec<&Value>, Vec<&Value>) = (x.iter().collect(), y.iter().collect());
    x.sort_by(|a, b| order(a, b));
    y.sort_by(|a, b| order(a, b));
    x.iter().zip(&y).all(|(a, b)| order(a, b) == Ordering::Equal)
}

/// A total order on JSON values, numbers by value, objects by their sorted entries.
fn order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(f64::NAN).total_cmp(&y.as_f64().unwrap_or(f64::NAN))
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            x.iter().zip(y).map(|(a, b)| order(a, b)).find(|o| o.is_ne()).unwrap_or(x.len().cmp(&y.len()))
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|a, b| a.0.cmp(b.0));
            ys.sort_by(|a, b| a.0.cmp(b.0));
            xs.iter()
                .zip(&ys)
                .map(|(a, b)| a.0.cmp(b.0).then_with(|| order(a.1, b.1)))
                .find(|o| o.is_ne())
                .unwrap_or(xs.len().cmp(&ys.len()))
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The matcher of a JSON path among `matchers` (the last one listed wins).
pub fn for_path<'m>(matchers: &'m [&'m Matcher], path: &[Step]) -> Option<&'m MatchKind> {
    matchers.iter().rev().find_map(|m| match &m.field {
        MatcherField::Json(p) if p.matches(path) => Some(&m.kind),
        _ => None,
    })
}

/// The matcher of a header among `matchers` (`name` lowercase).
pub fn for_header<'m>(matchers: &'m [&'m Matcher], name: &str) -> Option<&'m MatchKind> {
    matchers.iter().rev().find_map(|m| match &m.field {
        MatcherField::Header(h) if h.as_str() == name => Some(&m.kind),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eq(kind: &MatchKind, a: Value, b: Value) -> Option<bool> {
        judge(kind, Some(&a), Some(&b))
    }

    #[test]
    fn each_matcher_accepts_what_it_should_and_still_reports_the_rest() {
        let tol = MatchKind::Tolerance { absolute: 0.01, relative: 0.0 };
        assert_eq!(eq(&tol, json!(10.004), json!(10.0)), Some(true));
        assert_eq!(eq(&tol, json!(10.02), json!(10.0)), Some(false));
        let rel = MatchKind::Tolerance { absolute: 0.0, relative: 1.0 };
        assert_eq!(eq(&rel, json!(1000), json!(1009)), Some(true));
        assert_eq!(eq(&rel, json!(1000), json!(1011)), Some(false));
        assert_eq!(eq(&tol, json!("10"), json!(10)), None, "not numbers: compared as usual");

        let un = MatchKind::Unordered;
        assert_eq!(eq(&un, json!([1, {"a": 2}, "x"]), json!(["x", 1, {"a": 2.0}])), Some(true));
        assert_eq!(eq(&un, json!([1, 1, 2]), json!([1, 2, 2])), Some(false), "a multiset, not a set");
        assert_eq!(eq(&un, json!([1, 2]), json!([1, 2, 3])), Some(false));

        let uuid = MatchKind::SameShape(
            Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").expect("re"),
        );
        assert_eq!(
            eq(&uuid, json!("3f2504e0-4f89-11d3-9a0c-0305e82c3301"), json!("9a0c0305-e82c-3301-3f25-04e04f8911d3")),
            Some(true)
        );
        assert_eq!(eq(&uuid, json!("3f2504e0-4f89-11d3-9a0c-0305e82c3301"), json!("not-a-uuid")), Some(false));
        assert_eq!(eq(&uuid, json!(1), json!(1)), Some(false), "a number is not the shape");

        assert_eq!(eq(&MatchKind::Present, json!(1), json!("x")), Some(true));
        assert_eq!(judge(&MatchKind::Present, Some(&json!(1)), None), Some(false));

        let ci = MatchKind::CaseInsensitive;
        assert_eq!(eq(&ci, json!("Paid"), json!("PAID")), Some(true));
        assert_eq!(eq(&ci, json!("Paid"), json!("pending")), Some(false));
        assert_eq!(eq(&MatchKind::Ignore, json!(1), json!(2)), Some(true));
    }

    #[test]
    fn endpoint_scoping() {
        let m = |e: Option<&str>| Matcher {
            field: MatcherField::Json(JsonPath::parse("$.a").expect("path")),
            endpoint: e.map(String::from),
            kind: MatchKind::Present,
        };
        assert!(m(None).applies_to("GET /x"));
        assert!(m(Some("/orders/{id}")).applies_to("POST /orders/{id}"));
        assert!(!m(Some("/orders/{id}")).applies_to("GET /orders"));
        assert!(m(Some("GET /orders/{id}")).applies_to("GET /orders/{id}"));
        assert!(!m(Some("GET /orders/{id}")).applies_to("PUT /orders/{id}"));
    }
}
