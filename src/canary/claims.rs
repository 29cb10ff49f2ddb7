//! The watch's log of transitions: what was claimed, delivered or failed, and what to do next.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The state an account crosses into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i8)]
pub(super) enum Kind {
    Inactive = 1,
    Active = 2,
}

/// A step recorded for a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub(super) enum Step {
    Claimed = 1,
    Delivered = 2,
    Failed = 3,
    /// Taken note of without notifying (an account back while "back" is not notified).
    Recorded = 4,
    /// An account active again, whose recovery window starts.
    Returning = 5,
}

/// One account crossing into `kind`, for the quiet period after its event at `last_seen`
/// (Unix seconds; 0 when it never had one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Transition {
    pub(super) account_id: u64,
    pub(super) last_seen: u32,
    pub(super) kind: Kind,
}

#[derive(clickhouse::Row, Serialize)]
pub(super) struct LogInsert<'a> {
    pub(super) watch: &'a str,
    pub(super) account_id: u64,
    pub(super) kind: i8,
    pub(super) last_seen: u32,
    pub(super) round: u32,
    pub(super) step: i8,
    #[serde(with = "clickhouse::serde::uuid")]
    pub(super) instance: Uuid,
}

#[derive(clickhouse::Row, Deserialize, Clone, Copy, Debug)]
pub(super) struct LogRow {
    pub(super) account_id: u64,
    pub(super) kind: i8,
    pub(super) last_seen: u32,
    pub(super) round: u32,
    pub(super) step: i8,
    #[serde(with = "clickhouse::serde::uuid")]
    pub(super) instance: Uuid,
    pub(super) recorded_at: u32,
}

/// What the log says about one transition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Record {
    /// Delivered, or recorded without a notification: nothing more to do.
    pub(super) done: bool,
    pub(super) delivered: bool,
    /// The latest round claimed, when it was first claimed, and whether it failed.
    pub(super) round: Option<(u32, u32, bool)>,
    /// When it was delivered (the latest delivery, server time).
    pub(super) delivered_at: Option<u32>,
    /// When the account was first seen active again (a "back" transition only).
    pub(super) returning_at: Option<u32>,
}

/// The transitions of each account, in order.
type History = HashMap<u64, BTreeMap<(u32, Kind), Record>>;

pub(super) fn kind_of(row: &LogRow) -> Kind {
    if row.kind == Kind::Active as i8 {
        Kind::Active
    } else {
        Kind::Inactive
    }
}

pub(super) fn history(rows: &[LogRow]) -> History {
    let mut history = History::new();
    for row in rows {
        let record = history
            .entry(row.account_id)
            .or_default()
            .entry((row.last_seen, kind_of(row)))
            .or_default();
        match row.step {
            s if s == Step::Delivered as i8 => {
                record.done = true;
                record.delivered = true;
                record.delivered_at = record.delivered_at.max(Some(row.recorded_at));
            }
            s if s == Step::Returning as i8 => {
                record.returning_at = Some(
                    record
                        .returning_at
                        .map_or(row.recorded_at, |at| at.min(row.recorded_at)),
                );
            }
            s if s == Step::Recorded as i8 => record.done = true,
            s if s == Step::Claimed as i8 => {
                record.round = Some(match record.round {
                    Some((r, at, failed)) if r == row.round => (r, at.min(row.recorded_at), failed),
                    Some(current) if current.0 > row.round => current,
                    _ => (row.round, row.recorded_at, false),
                });
            }
            _ => {}
        }
    }
    // Failures mark their round once every claim is in (rows are not in time order).
    for row in rows.iter().filter(|r| r.step == Step::Failed as i8) {
        if let Some(record) = history
            .get_mut(&row.account_id)
            .and_then(|h| h.get_mut(&(row.last_seen, kind_of(row))))
            && let Some((r, _, failed)) = &mut record.round
            && *r == row.round
        {
            *failed = true;
        }
    }
    history
}

/// What an account looks like at this check.
#[derive(Clone, Copy, Debug)]
pub(super) enum Observation {
    /// No event since the cutoff; `last_seen` 0 when it never had one.
    Quiet { last_seen: u32 },
    /// An event since the cutoff.
    Active,
}

