//! The validation toolkit: a list of problems every section builder adds to, and the parsers
//! of values that several sections share (sizes, durations, percentages, addresses, names).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::units::{parse_duration, parse_size};
use crate::core::Percent;

/// One thing wrong with a config file, with enough context to fix it without reading code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path inside the file, e.g. `routes[2].weight`; empty for file-level problems.
    pub key: String,
    /// The offending value as written, when there is one.
    pub value: Option<String>,
    /// What is wrong and what would be valid.
    pub message: String,
    /// 1-based line and column, when the TOML parser located the problem.
    pub location: Option<(usize, usize)>,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, value: Option<String>, message: impl Into<String>) -> Self {
        Problem { key: key.into(), value, message: message.into(), location: None }
    }
}

/// Every problem found in one config file. Displayed one per line, each naming the file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some((line, col)) = p.location {
                write!(f, ":{line}:{col}")?;
            }
            if !p.key.is_empty() {
                write!(f, ": {}", p.key)?;
            }
            if let Some(v) = &p.value {
                write!(f, " = {v}")?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

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
