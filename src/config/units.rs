//! Human units used in the config: durations (`"250ms"`, `"30s"`, `"2h"`).

use std::time::Duration;

/// Parse a duration such as `"250ms"`, `"30s"`, `"1m30s"` or `"2h"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| "expected a duration such as \"250ms\", \"30s\" or \"2h\"".to_string())?;
    Ok(d)
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
}
