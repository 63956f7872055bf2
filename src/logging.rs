//! Logging: tracing with an env filter (`RUST_LOG` overrides `log.level`), text or JSON on
//! stderr. Pingora logs through the `log` crate; its records come through [`Redacting`], which
//! scrubs secrets before handing them to tracing, so one filter rules both and no secret reaches
//! a log line: Pingora writes a malformed request's whole header block into its error.

use std::borrow::Cow;
use std::sync::RwLock;

use tracing_log::AsLog;
use tracing_subscriber::EnvFilter;

use crate::compare::redact::{glob, splice, DEFAULT_HEADERS, DEFAULT_WORDS, REDACTED};
use crate::config::model::{LogFormat, LogSettings};

pub fn init(log: &LogSettings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::builder().parse(v)?,
        _ => EnvFilter::builder().parse(&log.level)?,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = match log.format {
        LogFormat::Json => tracing::subscriber::set_global_default(builder.json().flatten_event(true).finish()),
        LogFormat::Text => tracing::subscriber::set_global_default(builder.finish()),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    log::set_boxed_logger(Box::new(Redacting)).map_err(|e| anyhow::anyhow!("cannot bridge Pingora's log: {e}"))?;
    log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    Ok(())
}

/// What the current config holds secret: header names (lowercase: every route's override header
/// and `redact_headers`) and values (the admin token, override tokens).
#[derive(Default)]
struct Secrets {
    headers: Vec<String>,
    values: Vec<String>,
}

static SECRETS: RwLock<Secrets> = RwLock::new(Secrets { headers: Vec::new(), values: Vec::new() });

/// Set what the config holds secret; called with every config applied.
pub fn set_secrets(headers: Vec<String>, values: Vec<String>) {
    // A value too short to be told from ordinary text is left to the header rules.
    let values = values.into_iter().filter(|v| v.len() >= 8).collect();
    *SECRETS.write().unwrap_or_else(|e| e.into_inner()) = Secrets { headers, values };
}

/// How Pingora's log line for a request whose upstream failed begins.
const PINGORA_UPSTREAM_FAILURE: &str = "Fail to proxy: Upstream";

/// The `log` crate's records (Pingora's), scrubbed, as tracing events.
struct Redacting;

impl log::Log for Redacting {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        // Pingora's line for a failed upstream carries its error's whole context chain, a peer's
        // debug dump included; strangler writes its own readable one (`strangler::upstream`).
        if record.target().starts_with("pingora_proxy") && text.starts_with(PINGORA_UPSTREAM_FAILURE) {
            return;
        }
        let clean = redact(&text);
        tracing_log::format_trace(
            &log::Record::builder()
                .args(format_args!("{clean}"))
                .level(record.level())
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        )
        .ok();
    }

    fn flush(&self) {}
}

/// `text` without secrets: the configured secret values wherever they appear, the values of
/// secret headers in header blocks (raw or escaped, `Authorization: Bearer ...\r\n`), and the
/// values of secret query parameters.
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for v in &secrets.values {
        if out.contains(v.as_str()) {
            out = Cow::Owned(out.replace(v.as_str(), REDACTED));
        }
    }
    let ranges = secret_ranges(&out, &secrets.headers);
    if ranges.is_empty() {
        return out;
    }
    Cow::Owned(splice(&out, &ranges))
}

/// Where a value ends: a line break, raw or escaped, or a closing quote.
fn value_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\r' | b'\n' | b'"' => break,
            b'\\' if matches!(b.get(i + 1), Some(b'r' | b'n' | b'"')) => break,
            _ => i += 1,
        }
    }
    i
}

/// The byte ranges of secret values in `text`, in order.
fn secret_ranges(text: &str, configured: &[String]) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let mut ranges = Vec::new();
    // The evidence's header patterns and query words, and the configured secret headers.
    let secret = |name: &str| {
        DEFAULT_HEADERS.iter().copied().chain(configured.iter().map(String::as_str)).any(|p| glob(p, name))
    };
    // Header lines: a line starts at the beginning, after a raw line break, or after an escaped
    // one; its name is a token up to `:`.
    let mut starts = vec![0];
    for (i, c) in b.iter().enumerate() {
        if *c == b'\n' || (*c == b'n' && i > 0 && b[i - 1] == b'\\') {
            starts.push(i + 1);
        }
    }
    for start in starts {
        let name_end = b[start..].iter().position(|c| !(c.is_ascii_alphanumeric() || b"-_.".contains(c)));
        let Some(len) = name_end.filter(|n| *n > 0) else { continue };
        if b.get(start + len) != Some(&b':') {
            continue;
        }
        let name = &lower[start..start + len];
        if secret(name) {
            let from = start + len + 1;
            ranges.push((from, value_end(b, from)));
        }
    }
    // Headers as Rust's Debug shows a header map: `"name": "value"`.
    let mut from = 0;
    while let Some(found) = text[from..].find("\": \"") {
        let colon = from + found;
        from = colon + 4;
        let Some(open) = text[..colon].rfind('"') else { continue };
        let name = &lower[open + 1..colon];
        if secret(name) {
            ranges.push((from, value_end(b, from)));
        }
    }
    // Query parameters: `word...=value` up to `&`, `;`, white space or the end of the value.
    for word in DEFAULT_WORDS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(word) {
            let mut i = from + found + word.len();
            from = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if b.get(i) != Some(&b'=') {
                continue;
            }
            let start = i + 1;
            let mut end = start;
            while end < b.len() && !matches!(b[end], b'&' | b';' | b' ' | b'#') {
                end += 1;
            }
            ranges.push((start, end.min(value_end(b, start))));
        }
    }
    ranges.sort_unstable();
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Pingora logs for a malformed request: the header block, escaped or raw.
    #[test]
    fn secrets_in_a_logged_header_block_are_redacted() {
        set_secrets(vec!["x-qa".into()], vec!["ADMINTOKEN123".into()]);
        let escaped = r#"InvalidHTTPHeader context: buf: "GET /?a=1&access_token=Q1;b=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer A1\r\nCookie: s=C1\r\nX-QA: new;token=O1\r\nX-Vault-Token: V1\r\nBad Header\r\n\r\n" cause: invalid header name"#;
        let raw = "GET /\\xff HTTP/1.1\r\nhost: x\r\nproxy-authorization: Basic P1\r\nx-note: ADMINTOKEN123\r\n\r\n";
        for text in [escaped, raw] {
            let clean = redact(text);
            for secret in ["Q1", "A1", "C1", "O1", "V1", "P1", "ADMINTOKEN123"] {
                assert!(!clean.contains(secret), "{secret} in {clean}");
            }
            assert!(clean.contains("ost: x"), "the rest is kept: {clean}");
        }
        assert!(redact(escaped).contains("a=1&access_token=[redacted];b=2"), "{}", redact(escaped));
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
        let debug = r#"RequestHeader { headers: {"host": "x", "cookie": "session=C2", "x-auth-token": "T2", "accept": "*/*"} }"#;
        let clean = redact(debug);
        assert!(!clean.contains("C2") && !clean.contains("T2") && clean.contains(r#""accept": "*/*""#), "{clean}");
    }
}
