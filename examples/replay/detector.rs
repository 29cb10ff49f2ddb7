//! The detectors the replay measures, behind one small interface.
//!
//! A [`Detector`] answers one question: which accounts does it flag at the evaluation time
//! `now`? The replay calls it once per day of the history, after loading that day's events,
//! so a detector sees only what had happened by then. A new detector plugs in by
//! implementing the trait and being listed in [`detectors`].

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures::future::BoxFuture;
use idp_analytics::{canary::Detector as Rule, usage::Usage};
use tokio::sync::Mutex;

/// One detector under test.
pub(crate) trait Detector: Send + Sync {
    /// The name in the table: `fixed-7d`, `silent`, ...
    fn name(&self) -> String;

    /// The family it belongs to, for the false-alarm budget table: detectors of one family
    /// differ only in a tuning parameter.
    fn family(&self) -> String;

    /// Accounts flagged at `now` (in any order, each once).
    fn flagged(&self, now: SystemTime) -> BoxFuture<'_, idp_analytics::Result<Vec<u64>>>;
}

/// No event for `days` days: the fixed threshold, from [`Usage::inactive_accounts`].
///
/// The thresholds made by one [`FixedFamily`] share one query per evaluation time: the
/// accounts quiet for the shortest threshold, with their last event, of which each longer
/// threshold keeps those quiet for longer.
pub(crate) struct Fixed {
    family: Arc<FixedFamily>,
    days: u64,
}

/// Accounts quiet at an evaluation time, with their last event.
type Quiet = (SystemTime, Vec<(u64, SystemTime)>);

/// The shared query of a set of fixed thresholds.
pub(crate) struct FixedFamily {
    usage: Usage,
    shortest: u64,
    /// The last answer: the evaluation time, and each quiet account's last event.
    memo: Mutex<Option<Quiet>>,
}

impl FixedFamily {
    /// Fixed thresholds of each of `days` (at least one), answered from `usage`.
    pub(crate) fn detectors(usage: &Usage, days: &[u64]) -> Vec<Fixed> {
        let family = Arc::new(Self {
            usage: usage.clone(),
            shortest: days.iter().copied().min().expect("at least one threshold"),
            memo: Mutex::new(None),
        });
        days.iter()
            .map(|&days| Fixed {
                family: family.clone(),
                days,
            })
            .collect()
    }
}

impl Detector for Fixed {
    fn name(&self) -> String {
        format!("fixed-{}d", self.days)
    }

    fn family(&self) -> String {
        "fixed".into()
    }

    fn flagged(&self, now: SystemTime) -> BoxFuture<'_, idp_analytics::Result<Vec<u64>>> {
        Box::pin(async move {
            let family = &*self.family;
            let mut memo = family.memo.lock().await;
            if memo.as_ref().is_none_or(|(at, _)| *at != now) {
                let since = now - Duration::from_secs(family.shortest * 86_400);
                let quiet = family.usage.inactive_accounts(since, &[]).await?;
                let quiet = quiet
                    .into_iter()
                    .filter_map(|a| Some((a.account_id, a.last_seen?)))
                    .collect();
                *memo = Some((now, quiet));
            }
            let since = now - Duration::from_secs(self.days * 86_400);
            let quiet = &memo.as_ref().expect("just set").1;
            Ok(quiet
                .iter()
                .filter(|(_, last)| *last < since)
                .map(|(account, _)| *account)
                .collect())
        })
    }
}

/// The crate's adaptive detector ([`idp_analytics::canary::Detector`]): silent against the
/// account's own rhythm, or declining against its own baseline.
pub(crate) struct Canary {
    usage: Usage,
    rule: Rule,
    name: String,
}

impl Canary {
    /// The detector `rule`, named `name` in the table.
    pub(crate) fn new(usage: &Usage, name: &str, rule: Rule) -> Self {
        Self {
            usage: usage.clone(),
            rule,
            name: name.into(),
        }
    }
}

impl Detector for Canary {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn family(&self) -> String {
        "canary".into()
    }

    fn flagged(&self, now: SystemTime) -> BoxFuture<'_, idp_analytics::Result<Vec<u64>>> {
        Box::pin(async move {
            let findings = self.rule.detect(&self.usage, now, &[]).await?;
            Ok(findings.into_iter().map(|f| f.account_id).collect())
        })
    }
}

/// The adaptive detectors every run measures: the default, and the default with other gap
/// factors (how many times its usual longest gap an account must be silent), for the
/// false-alarm budget table. `REPLAY_CANARY_FACTORS` (comma-separated) replaces the
/// variants; empty runs the default only; `REPLAY_CANARY=off` runs none.
pub(crate) fn canary_variants() -> Vec<(String, Rule)> {
    if std::env::var("REPLAY_CANARY").is_ok_and(|v| v == "off") {
        return Vec::new();
    }
    let mut out = vec![("canary".to_owned(), Rule::default())];
    let factors = std::env::var("REPLAY_CANARY_FACTORS").unwrap_or_else(|_| "1.5,3,4".into());
    for factor in factors
        .split(',')
        .filter_map(|f| f.trim().parse::<f64>().ok())
    {
        out.push((
            format!("canary-x{factor}"),
            Rule::default().with_gap_factor(factor),
        ));
    }
    out
}

/// The fixed thresholds every run measures, in days.
pub(crate) const FIXED_DAYS: [u64; 4] = [7, 14, 30, 90];

/// Every detector the replay runs against `usage`.
pub(crate) fn detectors(usage: &Usage) -> Vec<Box<dyn Detector>> {
    let mut all: Vec<Box<dyn Detector>> = Vec::new();
    for fixed in FixedFamily::detectors(usage, &FIXED_DAYS) {
        all.push(Box::new(fixed));
    }
    for (name, rule) in canary_variants() {
        all.push(Box::new(Canary::new(usage, &name, rule)));
    }
    all
}
