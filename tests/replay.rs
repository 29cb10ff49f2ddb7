//! The replay benchmark's harness on a small generated history against a real ClickHouse:
//! what it measures must match the truth known from the data.

#[path = "../examples/replay/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "../examples/replay/detector.rs"]
#[allow(dead_code)]
mod detector;
#[path = "../examples/replay/drive.rs"]
#[allow(dead_code)]
mod drive;
#[path = "../examples/replay/generate.rs"]
#[allow(dead_code)]
mod generate;
#[path = "../examples/replay/metrics.rs"]
#[allow(dead_code)]
mod metrics;

mod common;

use detector::{Detector, FixedFamily};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_generated_history_matches_its_truth() {
    let schema = prepare_database!().await;
    let config = generate::Config {
        seed: 7,
        accounts: 60,
        days: 100,
        churn_days: 30,
    };
    let (dataset, truth) = generate::generate(config);
    let activity = dataset.activity();

    let replay = drive::replay(&common::url(), schema.database(), &dataset, |usage| {
        FixedFamily::detectors(usage, &[3, 7, 14])
            .into_iter()
            .map(|d| Box::new(d) as Box<dyn Detector>)
            .collect()
    })
    .await
    .unwrap();
    assert_eq!(replay.events, dataset.events.len() as u64);
    assert_eq!(replay.days, 100);

    let spells = metrics::spells(&activity, dataset.end_day, config.churn_days);
    // The churned accounts are churners in truth: trials, abrupt churns and slow decays.
    let churned = metrics::churned_accounts(&spells);
    assert!(
        churned.len() >= 5,
        "too few churners to measure: {churned:?}"
    );
    for account in &truth {
        if churned.contains_key(&account.id) {
            assert!(account.churns(), "{account:?} is not a churner");
        }
    }
    for ((name, family, flags), days) in replay.flags.iter().zip([3, 7, 14]) {
        assert_eq!(name, &format!("fixed-{days}d"));
        assert_eq!(family, "fixed");
        // What ClickHouse flagged, day by day through the writer and the rollup, is exactly
        // what the activity says a fixed threshold flags.
        assert_eq!(
            flags,
            &metrics::fixed_flags(&activity, dataset.end_day, days),
            "{name}"
        );
        let score = metrics::score(&spells, flags, dataset.end_day);
        assert_eq!(score.churned, churned.len());
        assert_eq!(
            score.detected,
            churned.len(),
            "{name} catches every churner"
        );
        assert_eq!(
            score.median_delay,
            Some(days),
            "{name} flags after exactly its days"
        );
        let longer = spells
            .iter()
            .filter(|s| s.back.is_some_and(|back| back - s.start > days))
            .count();
        assert_eq!(
            score.false_alarms, longer,
            "{name}: returns after more than {days} days"
        );
        assert!(score.returning > score.false_alarms);
    }
}
