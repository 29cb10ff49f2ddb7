//! The calendar, in one place: days since the Unix epoch as dates, weekdays, and RFC 3339
//! in and out. The calendar itself (month lengths, leap years, weekdays, instants) is
//! `jiff`'s; this module holds only the forms this crate writes and accepts.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::{
    Timestamp,
    civil::{Date, DateTime, Time},
    tz::Offset,
};

const SECONDS_PER_DAY: i64 = 86_400;

/// 1970-01-01, day 0.
const EPOCH: Date = jiff::civil::date(1970, 1, 1);

/// The date of a day count since 1970-01-01 (any day a `u32` holds and a [`Date`] reaches;
/// callers keep theirs far inside).
pub(crate) fn date_of_day(days: u32) -> Date {
    EPOCH
        .checked_add(jiff::SignedDuration::from_hours(i64::from(days) * 24))
        .unwrap_or(Date::MAX)
}

/// Days from 1970-01-01 to `date` (negative before it).
pub(crate) fn day_of_date(date: Date) -> i64 {
    date.duration_since(EPOCH).as_secs() / SECONDS_PER_DAY
}

/// The date `year-month-day`, or `None` when no such date exists.
pub(crate) fn date(year: i32, month: u32, day: u32) -> Option<Date> {
    Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()
}

/// Days since the Monday that starts `date`'s ISO week (0 on a Monday, 6 on a Sunday).
pub(crate) fn days_since_monday(date: Date) -> u32 {
    date.weekday().to_monday_zero_offset().unsigned_abs().into()
}

/// `2024-05-01T10:00:00Z`: RFC 3339 in UTC, whole seconds (the fraction dropped), from
/// 1970-01-01 to 2106-02-07T06:28:15Z (the range of a ClickHouse `DateTime`; times outside
/// are clamped to it).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(u64::from(u32::MAX));
    // Always in range: jiff's timestamps reach the year 9999.
    Timestamp::from_second(secs as i64)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Parses an RFC 3339 date-time into whole seconds since the Unix epoch.
///
/// The grammar is RFC 3339's `date-time`: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of a
/// second, then `Z` or an offset `+HH:MM` / `-HH:MM`. `T` and `Z` may be lower case, and a
/// single space may stand for `T`, as RFC 3339 allows. The layout is checked here, since
/// `jiff`'s own parser takes far more forms (ISO 8601's basic format, bracketed time zones,
/// times without seconds); `jiff` checks every field (the day against its month, in leap
/// years too). The fraction is dropped, so the result is the second the instant falls in.
/// A leap second (`:60`) counts as the first second of the next minute, as Unix time has
/// no place for it: `jiff` refuses second 60, so it is read as 59 and one second added.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        rest = &fraction[len..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => Offset::UTC,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = digits(rest, 1, 2)?;
            let minutes = digits(rest, 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            Offset::from_seconds(if *sign == b'-' { -seconds } else { seconds }).ok()?
        }
        _ => return None,
    };
    let (second, leap) = if second == 60 { (59, 1) } else { (second, 0) };
    let date = Date::new(year as i16, month as i8, day as i8).ok()?;
    let time = Time::new(hour as i8, minute as i8, second as i8, 0).ok()?;
    // Civil arithmetic rather than `Offset::to_timestamp`: jiff's timestamps stop a day
    // short of 9999-12-31, which RFC 3339 still writes.
    let local = DateTime::from_parts(date, time)
        .duration_since(DateTime::from_parts(EPOCH, Time::midnight()))
        .as_secs();
    Some(local + leap - i64::from(offset.seconds()))
}

/// `len` ASCII digits at `at`, as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Option<u32> {
    let field = b.get(at..at + len)?;
    field.iter().try_fold(0, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn days_are_dates() {
        assert_eq!(date_of_day(0), EPOCH);
        assert_eq!(date_of_day(11_017), jiff::civil::date(2000, 3, 1));
        assert_eq!(day_of_date(jiff::civil::date(1969, 12, 31)), -1);
        assert_eq!(date(2023, 2, 29), None);
        assert_eq!(date(2024, 13, 1), None);
        assert_eq!(date(40_000, 1, 1), None);
        // 1970-01-01 was a Thursday.
        assert_eq!(days_since_monday(EPOCH), 3);
        assert_eq!(days_since_monday(jiff::civil::date(2024, 5, 6)), 0);
        assert_eq!(days_since_monday(jiff::civil::date(2024, 5, 12)), 6);
    }

    #[test]
    fn times_are_written_in_whole_seconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_714_557_600_999)),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(10_000_000_000)),
            "2106-02-07T06:28:15Z"
        );
    }

    #[test]
    fn known_instants() {
        for (text, unix) in [
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59Z", -1),
            ("2024-05-01T12:30:00Z", 1_714_566_600),
            ("2024-05-01T14:30:00+02:00", 1_714_566_600),
            ("2024-05-01T12:30:00-00:00", 1_714_566_600),
            ("2024-12-31T23:00:00-05:30", 1_735_705_800),
            ("2000-02-29T23:59:59Z", 951_868_799),
            ("2106-02-07T06:28:15Z", 4_294_967_295),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
            ("2024-05-01t12:30:00z", 1_714_566_600),
            ("2024-05-01 12:30:00Z", 1_714_566_600),
        ] {
            assert_eq!(parse_rfc3339(text), Some(unix), "{text}");
        }
    }

    #[test]
    fn fractions_are_dropped() {
        assert_eq!(
            parse_rfc3339("2024-05-01T12:30:00.999Z"),
            Some(1_714_566_600)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:30:00.000000001+00:00"),
            Some(1_714_566_600)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.5Z"), Some(0));
    }

    #[test]
    fn a_leap_second_is_the_next_second() {
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2017-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60.5+01:00"),
            parse_rfc3339("2016-12-31T23:00:00Z")
        );
    }

    #[test]
    fn days_are_checked_against_their_month() {
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2023-02-29T00:00:00Z").is_none());
        assert!(parse_rfc3339("1900-02-29T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-04-31T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-01-31T00:00:00Z").is_some());
        assert!(parse_rfc3339("2024-01-00T00:00:00Z").is_none());
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in [
            "",
            "2024",
            "2024-05-01",
            "2024-05-01T12:30Z",
            "2024-05-01T12:30:00",
            "2024-05-01T12:30:00+0200",
            "2024-05-01T12:30:00+02",
            "2024-05-01T12:30:00.Z",
            "2024-05-01T12:30:00ZZ",
            "2024-05-01T12:30:00Z ",
            " 2024-05-01T12:30:00Z",
            "2024-13-01T12:30:00Z",
            "2024-00-01T12:30:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:60:00Z",
            "2024-05-01T12:30:61Z",
            "2024-05-01T12:30:00+24:00",
            "2024-05-01T12:30:00+02:60",
            "2024/05/01T12:30:00Z",
            "2024-05-01X12:30:00Z",
            "+024-05-01T12:30:00Z",
            "2024-5-01T12:30:00Z",
            "2024-05-01T12:30:00.12a4Z",
            "2024-05-01T12:30:00 UTC",
            "１９７０-01-01T00:00:00Z",
            "1714566600",
            "2024-05-01T12:30:00Z[Europe/Paris]",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text:?}");
        }
    }
}
