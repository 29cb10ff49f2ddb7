//! The on-disk spool and the writer under injected faults, against a real ClickHouse.
//!
//! Each test ends by checking the table: `count()` with `FINAL` and `uniqExact(event_id)`
//! both equal the number of events the writer accepted.

mod common;

use std::{path::Path, time::Duration};

use common::proxy::{Mode, Proxy};
use idp_analytics::{Analytics, Event, Rejected, Stats, schema::Schema, writer::Builder};

fn events(n: u64, event_type: &str) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new(i % 53, event_type).unwrap().with_status(200))
        .collect()
}

/// A writer through `proxy` with a spool in `dir`, tuned for quick tests.
fn builder(proxy: &Proxy, schema: &Schema, dir: &Path) -> Builder {
    Analytics::builder(proxy.url())
        .with_schema(schema.clone())
        .with_spool_dir(dir)
        .with_max_rows(200)
        .with_max_bytes(64 * 1024)
        .with_flush_interval(Duration::from_millis(100))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_receive_timeout(Duration::from_millis(800))
        .with_send_timeout(Duration::from_millis(800))
        .with_connect_timeout(Duration::from_millis(500))
}

async fn wait(analytics: &Analytics, what: &str, check: impl Fn(&Stats) -> bool) {
    let ok = common::eventually(Duration::from_secs(30), || async {
        check(&analytics.stats())
    })
    .await;
    assert!(ok, "timed out waiting for {what}: {:?}", analytics.stats());
}

async fn assert_exact(schema: &Schema, accepted: u64) {
    assert_eq!(common::counts(schema).await, (accepted, accepted));
}

