//! Structural JSON diff: object key order is irrelevant, array order is relevant, and numbers
//! compare by value (`1` equals `1.0`; `"1"` does not equal `1`).

use serde_json::{Number, Value};

use super::matchers::{judge, MatchKind};
use super::path::{render, JsonPath, Step};

/// How the value at a path is compared: `None` for plain equality, else a matcher's rule
/// (`ignore_json_paths` are [`MatchKind::Ignore`]).
pub type RuleFor<'f> = &'f dyn for<'p, 's> Fn(&'p [Step<'s>]) -> Option<&'f MatchKind>;

/// One differing value. `None` means the value is absent on that side.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// `$.items[3].price`
    pub path: String,
    /// The same path with indices generalised (`$.items[*].price`), for noise learning.
    pub general: JsonPath,
    pub legacy: Option<Value>,
    pub new: Option<Value>,
}

/// Differences between `legacy` and `new`, at most `limit` of them (the second value says whether
/// more were cut). Where `rule` has a matcher for a path, it decides for the whole subtree: an
/// ignored path is skipped, one its matcher refuses is reported as one difference.
pub fn diff(legacy: &Value, new: &Value, rule: RuleFor, limit: usize) -> (Vec<Found>, bool) {
    let mut w = Walk { path: Vec::new(), rule, out: Vec::new(), limit, truncated: false };
    w.walk(Some(legacy), Some(new));
    (w.out, w.truncated)
}

pub(super) struct Walk<'a, 'f> {
    pub(super) path: Vec<Step<'a>>,
    pub(super) rule: RuleFor<'f>,
    pub(super) out: Vec<Found>,
    pub(super) limit: usize,
    pub(super) truncated: bool,
}

impl<'a> Walk<'a, '_> {
    pub(super) fn walk(&mut self, a: Option<&'a Value>, b: Option<&'a Value>) {
        if let Some(kind) = (self.rule)(&self.path) {
            match judge(kind, a, b) {
                Some(true) => return,
                Some(false) => return self.report(a, b),
                None => {}
            }
        }
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                for (k, v) in x {
                    self.step(Step::Key(k), Some(v), y.get(k));
                }
                for (k, v) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                    self.step(Step::Key(k), None, Some(v));
                }
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) => {
                for i in 0..x.len().max(y.len()) {
                    self.step(Step::Index(i), x.get(i), y.get(i));
                }
            }
            (Some(Value::Number(x)), Some(Value::Number(y))) if numbers_equal(x, y) => {}
            (Some(x), Some(y)) if x == y => {}
            (None, None) => {}
            _ => self.report(a, b),
        }
    }

    fn step(&mut self, s: Step<'a>, a: Option<&'a Value>, b: Option<&'a Value>) {
        if self.truncated {
            return;
        }
        self.path.push(s);
        self.walk(a, b);
        self.path.pop();
    }

    fn report(&mut self, a: Option<&Value>, b: Option<&Value>) {
        if self.out.len() >= self.limit {
            self.truncated = true;
            return;
        }
        self.out.push(Found {
            path: render(&self.path),
            general: JsonPath::generalise(&self.path),
            legacy: a.cloned(),
            new: b.cloned(),
        });
    }
}

