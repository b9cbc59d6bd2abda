//! Human durations as plans write them: `300ms`, `30s`, `5m`, `2h`, `2d`, `1w`, or combined `1h30m`.

use std::time::Duration;

/// Why a duration could not be read; shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("`{0}` has no unit")]
    MissingUnit(String),
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
    #[error("expected a number before `{0}`")]
    MissingNumber(String),
    #[error("duration is too long")]
    Overflow,
}

/// The units accepted, longest first so that `ms` wins over `m`.
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::MissingNumber(rest.to_string()));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow)?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(text.to_string()));
        }
        let unit = &rest[..unit_len];
        let Some(&(_, millis)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit(unit.to_string()));
        };
        total = n
            .checked_mul(millis)
            .and_then(|v| total.checked_add(v))
            .ok_or(DurationError::Overflow)?;
        rest = rest[unit_len..].trim_start();
    }
    // Ten years is far beyond any deployment; anything longer is a typo.
    if total > 10 * 365 * 86_400_000 {
        return Err(DurationError::Overflow);
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration in the largest units that keep it exact (`90s` → `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for &(unit, size) in UNITS.iter().rev() {
        if unit == "w" {
            continue;
        }
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

pub fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        assert_eq!(
            parse_duration("30"),
            Err(DurationError::MissingUnit("30".into()))
        );
        assert_eq!(
            parse_duration("5 mins"),
            Err(DurationError::UnknownUnit("mins".into()))
        );
        assert_eq!(
            parse_duration("m5"),
            Err(DurationError::MissingNumber("m5".into()))
        );
        assert_eq!(parse_duration("99999999999d"), Err(DurationError::Overflow));
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