#[tokio::test]
async fn spool_unreachable_at_start_then_reachable() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-start");
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    // A queue far smaller than the outage: the spool holds the rest.
    let analytics = builder(&proxy, &schema, &dir)
        .with_queue_capacity(100)
        .build()
        .unwrap();
    let mut accepted = 0;
    for _ in 0..15 {
        for event in events(100, "search") {
            analytics.try_record(event).unwrap();
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = analytics.stats();
    assert_eq!(stats.written, 0);
    assert_eq!(stats.dropped_queue_full, 0);
    assert!(
        stats.spooled_segments > 0 && stats.spooled_bytes > 0,
        "{stats:?}"
    );

    proxy.set(Mode::Forward);
    wait(&analytics, "the backlog", |s| s.written == accepted).await;
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_eq!(report.left_in_spool, 0);
    assert!(common::segments(&dir).is_empty());
    assert_exact(&schema, accepted).await;
}

#[tokio::test]
async fn spool_connection_refused_mid_run_longer_than_the_queue() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-refused");
    let proxy = Proxy::start(&common::url()).await;
    let analytics = builder(&proxy, &schema, &dir)
        .with_queue_capacity(200)
        .build()
        .unwrap();
    let mut accepted = 0;
    // Bursts of 100 with a pause between them: the queue (200) smooths them.
    for _ in 0..3 {
        wait(&analytics, "room in the queue", |s| s.queued <= 100).await;
        for event in events(100, "search") {
            analytics.try_record(event).unwrap();
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait(&analytics, "the first events", |s| s.written == 300).await;
    proxy.set(Mode::Down);
    // 1 500 events during the outage: seven times what the queue holds. Each burst waits
    // for room in the queue, however slow the machine: the spool must make it.
    for _ in 0..15 {
        wait(&analytics, "room in the queue", |s| s.queued <= 100).await;
        for event in events(100, "search") {
            analytics.try_record(event).unwrap();
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    proxy.set(Mode::Forward);
    wait(&analytics, "room in the queue", |s| s.queued <= 100).await;
    for event in events(100, "after") {
        analytics.try_record(event).unwrap();
        accepted += 1;
    }
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    let stats = analytics.stats();
    assert_eq!(stats.dropped_queue_full, 0);
    assert_eq!(stats.written, accepted);
    assert_exact(&schema, accepted).await;
}

#[tokio::test]
async fn spool_slow_answers_past_the_receive_timeout() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-slow");
    let proxy = Proxy::start(&common::url()).await;
    let analytics = builder(&proxy, &schema, &dir).build().unwrap();
    analytics.try_record(Event::new(1, "a").unwrap()).unwrap();
    wait(&analytics, "the table", |s| s.written == 1).await;

    // ClickHouse stores each insert, but its answer comes after the writer gave up.
    proxy.set(Mode::DelayInserts(Duration::from_millis(1500)));
    for event in events(150, "b") {
        analytics.try_record(event).unwrap();
    }
    wait(&analytics, "a timed-out retry", |s| s.retried_batches >= 2).await;
    proxy.set(Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_eq!(analytics.stats().written, 151);
    assert_exact(&schema, 151).await;
}

#[tokio::test]
async fn spool_black_hole_leaves_the_request_path_alone() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-blackhole");
    let proxy = Proxy::start(&common::url()).await;
    let analytics = builder(&proxy, &schema, &dir).build().unwrap();
    analytics.try_record(Event::new(1, "a").unwrap()).unwrap();
    wait(&analytics, "the table", |s| s.written == 1).await;

    let measure = |n: u64| {
        let mut worst = Duration::ZERO;
        let mut total = Duration::ZERO;
        for event in events(n, "b") {
            let start = std::time::Instant::now();
            analytics.try_record(event).unwrap();
            let took = start.elapsed();
            worst = worst.max(took);
            total += took;
        }
        (total / n as u32, worst)
    };
    let (before_mean, before_worst) = measure(2_000);
    proxy.set(Mode::BlackHole);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (during_mean, during_worst) = measure(2_000);
    wait(&analytics, "a timed-out retry", |s| s.retried_batches >= 1).await;
    let (later_mean, later_worst) = measure(2_000);
    println!(
        "try_record mean/worst: before {before_mean:?}/{before_worst:?}, \
         black hole {during_mean:?}/{during_worst:?}, after timeouts {later_mean:?}/{later_worst:?}"
    );
    // A call that waited on ClickHouse would take the receive timeout (800 ms).
    assert!(
        during_worst < Duration::from_millis(100),
        "{during_worst:?}"
    );
    assert!(later_worst < Duration::from_millis(100), "{later_worst:?}");

    proxy.set(Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_exact(&schema, 6_001).await;
}

#[tokio::test]
async fn spool_reset_in_the_middle_of_an_insert() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-reset");
    let proxy = Proxy::start(&common::url()).await;
    let analytics = builder(&proxy, &schema, &dir).build().unwrap();
    analytics.try_record(Event::new(1, "a").unwrap()).unwrap();
    wait(&analytics, "the table", |s| s.written == 1).await;
    proxy.set(Mode::Reset);
    for event in events(400, "b") {
        analytics.try_record(event).unwrap();
    }
    wait(&analytics, "retries", |s| s.retried_batches >= 3).await;
    proxy.set(Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_exact(&schema, 401).await;
}

#[tokio::test]
async fn spool_partial_body_committed_then_retried() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-partial");
    let proxy = Proxy::start(&common::url()).await;
    let analytics = builder(&proxy, &schema, &dir)
        .with_flush_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    analytics.try_record(Event::new(1, "a").unwrap()).unwrap();
    wait(&analytics, "the table", |s| s.written == 1).await;

    // 100 rows of one size: the body is one chunk, `<hex length>\r\n` then the rows.
    let batch = events(100, "cut");
    let row = batch[0].encoded_len();
    assert!(batch.iter().all(|e| e.encoded_len() == row));
    let chunk_line = format!("{:x}\r\n", row * 100).len();
    proxy.set(Mode::CutBody(chunk_line + 37 * row));
    analytics.try_record_all(batch).unwrap();
    wait(&analytics, "a cut insert", |s| s.retried_batches >= 1).await;
    // The proxy is down after the cut. ClickHouse 18.16 commits the 37 rows it read before
    // the clean close; a server that refuses a torn body commits none.
    let committed = common::raw_count(&schema).await - 1;
    println!("rows committed from the cut insert: {committed}");
    assert!(committed == 37 || committed == 0, "{committed}");
    proxy.set(Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    // The retry wrote the whole batch again: duplicates exist, none is visible.
    assert_exact(&schema, 101).await;
    assert_eq!(common::raw_count(&schema).await, 101 + committed);
}

#[tokio::test]
async fn spool_http_500_twice_then_success() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-500");
    let proxy = Proxy::start(&common::url()).await;
    let analytics = builder(&proxy, &schema, &dir).build().unwrap();
    analytics.try_record(Event::new(1, "a").unwrap()).unwrap();
    wait(&analytics, "the table", |s| s.written == 1).await;
    proxy.set(Mode::Http500(2));
    for event in events(120, "b") {
        analytics.try_record(event).unwrap();
    }
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_eq!(proxy.failures_left(), 0);
    assert!(analytics.stats().retried_batches >= 2);
    assert_exact(&schema, 121).await;
}

#[tokio::test]
async fn spool_replays_what_a_previous_run_left() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-replay");
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    let first = builder(&proxy, &schema, &dir).build().unwrap();
    // A second writer cannot share the spool.
    let err = builder(&proxy, &schema, &dir).build().unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    let sent = events(500, "search");
    for event in sent.clone() {
        first.try_record(event).unwrap();
    }
    let report = first.shutdown(Duration::from_millis(500)).await;
    assert!(
        report.unwritten.is_empty(),
        "spooled events are not handed back"
    );
    assert!(report.left_in_spool > 0);
    drop(first);

    proxy.set(Mode::Forward);
    let second = builder(&proxy, &schema, &dir).build().unwrap();
    wait(&second, "the replay", |s| s.written == 500).await;
    assert_eq!(second.stats().replayed, 500);
    second.shutdown(Duration::from_secs(30)).await;
    assert!(common::segments(&dir).is_empty());
    assert_exact(&schema, 500).await;
    let ids: std::collections::HashSet<String> = common::client()
        .query(&format!(
            "SELECT toString(event_id) FROM {}",
            schema.qualified_table()
        ))
        .fetch_all::<String>()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected: std::collections::HashSet<String> =
        sent.iter().map(|e| e.event_id().to_string()).collect();
    assert!(ids == expected, "the replay keeps the original event ids");
}

#[tokio::test]
async fn spool_crash_after_ack_before_removal_shows_no_duplicate() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-ack-crash");
    let saved = common::temp_dir("spool-ack-crash-saved");
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    let analytics = builder(&proxy, &schema, &dir).build().unwrap();
    for event in events(300, "search") {
        analytics.try_record(event).unwrap();
    }
    wait(&analytics, "the spool", |s| {
        s.spooled_segments >= 2 && s.pending == 300
    })
    .await;
    // Keep the segments as a crash between the acknowledgement and the removal would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for file in common::segments(&dir) {
        std::fs::copy(&file, saved.join(file.file_name().unwrap())).unwrap();
    }
    proxy.set(Mode::Forward);
    analytics.shutdown(Duration::from_secs(30)).await;
    drop(analytics);
    assert_exact(&schema, 300).await;

    for file in common::segments(&saved) {
        std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
    }
    let again = builder(&proxy, &schema, &dir).build().unwrap();
    wait(&again, "the replay", |s| {
        s.replayed == 300 && s.written == 300
    })
    .await;
    again.shutdown(Duration::from_secs(30)).await;
    assert_exact(&schema, 300).await;
}

