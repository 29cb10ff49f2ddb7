//! Event times as reporters send them: an RFC 3339 date-time, or Unix seconds.

/// Parses an RFC 3339 date-time into whole seconds since the Unix epoch.
///
/// The grammar is RFC 3339's `date-time`: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of a
/// second, then `Z` or an offset `+HH:MM` / `-HH:MM`. `T` and `Z` may be lower case, and a
/// single space may stand for `T`, as RFC 3339 allows. Every field is range-checked (the
/// day against its month, in leap years too). The fraction is dropped, so the result is the
/// second the instant falls in. A leap second (`:60`) counts as the first second of the next
/// minute, as Unix time has no place for it.
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
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
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
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = digits(rest, 1, 2)?;
            let minutes = digits(rest, 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(local - offset)
}

/// `len` ASCII digits at `at`, as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Option<u32> {
    let field = b.get(at..at + len)?;
    field.iter().try_fold(0, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text:?}");
        }
    }
}
