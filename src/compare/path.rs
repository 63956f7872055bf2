//! JSON paths: the concrete path of a value inside a document (`$.items[3].price`) and the
//! patterns that ignore some of them (`$.items[*].etag`).

use std::fmt;

/// One step of a concrete path, borrowed from the document being walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// One step of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatStep {
    Key(String),
    Index(usize),
    /// `[*]`: any array index.
    AnyIndex,
}

/// A parsed `ignore_json_paths` entry, or a learned noise field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath(Vec<PatStep>);

impl JsonPath {
    /// Parse `$`, `$.a.b`, `$.items[3]`, `$.items[*].id`, `$["key with.dots"]`.
    pub fn parse(s: &str) -> Result<JsonPath, String> {
        let rest = s.strip_prefix('$').ok_or("must start with '$', e.g. \"$.meta.generated_at\"")?;
        let bytes = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let start = i + 1;
                    let end = rest[start..].find(['.', '[']).map_or(rest.len(), |n| start + n);
                    if end == start {
                        return Err(format!("has an empty key at offset {}", start + 1));
                    }
                    steps.push(PatStep::Key(rest[start..end].to_string()));
                    i = end;
                }
                b'[' if bytes.get(i + 1) == Some(&b'"') => {
                    // A quoted key, escaped as a JSON string: find its closing quote.
                    let start = i + 1;
                    let mut j = start + 1;
                    while j < bytes.len() && bytes[j] != b'"' {
                        j += if bytes[j] == b'\\' { 2 } else { 1 };
                    }
                    if bytes.get(j + 1) != Some(&b']') {
                        return Err("has a quoted key without its closing \"]".to_string());
                    }
                    let key: String = serde_json::from_str(&rest[start..=j])
                        .map_err(|_| "has a quoted key that is not a valid JSON string".to_string())?;
                    steps.push(PatStep::Key(key));
                    i = j + 2;
                }
                b'[' => {
                    let close = rest[i..].find(']').map(|n| i + n).ok_or("has a '[' without its ']'")?;
                    let inner = &rest[i + 1..close];
                    let step = if inner == "*" {
                        PatStep::AnyIndex
                    } else {
                        inner.parse().map(PatStep::Index).map_err(|_| {
                            format!("has [{inner}]; use an array index like [3], [*] for any index, or [\"key\"]")
                        })?
                    };
                    steps.push(step);
                    i = close + 1;
                }
                _ => return Err("expected '.key' or '[index]' after '$'".to_string()),
            }
        }
        Ok(JsonPath(steps))
    }

    pub fn steps(&self) -> impl Iterator<Item = &PatStep> {
        self.0.iter()
    }

    /// The key names along this path.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|s| match s {
            PatStep::Key(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// Whether this pattern names `other` (a concrete path) or one of its ancestors.
    pub fn covers(&self, other: &JsonPath) -> bool {
        self.0.len() <= other.0.len()
            && self.0.iter().zip(&other.0).all(|(p, s)| match (p, s) {
                (PatStep::Key(a), PatStep::Key(b)) => a == b,
                (PatStep::Index(i), PatStep::Index(j)) => i == j,
                (PatStep::AnyIndex, PatStep::Index(_) | PatStep::AnyIndex) => true,
                _ => false,
            })
    }

    /// Does this pattern name exactly the value at `path`?
    pub fn matches(&self, path: &[Step]) -> bool {
        self.0.len() == path.len()
            && self.0.iter().zip(path).all(|(p, s)| match (p, s) {
                (PatStep::Key(k), Step::Key(s)) => k == s,
                (PatStep::Index(i), Step::Index(j)) => i == j,
                (PatStep::AnyIndex, Step::Index(_)) => true,
                _ => false,
            })
    }

    /// This pattern with every array index replaced by `[*]`.
    pub fn generalised(&self) -> JsonPath {
        JsonPath(
            self.0
                .iter()
                .map(|s| match s {
                    PatStep::Index(_) => PatStep::AnyIndex,
                    other => other.clone(),
                })
                .collect(),
        )
    }

    /// The pattern for `path` with every array index replaced by `[*]`, so noise learned on
    /// `$.items[3].id` covers every item.
    pub fn generalise(path: &[Step]) -> JsonPath {
        JsonPath(
            path.iter()
                .map(|s| match s {
                    Step::Key(k) => PatStep::Key(k.to_string()),
                    Step::Index(_) => PatStep::AnyIndex,
                })
                .collect(),
        )
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn write_key(f: &mut fmt::Formatter<'_>, k: &str) -> fmt::Result {
    if is_plain_key(k) {
        write!(f, ".{k}")
    } else {
        // Escaped as a JSON string, so any key reads back.
        write!(f, "[{}]", serde_json::Value::from(k))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for s in &self.0 {
            match s {
                PatStep::Key(k) => write_key(f, k)?,
                PatStep::Index(i) => write!(f, "[{i}]")?,
                PatStep::AnyIndex => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

/// A concrete path as text: `$.items[3].price`.
pub fn render(path: &[Step]) -> String {
    struct Path<'a, 'b>(&'a [Step<'b>]);
    impl fmt::Display for Path<'_, '_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("$")?;
            for s in self.0 {
                match s {
                    Step::Key(k) => write_key(f, k)?,
                    Step::Index(i) => write!(f, "[{i}]")?,
                }
            }
            Ok(())
        }
    }
    Path(path).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for s in ["$", "$.a.b", "$.items[3].price", "$.items[*].etag", "$[\"a.b\"].c", r#"$["]\"x"][0]"#] {
            assert_eq!(JsonPath::parse(s).map(|p| p.to_string()), Ok(s.to_string()), "{s}");
        }
        for bad in ["a.b", "$.", "$..a", "$.a[x]", "$.a[1", "$a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn wildcards_match_any_index_only() {
        let p = JsonPath::parse("$.items[*].etag").expect("valid");
        assert!(p.matches(&[Step::Key("items"), Step::Index(7), Step::Key("etag")]));
        assert!(!p.matches(&[Step::Key("items"), Step::Key("7"), Step::Key("etag")]));
        assert!(!p.matches(&[Step::Key("items"), Step::Index(7)]));
    }

    #[test]
    fn generalising_replaces_indices() {
        let path = [Step::Key("items"), Step::Index(3), Step::Key("id")];
        assert_eq!(JsonPath::generalise(&path).to_string(), "$.items[*].id");
        assert_eq!(render(&path), "$.items[3].id");
    }
}
