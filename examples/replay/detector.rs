//! The detectors the replay measures, behind one small interface.
//!
//! A [`Detector`] answers one question: which accounts does it flag at the evaluation time
//! `now`? The replay calls it once per day of the history, after loading that day's events,
//! so a detector sees only what had happened by then. A new detector plugs in by
//! implementing the trait and being listed in [`detectors`].

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures::future::BoxFuture;
use idp_analytics::{
    canary::Detector as Rule,
    usage::{RhythmWindow, Usage},
};
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
/// account's own rhythm (or the population's, with too little history), or declining
/// against its own baseline.
///
/// The variants made by one [`CanaryFamily`] share the day's two queries, the population's
/// rhythm ([`Rule::prior`]) and every account's rhythm ([`Usage::rhythms`]), and each
/// judges the rows with [`Rule::judge`]: exactly what [`Rule::detect`] does, once per
/// evaluation time instead of once per variant.
pub(crate) struct Canary {
    family: Arc<CanaryFamily>,
    index: usize,
}

/// The flags of every variant at an evaluation time.
type Judged = (SystemTime, Vec<Vec<u64>>);

/// The shared queries of a set of adaptive variants, which differ only in what
/// [`Rule::judge`] reads (gap factor, floor, fallback), not in their windows.
pub(crate) struct CanaryFamily {
    usage: Usage,
    rules: Vec<(String, String, Rule)>,
    memo: Mutex<Option<Judged>>,
    /// Time spent in the prior's and the rhythms' queries, and evaluation times.
    spent: Mutex<(Duration, Duration, u32)>,
}

impl CanaryFamily {
    /// The variants `rules` (name, family, rule), answered from `usage`.
    pub(crate) fn detectors(usage: &Usage, rules: Vec<(String, String, Rule)>) -> Vec<Canary> {
        let n = rules.len();
        let family = Arc::new(Self {
            usage: usage.clone(),
            rules,
            memo: Mutex::new(None),
            spent: Mutex::new((Duration::ZERO, Duration::ZERO, 0)),
        });
        (0..n)
            .map(|index| Canary {
                family: family.clone(),
                index,
            })
            .collect()
    }

    async fn judge_all(&self, now: SystemTime) -> idp_analytics::Result<Vec<Vec<u64>>> {
        let started = Instant::now();
        // Every variant with a prior uses the default's quantile: one query.
        let with_prior = self.rules.iter().find(|(_, _, r)| r.is_adaptive());
        let prior = match with_prior {
            Some((_, _, rule)) => rule.prior(&self.usage, now).await?,
            None => None,
        };
        let prior_time = started.elapsed();
        let started = Instant::now();
        let mut out = vec![Vec::new(); self.rules.len()];
        let mut rhythms = self.usage.rhythms(RhythmWindow::at(now)).await?;
        while let Some(rhythm) = rhythms.next().await? {
            for (i, (_, _, rule)) in self.rules.iter().enumerate() {
                if rule.judge(&rhythm, prior.as_ref(), now).is_some() {
                    out[i].push(rhythm.account_id);
                }
            }
        }
        let rhythms_time = started.elapsed();
        let mut spent = self.spent.lock().await;
        spent.0 += prior_time;
        spent.1 += rhythms_time;
        spent.2 += 1;
        if spent.2 % 100 == 0 {
            eprintln!(
                "replay: {} evaluations, on average {:.0} ms for the prior, {:.0} ms for the \
                 rhythms (the last: prior {} over {} accounts, {:.0} + {:.0} ms)",
                spent.2,
                spent.0.as_secs_f64() * 1e3 / f64::from(spent.2),
                spent.1.as_secs_f64() * 1e3 / f64::from(spent.2),
                prior.as_ref().map_or(0, |p| p.period_days),
                prior.as_ref().map_or(0, |p| p.accounts),
                prior_time.as_secs_f64() * 1e3,
                rhythms_time.as_secs_f64() * 1e3,
            );
        }
        Ok(out)
    }
}

impl Detector for Canary {
    fn name(&self) -> String {
        self.family.rules[self.index].0.clone()
    }

    fn family(&self) -> String {
        self.family.rules[self.index].1.clone()
    }

