//! The replay benchmark: how early each detector flags a churned account, and how often it
//! cries wolf over an account that comes back. `scripts/replay` runs all of it; see
//! BENCHMARKS.md.
//!
//! ```sh
//! cargo run --example replay -- replay cdnow target/replay/CDNOW_master.txt target/replay/cdnow
//! cargo run --example replay -- replay saas target/replay/saas
//! cargo run --example replay -- score target/replay/cdnow
//! ```
//!
//! `replay` loads the data set into a fresh database (`replay_<data set>`) on the ClickHouse
//! at `CLICKHOUSE_URL` one day at a time through the crate's writer, asks every detector
//! after each day which accounts it flags, and writes `activity.csv`, `meta.json` and
//! `flags/<detector>.csv` (first flag per quiet spell) into the output directory. Other
//! detectors (the `lifetimes` baselines) add their own `flags/*.csv` and list them in
//! `baselines.json`. `score` scores every flag file against the quiet spells and writes
//! `results.json`.
//!
//! Environment: `REPLAY_CHURN_DAYS` (no event in this many last days of the data is churned;
//! default 90 for CDNOW, 60 for the generated set), and for the generated set `REPLAY_SEED`
//! (default 1), `REPLAY_ACCOUNTS` (default 1 000) and `REPLAY_DAYS` (default 365).

mod data;
mod detector;
mod drive;
mod generate;
mod metrics;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A detector whose flags are on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: String,
    family: String,
    /// Where its flags came from: `clickhouse` or `lifetimes`.
    source: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    dataset: String,
    first_day: u32,
    end_day: u32,
    churn_days: u32,
    accounts: usize,
    events: u64,
    replay_seconds: f64,
    detectors: Vec<Listed>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Scored {
    #[serde(flatten)]
    detector: Listed,
    #[serde(flatten)]
    score: metrics::Score,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FixedPoint {
    days: u32,
    #[serde(flatten)]
    score: metrics::Score,
}

/// The fixed thresholds the budget table sweeps: 1 to this many days.
const FIXED_SWEEP_DAYS: u32 = 365;

fn env_u(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => Ok(v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a whole number"))?),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["replay", "cdnow", input, out] => {
            let dataset = data::read_cdnow(Path::new(input))?;
            run(
                dataset,
                None,
                env_u("REPLAY_CHURN_DAYS", 90)? as u32,
                out.into(),
            )
            .await
        }
        ["replay", "saas", out] => {
            let config = generate::Config {
                seed: env_u("REPLAY_SEED", 1)?,
                accounts: env_u("REPLAY_ACCOUNTS", 1_000)?,
                days: env_u("REPLAY_DAYS", 365)? as u32,
                churn_days: env_u("REPLAY_CHURN_DAYS", 60)? as u32,
            };
            let (dataset, truth) = generate::generate(config);
            run(dataset, Some(truth), config.churn_days, out.into()).await
        }
        ["score", dir] => score(Path::new(dir)),
        _ => Err("usage: replay (replay cdnow INPUT OUT | replay saas OUT | score DIR)".into()),
    }
}

async fn run(
    dataset: data::Dataset,
    truth: Option<Vec<generate::Account>>,
    churn_days: u32,
    out: PathBuf,
) -> Result<()> {
    let url = std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let flags_dir = out.join("flags");
    if flags_dir.exists() {
        fs::remove_dir_all(&flags_dir)?;
    }
    fs::create_dir_all(&flags_dir)?;
    let baselines = out.join("baselines.json");
    if baselines.exists() {
        fs::remove_file(baselines)?;
    }
    let activity = dataset.activity();
    data::write_activity(&out.join("activity.csv"), &activity)?;
    if let Some(truth) = &truth {
        let mut text = String::from("account_id,cadence,fate,start\n");
        for a in truth {
            writeln!(
                text,
                "{},{:?},\"{:?}\",{}",
                a.id, a.cadence, a.fate, a.start
            )?;
        }
        fs::write(out.join("truth.csv"), text)?;
        // The data's churned accounts are the truth's churners, and no others.
        let spells = metrics::spells(&activity, dataset.end_day, churn_days);
        let churned = metrics::churned_accounts(&spells);
        if let Some(a) = truth
            .iter()
            .find(|a| churned.contains_key(&a.id) && !a.churns())
        {
            return Err(format!(
                "account {} looks churned but its truth is {:?}",
                a.id, a.fate
            )
            .into());
        }
        eprintln!(
            "replay: {} of {} accounts churn in truth; {} of them by the end of the data",
            truth.iter().filter(|a| a.churns()).count(),
            truth.len(),
            churned.len()
        );
    }
    eprintln!(
        "replay: {} events of {} accounts, {} days, into ClickHouse at {url}",
        dataset.events.len(),
        activity.len(),
        dataset.end_day - dataset.first_day + 1
    );
    let started = Instant::now();
    let database = format!("replay_{}", dataset.name);
    let replay = drive::replay(&url, &database, &dataset, detector::detectors).await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "replay: {} events, {} days, {} detectors in {seconds:.1} s \
         ({:.1} s writing, {:.1} s detecting)",
        replay.events,
        replay.days,
        replay.flags.len(),
        replay.write_time.as_secs_f64(),
        replay.detect_time.as_secs_f64(),
    );
    let mut listed = Vec::new();
    for (name, family, flags) in &replay.flags {
        write_flags(&flags_dir.join(format!("{name}.csv")), flags)?;
        listed.push(Listed {
            name: name.clone(),
            family: family.clone(),
            source: "clickhouse".into(),
        });
    }
    let meta = Meta {
        dataset: dataset.name.clone(),
        first_day: dataset.first_day,
        end_day: dataset.end_day,
        churn_days,
        accounts: activity.len(),
        events: replay.events,
        replay_seconds: seconds,
        detectors: listed,
    };
    fs::write(out.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    Ok(())
}

