//! Days in UTC, ranges of days, and times written as RFC 3339.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, Serializer};

use crate::{
    error::{Error, Result},
    time,
};

const SECONDS_PER_DAY: u64 = 86_400;

/// The last day a ClickHouse `DateTime` reaches (2106-02-07).
pub(super) const LAST_DAY: u32 = (u32::MAX as u64 / SECONDS_PER_DAY) as u32;

/// A calendar day in UTC.
///
/// ```
/// use idp_analytics::usage::Day;
///
/// let day: Day = "2024-05-06".parse()?;
/// assert_eq!(day, Day::from_ymd(2024, 5, 6).unwrap());
/// assert_eq!(day.to_string(), "2024-05-06");
/// assert_eq!(day.monday(), day); // a Monday
/// assert_eq!(day.add_days(2).monday(), day);
/// assert_eq!(Day::from_ymd(2024, 2, 30), None);
/// # Ok::<(), idp_analytics::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub(super) u32);

impl Day {
    /// The day `days` days after 1970-01-01; days past 2106-02-07 (the last a ClickHouse
    /// `DateTime` reaches) are clamped to it.
    pub const fn from_days_since_epoch(days: u32) -> Self {
        Self(if days > LAST_DAY { LAST_DAY } else { days })
    }

    /// The day of a date, or `None` for a date that does not exist or lies outside
    /// 1970-01-01 to 2106-02-07.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        let days = time::day_of_date(time::date(year, month, day)?);
        u32::try_from(days)
            .ok()
            .filter(|d| *d <= LAST_DAY)
            .map(Self)
    }

    /// The UTC day `time` falls on (1970-01-01 for earlier times).
    pub fn of(time: SystemTime) -> Self {
        let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::from_days_since_epoch(u32::try_from(secs / SECONDS_PER_DAY).unwrap_or(u32::MAX))
    }

    /// The current UTC day.
    pub fn today() -> Self {
        Self::of(SystemTime::now())
    }

    /// Days since 1970-01-01.
    pub const fn days_since_epoch(self) -> u32 {
        self.0
    }

    /// The year, month (1 to 12) and day of the month.
    pub fn ymd(self) -> (i32, u32, u32) {
        let date = time::date_of_day(self.0);
        (
            i32::from(date.year()),
            date.month().unsigned_abs().into(),
            date.day().unsigned_abs().into(),
        )
    }

    /// Midnight UTC at the start of the day.
    pub fn start(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.0) * SECONDS_PER_DAY)
    }

    /// The day `n` days later (clamped at 2106-02-07).
    pub fn add_days(self, n: u32) -> Self {
        Self::from_days_since_epoch(self.0.saturating_add(n))
    }

    /// The day `n` days earlier (clamped at 1970-01-01).
    pub fn sub_days(self, n: u32) -> Self {
        Self(self.0.saturating_sub(n))
    }

    /// The Monday that starts this day's week (ISO weeks, as ClickHouse's `toMonday`).
    pub fn monday(self) -> Self {
        let since_monday = time::days_since_monday(time::date_of_day(self.0));
        // Before the first Monday, 1970-01-05, the week starts on day 0.
        Self(self.0.saturating_sub(since_monday))
    }

    /// The day number, bound as a `UInt16` and read with `toDate(toUInt16(?))`: a date
    /// string from 2106-01-01 on is `0000-00-00` to ClickHouse 18.16, a day number is the
    /// right day on every version, up to [`LAST_DAY`].
    pub(super) fn sql(self) -> u16 {
        u16::try_from(self.0).unwrap_or(u16::MAX)
    }

    /// The day as a ClickHouse `Date` expression, `toDate(toUInt16(N))` (see
    /// [`sql`](Self::sql)), to write into a query.
    pub(super) fn date_sql(self) -> String {
        format!("toDate(toUInt16({}))", self.sql())
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every `Day` lies in years 1970 to 2106, which jiff writes as `YYYY-MM-DD`.
        fmt::Display::fmt(&time::date_of_day(self.0), f)
    }
}

impl FromStr for Day {
    type Err = Error;

