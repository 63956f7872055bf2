//! The split's guarantees, on the library: cohort stability and the same answer everywhere.

use proptest::prelude::*;
use strangler::config::model::{Side, WEIGHT_SCALE};
use strangler::route::split::{bucket, side_for_bucket};

/// Pinned buckets: xxh3-64 of `route \0 key`, mod 10000. These values were computed independently
/// (Python's `xxhash.xxh3_64_intdigest`); if this test fails, the hash changed and every sticky
/// user would be reshuffled on upgrade.
#[test]
fn bucket_is_xxh3_of_route_nul_key_mod_10000() {
    assert_eq!(bucket("orders", b"user-1"), 396);
    assert_eq!(bucket("orders", b"user-2"), 875);
    assert_eq!(bucket("checkout", b"sid-abc123"), 7282);
    assert_eq!(bucket("orders", b""), 5016);
}

proptest! {
    /// Raising the weight never moves a key from new back to legacy.
    #[test]
    fn raising_the_weight_never_moves_a_key_back(route in "[a-z0-9-]{1,20}", key in prop::collection::vec(any::<u8>(), 0..64),
                                                 w1 in 0..=WEIGHT_SCALE, w2 in 0..=WEIGHT_SCALE) {
        let (low, high) = (w1.min(w2), w1.max(w2));
        let b = bucket(&route, &key);
        if side_for_bucket(b, low) == Side::New {
            prop_assert_eq!(side_for_bucket(b, high), Side::New);
        }
    }

    /// Lowering the weight moves back only the keys that joined most recently: every key that
    /// leaves `new` joined after every key that stays.
    #[test]
    fn lowering_the_weight_moves_back_the_newest_keys_first(route in "[a-z0-9-]{1,12}", keys in prop::collection::vec("[a-z0-9]{1,16}", 1..60),
                                                            high in 1..=WEIGHT_SCALE, cut in 0..=WEIGHT_SCALE) {
        let low = cut.min(high);
        // The weight at which a key joins `new` is its bucket + 1.
        let joined = |k: &String| bucket(&route, k.as_bytes()) + 1;
        let stays: Vec<u32> = keys.iter().filter(|k| joined(k) <= low).map(joined).collect();
        let leaves: Vec<u32> = keys.iter().filter(|k| joined(k) > low && joined(k) <= high).map(joined).collect();
        if let (Some(latest_staying), Some(earliest_leaving)) = (stays.iter().max(), leaves.iter().min()) {
            prop_assert!(latest_staying < earliest_leaving);
        }
        for k in &keys {
            let b = bucket(&route, k.as_bytes());
            prop_assert_eq!(side_for_bucket(b, low) == Side::New, joined(k) <= low);
        }
    }

    /// The side depends only on (route, key, weight): recomputing gives the same answer, and the
    /// bucket is always in range.
    #[test]
    fn the_side_is_a_pure_function(route in "[a-z0-9-]{1,20}", key in ".{0,40}", w in 0..=WEIGHT_SCALE) {
        let b = bucket(&route, key.as_bytes());
        prop_assert!(b < WEIGHT_SCALE);
        prop_assert_eq!(b, bucket(&route, key.as_bytes()));
        prop_assert_eq!(side_for_bucket(b, w), side_for_bucket(bucket(&route, key.as_bytes()), w));
    }
}

/// Buckets spread evenly: at 10% about 10% of many keys land on new.
#[test]
fn buckets_are_uniform_enough() {
    let on_new = (0..100_000)
        .filter(|i| side_for_bucket(bucket("orders", format!("user-{i}").as_bytes()), 1000) == Side::New)
        .count();
    assert!((9_500..10_500).contains(&on_new), "{on_new} of 100000 at 10%");
}
