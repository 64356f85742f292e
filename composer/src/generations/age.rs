//! Ages (`30d`, `12h`, `2w`) for `--older-than`, and UTC dates for listings.

use super::GenerationsError;
use std::time::Duration;

/// Parses `<number><unit>` with unit s, m, h, d or w.
pub fn parse_age(text: &str) -> Result<Duration, GenerationsError> {
    let bad = || GenerationsError::BadAge {
        text: text.to_owned(),
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

/// `YYYY-MM-DD HH:MM` (UTC) of seconds since the Unix epoch.
pub fn format_utc_date(epoch_secs: u64) -> String {
    let t = crate::utc::UtcTime::from_epoch(epoch_secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("90s").unwrap(), Duration::from_secs(90));
        for bad in ["", "d", "30", "30x", "-1d", "1.5d", "99999999999999999999d"] {
            let err = parse_age(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(format_utc_date(0), "1970-01-01 00:00");
        assert_eq!(format_utc_date(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc_date(1_795_612_980), "2026-11-25 13:23");
    }
}