/// What to do about one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// Claim the transition in this round, then notify if the claim wins.
    Claim(Transition, u32),
    /// Take note of the transition without notifying.
    Record(Transition),
    /// Note that the account is active again: its recovery window starts.
    Note(Transition),
}

/// The fatigue controls of a watch.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fatigue {
    /// At most one notification per account in this time.
    pub(super) min_interval: Duration,
    /// How long an account stays active before it is back.
    pub(super) recovery: Duration,
}

/// The plan for one account, as [`plan`], with the fatigue controls: a new notification
/// within `min_interval` of the account's last one waits.
pub(super) fn plan_with(
    account_id: u64,
    history: Option<&BTreeMap<(u32, Kind), Record>>,
    now: Observation,
    server_now: u32,
    claim_timeout: Duration,
    notify_back: bool,
    fatigue: Fatigue,
) -> Option<Plan> {
    let planned = if fatigue.recovery.is_zero() {
        plan(
            account_id,
            history,
            now,
            server_now,
            claim_timeout,
            notify_back,
        )
    } else {
        recovering(
            account_id,
            history,
            now,
            server_now,
            notify_back,
            fatigue.recovery,
        )
        .unwrap_or_else(|| {
            plan(
                account_id,
                history,
                now,
                server_now,
                claim_timeout,
                notify_back,
            )
        })
    };
    if let Some(Plan::Claim(_, 0)) = planned {
        let last = history
            .into_iter()
            .flat_map(|h| h.values())
            .filter_map(|r| r.delivered_at)
            .max();
        if let Some(last) = last
            && u64::from(server_now.saturating_sub(last)) < fatigue.min_interval.as_secs()
        {
            return None;
        }
    }
    planned
}

/// The plan while an account recovers (`Some(None)`: nothing to do yet), or `None` to plan
/// as without a recovery window.
#[allow(clippy::option_option)]
fn recovering(
    account_id: u64,
    history: Option<&BTreeMap<(u32, Kind), Record>>,
    now: Observation,
    server_now: u32,
    notify_back: bool,
    recovery: Duration,
) -> Option<Option<Plan>> {
    let history = history?;
    let ((l0, kind), record) = history.iter().next_back()?;
    let back = Transition {
        account_id,
        last_seen: *l0,
        kind: Kind::Active,
    };
    match (now, kind) {
        // Active again after a quiet period: the recovery window starts.
        (Observation::Active, Kind::Inactive) => Some(Some(Plan::Note(back))),
        (_, Kind::Active) if !record.done && record.round.is_none() => {
            let returning = record.returning_at?;
            match now {
                // Quiet again within its recovery window: the same quiet period.
                Observation::Quiet { .. } => Some(None),
                Observation::Active
                    if u64::from(server_now.saturating_sub(returning)) < recovery.as_secs() =>
                {
                    Some(None)
                }
                Observation::Active => {
                    let told = history
                        .get(&(*l0, Kind::Inactive))
                        .is_some_and(|r| r.delivered);
                    Some(Some(if told && notify_back {
                        Plan::Claim(back, 0)
                    } else {
                        Plan::Record(back)
                    }))
                }
            }
        }
        _ => None,
    }
}

