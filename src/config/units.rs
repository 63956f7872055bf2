//! Human units used in the config: durations (`"250ms"`, `"30s"`, `"2h"`) and sizes (`"1MiB"`).

use std::time::Duration;

/// Parse a duration such as `"250ms"`, `"30s"`, `"1m30s"` or `"2h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| "expected a duration such as \"250ms\", \"30s\" or \"2h\"".to_string())?;
    Ok(d)
}

/// Parse a size such as `"512"`, `"64KiB"`, `"1MiB"`, `"1GB"` into bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    const HINT: &str = "expected a size such as \"64KiB\", \"1MiB\" or \"1048576\"";
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().map_err(|_| HINT.to_string())?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(HINT.to_string()),
    };
    n.checked_mul(scale).ok_or_else(|| "is too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1 parsec").is_err());
    }
}
