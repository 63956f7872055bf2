//! The validation toolkit: a list of problems every section builder adds to, and the parsers
//! of values that several sections share (sizes, durations, percentages, addresses, names).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::units::{parse_duration, parse_size};
use super::Problem;

/// Collects problems while validating, so `check` can show all of them at once.
#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// How many problems so far: a builder compares before and after to know whether its part
    /// was valid.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// `value` when nothing was wrong, else every problem.
    pub(super) fn into_result<T>(self, value: T) -> Result<T, Vec<Problem>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }

    /// A percentage from 0 to 100 in steps of 0.01; `what` names the values in the message.
    pub(super) fn percent(&mut self, key: &str, value: f64, what: &str) -> Percent {
        Percent::parse(value, what).unwrap_or_else(|msg| {
            self.add(key, value, msg);
            Percent::ZERO
        })
    }
    pub(super) fn add(&mut self, key: impl Into<String>, value: impl std::fmt::Display, message: impl Into<String>) {
        self.0.push(Problem::new(key, Some(value.to_string()), message));
    }

    /// A size such as `"64KiB"`, above zero; `example` shows a valid one in the message.
    pub(super) fn size(&mut self, key: &str, value: &str, example: &str) -> usize {
        match parse_size(value) {
            Ok(n) if n > 0 => n,
            Ok(_) => {
                self.add(key, quote(value), format!("must be greater than zero, e.g. \"{example}\""));
                1
            }
            Err(msg) => {
                self.add(key, quote(value), msg);
                1
            }
        }
    }

    /// A duration such as `"30s"`, above zero and at most [`MAX_DURATION`]: every duration is
    /// added to a clock somewhere, and one past any sane value would overflow it (a panic in a
    /// background task) or be cut short when stored in milliseconds.
    pub(super) fn duration(&mut self, key: &str, value: &str) -> Duration {
        match parse_duration(value) {
            Ok(d) if d > MAX_DURATION => {
                self.add(key, quote(value), "must be at most 365 days, e.g. \"30s\" or \"2h\"");
                Duration::from_secs(1)
            }
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.add(key, quote(value), "must be greater than zero, e.g. \"1s\"");
                Duration::from_secs(1)
            }
            Err(msg) => {
                self.add(key, quote(value), msg);
                Duration::from_secs(1)
            }
        }
    }
}

/// The longest duration any setting takes.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A whole number setting from `min` to `max`; the message names the range.
pub(super) fn bounded<T: PartialOrd + fmt::Display + Copy>(p: &mut Problems, key: &str, v: T, min: T, max: T) -> T {
    if v < min || v > max {
        p.add(key, v, format!("must be from {min} to {max}"));
        return min;
    }
    v
}

pub(super) fn quote(s: &str) -> String {
    format!("{s:?}")
}

pub(super) fn parse_listen(p: &mut Problems, key: &str, value: &str) -> Option<SocketAddr> {
    match value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(key, quote(value), "must be an IP address and port, e.g. \"0.0.0.0:8080\" or \"[::1]:8080\"");
            None
        }
    }
}

pub(super) fn valid_name(name: &str, extra: &[char]) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(&c))
}

/// A percentage kept exactly, in hundredths of a percent (0..=10000): weights, steps, samples.
/// Operators write `12.5`; the request path compares integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Percent(u32);

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const FULL: Percent = Percent(WEIGHT_SCALE);

    /// A percentage as written (`12.5`), refused when outside 0..=100 or finer than 0.01;
    /// `what` names the values in the message ("weights").
    pub fn parse(w: f64, what: &str) -> Result<Percent, String> {
        if !w.is_finite() || !(0.0..=100.0).contains(&w) {
            return Err("must be a percentage from 0 to 100".to_string());
        }
        let scaled = w * 100.0;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 {
            return Err(format!("has more than two decimals; {what} go in steps of 0.01 (e.g. 12.5 or 0.25)"));
        }
        Ok(Percent(rounded as u32))
    }

    /// From hundredths of a percent, clamped to 100%.
    pub const fn from_hundredths(h: u32) -> Percent {
        Percent(if h < WEIGHT_SCALE { h } else { WEIGHT_SCALE })
    }

    pub fn hundredths(self) -> u32 {
        self.0
    }

    /// As written: `12.5`.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn is_full(self) -> bool {
        self.0 >= WEIGHT_SCALE
    }

    /// A random draw that comes out true this share of the time: always at 100%, never at 0%.
    pub fn draw(self) -> bool {
        use rand::Rng;
        self.is_full() || (!self.is_zero() && rand::thread_rng().gen_range(0..WEIGHT_SCALE) < self.0)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

/// Percentages are kept in hundredths: 0..=10000.
pub const WEIGHT_SCALE: u32 = 10_000;
