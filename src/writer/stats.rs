//! [`Stats`]: what the writer has done, as counters.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
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
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let enqueued = get(&self.enqueued);
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
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
