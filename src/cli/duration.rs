//! The one way a duration is read from the command line: humantime's units (`90s`, `15m`,
//! `2h 30m`, `500ms`) or bare seconds.

use std::time::Duration;

/// Parses `s` as bare seconds or a humantime duration; the error says how to write one.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    s.parse::<u64>()
        .map(Duration::from_secs)
        .or_else(|_| humantime::parse_duration(s))
        .map_err(|e| format!("{e} (write e.g. 90s, 15m or 2h, or bare seconds)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 2h 30m "), Ok(Duration::from_secs(9000)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert!(parse("soon").unwrap_err().contains("write e.g. 90s"));
    }
}
