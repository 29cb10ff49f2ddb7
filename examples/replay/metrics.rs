//! Quiet spells and how a detector's flags score against them.
//!
//! A quiet spell starts after an active day `L` and ends with the next active day `R`
//! (a spell that ended with the account coming back), or runs to the end of the data `E`.
//! A spell that runs to the end is churned when the account had no event in the last
//! `churn_days` days (`E - L >= churn_days`); a shorter one is censored and not scored.
//!
//! The replay evaluates at the end of each day. A flag raised at the end of day `d` belongs
//! to the spell with `L <= d < R`. Per spell only the first flag counts:
//!
//! - a spell that ended with a return and was flagged is a false alarm;
//! - a churned spell flagged at `d` was detected with a delay of `d - L` days; unflagged, it
//!   is a miss, which counts as an infinite delay in the median.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::data::Activity;

/// One quiet spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spell {
    /// The account.
    pub(crate) account: u64,
    /// Its last active day before the spell.
    pub(crate) start: u32,
    /// The day it came back; `None` for a churned spell.
    pub(crate) back: Option<u32>,
}

/// The spells of every account: all gaps between active days, and the churned last spells.
pub(crate) fn spells(activity: &Activity, end_day: u32, churn_days: u32) -> Vec<Spell> {
    let mut out = Vec::new();
    for (&account, days) in activity {
        for pair in days.windows(2) {
            out.push(Spell {
                account,
                start: pair[0],
                back: Some(pair[1]),
            });
        }
        if let Some(&last) = days.last()
            && end_day - last >= churn_days
        {
            out.push(Spell {
                account,
                start: last,
                back: None,
            });
        }
    }
    out
}

/// Per account, the days (sorted) on which a detector raised a flag.
pub(crate) type Flags = HashMap<u64, Vec<u32>>;

/// Builds [`Flags`] from `(account, day)` pairs.
pub(crate) fn flags_from(pairs: impl IntoIterator<Item = (u64, u32)>) -> Flags {
    let mut flags = Flags::new();
    for (account, day) in pairs {
        flags.entry(account).or_default().push(day);
    }
    for days in flags.values_mut() {
        days.sort_unstable();
        days.dedup();
    }
    flags
}

/// The flags a fixed threshold of `days` raises, computed from the activity alone: on
/// day `L + days` of each spell that lasts that long.
pub(crate) fn fixed_flags(activity: &Activity, end_day: u32, days: u32) -> Flags {
    let mut pairs = Vec::new();
    for (&account, active) in activity {
        for (i, &start) in active.iter().enumerate() {
            let until = active.get(i + 1).copied().unwrap_or(end_day + 1);
            let day = start + days;
            if day < until && day <= end_day {
                pairs.push((account, day));
            }
        }
    }
    flags_from(pairs)
}

/// How one detector did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Score {
    /// Spells that ended with the account coming back.
    pub(crate) returning: usize,
    /// Of those, flagged: false alarms.
    pub(crate) false_alarms: usize,
    /// `false_alarms / returning`.
    pub(crate) false_alarm_rate: f64,
    /// Churned spells.
    pub(crate) churned: usize,
    /// Of those, flagged.
    pub(crate) detected: usize,
    /// Median days from the last event to the flag over churned spells, misses counted as
    /// infinite (the lower middle of an even count); `None` when more than half are missed.
    pub(crate) median_delay: Option<u32>,
    /// The same median over the detected churned spells only.
    pub(crate) median_delay_detected: Option<u32>,
    /// `detected / (detected + false_alarms)`.
    pub(crate) precision: Option<f64>,
    /// `detected / churned`.
    pub(crate) recall: f64,
}

/// Scores `flags` against `spells`.
pub(crate) fn score(spells: &[Spell], flags: &Flags, end_day: u32) -> Score {
    let (mut returning, mut false_alarms, mut churned) = (0, 0, 0);
    let mut delays: Vec<Option<u32>> = Vec::new();
    for spell in spells {
        let until = spell.back.unwrap_or(end_day + 1);
        let first = flags.get(&spell.account).and_then(|days| {
            let i = days.partition_point(|&d| d < spell.start);
            days.get(i).copied().filter(|&d| d < until)
        });
        match spell.back {
            Some(_) => {
                returning += 1;
                false_alarms += usize::from(first.is_some());
            }
            None => {
                churned += 1;
                delays.push(first.map(|d| d - spell.start));
            }
        }
    }
    let detected = delays.iter().flatten().count();
    let mut found: Vec<u32> = delays.iter().flatten().copied().collect();
    found.sort_unstable();
    let lower_middle = |n: usize| (n.max(1) - 1) / 2;
    let median_delay = if churned == 0 {
        None
    } else {
        found.get(lower_middle(churned)).copied()
    };
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Score {
        returning,
        false_alarms,
        false_alarm_rate: ratio(false_alarms, returning),
        churned,
        detected,
        median_delay,
        median_delay_detected: found.get(lower_middle(found.len())).copied(),
        precision: (detected + false_alarms > 0).then(|| ratio(detected, detected + false_alarms)),
        recall: ratio(detected, churned),
    }
}

/// The churned accounts among `spells`, by id.
pub(crate) fn churned_accounts(spells: &[Spell]) -> BTreeMap<u64, u32> {
    spells
        .iter()
        .filter(|s| s.back.is_none())
        .map(|s| (s.account, s.start))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_a_crafted_history() {
        // Account 1: active on days 0, 1, 10, 30; the data ends on day 100; churned.
        // Account 2: active on 0 and 95: its last spell is censored.
        let activity: Activity = [(1, vec![0, 1, 10, 30]), (2, vec![0, 95])].into();
        let spells = spells(&activity, 100, 60);
        assert_eq!(spells.len(), 5);
        // Flags: a false alarm on day 5 (in 1..10), another on 6 in the same spell, the
        // churned spell caught on day 44, and one in account 2's censored spell.
        let flags = flags_from([(1, 5), (1, 6), (1, 44), (2, 99)]);
        let got = score(&spells, &flags, 100);
        assert_eq!(got.returning, 4);
        assert_eq!(got.false_alarms, 1);
        assert_eq!(got.churned, 1);
        assert_eq!(got.detected, 1);
        assert_eq!(got.median_delay, Some(14));
        assert_eq!(got.precision, Some(0.5));
        assert_eq!(got.recall, 1.0);
        // A fixed 7-day threshold from the activity alone: days 8 (in 1..10), 17 and 37.
        let fixed = fixed_flags(&activity, 100, 7);
        assert_eq!(fixed[&1], [8, 17, 37]);
        assert_eq!(fixed[&2], [7]);
        let got = score(&spells, &fixed, 100);
        assert_eq!((got.false_alarms, got.median_delay), (3, Some(7)));
    }

    #[test]
    fn misses_count_as_infinite_delay() {
        let activity: Activity = [(1, vec![0]), (2, vec![0]), (3, vec![0])].into();
        let spells = spells(&activity, 100, 30);
        let one = score(&spells, &flags_from([(1, 3)]), 100);
        assert_eq!(
            (one.median_delay, one.median_delay_detected),
            (None, Some(3))
        );
        let two = score(&spells, &flags_from([(1, 3), (2, 9)]), 100);
        assert_eq!(two.median_delay, Some(9));
    }
}
