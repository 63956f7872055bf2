//! Logging: tracing with an env filter (`RUST_LOG` overrides `log.level`), text or JSON on
//! stderr. Pingora logs through the `log` crate; `try_init` installs the `tracing-log` bridge so
//! one filter rules both.

use tracing_subscriber::EnvFilter;

use crate::config::model::{LogFormat, LogSettings};

pub fn init(log: &LogSettings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::builder().parse(v)?,
        _ => EnvFilter::builder().parse(&log.level)?,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
