//! Arbitrary input never panics and always ends in a usable result or a clear error: the config
//! loader and validator, the weight written back to a file, and the admin API's JSON input.

use std::path::Path;

use proptest::prelude::*;
use strangler::admin::server::parse_weight_body;
use strangler::config::{load_str, persist, Percent};

const BASE: &str = include_str!("../conf/strangler.toml");

/// Values a typo or a bad edit can leave after `key = `.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}").replace("NaN", "nan")),
        "\"[ -~]{0,12}\"",
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{ cookie = \"\" }".to_string()),
        "[ -~]{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any value on any line of the reference config: loaded, or refused with every problem
    /// naming the file, and one of them naming the key that was edited.
    #[test]
    fn any_value_on_any_key_is_loaded_or_refused_clearly(line in 0usize..400, v in value()) {
        let lines: Vec<&str> = BASE.lines().collect();
        let i = line % lines.len();
        let mut key = None;
        let edited: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(n, l)| match l.split_once(" = ") {
                Some((k, _)) if n == i && !l.starts_with('#') => {
                    key = Some(k.trim().to_string());
                    format!("{k} = {v}")
                }
                _ => l.to_string(),
            })
            .collect();
        if let Err(e) = load_str(&edited.join("\n"), Path::new("conf/x.toml")) {
            prop_assert!(!e.problems.is_empty());
            for l in e.to_string().lines() {
                prop_assert!(l.starts_with("conf/x.toml"), "{}", l);
            }
            // The unedited file is valid, so the edit is what is wrong: say where.
            let key = key.expect("only an edited file can be refused");
            let named = e.problems.iter().any(|p| p.key.split('.').any(|part| part.split('[').next() == Some(key.as_str())));
            prop_assert!(named, "no problem names the edited key {:?}:\n{}", key, e);
        }
    }

    /// Any text at all.
    #[test]
    fn any_text_is_loaded_or_refused(text in "[ -~\n\\[\\]=\"]{0,300}") {
        if let Err(e) = load_str(&text, Path::new("f.toml")) {
            prop_assert!(!e.problems.is_empty());
        }
    }

    /// A weight written back reads back the same, and changes exactly one line.
    #[test]
    fn a_written_weight_reads_back_and_changes_one_line(w in 0u32..=10_000) {
        let percent = f64::from(w) / 100.0;
        let out = persist::set_weight(BASE, Path::new("f.toml"), "orders", percent).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cfg = load_str(&out, Path::new("f.toml")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(cfg.route("orders").map(|r| r.weight.hundredths()), Some(w));
        let changed = BASE.lines().zip(out.lines()).filter(|(a, b)| a != b).count();
        prop_assert_eq!(changed, usize::from(w != 1000));
        prop_assert_eq!(BASE.lines().count(), out.lines().count());
    }

    /// The weight endpoint's body: a percent is taken exactly as `Percent::parse` takes it,
    /// anything else is refused with a reason.
    #[test]
    fn a_weight_body_is_taken_exactly_or_refused_with_a_reason(
        percent in prop_oneof![-50.0f64..150.0, (0u32..=10_000).prop_map(|h| f64::from(h) / 100.0)],
        junk in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let body = format!(r#"{{"percent": {percent}}}"#);
        match (parse_weight_body(body.as_bytes()), Percent::parse(percent, "weights")) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (Err(msg), Err(_)) => prop_assert!(!msg.is_empty()),
            (got, want) => prop_assert!(false, "{} gave {:?}, Percent::parse {:?}", body, got, want),
        }
        if serde_json::from_slice::<serde_json::Value>(&junk).is_err() {
            prop_assert!(parse_weight_body(&junk).is_err_and(|msg| !msg.is_empty()));
        }
    }

    #[test]
    fn every_valid_percent_is_taken_exactly(w in 0u32..=10_000) {
        let body = format!("{{\"percent\": {}}}", f64::from(w) / 100.0);
        prop_assert_eq!(parse_weight_body(body.as_bytes()).map(|p| p.hundredths()), Ok(w));
    }
}