/// The plan for one account, given its history, what it looks like now, and the server's
/// clock (for stale claims).
pub(super) fn plan(
    account_id: u64,
    history: Option<&BTreeMap<(u32, Kind), Record>>,
    now: Observation,
    server_now: u32,
    claim_timeout: Duration,
    notify_back: bool,
) -> Option<Plan> {
    let latest = history.and_then(|h| h.iter().next_back());
    let claim = |last_seen: u32, kind: Kind, record: Option<&Record>| -> Option<Plan> {
        let t = Transition {
            account_id,
            last_seen,
            kind,
        };
        let Some(record) = record else {
            return Some(Plan::Claim(t, 0));
        };
        if record.done {
            return None;
        }
        match record.round {
            None => Some(Plan::Claim(t, 0)),
            Some((r, claimed_at, failed)) => {
                let stale =
                    u64::from(server_now.saturating_sub(claimed_at)) >= claim_timeout.as_secs();
                (failed || stale).then_some(Plan::Claim(t, r + 1))
            }
        }
    };
    match (now, latest) {
        // Still in the quiet period already handled (or being handled); a late event with
        // an old time may have moved its last-seen, but it is the same period.
        (Observation::Quiet { .. }, Some(((l0, Kind::Inactive), record))) => {
            claim(*l0, Kind::Inactive, Some(record))
        }
        (Observation::Quiet { last_seen }, _) => claim(
            last_seen,
            Kind::Inactive,
            history.and_then(|h| h.get(&(last_seen, Kind::Inactive))),
        ),
        (Observation::Active, Some(((l0, Kind::Inactive), record))) => {
            let back = Transition {
                account_id,
                last_seen: *l0,
                kind: Kind::Active,
            };
            if record.delivered && notify_back {
                claim(*l0, Kind::Active, None)
            } else {
                // Back before anyone was told, or "back" is not notified: take note, so the
                // next quiet period is a new one.
                Some(Plan::Record(back))
            }
        }
        // A "back" notification not delivered yet: keep trying while it holds.
        (Observation::Active, Some(((l0, Kind::Active), record))) if notify_back => {
            claim(*l0, Kind::Active, Some(record))
        }
        (Observation::Active, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn row(account_id: u64, kind: Kind, last_seen: u32, round: u32, step: Step, at: u32) -> LogRow {
        LogRow {
            account_id,
            kind: kind as i8,
            last_seen,
            round,
            step: step as i8,
            instance: Uuid::nil(),
            recorded_at: at,
        }
    }

    fn fatigued(
        rows: &[LogRow],
        now: Observation,
        server_now: u32,
        back: bool,
        fatigue: Fatigue,
    ) -> Option<Plan> {
        let h = history(rows);
        plan_with(1, h.get(&1), now, server_now, HOUR, back, fatigue)
    }

    #[test]
    fn canary_at_most_one_notification_per_interval() {
        let fatigue = Fatigue {
            min_interval: 24 * HOUR,
            recovery: Duration::ZERO,
        };
        // Told it went quiet, then back (recorded), and quiet again an hour later.
        let rows = [
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 1000),
            row(1, Kind::Inactive, 100, 0, Step::Delivered, 1001),
            row(1, Kind::Active, 100, 0, Step::Recorded, 2000),
        ];
        let quiet = Observation::Quiet { last_seen: 1500 };
        assert_eq!(fatigued(&rows, quiet, 4600, false, fatigue), None);
        assert_eq!(
            fatigued(&rows, quiet, 1001 + 86_400, false, fatigue),
            Some(Plan::Claim(t(1500, Kind::Inactive), 0))
        );
        // Without the control, at once.
        assert_eq!(
            fatigued(&rows, quiet, 4600, false, Fatigue::default()),
            Some(Plan::Claim(t(1500, Kind::Inactive), 0))
        );
    }

    #[test]
    fn canary_back_only_after_the_recovery_window() {
        let fatigue = Fatigue {
            min_interval: Duration::ZERO,
            recovery: 2 * HOUR,
        };
        let told = vec![
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 1000),
            row(1, Kind::Inactive, 100, 0, Step::Delivered, 1001),
        ];
        let active = Observation::Active;
        assert_eq!(
            fatigued(&told, active, 5000, true, fatigue),
            Some(Plan::Note(t(100, Kind::Active)))
        );
        let mut returning = told.clone();
        returning.push(row(1, Kind::Active, 100, 0, Step::Returning, 5000));
        // Within the window: nothing; quiet again within it: the same quiet period.
        assert_eq!(
            fatigued(&returning, active, 5000 + 7199, true, fatigue),
            None
        );
        let quiet = Observation::Quiet { last_seen: 5100 };
        assert_eq!(fatigued(&returning, quiet, 9000, true, fatigue), None);
        // Past it: back, notified or noted.
        assert_eq!(
            fatigued(&returning, active, 5000 + 7200, true, fatigue),
            Some(Plan::Claim(t(100, Kind::Active), 0))
        );
        assert_eq!(
            fatigued(&returning, active, 5000 + 7200, false, fatigue),
            Some(Plan::Record(t(100, Kind::Active)))
        );
        // Once claimed, as without a window.
        returning.push(row(1, Kind::Active, 100, 0, Step::Claimed, 12_300));
        assert_eq!(fatigued(&returning, active, 12_400, true, fatigue), None);
    }

    fn plan_for(rows: &[LogRow], now: Observation, server_now: u32, back: bool) -> Option<Plan> {
        let h = history(rows);
        plan(1, h.get(&1), now, server_now, HOUR, back)
    }

    fn t(last_seen: u32, kind: Kind) -> Transition {
        Transition {
            account_id: 1,
            last_seen,
            kind,
        }
    }

    #[test]
    fn canary_a_new_quiet_period_is_claimed_once() {
        let quiet = Observation::Quiet { last_seen: 100 };
        assert_eq!(
            plan_for(&[], quiet, 1000, false),
            Some(Plan::Claim(t(100, Kind::Inactive), 0))
        );
        // Claimed by someone a moment ago: theirs.
        let claimed = [row(1, Kind::Inactive, 100, 0, Step::Claimed, 990)];
        assert_eq!(plan_for(&claimed, quiet, 1000, false), None);
        // Delivered: done, even if a late event with an old time moved its last-seen.
        let delivered = [
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
            row(1, Kind::Inactive, 100, 0, Step::Delivered, 991),
        ];
        assert_eq!(plan_for(&delivered, quiet, 5000, false), None);
        assert_eq!(
            plan_for(
                &delivered,
                Observation::Quiet { last_seen: 150 },
                5000,
                false
            ),
            None
        );
    }

    #[test]
    fn canary_failed_and_stale_claims_get_a_new_round() {
        let quiet = Observation::Quiet { last_seen: 100 };
        let failed = [
            row(1, Kind::Inactive, 100, 0, Step::Failed, 995),
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
        ];
        assert_eq!(
            plan_for(&failed, quiet, 1000, false),
            Some(Plan::Claim(t(100, Kind::Inactive), 1))
        );
        let stale = [row(1, Kind::Inactive, 100, 3, Step::Claimed, 1000)];
        assert_eq!(plan_for(&stale, quiet, 1000 + 3599, false), None);
        assert_eq!(
            plan_for(&stale, quiet, 1000 + 3600, false),
            Some(Plan::Claim(t(100, Kind::Inactive), 4))
        );
        // An older round's failure does not reopen a newer round.
        let newer = [
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
            row(1, Kind::Inactive, 100, 0, Step::Failed, 991),
            row(1, Kind::Inactive, 100, 1, Step::Claimed, 1990),
        ];
        assert_eq!(plan_for(&newer, quiet, 2000, false), None);
    }

    #[test]
    fn canary_coming_back_is_noted_and_optionally_notified() {
        let delivered = [
            row(1, Kind::Inactive, 100, 0, Step::Claimed, 990),
            row(1, Kind::Inactive, 100, 0, Step::Delivered, 991),
        ];
        let active = Observation::Active;
        assert_eq!(
            plan_for(&delivered, active, 2000, false),
            Some(Plan::Record(t(100, Kind::Active)))
        );
        assert_eq!(
            plan_for(&delivered, active, 2000, true),
            Some(Plan::Claim(t(100, Kind::Active), 0))
        );
        // Back before the quiet notification went out: noted, not notified.
        let undelivered = [row(1, Kind::Inactive, 100, 0, Step::Claimed, 990)];
        assert_eq!(
            plan_for(&undelivered, active, 2000, true),
            Some(Plan::Record(t(100, Kind::Active)))
        );
        // Noted: nothing more while active; a new quiet period after it is new.
        let mut back = delivered.to_vec();
        back.push(row(1, Kind::Active, 100, 0, Step::Recorded, 2000));
        assert_eq!(plan_for(&back, active, 3000, false), None);
        assert_eq!(plan_for(&back, active, 3000, true), None);
        assert_eq!(
            plan_for(&back, Observation::Quiet { last_seen: 2500 }, 9000, false),
            Some(Plan::Claim(t(2500, Kind::Inactive), 0))
        );
        // Never reported: nothing to say when active.
        assert_eq!(plan_for(&[], active, 3000, true), None);
    }
}
