//! How often accounts like one came back after a silence as long as its own: the population's
//! chance of return, by active days and pace, estimated from every quiet spell in the rollup.
//!
//! A *quiet spell* runs from an active day to the account's next active day (it came back),
//! or to the evaluation day (it is still quiet, and censored there). Spells are put in
//! [`Like`] groups by the account's active days up to the spell and its pace, the mean days
//! from one active day to the next. Within a group, the chance that a spell that lasted `s`
//! days ends within the next `within` days is a Kaplan–Meier estimate over the spells still
//! quiet at each length, so the spells that are quiet today count for as long as they
//! lasted, not as churned and not as returned.

use std::{fmt, sync::Arc};

use serde::Deserialize;

use super::{
    day::Day,
    query::{Source, Usage},
    rhythm::{RhythmWindow, Sample, active_days_sql},
};
use crate::error::Result;

/// Spells a length must have seen end or go on for the chance there to count.
pub const MIN_SPELLS: u64 = 50;

/// The longest spell counted, in days; longer ones count as this long.
const LONGEST: u32 = 3_660;

/// Lower bounds of the groups by active days: 1, 2, 3, 4–5, 6–9, 10 or more.
const ACTIVE: [u32; 6] = [1, 2, 3, 4, 6, 10];
/// Upper bounds of the groups by pace (mean days from one active day to the next): at most
/// 1, 3, 7, 15, 31 and 63 days, and more.
const PACE: [u32; 6] = [1, 3, 7, 15, 31, 63];
const GROUPS: usize = ACTIVE.len() * (PACE.len() + 1);

/// A group of like accounts: by active days so far (1, 2, 3, 4–5, 6–9, 10 or more), and,
/// with more than one, by pace (the mean days from one active day to the next: at most 1,
/// 3, 7, 15, 31 or 63 days, or more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Like {
    active: u8,
    pace: u8,
}

impl Like {
    /// The group of an account with `active_days` active days, the first on `first` and the
    /// last on `last`.
    pub fn of(active_days: u32, first: Day, last: Day) -> Self {
        let active = ACTIVE.iter().filter(|&&a| active_days >= a).count().max(1) - 1;
        let pace = if active_days < 2 {
            0
        } else {
            let span = u64::from(last.0.saturating_sub(first.0));
            let steps = u64::from(active_days - 1);
            PACE.iter()
                .filter(|&&p| span > u64::from(p) * steps)
                .count()
        };
        Self {
            active: active as u8,
            pace: pace as u8,
        }
    }

    fn index(self) -> usize {
        usize::from(self.active) * (PACE.len() + 1) + usize::from(self.pace)
    }
}

impl fmt::Display for Like {
    /// "1 active day", "4 to 5 active days, about one every 2 to 3 days".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = usize::from(self.active);
        match (ACTIVE[a], ACTIVE.get(a + 1)) {
            (1, _) => return f.write_str("1 active day"),
            (low, Some(&next)) if next == low + 1 => write!(f, "{low} active days")?,
            (low, Some(&next)) => write!(f, "{low} to {} active days", next - 1)?,
            (low, None) => write!(f, "{low} or more active days")?,
        }
        let p = usize::from(self.pace);
        match (p.checked_sub(1).map(|i| PACE[i]), PACE.get(p)) {
            (None, _) => f.write_str(", active every day"),
            (Some(low), Some(&high)) if high == low + 1 => {
                write!(f, ", about one every {high} days")
            }
            (Some(low), Some(&high)) => {
                write!(f, ", about one every {} to {high} days", low + 1)
            }
            (Some(low), None) => write!(f, ", one every {} days or more", low + 1),
        }
    }
}

/// One group's estimate, for spells of 1 to `measured` days.
#[derive(Clone, Debug, Default, PartialEq)]
struct Group {
    /// At `s - 1`: the chance that a spell that lasted `s` days ends within the next
    /// `within` days.
    chance: Vec<f64>,
    /// At `s - 1`: the lowest chance at `s` or shorter.
    lowest: Vec<f64>,
    /// At `s - 1`: the spells that lasted more than `s` days.
    longer: Vec<u64>,
}

