//! Writer throughput into one server against into the cluster of `scripts/cluster`, in the
//! same run: events per second from `try_record` to rows acknowledged, for the same events,
//! by the two insert paths a cluster allows.
//!
//! - **distributed**: one writer, the crate's path: every batch into the `Distributed` table
//!   with `insert_distributed_sync = 1` (acknowledged once each shard has its rows);
//! - **local**: the events split by shard beforehand (by the same sharding key, asked of
//!   the server), one writer per shard into that shard's local replicated table directly:
//!   what a client that routes rows itself could reach;
//! - **single**: one writer into one server's `ReplacingMergeTree`.
//!
//! ```sh
//! scripts/clickhouse && scripts/cluster start && cargo bench --bench cluster
//! ```
//!
//! `BENCH_EVENTS` sets the events per measurement (default 500 000), `BENCH_ROUNDS` the
//! interleaved rounds (default 3). The URLs come from `CLICKHOUSE_URL` and
//! `scripts/cluster urls`.

use std::{
    collections::HashSet,
    process::Command,
    time::{Duration, Instant},
};

use idp_analytics::{
    Analytics, Event,
    schema::{Schema, Topology},
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn script(args: &[&str]) -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster"))
        .args(args)
        .output()
        .expect("scripts/cluster runs");
    assert!(out.status.success(), "scripts/cluster {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn client(url: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(url)
        .with_validation(false)
}

const ACCOUNTS: u64 = 10_000;

fn events(n: usize) -> Vec<Event> {
    (0..n as u64)
        .map(|i| {
            Event::new(
                1 + (i * 7919) % ACCOUNTS,
                ["search", "view", "edit"][(i % 3) as usize],
            )
            .unwrap()
        })
        .collect()
}

/// Writes `events` through one writer per `(url, schema, events)` at once; events/s.
async fn run(writers: Vec<(Vec<String>, Schema, Vec<Event>)>) -> f64 {
    let total: usize = writers.iter().map(|w| w.2.len()).sum();
    let start = Instant::now();
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|(urls, schema, events)| {
            tokio::spawn(async move {
                let analytics = Analytics::builder(urls[0].clone())
                    .with_urls(urls)
                    .with_schema(schema)
                    .with_create_schema(false)
                    .with_queue_capacity(events.len())
                    .build()
                    .unwrap();
                analytics.try_record_all(events).unwrap();
                let report = analytics.shutdown(Duration::from_secs(600)).await;
                assert!(report.unwritten.is_empty());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn create(url: &str, schema: &Schema) {
    let c = client(url);
    let version = Schema::server_version(&c).await.unwrap();
    c.query(&format!(
        "DROP DATABASE IF EXISTS `{}`{}",
        schema.database(),
        match schema.topology().cluster_name() {
            Some(name) => format!(" ON CLUSTER `{name}`"),
            None => String::new(),
        }
    ))
    .execute()
    .await
    .unwrap();
    schema.ensure(&c, version).await.unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_or("BENCH_EVENTS", 500_000);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let single_url =
        std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let servers: Vec<(u32, String)> = script(&["urls"])
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (parts[0].parse().unwrap(), parts[2].to_owned())
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.1.clone()).collect();
    let cluster = script(&["name"]).trim().to_owned();
    let topology = Topology::cluster(&cluster).unwrap();

    // Which accounts go to shard 1 (index 0), by the server's own sharding function.
    let first: HashSet<u64> = client(&urls[0])
        .query(&format!(
            "SELECT number FROM numbers({}) WHERE {} % 2 = 0",
            ACCOUNTS + 1,
            idp_analytics::schema::DEFAULT_SHARDING_KEY.replace("account_id", "number")
        ))
        .fetch_all::<u64>()
        .await
        .unwrap()
        .into_iter()
        .collect();

    println!("{n} events per measurement, {rounds} rounds, events/s:");
    println!("round | single server | cluster, Distributed sync | cluster, local tables");
    for round in 1..=rounds {
        let single = Schema::new(format!("bench_single_{round}"), "events").unwrap();
        create(&single_url, &single).await;
        let single_rate = run(vec![(vec![single_url.clone()], single, events(n))]).await;

        let dist = Schema::new(format!("bench_dist_{round}"), "events")
            .unwrap()
            .with_topology(topology.clone());
        create(&urls[0], &dist).await;
        let dist_rate = run(vec![(urls.clone(), dist, events(n))]).await;

        let local = Schema::new(format!("bench_local_{round}"), "events")
            .unwrap()
            .with_topology(topology.clone());
        create(&urls[0], &local).await;
        let (a, b): (Vec<Event>, Vec<Event>) = events(n)
            .into_iter()
            .partition(|e| first.contains(&e.account_id()));
        let shard_url = |shard: u32| servers.iter().find(|s| s.0 == shard).unwrap().1.clone();
        let direct = |db: &str| Schema::new(db, local.local_table()).unwrap();
        let local_rate = run(vec![
            (vec![shard_url(1)], direct(local.database()), a),
            (vec![shard_url(2)], direct(local.database()), b),
        ])
        .await;
        println!("{round} | {single_rate:.0} | {dist_rate:.0} | {local_rate:.0}");
    }
}