    fn flagged(&self, now: SystemTime) -> BoxFuture<'_, idp_analytics::Result<Vec<u64>>> {
        Box::pin(async move {
            let family = &*self.family;
            let mut memo = family.memo.lock().await;
            if memo.as_ref().is_none_or(|(at, _)| *at != now) {
                *memo = Some((now, family.judge_all(now).await?));
            }
            Ok(memo.as_ref().expect("just set").1[self.index].clone())
        })
    }
}

/// The adaptive detectors every run measures:
///
/// - the default (`canary`), and the default with other gap factors (how many times its
///   usual period an account must be silent) and other return chances (below which share of
///   like accounts coming back an account with too little history is flagged): `canary-xF`
///   and `canary-xF-cC`, and with a fixed threshold of T days in place of the population's
///   period for the accounts whose like group has not been measured that far
///   (`canary-xF-cC-fT`), for the false-alarm budget table;
/// - as the family `canary-period`, the default and its gap factors without return chances:
///   accounts with too little history judged by the population's period alone (the default
///   of the previous version);
/// - as the family `canary-fixed-fallback`, the same with the fixed threshold instead (the
///   first version).
///
/// `REPLAY_CANARY_FACTORS` and `REPLAY_CANARY_CHANCES` (comma-separated) replace the
/// factors and the chances; empty runs the defaults only; `REPLAY_CANARY=off` runs none.
/// `REPLAY_CANARY_FALLBACKS` (days, comma-separated; 150 and 180 by default) adds, for each
/// of those days, each chance at each of the gap factors `REPLAY_CANARY_FALLBACK_FACTORS`
/// (10 by default) with that fixed threshold in place of the population's period
/// (`canary-xF-cC-fT`).
pub(crate) fn canary_variants() -> Vec<(String, String, Rule)> {
    if std::env::var("REPLAY_CANARY").is_ok_and(|v| v == "off") {
        return Vec::new();
    }
    let list = |name: &str, default: &str| -> Vec<f64> {
        std::env::var(name)
            .unwrap_or_else(|_| default.into())
            .split(',')
            .filter_map(|f| f.trim().parse::<f64>().ok())
            .collect()
    };
    let factors = list("REPLAY_CANARY_FACTORS", "1,1.5,2.5,3,3.5,4,5,6,8,10,12");
    let chances = list(
        "REPLAY_CANARY_CHANCES",
        "0.03,0.035,0.04,0.045,0.05,0.055,0.06,0.07,0.2",
    );
    let default_chance = 0.1;
    let mut out = vec![("canary".to_owned(), "canary".to_owned(), Rule::default())];
    for &factor in &factors {
        out.push((
            format!("canary-x{factor}"),
            "canary".to_owned(),
            Rule::default().with_gap_factor(factor),
        ));
    }
    for &chance in chances.iter().filter(|&&c| c != default_chance) {
        for &factor in [2.0].iter().chain(&factors) {
            out.push((
                format!("canary-x{factor}-c{chance}"),
                "canary".to_owned(),
                Rule::default()
                    .with_gap_factor(factor)
                    .with_return_chance(Some(chance)),
            ));
        }
    }
    // The default with a fixed threshold of T days in place of the population's period, for
    // accounts whose like group has not been measured that far: `canary-xF-cC-fT`.
    let fallback_factors = list("REPLAY_CANARY_FALLBACK_FACTORS", "10");
    for &days in &list("REPLAY_CANARY_FALLBACKS", "150,180") {
        for &chance in [default_chance]
            .iter()
            .chain(chances.iter().filter(|&&c| c != default_chance))
        {
            for &factor in &fallback_factors {
                out.push((
                    format!("canary-x{factor}-c{chance}-f{days}"),
                    "canary".to_owned(),
                    Rule::default()
                        .with_gap_factor(factor)
                        .with_return_chance(Some(chance))
                        .with_prior_quantile(None)
                        .with_fixed_threshold(Duration::from_secs((days * 86_400.0) as u64)),
                ));
            }
        }
    }
    for (family, rule) in [
        ("canary-period", Rule::default().with_return_chance(None)),
        (
            "canary-fixed-fallback",
            Rule::default()
                .with_return_chance(None)
                .with_prior_quantile(None),
        ),
    ] {
        out.push((family.to_owned(), family.to_owned(), rule.clone()));
        for &factor in &factors {
            out.push((
                format!("{family}-x{factor}"),
                family.to_owned(),
                rule.clone().with_gap_factor(factor),
            ));
        }
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
    for canary in CanaryFamily::detectors(usage, canary_variants()) {
        all.push(Box::new(canary));
    }
    all
}