    /// Parses `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("not a day (YYYY-MM-DD): {s:?}"));
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let num = |p: &str| p.parse::<u32>().map_err(|_| bad());
        let year = i32::try_from(num(y)?).map_err(|_| bad())?;
        Self::from_ymd(year, num(m)?, num(d)?).ok_or_else(bad)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// As `{"type": "string", "format": "date"}`: `2024-05-01`.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Day {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Date,
            )))
            .description(Some("A UTC day, YYYY-MM-DD."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Day {}

/// An inclusive range of UTC days.
///
/// ```
/// use idp_analytics::usage::{Day, Days};
///
/// let days = Days::ending(Day::from_ymd(2024, 5, 31).unwrap(), 31);
/// assert_eq!(days.first().to_string(), "2024-05-01");
/// assert_eq!(days.len(), 31);
/// assert!(Days::new(days.last(), days.first()).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Days {
    pub(super) first: Day,
    pub(super) last: Day,
}

impl Days {
    /// The days from `first` to `last`, both included. `first` must not be after `last`.
    pub fn new(first: Day, last: Day) -> Result<Self> {
        if first > last {
            return Err(Error::Config(format!(
                "the range of days starts ({first}) after it ends ({last})"
            )));
        }
        Ok(Self { first, last })
    }

    /// The `n` days that end with `last` (at least one).
    pub fn ending(last: Day, n: u32) -> Self {
        Self {
            first: last.sub_days(n.max(1) - 1),
            last,
        }
    }

    /// The `n` days that end today (at least one).
    pub fn ending_today(n: u32) -> Self {
        Self::ending(Day::today(), n)
    }

    /// The first day.
    pub fn first(&self) -> Day {
        self.first
    }

    /// The last day.
    pub fn last(&self) -> Day {
        self.last
    }

    /// How many days the range holds.
    pub fn len(&self) -> u32 {
        self.last.0 - self.first.0 + 1
    }

    /// Always false: a range holds at least one day.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `day` is in the range.
    pub fn contains(&self, day: Day) -> bool {
        self.first <= day && day <= self.last
    }

    /// Each day of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = Day> + use<> {
        (self.first.0..=self.last.0).map(Day)
    }

    /// The first and the last second of the range, in Unix seconds. The last is inclusive: the
    /// second after 2106-02-07 06:28:15, the last a `DateTime` holds, is no `DateTime`.
    pub(super) fn seconds(&self) -> (u32, u32) {
        let secs = |day: u32| u32::try_from(u64::from(day) * SECONDS_PER_DAY).unwrap_or(u32::MAX);
        let end = (u64::from(self.last.0) + 1) * SECONDS_PER_DAY - 1;
        (secs(self.first.0), u32::try_from(end).unwrap_or(u32::MAX))
    }
}

pub(super) fn unix(secs: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(secs))
}

/// Whole seconds since the Unix epoch, rounded up, within the range of `DateTime`.
pub(super) fn ceil_seconds(time: SystemTime) -> u32 {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

pub(crate) use crate::time::rfc3339;

/// Serializes a time as [`rfc3339`].
pub(crate) fn serialize_rfc3339<S: Serializer>(
    time: &SystemTime,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

pub(crate) fn rfc3339_option<S: Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match time {
        Some(t) => serializer.serialize_str(&rfc3339(*t)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_days_round_trip_through_dates() {
        assert_eq!(Day::from_ymd(1970, 1, 1), Some(Day(0)));
        assert_eq!(Day::from_ymd(2000, 3, 1).unwrap().0, 11_017);
        assert_eq!(
            Day::from_ymd(2024, 2, 29).unwrap().to_string(),
            "2024-02-29"
        );
        assert_eq!(Day::from_ymd(2023, 2, 29), None);
        assert_eq!(Day::from_ymd(1900, 2, 29), None);
        assert_eq!(Day::from_ymd(1969, 12, 31), None);
        assert_eq!(Day::from_ymd(2106, 2, 8), None);
        assert_eq!(Day::from_ymd(2106, 2, 7), Some(Day(LAST_DAY)));
        for n in (0..=LAST_DAY).step_by(37) {
            let (y, m, d) = Day(n).ymd();
            assert_eq!(Day::from_ymd(y, m, d), Some(Day(n)), "{n}");
            assert_eq!(Day(n).to_string().parse::<Day>().unwrap(), Day(n));
        }
        for bad in [
            "",
            "2024-5-1",
            "2024-05-01x",
            "2024-13-01",
            "24-05-01",
            "2024-05-01-01",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usage_weeks_start_on_monday() {
        let monday = Day::from_ymd(2024, 5, 6).unwrap();
        for i in 0..7 {
            assert_eq!(monday.add_days(i).monday(), monday);
        }
        assert_eq!(monday.sub_days(1).monday(), monday.sub_days(7));
        // 1970-01-05 was the first Monday; days before it start at day 0.
        assert_eq!(Day(4).monday(), Day(4));
        assert_eq!(Day(2).monday(), Day(0));
    }

    #[test]
    fn usage_times_are_written_in_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_714_557_600_999)),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_868_799)),
            "2000-02-29T23:59:59Z"
        );
        assert_eq!(ceil_seconds(UNIX_EPOCH + Duration::from_millis(1500)), 2);
        assert_eq!(ceil_seconds(UNIX_EPOCH + Duration::from_secs(2)), 2);
    }

    #[test]
    fn usage_day_ranges() {
        let last = Day::from_ymd(2024, 3, 2).unwrap();
        let days = Days::ending(last, 3);
        assert_eq!(days.first().to_string(), "2024-02-29");
        assert_eq!(
            days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["2024-02-29", "2024-03-01", "2024-03-02"]
        );
        assert_eq!(Days::ending(last, 0).len(), 1);
        assert_eq!(days.seconds(), (1_709_164_800, 1_709_423_999));
        let end = Days::ending(Day(LAST_DAY), 1);
        assert_eq!(end.seconds(), (LAST_DAY * 86_400, u32::MAX));
        assert!(days.contains(last) && !days.contains(last.add_days(1)));
        assert_eq!(
            serde_json::to_string(&days).unwrap(),
            r#"{"first":"2024-02-29","last":"2024-03-02"}"#
        );
    }
}
