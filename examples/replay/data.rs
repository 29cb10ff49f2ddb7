//! The data sets: events with their real times, and the active days they make.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, BufRead, Write},
    path::Path,
};

/// Seconds in a day.
pub(crate) const DAY: u32 = 86_400;

/// Per account, its active days (days since 1970-01-01, UTC), sorted, each once.
pub(crate) type Activity = BTreeMap<u64, Vec<u32>>;

/// Events to replay: who, and when.
pub(crate) struct Dataset {
    /// `cdnow` or `saas`.
    pub(crate) name: String,
    /// `(account_id, unix seconds)`, sorted by time.
    pub(crate) events: Vec<(u64, u32)>,
    /// The first day of the history.
    pub(crate) first_day: u32,
    /// The last day of the history (inclusive): the data ends with it.
    pub(crate) end_day: u32,
}

impl Dataset {
    /// Sorts the events and sets the history's first day from them; `end_day` is kept
    /// when it is later than the last event.
    pub(crate) fn new(name: &str, mut events: Vec<(u64, u32)>, end_day: Option<u32>) -> Self {
        events.sort_by_key(|&(account, time)| (time, account));
        let first_day = events.first().map_or(0, |e| e.1 / DAY);
        let last = events.last().map_or(0, |e| e.1 / DAY);
        Self {
            name: name.into(),
            events,
            first_day,
            end_day: end_day.map_or(last, |end| end.max(last)),
        }
    }

    /// The active days of every account.
    pub(crate) fn activity(&self) -> Activity {
        let mut activity = Activity::new();
        for &(account, time) in &self.events {
            let days = activity.entry(account).or_default();
            let day = time / DAY;
            if days.last() != Some(&day) {
                days.push(day);
            }
        }
        activity
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> u32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u32::try_from(era * 146_097 + doe - 719_468).expect("a date after 1970")
}

/// Reads CDNOW's `CDNOW_master.txt`: a header, then whitespace-separated `customer_id
/// date(YYYYMMDD) cds dollars`. Each purchase becomes one event at noon UTC of its day.
pub(crate) fn read_cdnow(path: &Path) -> io::Result<Dataset> {
    let bad = |line: usize, what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: line {line}: {what}", path.display()),
        )
    };
    let file = io::BufReader::new(fs::File::open(path)?);
    let mut events = Vec::new();
    for (i, line) in file.lines().enumerate() {
        let line = line?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if i == 0 || fields.is_empty() {
            continue;
        }
        let [customer, date, _, _] = fields[..] else {
            return Err(bad(i + 1, "expected four fields"));
        };
        let customer: u64 = customer
            .parse()
            .map_err(|_| bad(i + 1, "customer id is not a number"))?;
        let parse = |s: &str| s.parse::<u32>().map_err(|_| bad(i + 1, "bad date"));
        if date.len() != 8 {
            return Err(bad(i + 1, "date is not YYYYMMDD"));
        }
        let (y, m, d) = (parse(&date[..4])?, parse(&date[4..6])?, parse(&date[6..])?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return Err(bad(i + 1, "date out of range"));
        }
        let day = days_from_civil(i64::from(y), m, d);
        events.push((customer, day * DAY + DAY / 2));
    }
    Ok(Dataset::new("cdnow", events, None))
}

/// Writes `account_id,day` for every active day.
pub(crate) fn write_activity(path: &Path, activity: &Activity) -> io::Result<()> {
    let mut out = io::BufWriter::new(fs::File::create(path)?);
    writeln!(out, "account_id,day")?;
    for (account, days) in activity {
        for day in days {
            writeln!(out, "{account},{day}")?;
        }
    }
    out.flush()
}

/// Reads what [`write_activity`] wrote.
pub(crate) fn read_activity(path: &Path) -> io::Result<Activity> {
    let mut activity = Activity::new();
    for (account, day) in read_pairs(path)? {
        activity.entry(account).or_default().push(day as u32);
    }
    for days in activity.values_mut() {
        days.sort_unstable();
        days.dedup();
    }
    Ok(activity)
}

/// Reads a two-column CSV of integers with a header.
pub(crate) fn read_pairs(path: &Path) -> io::Result<Vec<(u64, u64)>> {
    let text = fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let parsed = line
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
        rows.push(parsed.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: line {}: expected two integers", path.display(), i + 1),
            )
        })?);
    }
    Ok(rows)
}