#[tokio::test]
async fn spool_torn_and_corrupted_records_are_skipped_and_counted() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-corrupt");
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    let first = builder(&proxy, &schema, &dir)
        .with_max_rows(100)
        .build()
        .unwrap();
    for event in events(300, "search") {
        first.try_record(event).unwrap();
    }
    first.shutdown(Duration::from_millis(500)).await;
    drop(first);
    let files = common::segments(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    // Torn: the last record of the first segment cut in half.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() - 20]).unwrap();
    // Corrupted: one byte flipped in the middle of the second.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&files[1], &bytes).unwrap();

    proxy.set(Mode::Forward);
    let second = builder(&proxy, &schema, &dir).build().unwrap();
    wait(&second, "the replay", |s| s.written == 298).await;
    let stats = second.stats();
    assert_eq!(stats.corrupt_records, 2, "{stats:?}");
    assert_eq!(stats.replayed, 298);
    second.shutdown(Duration::from_secs(30)).await;
    assert_exact(&schema, 298).await;
}

#[tokio::test]
async fn spool_unwritable_directory_is_a_clear_error() {
    let err = Analytics::builder(common::url())
        .with_spool_dir("/dev/null/spool")
        .build()
        .unwrap_err();
    assert!(matches!(err, idp_analytics::Error::Spool(_)), "{err:?}");
    assert!(err.to_string().starts_with("spool: "), "{err}");
}