pub(super) fn numbers_equal(x: &Number, y: &Number) -> bool {
    match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
        (Some(a), Some(b), _, _) => a == b,
        (_, _, Some(a), Some(b)) => a == b,
        _ => x.as_f64() == y.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(a: Value, b: Value, ignore: &[&str]) -> Vec<String> {
        let ignore: Vec<JsonPath> = ignore.iter().map(|p| JsonPath::parse(p).expect("pattern")).collect();
        let ignored = |p: &[Step]| ignore.iter().any(|i| i.matches(p)).then_some(&MatchKind::Ignore);
        diff(&a, &b, &ignored, 100).0.into_iter().map(|f| f.path).collect()
    }

    #[test]
    fn key_order_is_irrelevant_array_order_is_not() {
        assert!(paths(json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1}), &[]).is_empty());
        assert_eq!(paths(json!({"l": [1, 2]}), json!({"l": [2, 1]}), &[]), ["$.l[0]", "$.l[1]"]);
    }

    #[test]
    fn numbers_compare_by_value_but_types_matter() {
        assert!(paths(json!({"n": 1}), json!({"n": 1.0}), &[]).is_empty());
        assert_eq!(paths(json!({"n": 1}), json!({"n": "1"}), &[]), ["$.n"]);
        assert_eq!(paths(json!({"n": 1}), json!({"n": 1.5}), &[]), ["$.n"]);
        assert!(paths(json!(u64::MAX), json!(u64::MAX), &[]).is_empty());
    }

    #[test]
    fn reports_each_differing_path_and_missing_keys() {
        let legacy = json!({"items": [{"price": 10, "id": 1}, {"price": 5, "id": 2}], "total": 15});
        let new = json!({"items": [{"price": 10, "id": 1}, {"price": 6, "id": 2}], "amount": 15});
        let found = diff(&legacy, &new, &|_| None, 100).0;
        let got: Vec<(&str, Option<&Value>, Option<&Value>)> =
            found.iter().map(|f| (f.path.as_str(), f.legacy.as_ref(), f.new.as_ref())).collect();
        assert_eq!(
            got,
            [
                ("$.items[1].price", Some(&json!(5)), Some(&json!(6))),
                ("$.total", Some(&json!(15)), None),
                ("$.amount", None, Some(&json!(15))),
            ]
        );
        assert_eq!(found[0].general.to_string(), "$.items[*].price");
    }

    #[test]
    fn ignored_paths_skip_whole_subtrees_with_wildcards() {
        let a = json!({"meta": {"at": 1, "x": 1}, "items": [{"etag": "a", "v": 1}, {"etag": "b", "v": 2}]});
        let b = json!({"meta": {"at": 2, "x": 2}, "items": [{"etag": "c", "v": 1}, {"etag": "d", "v": 3}]});
        assert_eq!(paths(a.clone(), b.clone(), &["$.meta", "$.items[*].etag"]), ["$.items[1].v"]);
        assert_eq!(paths(a, b, &["$.meta.at", "$.items[0].etag"]), ["$.items[1].etag", "$.items[1].v", "$.meta.x"]);
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z.\\[\\]\"]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z.\\[\\]\"]{0,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any two documents: no panic, a document never differs from itself, every reported
        /// path names a value that really differs, and swapping the sides swaps the report.
        #[test]
        fn any_documents_compare_consistently(a in arb_json(), b in arb_json()) {
            proptest::prop_assert!(diff(&a, &a, &|_| None, 1000).0.is_empty());
            let (ab, _) = diff(&a, &b, &|_| None, 1000);
            let (ba, _) = diff(&b, &a, &|_| None, 1000);
            proptest::prop_assert_eq!(ab.len(), ba.len());
            for f in &ab {
                proptest::prop_assert!(f.legacy != f.new, "{} reported with equal values", f.path);
                proptest::prop_assert!(JsonPath::parse(&f.path).is_ok(), "{} does not parse back", f.path);
                let back = ba.iter().find(|g| g.path == f.path);
                proptest::prop_assert!(back.is_some_and(|g| g.legacy == f.new && g.new == f.legacy));
            }
            if ab.is_empty() {
                proptest::prop_assert!(diff(&b, &a, &|_| None, 1000).0.is_empty());
            }
        }
    }

    #[test]
    fn stops_at_the_limit() {
        let a = json!((0..10).collect::<Vec<_>>());
        let b = json!((10..20).collect::<Vec<_>>());
        let (found, truncated) = diff(&a, &b, &|_| None, 3);
        assert_eq!(found.len(), 3);
        assert!(truncated);
    }
}
