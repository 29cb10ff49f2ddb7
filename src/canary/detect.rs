//! The detectors: silent, declining and never active, each judged against the account's own
//! rhythm, with the fixed threshold as a detector of its own and as the fallback.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use serde::Serialize;

use crate::{
    error::{Error, Result},
    usage::{KnownAccount, Like, Prior, Rhythm, RhythmWindow, Usage},
};

const DAY: u64 = 86_400;

/// Why an account is at risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Reason {
    /// Its current silence is far longer than its own rhythm (or, with too little history,
    /// than the fixed threshold).
    Silent,
    /// Still active, but its recent volume or active days fell far below its own baseline.
    Declining,
    /// A known account that never had an event.
    NeverActive,
}

/// What a silent finding was measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Basis {
    /// Its gaps between active days, in calendar days.
    EveryDay,
    /// Its gaps between active days, in weekdays: it is seldom active at weekends.
    Weekdays,
    /// Too little history of its own: the usual period of the accounts that have a rhythm
    /// (or its own longest gap, when longer), in the days of its basis.
    Population,
    /// Too little history of its own: how often accounts like it (as many active days, a
    /// like pace) came back after a silence as long, in calendar days.
    ReturnChance,
    /// The fixed threshold: too little history for a rhythm, or a fixed detector.
    Fixed,
}

/// One account at risk, with the numbers behind the reason.
///
/// As JSON (camelCase): `accountId`, `reason` (`"silent"`, `"declining"` or
/// `"neverActive"`), `lastSeen` (RFC 3339 or `null`), `score`, `explanation`, and the
/// numbers, `null` where they do not apply.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Finding {
    /// The account.
    pub account_id: u64,
    /// Why it is at risk.
    pub reason: Reason,
    /// Its last event at or before the evaluation time; `None` for a never-active account.
    #[serde(serialize_with = "crate::usage::serialize_rfc3339_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen: Option<SystemTime>,
    /// When it signed up, for a known account.
    #[serde(serialize_with = "crate::usage::serialize_rfc3339_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub signed_up: Option<SystemTime>,
    /// How far past its limit it is: 1 at the limit, more the further past. Sort by it,
    /// highest first.
    pub score: f64,
    /// The reason in words and numbers, such as "usually active every weekday; silent 3
    /// days; its longest gap in 90 days was 1 day".
    pub explanation: String,
    /// What a silence was measured against; `None` for the other reasons.
    pub basis: Option<Basis>,
    /// Whole days since its last event (since sign-up for a never-active account).
    pub silent_days: Option<u64>,
    /// Its usual gap: the days from one active day to the next, at the gap quantile, in the
    /// days of its basis.
    pub usual_period_days: Option<u32>,
    /// Its longest gap (days without activity) in the history, in the days of its basis.
    pub longest_gap_days: Option<u32>,
    /// The silence, in the days of its basis, at which it is flagged.
    pub limit_days: Option<u32>,
    /// Events per day in the recent window.
    pub recent_per_day: Option<f64>,
    /// Events per day in the baseline window.
    pub baseline_per_day: Option<f64>,
    /// Active days in the recent window.
    pub recent_active_days: Option<u32>,
    /// Active days in the baseline window.
    pub baseline_active_days: Option<u32>,
    /// The share of the quiet spells of accounts like it, as long as its silence, that ended
    /// with a return within the history's length ([`Basis::ReturnChance`]).
    pub return_chance: Option<f64>,
    /// The quiet spells of accounts like it, as long as its silence, that share was measured
    /// on.
    pub like_spells: Option<u64>,
}

impl Finding {
    pub(crate) fn new(account_id: u64, reason: Reason, explanation: String, score: f64) -> Self {
        Self {
            account_id,
            reason,
            last_seen: None,
            signed_up: None,
            // Three decimals are plenty to sort by, and read better.
            score: (score * 1000.0).round() / 1000.0,
            explanation,
            basis: None,
            silent_days: None,
            usual_period_days: None,
            longest_gap_days: None,
            limit_days: None,
            recent_per_day: None,
            baseline_per_day: None,
            recent_active_days: None,
            baseline_active_days: None,
            return_chance: None,
            like_spells: None,
        }
    }
}