/// The spool's directory and files are the process user's alone, and a directory another
/// user owns or could write is refused before anything is read from it: a segment planted
/// there would be replayed as events.
#[tokio::test]
async fn spool_is_private_and_refuses_a_directory_others_can_write() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let schema = prepare_database!().await;
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    let dir = common::temp_dir("spool-private").join("spool");
    let first = builder(&proxy, &schema, &dir).build().unwrap();
    for event in events(300, "search") {
        first.try_record(event).unwrap();
    }
    first.shutdown(Duration::from_millis(500)).await;
    drop(first);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("spool.lock")), 0o600);
    let files = common::segments(&dir);
    assert!(!files.is_empty());
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    // Writable by the group: refused, and the segments in it are left alone.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let err = builder(&proxy, &schema, &dir).build().unwrap_err();
    assert!(matches!(err, idp_analytics::Error::Spool(_)), "{err:?}");
    assert!(err.to_string().contains("group or by others"), "{err}");
    assert_eq!(common::segments(&dir), files);

    // Owned by another user (the tests run as root, who can give it away).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let me = std::fs::metadata(&dir).unwrap().uid();
    std::os::unix::fs::chown(&dir, Some(me + 1000), None).unwrap();
    let err = builder(&proxy, &schema, &dir).build().unwrap_err();
    assert!(err.to_string().contains("is owned by user"), "{err}");
    std::os::unix::fs::chown(&dir, Some(me), None).unwrap();

    // Through a symbolic link: refused.
    let link = dir.with_extension("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let err = builder(&proxy, &schema, &link).build().unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    // Its own directory again: everything is replayed.
    proxy.set(Mode::Forward);
    let second = builder(&proxy, &schema, &dir).build().unwrap();
    wait(&second, "the replay", |s| s.written == 300).await;
    second.shutdown(Duration::from_secs(30)).await;
    assert_exact(&schema, 300).await;
}