/// The chance at one silence of an account's [`Like`] group. Made by [`ReturnChances::at`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Chance {
    /// The silence the chance was measured at: the account's own, or the longest the
    /// group's estimate reaches when its silence is longer.
    pub silent_days: u32,
    /// The share of the group's spells that lasted that long and ended within the next
    /// [`within_days`](ReturnChances::within_days).
    pub chance: f64,
    /// Spells of the group that lasted that long: what the chance was measured on.
    pub spells: u64,
    /// The longest silence the group's estimate reaches.
    pub measured_days: u32,
    /// The shortest silence, at most `silent_days`, at which the chance was below the
    /// `below` asked for; `None` if it never was.
    pub fell_below_at: Option<u32>,
}

/// How often the accounts of each [`Like`] group came back after each length of silence:
/// what an account with too little history of its own is judged by. Made by
/// [`Usage::return_chances`]; empty by default (it then judges no one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReturnChances {
    within_days: u32,
    spells: u64,
    sampled_one_in: u64,
    groups: Arc<[Group]>,
}

#[derive(clickhouse::Row, Deserialize)]
struct SpellRow {
    active: u8,
    pace: u8,
    len: u32,
    back: u8,
    spells: u64,
}

impl ReturnChances {
    /// Estimates from `(group, length, came back, spells)` counts: the chance within
    /// `within_days`, where at least [`MIN_SPELLS`] spells were quiet for `within_days`
    /// past the silence, or `watched_days` past it at the longest silences measured.
    fn estimate(
        counts: impl IntoIterator<Item = (Like, u32, bool, u64)>,
        within_days: u32,
        watched_days: u32,
    ) -> Self {
        // Per group, per length: spells that ended with a return, and spells still quiet.
        let mut ended: Vec<Vec<u64>> = vec![Vec::new(); GROUPS];
        let mut quiet: Vec<Vec<u64>> = vec![Vec::new(); GROUPS];
        let mut spells = 0;
        for (like, len, back, n) in counts {
            let len = len.min(LONGEST) as usize;
            let g = like.index();
            for v in [&mut ended[g], &mut quiet[g]] {
                if v.len() <= len {
                    v.resize(len + 1, 0);
                }
            }
            if back {
                ended[g][len] += n;
            } else {
                quiet[g][len] += n;
            }
            spells += n;
        }
        let groups = ended
            .iter()
            .zip(&quiet)
            .map(|(ended, quiet)| Self::group(ended, quiet, within_days, watched_days))
            .collect();
        Self {
            within_days,
            spells,
            sampled_one_in: 1,
            groups,
        }
    }

    fn group(ended: &[u64], quiet: &[u64], within: u32, watched: u32) -> Group {
        let top = ended.len();
        // at_risk[u]: spells that lasted at least u days (did not end before day u).
        let mut at_risk = vec![0u64; top + 1];
        for u in (0..top).rev() {
            at_risk[u] = at_risk[u + 1] + ended[u] + quiet[u];
        }
        // The longest length with enough spells at risk.
        let Some(last) = (1..top).take_while(|&u| at_risk[u] >= MIN_SPELLS).last() else {
            return Group::default();
        };
        // survival[u]: the chance that a spell lasts more than u days.
        let mut survival = vec![1.0f64; last + 1];
        for u in 1..=last {
            survival[u] = survival[u - 1] * (1.0 - ended[u] as f64 / at_risk[u] as f64);
        }
        let measured = last.saturating_sub(watched as usize);
        let mut g = Group::default();
        let mut lowest = f64::INFINITY;
        for s in 1..=measured {
            let end = (s + within as usize).min(last);
            let chance = if survival[s] > 0.0 {
                1.0 - survival[end] / survival[s]
            } else {
                0.0
            };
            lowest = lowest.min(chance);
            g.chance.push(chance);
            g.lowest.push(lowest);
            g.longer.push(at_risk[s + 1]);
        }
        g
    }

