//! A SaaS-like history with known truth: accounts of several cadences, some steady, some
//! churning abruptly, some decaying slowly, some pausing and coming back. Deterministic for
//! a seed.

use super::data::{DAY, Dataset};

/// How often an account is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cadence {
    /// Nearly every day.
    Daily,
    /// Monday to Friday.
    Weekdays,
    /// One day a week.
    Weekly,
    /// One day in every 30.
    Monthly,
    /// A trial: a day or three of use after signing up, then nothing.
    Trial,
}

/// What happens to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Keeps its rhythm to the end.
    Steady,
    /// Stops at once on day `at`.
    Churns { at: u32 },
    /// Fades from day `from` and stops on day `at`.
    Decays { from: u32, at: u32 },
    /// Pauses on day `from` and comes back on day `back`.
    Pauses { from: u32, back: u32 },
}

/// One generated account and its truth.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    /// Its id.
    pub(crate) id: u64,
    /// Its rhythm.
    pub(crate) cadence: Cadence,
    /// Its fate.
    pub(crate) fate: Fate,
    /// The day of its first possible event.
    pub(crate) start: u32,
}

impl Account {
    /// Whether the truth says it stopped for good.
    pub(crate) fn churns(&self) -> bool {
        self.cadence == Cadence::Trial
            || matches!(self.fate, Fate::Churns { .. } | Fate::Decays { .. })
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// The seed: the same seed gives the same history.
    pub(crate) seed: u64,
    /// Number of accounts.
    pub(crate) accounts: u64,
    /// Length of the history in days.
    pub(crate) days: u32,
    /// Every pause ends at least this many days before the end, so a paused account is never
    /// taken for a churned one.
    pub(crate) churn_days: u32,
}

/// 2025-01-06, a Monday.
pub(crate) const FIRST_DAY: u32 = 20_094;

/// 0 is Monday.
pub(crate) fn weekday(day: u32) -> u32 {
    (day + 3) % 7
}

/// The history and its truth.
pub(crate) fn generate(config: Config) -> (Dataset, Vec<Account>) {
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let end = FIRST_DAY + config.days - 1;
    let mut accounts = Vec::new();
    let mut events = Vec::new();
    for id in 1..=config.accounts {
        let cadence = match rng.u32(0..100) {
            0..25 => Cadence::Daily,
            25..50 => Cadence::Weekdays,
            50..70 => Cadence::Weekly,
            70..85 => Cadence::Monthly,
            _ => Cadence::Trial,
        };
        let start = FIRST_DAY + rng.u32(0..config.days / 2);
        let fate = fate(&mut rng, cadence, start, end, config.churn_days);
        let account = Account {
            id,
            cadence,
            fate,
            start,
        };
        let anchor = rng.u32(0..30);
        let mut last_active = None;
        for day in start..=end {
            let quiet_for = last_active.map_or(u32::MAX, |last| day - last);
            let mut p = base_probability(cadence, day, start, anchor, quiet_for);
            let mut volume = 1.0;
            match fate {
                Fate::Steady => {}
                Fate::Churns { at } => {
                    if day >= at {
                        p = 0.0;
                    }
                }
                Fate::Decays { from, at } => {
                    if day >= at {
                        p = 0.0;
                    } else if day >= from {
                        let left = f64::from(at - day) / f64::from(at - from);
                        p *= left;
                        volume = left;
                    }
                }
                Fate::Pauses { from, back } => {
                    if (from..back).contains(&day) {
                        p = 0.0;
                    }
                }
            }
            if p > 0.0 && rng.f64() < p {
                last_active = Some(day);
                let max = match cadence {
                    Cadence::Daily => 20,
                    Cadence::Weekdays => 15,
                    _ => 8,
                };
                let n = ((f64::from(rng.u32(1..=max)) * volume).ceil() as u32).max(1);
                for _ in 0..n {
                    events.push((id, day * DAY + rng.u32(8 * 3600..20 * 3600)));
                }
            }
        }
        accounts.push(account);
    }
    (Dataset::new("saas", events, Some(end)), accounts)
}

fn fate(rng: &mut fastrand::Rng, cadence: Cadence, start: u32, end: u32, churn_days: u32) -> Fate {
    if cadence == Cadence::Trial {
        return Fate::Churns { at: start + 3 };
    }
    let roll = rng.u32(0..100);
    let earliest = start + 45;
    if roll < 20 && earliest < end {
        return Fate::Churns {
            at: rng.u32(earliest..end),
        };
    }
    if roll < 35 && earliest + 30 < end {
        let from = rng.u32(earliest..end - 30);
        return Fate::Decays {
            from,
            at: (from + rng.u32(21..=56)).min(end),
        };
    }
    if roll < 55 {
        let length = match cadence {
            Cadence::Daily => rng.u32(5..=14),
            Cadence::Weekdays => rng.u32(7..=21),
            Cadence::Weekly => rng.u32(21..=35),
            _ => rng.u32(45..=75),
        };
        let latest = end.saturating_sub(churn_days + length + 10);
        if earliest < latest {
            let from = rng.u32(earliest..latest);
            return Fate::Pauses {
                from,
                back: from + length,
            };
        }
    }
    Fate::Steady
}

/// The chance of an event on `day` for an account of `cadence` (before its fate), `quiet_for`
/// days after its last active day.
fn base_probability(cadence: Cadence, day: u32, start: u32, anchor: u32, quiet_for: u32) -> f64 {
    match cadence {
        Cadence::Daily => 0.97,
        Cadence::Weekdays => {
            if weekday(day) < 5 {
                0.95
            } else {
                0.02
            }
        }
        // One day a week: its weekday, or the day after.
        Cadence::Weekly => match (day + 7 - start % 7 - anchor % 7) % 7 {
            0 => 0.7,
            1 if quiet_for > 1 => 1.0,
            _ => 0.0,
        },
        // One day in each 30-day block, within two days of its anchor.
        Cadence::Monthly => match (day - start + 30 - anchor) % 30 {
            0 => 0.4,
            k @ (1 | 2) if quiet_for > k => [0.5, 1.0][k as usize - 1],
            _ => 0.0,
        },
        Cadence::Trial => match day - start {
            0 => 1.0,
            1 | 2 => 0.5,
            _ => 0.0,
        },
    }
}