/// Files named like segments that are no segment (a link to `/dev/zero`, a FIFO, a file
/// longer than a segment can be) are left alone and never read: the replay of the real
/// segments goes on, memory stays put, and nothing blocks. A lock file linked elsewhere
/// creates nothing there.
#[tokio::test]
async fn spool_replay_skips_links_fifos_and_oversized_files() {
    let schema = prepare_database!().await;
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    let dir = common::temp_dir("spool-planted");
    let first = builder(&proxy, &schema, &dir).build().unwrap();
    for event in events(300, "search") {
        first.try_record(event).unwrap();
    }
    first.shutdown(Duration::from_millis(500)).await;
    drop(first);
    let real = common::segments(&dir);
    assert!(!real.is_empty());

    std::os::unix::fs::symlink("/dev/zero", dir.join("00000000000000f0.seg")).unwrap();
    let fifo = dir.join("00000000000000f1.seg");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // 64 KiB batches: a segment is never 4 MiB long.
    std::fs::write(dir.join("00000000000000f2.seg"), vec![0x5e; 4 << 20]).unwrap();
    let planted = common::segments(&dir).len() - real.len();
    assert_eq!(planted, 3);

    let before = common::resident_bytes();
    proxy.set(Mode::Forward);
    let second = builder(&proxy, &schema, &dir).build().unwrap();
    wait(&second, "the replay", |s| s.written == 300).await;
    let grew = common::resident_bytes().saturating_sub(before);
    eprintln!(
        "resident memory grew by {} KiB during the replay",
        grew / 1024
    );
    assert!(grew < 256 << 20, "{grew} bytes");
    assert_eq!(second.stats().replayed, 300);
    second.shutdown(Duration::from_secs(30)).await;
    drop(second);
    assert_exact(&schema, 300).await;
    // The planted files are still there: left alone, not read, not removed.
    assert_eq!(common::segments(&dir).len(), planted);

    // A lock file that is a link to somewhere else: refused, nothing created there.
    let fresh = common::temp_dir("spool-lock-link");
    let outside = common::temp_dir("spool-lock-outside");
    std::os::unix::fs::symlink(outside.join("created"), fresh.join("spool.lock")).unwrap();
    let err = builder(&proxy, &schema, &fresh).build().unwrap_err();
    assert!(matches!(err, idp_analytics::Error::Spool(_)), "{err:?}");
    assert!(!outside.join("created").exists());
}