fn write_flags(path: &Path, flags: &metrics::Flags) -> Result<()> {
    let mut pairs: Vec<(u64, u32)> = flags
        .iter()
        .flat_map(|(&a, days)| days.iter().map(move |&d| (a, d)))
        .collect();
    pairs.sort_unstable();
    let mut text = String::from("account_id,day\n");
    for (a, d) in pairs {
        writeln!(text, "{a},{d}")?;
    }
    fs::write(path, text)?;
    Ok(())
}

fn score(dir: &Path) -> Result<()> {
    let meta: Meta = serde_json::from_str(&fs::read_to_string(dir.join("meta.json"))?)?;
    let activity = data::read_activity(&dir.join("activity.csv"))?;
    let spells = metrics::spells(&activity, meta.end_day, meta.churn_days);
    let mut listed = meta.detectors.clone();
    let baselines = dir.join("baselines.json");
    if baselines.exists() {
        let more: Vec<Listed> = serde_json::from_str(&fs::read_to_string(baselines)?)?;
        listed.extend(more);
    }
    let mut scored = Vec::new();
    for detector in listed {
        let pairs = data::read_pairs(&dir.join("flags").join(format!("{}.csv", detector.name)))?;
        let flags = metrics::flags_from(pairs.into_iter().map(|(a, d)| (a, d as u32)));
        // The fixed thresholds read from ClickHouse must agree with the activity exactly.
        let fixed_days = detector
            .name
            .strip_prefix("fixed-")
            .and_then(|n| n.strip_suffix('d'))
            .and_then(|n| n.parse().ok());
        if let Some(days) = fixed_days
            && flags != metrics::fixed_flags(&activity, meta.end_day, days)
        {
            return Err(format!(
                "{}: the flags read from ClickHouse differ from the activity's",
                detector.name
            )
            .into());
        }
        let score = metrics::score(&spells, &flags, meta.end_day);
        scored.push(Scored { detector, score });
    }
    let sweep: Vec<FixedPoint> = (1..=FIXED_SWEEP_DAYS)
        .map(|days| FixedPoint {
            days,
            score: metrics::score(
                &spells,
                &metrics::fixed_flags(&activity, meta.end_day, days),
                meta.end_day,
            ),
        })
        .collect();
    println!(
        "{}: {} accounts, {} events, churned after {} quiet days",
        meta.dataset, meta.accounts, meta.events, meta.churn_days
    );
    println!(
        "{:<22} {:>8} {:>8} {:>10} {:>8} {:>9} {:>7}",
        "detector", "returns", "churned", "false al.", "delay", "precision", "recall"
    );
    for s in &scored {
        let delay = s
            .score
            .median_delay
            .map_or("miss".into(), |d| d.to_string());
        println!(
            "{:<22} {:>8} {:>8} {:>9.1}% {:>8} {:>9} {:>6.1}%",
            s.detector.name,
            s.score.returning,
            s.score.churned,
            100.0 * s.score.false_alarm_rate,
            delay,
            s.score
                .precision
                .map_or("-".into(), |p| format!("{:.1}%", 100.0 * p)),
            100.0 * s.score.recall
        );
    }
    let results = serde_json::json!({
        "dataset": meta.dataset,
        "accounts": meta.accounts,
        "events": meta.events,
        "churnDays": meta.churn_days,
        "firstDay": meta.first_day,
        "endDay": meta.end_day,
        "replaySeconds": meta.replay_seconds,
        "detectors": scored,
        "fixedSweep": sweep,
    });
    fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    Ok(())
}