/// The detectors and their parameters.
///
/// **Silent.** An account's *period* is its usual distance from one active day to the next:
/// the [gap quantile](Self::with_gap_quantile) of its gaps in the
/// [history](Self::with_history_days), plus one. It is flagged once the days since its last
/// active day reach [`gap_factor`](Self::with_gap_factor) × its period, and at least the
/// [floor](Self::with_floor_days). An account seldom active at weekends (at most
/// [`weekend_share`](Self::with_weekend_share) of its active days) counts its gaps and
/// its silence in weekdays, so a weekend is no silence.
///
/// **Too little history.** An account with fewer than
/// [`min_active_days`](Self::with_min_active_days) in its history (a new account, a one-shot
/// trial, an account whose activity is older than the history) has no rhythm of its own. It
/// is judged by the population's instead, an empirical-Bayes fallback, in two steps:
///
/// 1. By how often accounts like it came back ([`Usage::return_chances`]): accounts with as
///    many active days of all time and a like pace (a [`Like`] group), after a silence as
///    long as its own. Once fewer than [`return_chance`](Self::with_return_chance) of them
///    came back within the history's length (90 days), at this silence or a shorter one, it
///    is flagged (and at least the floor); while more did, it is not. Purchases come in
///    bursts: a customer who bought twice in a week and a customer who bought twice in six
///    months are told apart, and a one-time buyer is flagged when one-time buyers stop
///    coming back, not after a period measured on regular ones.
/// 2. Where the population has too few spells like its own to tell (a new service, a
///    silence longer than any measured), by the population's period: the median period of
///    the accounts that have a rhythm (the [prior quantile](Self::with_prior_quantile),
///    measured in ClickHouse at each check by [`Usage::rhythm_prior`]), or its own longest
///    gap plus one when that is longer, with the same gap factor and floor. Without it
///    (none configured, or no account with a rhythm yet), the
///    [fixed threshold](Self::with_fixed_threshold) judges it.
///
/// **Declining.** An account active in the recent window, with at least
/// [`min_baseline_events`](Self::with_min_baseline_events) on at least
/// [`min_baseline_active_days`](Self::with_min_baseline_active_days) in its baseline, whose
/// events per day or active days per day in the recent window fell to
/// [`decline_ratio`](Self::with_decline_ratio) of the baseline's or below.
///
/// **Never active.** A known account without an event that signed up longer ago than the
/// fixed threshold.
///
/// [`Detector::fixed`] is the plain fixed-threshold detector: silent after a fixed time,
/// never declining.
#[derive(Clone, Debug, PartialEq)]
pub struct Detector {
    adaptive: bool,
    fixed: Duration,
    history_days: u32,
    recent_days: u32,
    baseline_days: u32,
    quantile: f64,
    gap_factor: f64,
    floor_days: u32,
    min_active_days: u32,
    prior_quantile: Option<f64>,
    return_chance: Option<f64>,
    weekend_share: f64,
    decline_ratio: f64,
    min_baseline_events: u64,
    min_baseline_active_days: u32,
    chunk_accounts: u64,
}

impl Default for Detector {
    fn default() -> Self {
        Self {
            adaptive: true,
            fixed: Duration::from_secs(7 * DAY),
            history_days: 90,
            recent_days: 7,
            baseline_days: 28,
            quantile: 0.9,
            gap_factor: 2.0,
            floor_days: 3,
            min_active_days: 3,
            prior_quantile: Some(0.5),
            return_chance: Some(0.1),
            weekend_share: 0.05,
            decline_ratio: 0.25,
            min_baseline_events: 20,
            min_baseline_active_days: 8,
            chunk_accounts: crate::usage::CHUNK_ACCOUNTS,
        }
    }
}

impl Detector {
    /// The fixed-threshold detector: an account is silent once its last event is
    /// `threshold` old, whatever its rhythm; nothing is declining.
    pub fn fixed(threshold: Duration) -> Self {
        Self {
            adaptive: false,
            fixed: threshold,
            ..Self::default()
        }
    }

