//! Configuration: the TOML file as written by operators ([`file`]), validated into the model the
//! request path uses ([`model`]). Nothing outside this module sees raw TOML.
//!
//! Loading never half-succeeds: [`load`] returns a complete [`Config`] or every problem found.

pub mod file;
pub mod model;
mod units;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::{Config, Route, Side, Sticky, Upstream};
pub use units::{parse_duration, parse_size};

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
#[derive(Debug, thiserror::Error)]
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

/// Read, parse and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem::new("", None, format!("cannot read the file: {e}"))],
    })?;
    load_str(&text, path)
}

/// Parse and validate config text; `path` is used in messages and as the file weight changes
/// are written back to.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let err = |problems| ConfigError { file: path.to_path_buf(), problems };
    let parsed: file::FileConfig = toml::from_str(text).map_err(|e| err(vec![parse_problem(text, &e)]))?;
    model::Config::from_file(parsed, path).map_err(err)
}

fn parse_problem(text: &str, e: &toml::de::Error) -> Problem {
    let location = e.span().map(|span| line_col(text, span.start));
    let mut p = Problem::new("", None, e.message().trim().to_string());
    p.location = location;
    if let Some(span) = e.span() {
        if let Some(snippet) = text.get(span.clone()) {
            if !snippet.is_empty() && snippet.len() < 80 && !snippet.contains('\n') {
                p.value = Some(snippet.to_string());
            }
        }
    }
    p
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
