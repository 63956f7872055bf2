//! The split's guarantees, through the real side choice (`choose_side`) on routes loaded from
//! config text: cohort stability over any ramp history, the same answer everywhere (pinned
//! vectors), the 0% and 100% shortcuts, and the override's precedence.

use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use strangler::config::load_str;
use strangler::config::model::{Route, Side, WEIGHT_SCALE};
use strangler::route::split::bucket;
use strangler::route::{choose_side, Choice, Decision};

/// Route `name` at `weight` (hundredths of a percent), sticky on `x-user-id`, with an override
/// header that needs token `t`.
fn route(name: &str, weight: u32) -> Arc<Route> {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n[admin]\nlisten = \"127.0.0.1:2\"\n\
         [upstreams.l]\naddresses = [\"127.0.0.1:3\"]\n[upstreams.n]\naddresses = [\"127.0.0.1:4\"]\n\
         [[routes]]\nname = \"{name}\"\nlegacy = \"l\"\nnew = \"n\"\nweight = {}.{:02}\n\
         sticky = {{ header = \"x-user-id\" }}\noverride = {{ header = \"x-target\", token = \"t\" }}\n",
        weight / 100,
        weight % 100
    );
    let config = load_str(&text, Path::new("split.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.routes[0].clone()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("a header value"));
    }
    h
}

fn side_of(route: &Route, key: &str) -> Side {
    choose_side(route, &headers(&[("x-user-id", key)]), None).side
}

/// Pinned: the side of a key at a weight, end to end. The bucket is xxh3-64 of `route \0 key`
/// mod 10000 (values computed independently with Python's `xxhash.xxh3_64_intdigest`): a key
/// is on new once the weight passes its bucket. If this fails, every sticky user would be
/// reshuffled on upgrade, or two versions of a fleet would disagree.
#[test]
fn the_same_key_gets_the_same_side_in_every_version() {
    for (name, key, bucket_value) in
        [("orders", "user-1", 396), ("orders", "user-2", 875), ("checkout", "sid-abc123", 7282), ("orders", "", 5016)]
    {
        assert_eq!(bucket(name, key.as_bytes()), bucket_value, "{name}/{key}");
        if key.is_empty() {
            continue; // an empty key is no key: a random draw decides
        }
        assert_eq!(side_of(&route(name, bucket_value), key), Side::Legacy, "{name}/{key} at its bucket");
        assert_eq!(side_of(&route(name, bucket_value + 1), key), Side::New, "{name}/{key} just past its bucket");
    }
}

/// Weights as a ramp visits them: anywhere, with the two ends often.
fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0), 1 => Just(WEIGHT_SCALE), 6 => 0..=WEIGHT_SCALE]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Over any history of weight changes: a raise never moves a key from new to legacy, and a
    /// cut moves back only keys that joined new no earlier than every key that stays.
    #[test]
    fn cohorts_hold_over_any_ramp(name in "[a-z0-9-]{1,12}", keys in prop::collection::vec("[a-z0-9]{1,16}", 1..40),
                                  history in prop::collection::vec(weight(), 2..8)) {
        let mut on_new: Vec<bool> = vec![false; keys.len()];
        // When each key last moved to new (a step index).
        let mut joined: Vec<usize> = vec![0; keys.len()];
        let mut previous = 0;
        for (step, w) in history.iter().enumerate() {
            let r = route(&name, *w);
            let now: Vec<bool> = keys.iter().map(|k| side_of(&r, k) == Side::New).collect();
            if *w >= previous {
                for (k, (was, is)) in on_new.iter().zip(&now).enumerate() {
                    prop_assert!(!*was || *is, "raising {previous} -> {w} moved {} back to legacy", keys[k]);
                }
            } else {
                let left = (0..keys.len()).filter(|k| on_new[*k] && !now[*k]).map(|k| joined[k]).min();
                let stayed = (0..keys.len()).filter(|k| on_new[*k] && now[*k]).map(|k| joined[k]).max();
                if let (Some(left), Some(stayed)) = (left, stayed) {
                    prop_assert!(stayed <= left, "cutting {previous} -> {w}: a key that joined at step {left} left, one that joined at step {stayed} stayed");
                }
            }
            for k in 0..keys.len() {
                if now[k] && !on_new[k] {
                    joined[k] = step;
                }
            }
            if *w == 0 {
                prop_assert!(now.iter().all(|n| !n), "0% sends nothing to new");
            }
            if *w == WEIGHT_SCALE {
                prop_assert!(now.iter().all(|n| *n), "100% sends everything to new");
            }
            on_new = now;
            previous = *w;
        }
    }

    /// A valid override wins over the weight and the sticky key; a wrong token or value is
    /// refused (and said so) and the sticky key decides as if there were no override.
    #[test]
    fn the_override_wins_only_with_its_token(key in "[a-z0-9]{1,16}", w in weight(), forced in prop::bool::ANY) {
        let r = route("orders", w);
        let (want, value) = if forced { (Side::New, "new;token=t") } else { (Side::Legacy, "legacy; token=t") };
        let choice = choose_side(&r, &headers(&[("x-user-id", &key), ("x-target", value)]), None);
        prop_assert_eq!(choice, Choice { side: want, decision: Decision::Override, override_rejected: false });

        let sticky = side_of(&r, &key);
        for bad in ["new", "new;token=x", "legacy;token=", "sideways;token=t"] {
            let choice = choose_side(&r, &headers(&[("x-user-id", &key), ("x-target", bad)]), None);
            prop_assert_eq!(choice.side, sticky, "{}", bad);
            prop_assert!(choice.override_rejected, "{} must be counted as refused", bad);
            prop_assert_eq!(choice.decision, Decision::Sticky);
        }
    }
}

/// Buckets spread evenly: at 10% about 10% of many keys land on new.
#[test]
fn keys_spread_evenly() {
    let r = route("orders", 1000);
    let on_new = (0..100_000).filter(|i| side_of(&r, &format!("user-{i}")) == Side::New).count();
    assert!((9_500..10_500).contains(&on_new), "{on_new} of 100000 at 10%");
}
