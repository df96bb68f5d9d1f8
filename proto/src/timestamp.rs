//! The text forms of times, one place for both crates: how a time is written to a database or
//! a terminal, and how a time the user types is read.
//!
//! Every form is UTC. Stored forms sort as text in time order, so SQL can compare them.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

/// `t` as a database stores it: RFC 3339 UTC with exactly six fraction digits
/// (`2017-10-01T00:00:00.000000Z`), so text order is time order.
pub fn stored(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .expect("a time within years 0000-9999 formats")
}

/// `t` for people: RFC 3339 UTC, whole seconds (`2017-10-01T00:00:00Z`).
pub fn display(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// `t` in full precision: RFC 3339 UTC as `time` writes it (fraction digits only as needed).
pub fn precise(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A UNIX second (MRT timestamps) for people, as [`display`]; the bare number when it is
/// beyond the calendar `time` knows.
pub fn display_unix(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds).map_or_else(|_| seconds.to_string(), display)
}

/// Parses any RFC 3339 time (every stored form above reads back with it).
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Which end of a day a bare date given by the user stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEnd {
    /// Its first instant (a `--since`, `--from`).
    Start,
    /// Its last instant (an `--until`, `--to`).
    End,
}

/// A time the user typed: RFC 3339 (`2017-10-01T00:00:00Z`) or a date (`2017-10-01`, UTC,
/// standing for that day's start or end as `day_end` says).
pub fn parse_user(text: &str, day_end: DayEnd) -> Result<OffsetDateTime, String> {
    if let Some(t) = parse(text) {
        return Ok(t);
    }
    let date = Date::parse(text, format_description!("[year]-[month]-[day]")).map_err(|_| {
        format!(
            "'{text}' is neither an RFC 3339 time (2017-10-01T00:00:00Z) nor a date (2017-10-01)"
        )
    })?;
    let t = match day_end {
        DayEnd::Start => date.midnight(),
        DayEnd::End => date
            .with_hms_nano(23, 59, 59, 999_999_999)
            .expect("a valid time"),
    };
    Ok(t.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stored_times_sort_as_text_and_read_back() {
        let a = stored(datetime!(2017-10-01 00:00:00 UTC));
        let b = stored(datetime!(2017-10-01 00:00:00.5 UTC));
        let c = stored(datetime!(2017-10-01 08:59:59 +09:00));
        assert_eq!(a, "2017-10-01T00:00:00.000000Z");
        assert!(a < b && c < a, "{a} {b} {c}");
        assert_eq!(parse(&b), Some(datetime!(2017-10-01 00:00:00.5 UTC)));
    }

    #[test]
    fn display_is_utc_whole_seconds() {
        assert_eq!(
            display(datetime!(2017-10-01 09:00:00.7 +09:00)),
            "2017-10-01T00:00:00Z"
        );
        assert_eq!(display_unix(1_506_816_000), "2017-10-01T00:00:00Z");
        assert_eq!(display_unix(i64::MAX), i64::MAX.to_string());
        assert_eq!(
            precise(datetime!(2017-10-01 00:00:00.5 UTC)),
            "2017-10-01T00:00:00.5Z"
        );
    }

    #[test]
    fn user_dates_stand_for_a_whole_day() {
        assert_eq!(
            parse_user("2017-10-01", DayEnd::Start),
            Ok(datetime!(2017-10-01 00:00 UTC))
        );
        assert_eq!(
            parse_user("2017-10-01", DayEnd::End),
            Ok(datetime!(2017-10-01 23:59:59.999_999_999 UTC))
        );
        assert_eq!(
            parse_user("2017-10-01T01:00:00+01:00", DayEnd::End),
            Ok(datetime!(2017-10-01 00:00 UTC))
        );
        assert!(
            parse_user("yesterday", DayEnd::Start)
                .unwrap_err()
                .contains("neither")
        );
    }
}
