//! Configuration: the TOML file as written by operators ([`file`]), validated into the model the
//! request path uses ([`model`]). Nothing outside this module sees raw TOML.
//!
//! Loading never half-succeeds: [`load`] returns a complete [`Config`] or every problem found.

mod build;
pub mod file;
pub mod model;
pub mod operations;
pub mod persist;
mod problems;
mod process;
pub mod rollout;
mod route;
pub mod schedule;
pub mod shadow;
pub mod tls;
mod units;
mod upstream;

use std::path::Path;

pub use crate::core::{Percent, Side, WEIGHT_SCALE};
pub use model::{ClusterSettings, Config, Health, Route, Sticky, Upstream};
pub use problems::{ConfigError, Problem};
pub use process::{host_name, ETCD_PASSWORD_ENV, ETCD_USER_ENV};
pub use units::{parse_duration, parse_size};

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
    let (parsed, mut problems) = parse_all(text);
    let Some(parsed) = parsed else { return Err(err(problems)) };
    match model::Config::from_file(parsed, path) {
        Ok(cfg) if problems.is_empty() => Ok(cfg),
        Ok(_) => Err(err(problems)),
        Err(more) => {
            problems.extend(more);
            Err(err(problems))
        }
    }
}

/// The most problems one parse reports before giving up.
const MAX_PARSE_PROBLEMS: usize = 50;

/// Parse `text`, reporting every unknown key or section and every value of the wrong type
/// rather than only the first: each is set aside (its lines commented out, so later locations
/// stay right) and the rest parsed again. The file as parsed without them, when that much
/// parses, so validation can report its problems beside these.
fn parse_all(text: &str) -> (Option<file::FileConfig>, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    let mut text = text.to_string();
    loop {
        let e = match toml::from_str::<file::FileConfig>(&text) {
            Ok(parsed) => return (Some(parsed), problems),
            Err(e) => e,
        };
        let problem = parse_problem(&text, &e);
        // A required key set aside as mistyped comes back as "missing": already reported.
        let repeat = problems.iter().any(|p| p.location == problem.location && p.location.is_some())
            || (!problems.is_empty() && e.message().starts_with("missing field"));
        if repeat {
            return (None, problems);
        }
        let lines = problem.location.and_then(|(line, _)| set_aside(&text, line));
        problems.push(problem);
        match lines {
            Some(lines) if problems.len() < MAX_PARSE_PROBLEMS => {
                text = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| if lines.contains(&(i + 1)) { format!("#{l}") } else { l.to_string() })
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            _ => return (None, problems),
        }
    }
}

/// The 1-based lines to comment out to drop what line `line` starts: a `key = value` with every
/// line its value spans, or a `[table]` / `[[table]]` header with its keys up to the next header.
/// `None` for anything else (a syntax error: nothing after it can be trusted).
fn set_aside(text: &str, line: usize) -> Option<std::ops::RangeInclusive<usize>> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.get(line.checked_sub(1)?)?.trim_start();
    let is_header = |l: &str| l.trim_start().starts_with('[') && !l.contains('=');
    if is_header(at) {
        let end = (line + 1..=lines.len()).find(|&n| is_header(lines[n - 1])).map_or(lines.len(), |n| n - 1);
        return Some(line..=end);
    }
    if !at.contains('=') || at.starts_with('#') {
        return None;
    }
    // The value's continuation lines: those still inside what this key opened.
    let mut end = line;
    while end < lines.len() && open_value_at(text, end + 1) == Some(line) {
        end += 1;
    }
    Some(line..=end)
}

