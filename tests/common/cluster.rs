//! Helpers for tests against the ClickHouse cluster of `scripts/cluster` (its ports come
//! from the same environment, `CLUSTER_PORT_BASE` and friends). A test that cannot reach
//! it fails and says how to start it.

use std::{process::Command, time::Duration};

use idp_analytics::schema::{Schema, Topology};

/// One test of the cluster at a time: they kill servers and stop ZooKeeper.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `scripts/cluster ARGS` and returns what it printed; panics when it fails.
pub fn script(args: &[&str]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/cluster"))
        .args(args)
        .output()
        .expect("scripts/cluster runs");
    assert!(
        out.status.success(),
        "scripts/cluster {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A server of the cluster.
#[derive(Clone, Debug)]
pub struct Server {
    pub shard: u32,
    pub replica: u32,
    pub url: String,
}

impl Server {
    /// A client of this server (no default database).
    pub fn client(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(&self.url)
            .with_validation(false)
    }
}

/// The cluster's servers, as `scripts/cluster urls` lists them; fails the test, saying how
/// to start the cluster, when one does not answer.
pub async fn servers() -> Vec<Server> {
    let servers: Vec<Server> = script(&["urls"])
        .lines()
        .map(|line| {
            let mut parts = line.split_whitespace();
            Server {
                shard: parts.next().unwrap().parse().unwrap(),
                replica: parts.next().unwrap().parse().unwrap(),
                url: parts.next().unwrap().to_owned(),
            }
        })
        .collect();
    for server in &servers {
        let ping = tokio::time::timeout(
            Duration::from_secs(5),
            server.client().query("SELECT 1").fetch_one::<u8>(),
        )
        .await;
        assert!(
            matches!(ping, Ok(Ok(1))),
            "the ClickHouse cluster's server {} is not reachable ({ping:?}).\n\
             Start the cluster with `scripts/cluster start` (with the same CLUSTER_* environment).",
            server.url
        );
    }
    servers
}

/// The cluster's name.
pub fn name() -> String {
    script(&["name"]).trim().to_owned()
}

/// A fresh database on the cluster for the test `name`: earlier runs' databases of that test
/// are dropped, and the new one has a fresh suffix (its replicated tables get fresh paths
/// in ZooKeeper).
pub async fn database(name: &str) -> Schema {
    let servers = servers().await;
    let cluster = self::name();
    let client = servers[0].client();
    let prefix = format!("ctest_{name}_");
    let old: Vec<String> = client
        .query("SELECT name FROM system.databases WHERE startsWith(name, ?)")
        .bind(&prefix)
        .fetch_all()
        .await
        .unwrap();
    for db in old {
        client
            .query(&format!(
                "DROP DATABASE IF EXISTS `{db}` ON CLUSTER `{cluster}`"
            ))
            .execute()
            .await
            .unwrap();
    }
    let db = format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    Schema::new(db, "events")
        .unwrap()
        .with_topology(Topology::cluster(cluster).unwrap())
}

/// Makes every server hold every part its shard's replication log has (after a test's
/// writes, before comparing replicas).
pub async fn sync(servers: &[Server], schema: &Schema, table: &str) {
    for server in servers {
        server
            .client()
            .query(&format!("SYSTEM SYNC REPLICA {}", schema.qualified(table)))
            .execute()
            .await
            .unwrap();
    }
}

/// Runs `scripts/cluster start` when dropped: a test that kills a server or stops ZooKeeper
/// leaves the cluster whole for the next one, even when it fails.
pub struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster"))
            .arg("start")
            .output();
    }
}