/// A tiny tmpfs, mounted for the test and unmounted when dropped.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(bytes: u64) -> Self {
        let dir = common::temp_dir("tiny-disk");
        let status = std::process::Command::new("mount")
            // A spool must be private: the tmpfs root is 0700, not tmpfs's 1777.
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .status()
            .expect("the disk-full test runs `mount` (as root) for a small tmpfs");
        assert!(
            status.success(),
            "the disk-full test needs to mount a tmpfs (run the tests as root)"
        );
        TinyDisk(dir)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn spool_disk_full_is_counted_and_nothing_is_lost() {
    let schema = prepare_database!().await;
    let disk = TinyDisk::mount(64 * 1024);
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    let analytics = builder(&proxy, &schema, &disk.0)
        .with_spool_max_bytes(64 << 20)
        .with_queue_capacity(10_000)
        .build()
        .unwrap();
    let mut accepted = 0;
    for _ in 0..10 {
        for event in events(300, "search") {
            // Requests are still served: nothing here waits or fails.
            analytics.try_record(event).unwrap();
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait(&analytics, "a disk error", |s| s.spool_errors > 0).await;
    proxy.set(Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    let stats = analytics.stats();
    assert_eq!(stats.written, accepted, "{stats:?}");
    assert_exact(&schema, accepted).await;
}

#[tokio::test]
async fn spool_full_refuses_the_newest_and_keeps_the_rest() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-full");
    let proxy = Proxy::start(&common::url()).await;
    proxy.set(Mode::Down);
    let analytics = builder(&proxy, &schema, &dir)
        .with_max_bytes(16 * 1024)
        .with_spool_max_bytes(64 * 1024)
        .build()
        .unwrap();
    let mut accepted = 0u64;
    let mut refused = 0u64;
    for _ in 0..20 {
        for event in events(200, "search") {
            match analytics.try_record(event) {
                Ok(()) => accepted += 1,
                Err(Rejected::SpoolFull | Rejected::QueueFull) => refused += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = analytics.stats();
    assert!(stats.dropped_spool_full > 0, "{stats:?}");
    assert_eq!(stats.dropped_spool_full + stats.dropped_queue_full, refused);
    assert!(stats.spooled_bytes <= 64 * 1024, "{stats:?}");
    proxy.set(Mode::Forward);
    let report = analytics.shutdown(Duration::from_secs(30)).await;
    assert!(report.unwritten.is_empty());
    assert_exact(&schema, accepted).await;
}

#[tokio::test]
async fn spool_sustained_load_through_an_outage_keeps_memory_bounded() {
    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-load");
    let proxy = Proxy::start(&common::url()).await;
    let analytics = builder(&proxy, &schema, &dir)
        .with_max_rows(1_000)
        .with_max_bytes(256 * 1024)
        .with_queue_capacity(5_000)
        .build()
        .unwrap();
    // 4 000 events a second: 8 s up, 10 s down, 4 s up.
    let mut accepted = 0u64;
    let mut rss_at_outage = 0;
    let mut rss_peak = 0;
    for tick in 0..220 {
        match tick {
            80 => {
                rss_at_outage = common::resident_bytes();
                proxy.set(Mode::Down);
            }
            180 => proxy.set(Mode::Forward),
            _ => {}
        }
        for event in events(400, "load") {
            analytics.try_record(event).unwrap();
            accepted += 1;
        }
        if (80..180).contains(&tick) {
            rss_peak = rss_peak.max(common::resident_bytes());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growth = rss_peak.saturating_sub(rss_at_outage);
    println!(
        "{accepted} events; resident memory {} MiB when the outage began, peak growth {} KiB",
        rss_at_outage >> 20,
        growth >> 10
    );
    // 40 000 events (about 3 MiB on disk) came during the outage: they went to disk, and
    // memory grew by well under their size in memory (about 150 bytes each, 6 MiB).
    assert!(growth < 4 << 20, "grew {growth} bytes");
    let report = analytics.shutdown(Duration::from_secs(60)).await;
    assert!(report.unwritten.is_empty());
    let stats = analytics.stats();
    assert_eq!(
        stats.dropped_queue_full + stats.dropped_spool_full,
        0,
        "{stats:?}"
    );
    assert_exact(&schema, accepted).await;
}

#[tokio::test]
async fn spool_axum_example_survives_sigkill_and_outages() {
    use common::app::App;
    use http::Method;

    let schema = prepare_database!().await;
    let dir = common::temp_dir("spool-example");
    let proxy = Proxy::start(&common::url()).await;
    let proxy_url = proxy.url();
    let env = [
        ("CLICKHOUSE_URL", proxy_url.as_str()),
        ("IDP_ANALYTICS_DATABASE", schema.database()),
        ("IDP_ANALYTICS_SPOOL_DIR", dir.to_str().unwrap()),
    ];
    async fn requests(app: &App, round: u64) {
        for i in 0..30 {
            let path = format!("/projects/{}", round * 100 + i);
            assert_eq!(app.send(Method::GET, &path, Some(1 + i % 3)).await, 200);
        }
    }

    // 1. ClickHouse unreachable from the start; the app serves; then it is killed.
    proxy.set(Mode::Down);
    let app = App::start("axum", &env).await;
    requests(&app, 1).await;
    // A process crash loses at most what came in the last fsync interval (500 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.kill().await;
    assert!(!common::segments(&dir).is_empty());
    assert_eq!(
        common::try_raw_count(&schema).await,
        None,
        "nothing reached ClickHouse yet"
    );

    // 2. ClickHouse stores inserts but answers late: killed while an insert is in flight.
    proxy.set(Mode::DelayInserts(Duration::from_secs(30)));
    let app = App::start("axum", &env).await;
    requests(&app, 2).await;
    let stored = common::eventually(Duration::from_secs(20), || async {
        common::try_raw_count(&schema).await.is_some_and(|n| n > 0)
    })
    .await;
    assert!(stored, "an insert reached ClickHouse");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.kill().await;

    // 3. ClickHouse reachable: the replay and new events go in, and SIGTERM flushes.
    proxy.set(Mode::Forward);
    let app = App::start("axum", &env).await;
    requests(&app, 3).await;
    let rest = app.stop().await;
    assert!(
        rest.iter().any(|l| l.contains("0 spool segments left")),
        "{rest:?}"
    );
    assert!(common::segments(&dir).is_empty());
    assert_exact(&schema, 90).await;
}