    /// The fixed threshold: the fallback for accounts with too little history, and the age
    /// of a sign-up without events that makes an account never active. Default: 7 days.
    pub fn with_fixed_threshold(mut self, threshold: Duration) -> Self {
        self.fixed = threshold;
        self
    }

    /// Days of history in which an account's gaps are measured. Default: 90 days.
    pub fn with_history_days(mut self, days: u32) -> Self {
        self.history_days = days;
        self
    }

    /// The recent window of the declining detector. Default: 7 days.
    pub fn with_recent_days(mut self, days: u32) -> Self {
        self.recent_days = days;
        self
    }

    /// The baseline window of the declining detector, just before the recent one.
    /// Default: 28 days.
    pub fn with_baseline_days(mut self, days: u32) -> Self {
        self.baseline_days = days;
        self
    }

    /// The quantile of an account's gaps that makes its period, in (0, 1]. Default: 0.9.
    pub fn with_gap_quantile(mut self, quantile: f64) -> Self {
        self.quantile = quantile;
        self
    }

    /// How many periods of silence flag an account. Default: 2.0.
    pub fn with_gap_factor(mut self, factor: f64) -> Self {
        self.gap_factor = factor;
        self
    }

    /// The least silence that flags an account, in the days of its basis (calendar days or
    /// weekdays), counted from its last active day. Default: 3 days.
    pub fn with_floor_days(mut self, days: u32) -> Self {
        self.floor_days = days;
        self
    }

    /// Active days in the history an account needs to be judged by its own rhythm.
    /// Default: 3.
    pub fn with_min_active_days(mut self, days: u32) -> Self {
        self.min_active_days = days;
        self
    }

    /// How an account with fewer than [`min_active_days`](Self::with_min_active_days) is
    /// judged: `Some(q)` by the population's rhythm, `None` by the fixed threshold.
    ///
    /// With `Some(q)`, its period is the `q` quantile of the periods of the accounts that
    /// have a rhythm of their own (0.5: the median account's; see
    /// [`Usage::rhythm_prior`]), or its own longest gap plus one when that is longer, and it
    /// is judged like any account: silent at [`gap_factor`](Self::with_gap_factor) × that
    /// period, and at least the [floor](Self::with_floor_days), in the days of its basis.
    /// While no account has a rhythm, the fixed threshold judges. `q` must be in (0, 1].
    /// Default: `Some(0.5)`.
    pub fn with_prior_quantile(mut self, quantile: Option<f64>) -> Self {
        self.prior_quantile = quantile;
        self
    }

    /// How an account with fewer than [`min_active_days`](Self::with_min_active_days) is
    /// judged first: `Some(c)` by how often accounts like it came back after a silence as
    /// long (see [`Usage::return_chances`]), flagged once fewer than `c` of them came back
    /// within the history's length; `None` by the population's period (or the fixed
    /// threshold) alone. `c` must be in (0, 1). Default: `Some(0.1)`.
    pub fn with_return_chance(mut self, chance: Option<f64>) -> Self {
        self.return_chance = chance;
        self
    }

    /// The largest share of weekend days among an account's active days for it to be
    /// judged in weekdays. Default: 0.05.
    pub fn with_weekend_share(mut self, share: f64) -> Self {
        self.weekend_share = share;
        self
    }

    /// The recent rate, as a share of the baseline rate, at or below which an account is
    /// declining. Default: 0.25 (a drop of 75 % or more).
    pub fn with_decline_ratio(mut self, ratio: f64) -> Self {
        self.decline_ratio = ratio;
        self
    }

    /// Events the baseline needs for the declining detector to judge. Default: 20.
    pub fn with_min_baseline_events(mut self, events: u64) -> Self {
        self.min_baseline_events = events;
        self
    }

    /// Active days the baseline needs for the declining detector to judge. Default: 8.
    pub fn with_min_baseline_active_days(mut self, days: u32) -> Self {
        self.min_baseline_active_days = days;
        self
    }

    /// About how many accounts one query over the rollup reads (see
    /// [`Rhythms`](crate::usage::Rhythms)). Default: 100 000 accounts.
    pub fn with_chunk_accounts(mut self, accounts: u64) -> Self {
        self.chunk_accounts = accounts.max(1);
        self
    }

