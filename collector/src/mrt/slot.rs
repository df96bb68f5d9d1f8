//! The archive slot of an update file, read from its name as RIPE RIS and RouteViews name
//! them (`updates.YYYYMMDD.HHMM.gz`, `updates.YYYYMMDD.HHMM.bz2`), and the period the file
//! is the authority for.
//!
//! RIS writes an update file every 5 minutes, RouteViews every 15: the file named for slot
//! `S` holds the messages of `[S, S + length)`. A live row (RIS Live) of that collector in the
//! slot is replaced by the file even when it falls after the file's last record, so that no
//! provisional row is left between two files' records.

use time::{Date, Month, PrimitiveDateTime, Time};

/// Slot length of RIPE RIS update files (seconds).
pub const RIS_UPDATE_SLOT: i64 = 300;
/// Slot length of RouteViews update files (seconds).
pub const ROUTEVIEWS_UPDATE_SLOT: i64 = 900;

/// The span (UNIX seconds, both ends included) an update file is the authority for: its
/// records' span `[first, last]`, widened to its archive slot when the name gives one and
/// the collector's archive is known (`rrcNN`: 5 minutes, `route-views*`: 15 minutes).
pub fn update_file_period(name: &str, collector: &str, first: i64, last: i64) -> (i64, i64) {
    let length = if collector.starts_with("rrc") {
        RIS_UPDATE_SLOT
    } else if collector.starts_with("route-views") {
        ROUTEVIEWS_UPDATE_SLOT
    } else {
        return (first, last);
    };
    match slot_start(name) {
        // A slot far from the records is a misnamed file: trust the records alone.
        Some(start) if first >= start - length && last < start + 2 * length => {
            (first.min(start), last.max(start + length - 1))
        }
        _ => (first, last),
    }
}

/// The slot time (UNIX seconds) of `updates.YYYYMMDD.HHMM` in a file name.
pub fn slot_start(name: &str) -> Option<i64> {
    let at = name.find("updates.")?;
    let rest = &name.as_bytes()[at + "updates.".len()..];
    if rest.len() < 13 || rest[8] != b'.' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = std::str::from_utf8(&rest[r]).ok()?;
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let day = u8::try_from(digits(6..8)?).ok()?;
    let hour = u8::try_from(digits(9..11)?).ok()?;
    let minute = u8::try_from(digits(11..13)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, 0).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_470_931_200; // 2016-08-11 16:00 UTC

    #[test]
    fn slot_times_from_archive_names() {
        assert_eq!(slot_start("updates.20160811.1600.gz"), Some(S));
        assert_eq!(slot_start("rrc21-updates.20160811.1605.gz"), Some(S + 300));
        assert_eq!(
            slot_start("route-views2_updates.20160811.1615.bz2"),
            Some(S + 900)
        );
        assert_eq!(slot_start("updates.mrt.3"), None);
        assert_eq!(slot_start("updates.20161345.1600.gz"), None);
        assert_eq!(slot_start("updates.2016081x.1600.gz"), None);
    }

    #[test]
    fn periods_cover_the_slot_for_known_archives_and_the_records_otherwise() {
        let name = "updates.20160811.1600.gz";
        assert_eq!(
            update_file_period(name, "rrc00", S + 2, S + 290),
            (S, S + 299)
        );
        assert_eq!(
            update_file_period(name, "route-views2", S + 2, S + 800),
            (S, S + 899)
        );
        // Records beyond the slot widen the period rather than being cut off.
        assert_eq!(
            update_file_period(name, "rrc00", S - 1, S + 310),
            (S - 1, S + 310)
        );
        // Unknown archive, or no slot in the name: the records' span.
        assert_eq!(
            update_file_period(name, "rc", S + 2, S + 290),
            (S + 2, S + 290)
        );
        assert_eq!(
            update_file_period("updates.mrt", "rrc00", S + 2, S + 290),
            (S + 2, S + 290)
        );
        // A name a day away from its records is not trusted.
        assert_eq!(
            update_file_period(name, "rrc00", S + 86_400, S + 86_500),
            (S + 86_400, S + 86_500)
        );
    }
}