fn parse_problem(text: &str, e: &toml::de::Error) -> Problem {
    // TOML's messages can span lines ("invalid string\nexpected `\"`, `'`"): one problem, one line.
    let message: Vec<&str> = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut p = Problem::new("", None, message.join("; "));
    let Some(span) = e.span() else { return p };
    let (mut line, col) = line_col(text, span.start);
    p.location = Some((line, col));
    let mut snippet = text.get(span).unwrap_or_default().trim();
    // An array or inline table left open is reported where the parser gave up, often lines
    // below: the key to fix is the one whose value opened it, and that is where to point.
    if let Some(opened) = open_value_at(text, line) {
        line = opened;
        let line_text = text.lines().nth(line - 1).unwrap_or_default();
        let value_at = line_text.find('=').map_or(0, |i| i + 1);
        snippet = line_text[value_at..].trim();
        p.location = Some((line, value_at + 1));
    }
    // Name the key the way validation messages do (`routes[1].weight`): the table header above
    // the error plus the key on its line.
    let line_text = text.lines().nth(line - 1).unwrap_or_default();
    // A misspelt section (`[routes.shadw]`) is named as its keys are: `routes[0].shadw`.
    if line_text.trim_start().starts_with('[') && !line_text.contains('=') {
        if let Some(table) = table_at(text, line + 1) {
            p.key = table;
        }
        return p;
    }
    if let Some((key, _)) = line_text.split_once('=').filter(|(k, _)| !k.trim_start().starts_with('[')) {
        let key = key.trim();
        p.key = match table_at(text, line) {
            Some(table) => format!("{table}.{key}"),
            None => key.to_string(),
        };
        if !snippet.is_empty() && snippet != key && !snippet.contains('\n') && snippet.len() < 80 {
            p.value = Some(snippet.to_string());
        }
    }
    p
}

/// The 1-based line of the `key = ` whose array, inline table or multi-line string is still
/// open at `line`, or whose one-line string the line just above left open (`= "\` at the end
/// of a line: the parser reports the escape at the start of the next line), if any.
fn open_value_at(text: &str, line: usize) -> Option<usize> {
    let mut depth = 0usize;
    // A `"""` or `'''` string spans lines; a `"` or `'` one ends with its line.
    let mut long: Option<&str> = None;
    let mut opened = None;
    let mut short_left_open = None;
    for (n, l) in text.lines().take(line.saturating_sub(1)).enumerate() {
        let mut short: Option<char> = None;
        let mut rest = l;
        while let Some(c) = rest.chars().next() {
            let at_value = depth == 0 && long.is_none() && l.contains('=');
            if let Some(delim) = long {
                match rest.find(delim) {
                    Some(i) => {
                        rest = &rest[i + delim.len()..];
                        long = None;
                    }
                    None => break,
                }
                continue;
            }
            if let Some(q) = short {
                if c == q {
                    short = None;
                } else if c == '\\' && q == '"' {
                    // An escape: the character after it (a quote, say) is part of the string.
                    let mut after = rest.chars();
                    after.nth(1);
                    rest = after.as_str();
                    continue;
                }
            } else if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
                long = Some(&rest[..3]);
                if at_value {
                    opened = Some(n + 1);
                }
                rest = &rest[3..];
                continue;
            } else {
                match c {
                    '"' | '\'' => short = Some(c),
                    '#' => break,
                    '[' | '{' if depth > 0 || at_value => {
                        if depth == 0 {
                            opened = Some(n + 1);
                        }
                        depth += 1;
                    }
                    ']' | '}' if depth > 0 => depth -= 1,
                    _ => {}
                }
            }
            rest = &rest[c.len_utf8()..];
        }
        if short.is_some() && n + 2 == line && l.contains('=') {
            short_left_open = Some(n + 1);
        }
    }
    opened.filter(|_| depth > 0 || long.is_some()).or(short_left_open)
}

/// The table a line belongs to, e.g. `server` or `routes[2]` for the third `[[routes]]`.
fn table_at(text: &str, line: usize) -> Option<String> {
    let mut current = None;
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for l in text.lines().take(line - 1) {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            current = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim();
            // `[routes.shadow]` belongs to the latest `[[routes]]` entry.
            current = Some(match name.split_once('.') {
                Some((parent, rest)) if counts.contains_key(parent) => {
                    format!("{parent}[{}].{rest}", counts[parent] - 1)
                }
                _ => name.to_string(),
            });
        }
    }
    current
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