    /// The days a chart of an account's activity against its baseline covers: the baseline
    /// and the recent window.
    pub fn charted_days(&self) -> u32 {
        self.recent_days + self.baseline_days
    }

    /// The fixed threshold.
    pub fn fixed_threshold(&self) -> Duration {
        self.fixed
    }

    /// Whether this detector judges accounts by their own rhythm (not [`Detector::fixed`]).
    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.fixed < Duration::from_secs(1) {
            return bad("the fixed threshold must be at least a second");
        }
        if !(self.gap_factor.is_finite() && self.gap_factor > 0.0) {
            return bad("the gap factor must be more than zero");
        }
        if !(0.0..=1.0).contains(&self.weekend_share) {
            return bad("the weekend share must be in [0, 1]");
        }
        if let Some(q) = self.prior_quantile
            && !(q > 0.0 && q <= 1.0)
        {
            return bad("the prior quantile must be in (0, 1]");
        }
        if let Some(c) = self.return_chance
            && !(c > 0.0 && c < 1.0)
        {
            return bad("the return chance must be in (0, 1)");
        }
        if !(self.decline_ratio.is_finite() && (0.0..1.0).contains(&self.decline_ratio)) {
            return bad("the decline ratio must be in [0, 1)");
        }
        self.window(SystemTime::UNIX_EPOCH).check()
    }

    fn window(&self, at: SystemTime) -> RhythmWindow {
        RhythmWindow::at(at)
            .with_history_days(self.history_days)
            .with_recent_days(self.recent_days)
            .with_baseline_days(self.baseline_days)
            .with_quantile(self.quantile)
            .with_chunk_accounts(self.chunk_accounts)
    }

    /// Every account at risk at `at`, highest score first (then by account id): the
    /// accounts with events, read from the rollup one at a time (only findings are kept),
    /// and the never-active ones among `known`.
    pub async fn detect(
        &self,
        usage: &Usage,
        at: SystemTime,
        known: &[KnownAccount],
    ) -> Result<Vec<Finding>> {
        self.check()?;
        let mut signed_up: HashMap<u64, (SystemTime, bool)> = known
            .iter()
            .map(|k| (k.account_id, (k.signed_up, false)))
            .collect();
        let mut findings = Vec::new();
        let prior = self.prior(usage, at).await?;
        let mut rhythms = usage.rhythms(self.window(at)).await?;
        while let Some(rhythm) = rhythms.next().await? {
            let known = signed_up.get_mut(&rhythm.account_id).map(|(time, seen)| {
                *seen = true;
                *time
            });
            if let Some(mut finding) = self.judge(&rhythm, prior.as_ref(), at) {
                finding.signed_up = known;
                findings.push(finding);
            }
        }
        for (account_id, (signed, seen)) in signed_up {
            if seen {
                continue;
            }
            let age = at.duration_since(signed).unwrap_or_default();
            if age >= self.fixed && signed <= at {
                let days = age.as_secs() / DAY;
                let mut f = Finding::new(
                    account_id,
                    Reason::NeverActive,
                    format!(
                        "signed up {days} {} ago and never active",
                        plural(days, "day", "days")
                    ),
                    age.as_secs_f64() / self.fixed.as_secs_f64(),
                );
                f.signed_up = Some(signed);
                f.silent_days = Some(days);
                f.basis = Some(Basis::Fixed);
                findings.push(f);
            }
        }
        findings.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.account_id.cmp(&b.account_id))
        });
        Ok(findings)
    }

    /// The population's rhythm and return chances at `at`, which judge the accounts with
    /// too little history of their own: `None` for a fixed detector, or with neither a
    /// [prior quantile](Self::with_prior_quantile) nor a
    /// [return chance](Self::with_return_chance), or while no account has a rhythm and no
    /// group enough spells.
    pub async fn prior(&self, usage: &Usage, at: SystemTime) -> Result<Option<Prior>> {
        self.check()?;
        if !self.adaptive {
            return Ok(None);
        }
        if self.prior_quantile.is_none() && self.return_chance.is_none() {
            return Ok(None);
        }
        // Both queries read the same sample of accounts: asked for once.
        let window = self.window(at);
        let sample = usage.sample(&window).await?;
        let mut prior = match self.prior_quantile {
            Some(quantile) => {
                usage
                    .rhythm_prior_in(
                        window,
                        Some(&sample),
                        self.min_active_days,
                        self.weekend_share,
                        quantile,
                    )
                    .await?
            }
            None => Prior::default(),
        };
        if self.return_chance.is_some() {
            prior.returns = usage.return_chances_in(window, Some(&sample)).await?;
        }
        Ok((prior.accounts > 0 || !prior.returns.is_empty()).then_some(prior))
    }

    /// Judges one account's rhythm at `at`: silent first, then declining. `prior` (from
    /// [`prior`](Self::prior)) judges an account with too little history of its own; without
    /// it, the fixed threshold does.
    pub fn judge(&self, r: &Rhythm, prior: Option<&Prior>, at: SystemTime) -> Option<Finding> {
        let silence = at.duration_since(r.last_seen).unwrap_or_default();
        let silent_days = silence.as_secs() / DAY;
        let few = r.active_days < self.min_active_days;
        // A return chance may spare an account the silent check, or flag it.
        let mut spared = false;
        if self.adaptive
            && few
            && let (Some(below), Some(p)) = (self.return_chance, prior)
        {
            let since = r.calendar.current + 1;
            let like = Like::of(r.all_active_days, r.first_day, r.last_day);
            if let Some(c) = p.returns.at(like, since, below) {
                match c.fell_below_at.map(|days| days.max(self.floor_days)) {
                    Some(limit) if since >= limit => {
                        let within = p.returns.within_days();
                        return Some(self.unlikely_back(
                            r,
                            like,
                            &c,
                            within,
                            since,
                            limit,
                            silent_days,
                        ));
                    }
                    Some(_) => spared = true,
                    None => spared = since <= c.measured_days,
                }
            }
        }
        let prior = prior.filter(|p| p.period_days > 0 && self.prior_quantile.is_some());
        if spared {
            return self.declining(r, silent_days);
        }
        if !self.adaptive || (few && prior.is_none()) {
            if silence < self.fixed {
                return None;
            }
            let fixed_days = self.fixed.as_secs_f64() / DAY as f64;
            let why = if self.adaptive {
                format!(
                    "{} active {} in {} days, too few for a rhythm; ",
                    r.active_days,
                    plural(r.active_days.into(), "day", "days"),
                    self.history_days
                )
            } else {
                String::new()
            };
            let mut f = Finding::new(
                r.account_id,
                Reason::Silent,
                format!(
                    "{why}silent {silent_days} {}, past the fixed threshold of {} {}",
                    plural(silent_days, "day", "days"),
                    trim(fixed_days),
                    plural(fixed_days.ceil() as u64, "day", "days"),
                ),
                silence.as_secs_f64() / self.fixed.as_secs_f64(),
            );
            f.last_seen = Some(r.last_seen);
            f.silent_days = Some(silent_days);
            f.basis = Some(Basis::Fixed);
            return Some(f);
        }
        let weekdays = f64::from(r.weekend_days) <= self.weekend_share * f64::from(r.active_days);
        let (gaps, basis, unit) = if weekdays {
            (r.weekdays, Basis::Weekdays, "weekday")
        } else {
            (r.calendar, Basis::EveryDay, "day")
        };
        let period = match prior {
            Some(p) if few => p.period_days.max(gaps.longest + 1),
            _ => gaps.quantile + 1,
        };
        let limit = ((self.gap_factor * f64::from(period)).ceil() as u32).max(self.floor_days);
        // Days since the last active day, today included.
        let since = gaps.current + 1;
        if since >= limit {
            let every = |period: u32| {
                if period == 1 {
                    format!("every {unit}")
                } else {
                    format!("every {period} {unit}s")
                }
            };
            let (usual, basis) = match prior {
                Some(p) if few => (
                    format!(
                        "{} active {} in {} days, too few for a rhythm of its own; \
                         the usual account here is active {}{}",
                        r.active_days,
                        plural(r.active_days.into(), "day", "days"),
                        self.history_days,
                        every(p.period_days),
                        if period > p.period_days {
                            format!(", and its own longest gap was {}", gaps.longest)
                        } else {
                            String::new()
                        },
                    ),
                    Basis::Population,
                ),
                _ => (format!("usually active {}", every(period)), basis),
            };
            let mut f = Finding::new(
                r.account_id,
                Reason::Silent,
                format!(
                    "{usual}; silent {silent_days} {}; its longest gap in {} days was {} {}",
                    plural(silent_days, "day", "days"),
                    self.history_days,
                    gaps.longest,
                    plural(gaps.longest.into(), unit, &format!("{unit}s")),
                ),
                f64::from(since) / f64::from(limit),
            );
            f.last_seen = Some(r.last_seen);
            f.silent_days = Some(silent_days);
            f.basis = Some(basis);
            f.usual_period_days = Some(period);
            f.longest_gap_days = Some(gaps.longest);
            f.limit_days = Some(limit);
            return Some(f);
        }
        self.declining(r, silent_days)
    }

    /// The finding of an account that accounts like it seldom came back from so long a
    /// silence.
    #[allow(clippy::too_many_arguments)]
    fn unlikely_back(
        &self,
        r: &Rhythm,
        like: Like,
        c: &crate::usage::Chance,
        within: u32,
        since: u32,
        limit: u32,
        silent_days: u64,
    ) -> Finding {
        let mut f = Finding::new(
            r.account_id,
            Reason::Silent,
            format!(
                "{like}; silent {silent_days} {}; accounts like it came back within {within} \
                 days of {} {}% of the time ({} seen)",
                plural(silent_days, "day", "days"),
                if c.silent_days < since {
                    format!("a silence of {} days", c.silent_days)
                } else {
                    "so long a silence".to_owned()
                },
                trim(c.chance * 100.0),
                c.spells,
            ),
            f64::from(since) / f64::from(limit),
        );
        f.last_seen = Some(r.last_seen);
        f.silent_days = Some(silent_days);
        f.basis = Some(Basis::ReturnChance);
        f.limit_days = Some(limit);
        f.longest_gap_days = Some(r.calendar.longest);
        f.return_chance = Some((c.chance * 1000.0).round() / 1000.0);
        f.like_spells = Some(c.spells);
        f
    }

    /// The declining check, for an account that is not silent.
    fn declining(&self, r: &Rhythm, silent_days: u64) -> Option<Finding> {
        if r.recent_active_days == 0
            || r.baseline_events < self.min_baseline_events
            || r.baseline_active_days < self.min_baseline_active_days
        {
            return None;
        }
        let per = |n: f64, days: u32| n / f64::from(days);
        let recent = per(r.recent_events as f64, self.recent_days);
        let baseline = per(r.baseline_events as f64, self.baseline_days);
        let recent_active = per(r.recent_active_days.into(), self.recent_days);
        let baseline_active = per(r.baseline_active_days.into(), self.baseline_days);
        let volume = recent / baseline;
        let days = recent_active / baseline_active;
        let ratio = volume.min(days);
        if ratio > self.decline_ratio {
            return None;
        }
        let mut f = Finding::new(
            r.account_id,
            Reason::Declining,
            format!(
                "{} events/day over the {} days before, {}/day over the last {} days; \
                 active {} of the last {} days",
                trim(baseline),
                self.baseline_days,
                trim(recent),
                self.recent_days,
                r.recent_active_days,
                self.recent_days,
            ),
            (self.decline_ratio / ratio.max(0.01)).min(100.0),
        );
        f.last_seen = Some(r.last_seen);
        f.silent_days = Some(silent_days);
        f.recent_per_day = Some(recent);
        f.baseline_per_day = Some(baseline);
        f.recent_active_days = Some(r.recent_active_days);
        f.baseline_active_days = Some(r.baseline_active_days);
        Some(f)
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// A rate with at most one decimal, without a trailing `.0`: `62`, `2.5`, `0.1`.
fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}
