//! [`Stats`]: what the writer has done, as counters.

use std::sync::atomic::{AtomicU64, Ordering};

use super::PauseReason;

/// A snapshot of the writer's counters, from [`Analytics::stats`](super::Analytics::stats).
///
/// Every event handed to the writer ends up in exactly one of `written`, `dead_lettered`,
/// a `dropped_*` counter, or `pending` (including events returned unwritten by
/// [`shutdown`](super::Analytics::shutdown), counted in `unwritten_at_shutdown`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events taken into the queue.
    pub enqueued: u64,
    /// Events ClickHouse has acknowledged.
    pub written: u64,
    /// Events refused because the queue was full.
    pub dropped_queue_full: u64,
    /// Events refused because the writer was closed.
    pub dropped_closed: u64,
    /// Events that failed validation before they reached the queue.
    pub dropped_invalid: u64,
    /// Insert attempts that failed and were tried again.
    pub retried_batches: u64,
    /// Events ClickHouse refused as bad data, kept in the dead-letter file or log.
    pub dead_lettered: u64,
    /// Events given back unwritten by a shutdown that reached its deadline.
    pub unwritten_at_shutdown: u64,
    /// Events taken (or replayed from the spool) but not yet written: in the queue, in the
    /// spool, or in the batch being written.
    pub pending: u64,
    /// Inserts that ClickHouse acknowledged.
    pub batches: u64,
    /// Events refused because the spool was at its size bound.
    pub dropped_spool_full: u64,
    /// Bytes of segment files in the spool now.
    pub spooled_bytes: u64,
    /// Segment files in the spool now.
    pub spooled_segments: u64,
    /// Events read back from segments a previous run left.
    pub replayed: u64,
    /// Spool records skipped because they were torn or corrupted.
    pub corrupt_records: u64,
    /// Spool reads and writes that failed (disk full, unwritable directory); the events
    /// concerned were kept in memory instead.
    pub spool_errors: u64,
    /// Events in the in-memory queue now.
    pub queued: u64,
    /// Why the writer is paused, while it is (see [`Analytics::is_paused`](super::Analytics::is_paused)).
    pub paused: Option<PauseReason>,
    /// Times the writer paused (each change of reason counts once).
    pub pauses: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) written: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
    pub(crate) retried_batches: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) unwritten_at_shutdown: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) dropped_spool_full: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) corrupt_records: AtomicU64,
    pub(crate) spool_errors: AtomicU64,
    pub(crate) pauses: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, enqueued: u64) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let written = get(&self.written);
        let dead_lettered = get(&self.dead_lettered);
        let unwritten = get(&self.unwritten_at_shutdown);
        Stats {
            enqueued,
            written,
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_closed: get(&self.dropped_closed),
            dropped_invalid: get(&self.dropped_invalid),
            retried_batches: get(&self.retried_batches),
            dead_lettered,
            unwritten_at_shutdown: unwritten,
            pending: (enqueued + get(&self.replayed))
                .saturating_sub(written + dead_lettered + unwritten),
            batches: get(&self.batches),
            dropped_spool_full: get(&self.dropped_spool_full),
            spooled_bytes: 0,
            spooled_segments: 0,
            replayed: get(&self.replayed),
            corrupt_records: get(&self.corrupt_records),
            spool_errors: get(&self.spool_errors),
            queued: 0,
            paused: None,
            pauses: get(&self.pauses),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Emits the counters through `tracing`: a summary at `info` each minute in which something
/// changed, and a `warn` at most every ten seconds while events are being dropped.
#[derive(Debug)]
pub(crate) struct StatsLog {
    last: Stats,
    last_summary: tokio::time::Instant,
    last_warning: Option<tokio::time::Instant>,
}

impl StatsLog {
    const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    pub(crate) fn new() -> Self {
        Self {
            last: Stats::default(),
            last_summary: tokio::time::Instant::now(),
            last_warning: None,
        }
    }

    pub(crate) fn observe(&mut self, now: Stats) {
        let at = tokio::time::Instant::now();
        let dropped = |s: &Stats| s.dropped_queue_full + s.dropped_closed + s.dropped_spool_full;
        let new_drops = dropped(&now) - dropped(&self.last).min(dropped(&now));
        let may_warn = self
            .last_warning
            .is_none_or(|t| at.duration_since(t) >= Self::WARN_EVERY);
        if new_drops > 0 && may_warn {
            tracing::warn!(
                dropped_queue_full = now.dropped_queue_full,
                dropped_spool_full = now.dropped_spool_full,
                dropped_closed = now.dropped_closed,
                pending = now.pending,
                "analytics events are being dropped"
            );
            self.last_warning = Some(at);
        } else if at.duration_since(self.last_summary) < Self::SUMMARY_EVERY || now == self.last {
            return;
        } else {
            tracing::info!(
                enqueued = now.enqueued,
                written = now.written,
                pending = now.pending,
                batches = now.batches,
                retried_batches = now.retried_batches,
                dead_lettered = now.dead_lettered,
                dropped_queue_full = now.dropped_queue_full,
                dropped_spool_full = now.dropped_spool_full,
                dropped_closed = now.dropped_closed,
                dropped_invalid = now.dropped_invalid,
                spooled_bytes = now.spooled_bytes,
                spooled_segments = now.spooled_segments,
                replayed = now.replayed,
                corrupt_records = now.corrupt_records,
                spool_errors = now.spool_errors,
                "analytics writer"
            );
            self.last_summary = at;
        }
        self.last = now;
    }
}
