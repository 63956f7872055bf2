//! Noise: fields that differ between two answers of the *same* side (timestamps, request ids,
//! random tokens). Learned per route, never from a legacy/new pair, and ignored from then on.

use std::collections::BTreeMap;

use super::path::{JsonPath, Step};
use crate::api::{Field, NoiseField};

/// A route's learned noise, with how many times each field was seen differing.
#[derive(Debug, Clone, Default)]
pub struct Noise {
    headers: BTreeMap<String, u64>,
    paths: BTreeMap<JsonPath, u64>,
}

impl Noise {
    pub fn ignores_header(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    pub fn ignores_path(&self, path: &[Step]) -> bool {
        self.paths.keys().any(|p| p.matches(path))
    }

    /// Count a sighting of each field; returns how many were not known before.
    pub fn learn(&mut self, headers: Vec<String>, paths: Vec<JsonPath>) -> usize {
        let before = self.len();
        for h in headers {
            *self.headers.entry(h).or_insert(0) += 1;
        }
        for p in paths {
            *self.paths.entry(p).or_insert(0) += 1;
        }
        self.len() - before
    }

    pub fn len(&self) -> usize {
        self.headers.len() + self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every learned field, with its count: headers first, then JSON paths.
    pub fn fields(&self) -> Vec<NoiseField> {
        let headers = self.headers.iter().map(|(h, n)| NoiseField { field: Field::Header(h.clone()), seen: *n });
        let paths = self.paths.iter().map(|(p, n)| NoiseField { field: Field::Json(p.to_string()), seen: *n });
        headers.chain(paths).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_fields_are_counted_and_generalised_paths_match_every_index() {
        let mut n = Noise::default();
        let at = JsonPath::parse("$.items[*].id").expect("path");
        assert_eq!(n.learn(vec!["x-request-id".into()], vec![at.clone()]), 2);
        assert_eq!(n.learn(vec!["x-request-id".into()], vec![at]), 0);
        assert!(n.ignores_header("x-request-id"));
        assert!(n.ignores_path(&[Step::Key("items"), Step::Index(9), Step::Key("id")]));
        assert!(!n.ignores_path(&[Step::Key("items"), Step::Index(9), Step::Key("price")]));
        let fields: Vec<(String, u64)> = n.fields().into_iter().map(|f| (f.field.to_string(), f.seen)).collect();
        assert_eq!(fields, [("header:x-request-id".to_string(), 2), ("json:$.items[*].id".to_string(), 2)]);
    }
}
