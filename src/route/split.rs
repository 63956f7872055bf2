//! Choosing the side for one request.
//!
//! Order: a valid override header wins; otherwise a sticky key, when the route has one and the
//! request carries it, decides through a fixed hash; otherwise a uniform random draw.
//!
//! The sticky bucket is `xxh3_64(route name ++ "\0" ++ key) % 10000` and a key is on `new` iff
//! `bucket < weight` (weight in hundredths of a percent). This gives:
//! - cohort stability: raising the weight only adds buckets to `new`; lowering it removes the
//!   highest buckets first, i.e. the keys that joined last;
//! - the same answer on every instance and every version: xxh3 is fully specified and seedless
//!   here, unlike std's `DefaultHasher`. A fixed-vector test pins it.

use std::net::IpAddr;

use http::HeaderMap;
use rand::Rng;
use xxhash_rust::xxh3::Xxh3;

use crate::config::model::{Override, Percent, Route, Side, Sticky, WEIGHT_SCALE};

/// The bucket (0..10000) of a sticky key on a route.
pub fn bucket(route: &str, key: &[u8]) -> u32 {
    let mut h = Xxh3::new();
    h.update(route.as_bytes());
    h.update(&[0]);
    h.update(key);
    (h.digest() % u64::from(WEIGHT_SCALE)) as u32
}

/// Side for a bucket at a weight.
pub fn side_for_bucket(bucket: u32, weight: Percent) -> Side {
    if bucket < weight.hundredths() {
        Side::New
    } else {
        Side::Legacy
    }
}

/// How the side was chosen; recorded for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Override,
    Sticky,
    Random,
}

/// The chosen side, and whether an override header was present but refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub side: Side,
    pub decision: Decision,
    pub override_rejected: bool,
}

/// Choose the side for a request on `route`.
pub fn choose_side(route: &Route, headers: &HeaderMap, client_ip: Option<IpAddr>) -> Choice {
    let mut override_rejected = false;
    if let Some(ov) = &route.override_ {
        match override_side(ov, headers) {
            Some(Ok(side)) => return Choice { side, decision: Decision::Override, override_rejected },
            Some(Err(())) => override_rejected = true,
            None => {}
        }
    }
    let weight = route.weight;
    // Weights 0 and 100 need no key and no draw.
    if weight.is_zero() || weight.is_full() {
        let decision = if route.sticky.is_some() { Decision::Sticky } else { Decision::Random };
        return Choice { side: side_for_bucket(0, weight), decision, override_rejected };
    }
    if let Some(sticky) = &route.sticky {
        let found =
            with_sticky_key(sticky, headers, client_ip, |key| side_for_bucket(bucket(&route.name, key), weight));
        if let Some(side) = found {
            return Choice { side, decision: Decision::Sticky, override_rejected };
        }
    }
    let draw = rand::thread_rng().gen_range(0..WEIGHT_SCALE);
    Choice { side: side_for_bucket(draw, weight), decision: Decision::Random, override_rejected }
}

/// `None`: no override header. `Some(Err)`: present but not honoured (bad value or token).
fn override_side(ov: &Override, headers: &HeaderMap) -> Option<Result<Side, ()>> {
    let value = headers.get(&ov.header)?;
    let Ok(value) = value.to_str() else { return Some(Err(())) };
    let mut parts = value.split(';').map(str::trim);
    let side = match parts.next() {
        Some(s) if s.eq_ignore_ascii_case("legacy") => Side::Legacy,
        Some(s) if s.eq_ignore_ascii_case("new") => Side::New,
        _ => return Some(Err(())),
    };
    let given = parts.find_map(|p| p.strip_prefix("token="));
    match &ov.token {
        None => Some(Ok(side)),
        Some(expected) => match given {
            Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => Some(Ok(side)),
            _ => Some(Err(())),
        },
    }
}

/// Who a request comes from, hashed: the route's sticky key when it has one, else the client's
/// address (the first `X-Forwarded-For` entry when the peer is a trusted proxy). What noise
/// observations are weighed by, so one client counts once.
pub fn client_key(route: &Route, headers: &HeaderMap, client_ip: Option<IpAddr>, trusted: bool) -> u64 {
    let hash = |key: &[u8]| xxhash_rust::xxh3::xxh3_64(key);
    if let Some(k) = route.sticky.as_ref().and_then(|s| with_sticky_key(s, headers, client_ip, hash)) {
        return k;
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .filter(|_| trusted)
        .and_then(|v| v.as_bytes().split(|&b| b == b',').next())
        .map(<[u8]>::trim_ascii)
        .filter(|v| !v.is_empty());
    if let Some(f) = forwarded {
        return hash(f);
    }
    with_sticky_key(&Sticky::ClientIp, headers, client_ip, hash).unwrap_or(0)
}

/// Compare a secret a client gave with the expected one so that the time taken tells neither
/// how much of a guess was right nor how long the secret is: both are hashed to fixed-size
/// digests (SHA-256), compared in constant time (`subtle`).
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let (a, b) =
        (ring::digest::digest(&ring::digest::SHA256, given), ring::digest::digest(&ring::digest::SHA256, expected));
    a.as_ref().ct_eq(b.as_ref()).into()
}

/// Run `f` on the request's sticky key, if it has one; no allocation on the common paths.
fn with_sticky_key<T>(
    sticky: &Sticky,
    headers: &HeaderMap,
    client_ip: Option<IpAddr>,
    f: impl FnOnce(&[u8]) -> T,
) -> Option<T> {
    match sticky {
        Sticky::Header(name) => headers.get(name).map(|v| v.as_bytes()).filter(|v| !v.is_empty()).map(f),
        Sticky::Cookie(name) => headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
            })
            .filter(|v| !v.is_empty())
            .map(f),
        Sticky::ClientIp => client_ip.map(|ip| match ip {
            IpAddr::V4(v4) => f(&v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => f(&v4.octets()),
                None => f(&v6.octets()),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"abc") && constant_time_eq(b"", b""));
    }
}