    /// The chance that an account of `like`, silent `silent_days` days, comes back within
    /// [`within_days`](Self::within_days), and whether it was below `below` at that silence
    /// or a shorter one. `None` while the group has too few spells to tell (or for a silence
    /// of 0 days).
    pub fn at(&self, like: Like, silent_days: u32, below: f64) -> Option<Chance> {
        let g = self.groups.get(like.index())?;
        let measured = g.chance.len() as u32;
        if measured == 0 || silent_days == 0 {
            return None;
        }
        let s = silent_days.min(measured);
        let i = s as usize - 1;
        let fell = g.lowest[..=i].partition_point(|&l| l >= below);
        Some(Chance {
            silent_days: s,
            chance: g.chance[i],
            spells: g.longer[i],
            measured_days: measured,
            fell_below_at: (fell <= i).then_some(fell as u32 + 1),
        })
    }

    /// The days after a silence within which a return counts.
    pub fn within_days(&self) -> u32 {
        self.within_days
    }

    /// The quiet spells the estimates were made from.
    pub fn spells(&self) -> u64 {
        self.spells
    }

    /// They were measured on one account in this many (1: on every account).
    pub fn sampled_one_in(&self) -> u64 {
        self.sampled_one_in
    }

    /// Whether no group has enough spells to tell.
    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(|g| g.chance.is_empty())
    }
}

/// The query of the spell counts by group, length and outcome, over the accounts where
/// `sample` holds, up to the day of `window.at`.
fn spells_sql(src: &Source, window: &RhythmWindow, sample: &str) -> String {
    let today = Day::of(window.at);
    let t = today.days_since_epoch();
    let days = active_days_sql(src, window.at, None, sample, "");
    let active = ACTIVE
        .iter()
        .enumerate()
        .rev()
        .map(|(i, a)| format!("i >= {a}, {i}, "))
        .collect::<String>();
    let pace = PACE
        .iter()
        .enumerate()
        .map(|(i, p)| format!("ds[i] - ds[1] <= {p} * (i - 1), {i}, "))
        .collect::<String>();
    format!(
        "SELECT toUInt8(tupleElement(s, 1)) AS active, toUInt8(tupleElement(s, 2)) AS pace, \
            toUInt32(tupleElement(s, 3)) AS len, toUInt8(tupleElement(s, 4)) AS back, \
            count() AS spells \
         FROM ( \
            SELECT arrayJoin(arrayMap(i -> tuple( \
                    multiIf({active}0), \
                    if(i = 1, 0, multiIf({pace}{paces})), \
                    least({longest}, if(i < length(ds), ds[i + 1] - ds[i], {t} - ds[i])), \
                    i < length(ds)), arrayEnumerate(ds))) AS s \
            FROM ( \
                SELECT account_id, arraySort(groupArray(toUInt32(day))) AS ds \
                FROM ({days}) \
                GROUP BY account_id \
            ) \
         ) \
         WHERE tupleElement(s, 3) > 0 \
         GROUP BY active, pace, len, back",
        paces = PACE.len(),
        longest = LONGEST,
    )
}

impl Usage {
    /// How often the accounts of each [`Like`] group came back after each length of silence,
    /// at `window.at`: within [`history_days`](RhythmWindow::history_days), measured where
    /// at least [`MIN_SPELLS`] spells were watched that long past the silence, or a third
    /// of it past the longest silences measured. Computed in ClickHouse from the rollup
    /// (each account's active days of all time up to `window.at`, counted by group, length
    /// and outcome); over more accounts than
    /// [`chunk_accounts`](RhythmWindow::chunk_accounts), over a sample of about that many,
    /// chosen by a hash of the account id, as [`rhythm_prior`](Self::rhythm_prior) is.
    pub async fn return_chances(&self, window: RhythmWindow) -> Result<ReturnChances> {
        self.return_chances_in(window, None).await
    }

    /// [`return_chances`](Self::return_chances) over `sample`, or over the
    /// [sample](Self::sample) it asks for when `None`.
    pub(crate) async fn return_chances_in(
        &self,
        window: RhythmWindow,
        sample: Option<&Sample>,
    ) -> Result<ReturnChances> {
        window.check()?;
        let sample = self.sample_or(&window, sample).await?;
        self.timed(|| async {
            let src = self.source().await?;
            let rows = self
                .client()
                .query(&spells_sql(&src, &window, &sample.condition))
                .fetch_all::<SpellRow>()
                .await?;
            let mut chances = ReturnChances::estimate(
                rows.into_iter().map(|r| {
                    let like = Like {
                        active: r.active.min(ACTIVE.len() as u8 - 1),
                        pace: r.pace.min(PACE.len() as u8),
                    };
                    (like, r.len, r.back != 0, r.spells)
                }),
                window.history_days,
                window.history_days / 3,
            );
            chances.sampled_one_in = sample.every;
            Ok(chances)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32) -> Day {
        Day::from_days_since_epoch(n)
    }

    #[test]
    fn groups_by_active_days_and_pace() {
        assert_eq!(Like::of(1, day(10), day(10)).to_string(), "1 active day");
        assert_eq!(
            Like::of(2, day(10), day(11)).to_string(),
            "2 active days, active every day"
        );
        assert_eq!(
            Like::of(3, day(10), day(16)).to_string(),
            "3 active days, about one every 2 to 3 days"
        );
        assert_eq!(
            Like::of(5, day(10), day(38)).to_string(),
            "4 to 5 active days, about one every 4 to 7 days"
        );
        assert_eq!(
            Like::of(40, day(0), day(39 * 70)).to_string(),
            "10 or more active days, one every 64 days or more"
        );
        // Every group has its own index.
        let mut seen = std::collections::HashSet::new();
        for a in 0..ACTIVE.len() as u8 {
            for p in 0..=PACE.len() as u8 {
                assert!(seen.insert(Like { active: a, pace: p }.index()));
            }
        }
        assert_eq!(seen.len(), GROUPS);
        assert!(seen.iter().all(|&i| i < GROUPS));
    }

    /// 100 spells of one group: 40 ended after 5 days, 60 are still quiet at 100 days.
    fn forty_back_after_five() -> ReturnChances {
        let like = Like::of(1, day(0), day(0));
        ReturnChances::estimate([(like, 5, true, 40), (like, 100, false, 60)], 30, 10)
    }

    #[test]
    fn the_chance_is_the_share_of_the_spells_that_lasted_as_long_and_ended_soon() {
        let chances = forty_back_after_five();
        let like = Like::of(1, day(0), day(0));
        // Silent 1 to 4 days: 40 of the 100 spells end within 30 days.
        let c = chances.at(like, 2, 0.3).unwrap();
        assert!((c.chance - 0.4).abs() < 1e-9, "{c:?}");
        assert_eq!(c.spells, 100);
        assert_eq!(c.fell_below_at, None);
        // Silent 5 days or more: none of the 60 left comes back.
        let c = chances.at(like, 5, 0.3).unwrap();
        assert_eq!(c.chance, 0.0);
        assert_eq!(c.spells, 60);
        assert_eq!(c.fell_below_at, Some(5));
        // Measured up to 100 - 10 days; a longer silence is judged there.
        let c = chances.at(like, 400, 0.3).unwrap();
        assert_eq!((c.silent_days, c.measured_days), (90, 90));
        assert_eq!(c.fell_below_at, Some(5));
        // Below 0.5 from the first day.
        assert_eq!(chances.at(like, 2, 0.5).unwrap().fell_below_at, Some(1));
        // Another group has no spells.
        assert_eq!(chances.at(Like::of(2, day(0), day(1)), 5, 0.3), None);
        assert_eq!(chances.spells(), 100);
    }

    #[test]
    fn quiet_spells_count_as_long_as_they_lasted() {
        // 50 spells ended after 10 days; 50 are quiet at 3 days only. Those 50 say nothing
        // of day 10: of the spells that lasted 5 days, all came back.
        let like = Like::of(1, day(0), day(0));
        let chances = ReturnChances::estimate([(like, 10, true, 50), (like, 3, false, 50)], 30, 0);
        // Up to 3 days there are 100 spells at risk; then only the 50.
        let c = chances.at(like, 2, 0.5).unwrap();
        assert_eq!(c.spells, 100);
        assert!(c.chance > 0.99, "{c:?}");
        // Past day 10 no spell is at risk: measured up to day 10.
        assert_eq!(c.measured_days, 10);
    }

    #[test]
    fn too_few_spells_tell_nothing() {
        let like = Like::of(1, day(0), day(0));
        let chances = ReturnChances::estimate([(like, 5, true, MIN_SPELLS - 1)], 30, 0);
        assert!(chances.is_empty());
        assert_eq!(chances.at(like, 3, 0.5), None);
        assert!(ReturnChances::default().is_empty());
    }
}
