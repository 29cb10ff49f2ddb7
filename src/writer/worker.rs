//! [`Worker`]: collects events from the queue into batches and writes them, retrying until
//! ClickHouse acknowledges each batch.

use std::{
    fmt,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::time::Instant;

use crate::event::Event;

use super::{
    handle::{Queued, Shared, WriteFailed},
    sink::{self, Failure, Sink},
    stats::Counters,
};

/// The background half of the writer. [`Builder::build`](super::Builder::build) spawns it;
/// [`Builder::build_pair`](super::Builder::build_pair) hands it to you to spawn.
///
/// It ends when the writer is closed (every [`Analytics`](super::Analytics) handle dropped, or
/// [`shutdown`](super::Analytics::shutdown) called) and everything queued is written, or when a
/// shutdown's deadline passes.
#[must_use = "the worker does nothing unless `run()` is spawned"]
pub struct Worker {
    shared: Arc<Shared>,
    sink: Sink,
    prepared: bool,
    backoff: Backoff,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("table", &self.shared.config.schema.qualified_table())
            .field("server", &self.sink.version())
            .finish_non_exhaustive()
    }
}

/// How the write of one batch ended.
enum Outcome {
    Written,
    DeadLettered,
    Aborted,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let config = &shared.config;
        let backoff = Backoff::new(config.min_backoff, config.max_backoff);
        let sink = Sink::new(config);
        Self {
            shared,
            sink,
            prepared: false,
            backoff,
        }
    }

    /// Runs until the writer is closed and drained, or aborted by a shutdown deadline.
    pub async fn run(mut self) {
        tracing::debug!(table = %self.shared.config.schema.qualified_table(), "analytics writer started");
        while let Some(batch) = self.collect().await {
            let events: Vec<Event> = batch.iter().map(|q| q.event.clone()).collect();
            match self.write(&events).await {
                Outcome::Written => settle(&batch, Ok(())),
                Outcome::DeadLettered => {
                    let failure = WriteFailed::DeadLettered("bad data".into());
                    settle(&batch, Err(&failure));
                }
                Outcome::Aborted => {
                    settle(&batch, Err(&WriteFailed::ShutDown));
                    Counters::add(&self.shared.counters.unwritten_at_shutdown, events.len());
                    self.shared
                        .leftovers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(events);
                    break;
                }
            }
        }
        tracing::debug!("analytics writer stopped");
        self.shared.done.send_replace(true);
    }

    /// Waits for the next batch: full by rows or bytes, or whatever has come when the flush
    /// interval ends, or the rest when the writer is closing. `None` when there is nothing
    /// left to do.
    pub(crate) async fn collect(&mut self) -> Option<Vec<Queued>> {
        let config = &self.shared.config;
        let interval = config.flush_interval;
        let mut deadline = Instant::now() + interval;
        let mut batch: Vec<Queued> = Vec::new();
        let mut bytes = 0;
        loop {
            while batch.len() < config.max_rows && bytes < config.max_bytes {
                let Some(item) = self.shared.pop() else { break };
                bytes += item.event.encoded_len();
                batch.push(item);
            }
            if batch.len() >= config.max_rows || bytes >= config.max_bytes {
                return Some(batch);
            }
            if self.shared.is_closing() && self.shared.queue.is_empty() {
                return (!batch.is_empty()).then_some(batch);
            }
            if Instant::now() >= deadline {
                if !batch.is_empty() {
                    return Some(batch);
                }
                deadline = Instant::now() + interval;
            }
            tokio::select! {
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    fn aborted(&self) -> bool {
        self.shared.abort.load(Ordering::Acquire)
    }

    /// Sleeps for `duration`, or less if a shutdown deadline passes. False if aborted.
    async fn pause(&self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        while !self.aborted() {
            tokio::select! {
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(until) => return true,
            }
        }
        false
    }

    /// Writes one batch, retrying transient failures with backoff until ClickHouse
    /// acknowledges it, it is refused as bad data, or a shutdown deadline passes.
    async fn write(&mut self, events: &[Event]) -> Outcome {
        let config = self.shared.config.clone();
        let counters = &self.shared.counters;
        loop {
            if self.aborted() {
                return Outcome::Aborted;
            }
            let attempt = async {
                if !self.prepared {
                    self.sink
                        .prepare(&config.schema, config.create_schema)
                        .await?;
                    self.prepared = true;
                    tracing::info!(
                        server = %self.sink.version().map(|v| v.to_string()).unwrap_or_default(),
                        table = %config.schema.qualified_table(),
                        "analytics table ready"
                    );
                }
                self.sink.insert(&config.schema, events).await
            };
            let result = tokio::select! {
                r = attempt => r,
                () = wait_abort(&self.shared) => return Outcome::Aborted,
            };
            let error = match result {
                Ok(()) => {
                    self.shared.paused.store(false, Ordering::Relaxed);
                    Counters::add(&counters.written, events.len());
                    Counters::add(&counters.batches, 1);
                    self.backoff.reset();
                    tracing::debug!(rows = events.len(), "analytics batch written");
                    return Outcome::Written;
                }
                Err(error) => error,
            };
            match sink::classify(&error) {
                Failure::BadData => {
                    Counters::add(&counters.dead_lettered, events.len());
                    let reason = error.to_string();
                    let place =
                        sink::dead_letter(config.dead_letter_dir.as_deref(), events, &reason);
                    tracing::debug!(rows = events.len(), %place, "analytics batch dead-lettered");
                    return Outcome::DeadLettered;
                }
                Failure::Pause => {
                    self.prepared = false;
                    self.shared.paused.store(true, Ordering::Relaxed);
                    tracing::error!(
                        error = %error,
                        rows = events.len(),
                        "analytics writer paused: ClickHouse refused the table or the credentials; \
                         events are kept and the table is checked again"
                    );
                }
                Failure::Transient => {
                    tracing::warn!(error = %error, rows = events.len(), "analytics insert failed; retrying");
                }
            }
            Counters::add(&counters.retried_batches, 1);
            let wait = self.backoff.next();
            if !self.pause(wait).await {
                return Outcome::Aborted;
            }
        }
    }
}

/// Resolves when a shutdown deadline has passed.
async fn wait_abort(shared: &Shared) {
    while !shared.abort.load(Ordering::Acquire) {
        shared.wake.notified().await;
    }
}

fn settle(batch: &[Queued], outcome: Result<(), &WriteFailed>) {
    for item in batch {
        if let Some(ack) = &item.ack {
            ack.settle(outcome);
        }
    }
}

/// Exponential backoff with jitter: each wait is drawn between half and all of the current
/// step, and the step doubles up to the maximum.
struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            step: min,
        }
    }

    fn reset(&mut self) {
        self.step = self.min;
    }

    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Analytics, Event};

    #[test]
    fn backoff_doubles_with_jitter_up_to_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        for (i, w) in waits.iter().enumerate() {
            let step = Duration::from_millis(100 * (1 << i.min(10))).min(Duration::from_secs(1));
            assert!(
                *w >= step / 2 && *w <= step,
                "wait {i} was {w:?}, step {step:?}"
            );
        }
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }

    fn writer(max_rows: usize, capacity: usize) -> (Analytics, Worker) {
        Analytics::builder("http://127.0.0.1:1")
            .with_max_rows(max_rows)
            .with_queue_capacity(capacity)
            .with_flush_interval(Duration::from_secs(1))
            .build_pair()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_is_flushed_when_the_interval_ends() {
        let (analytics, mut worker) = writer(100, 1000);
        let start = Instant::now();
        for i in 0..3 {
            analytics.try_record(Event::new(i, "x").unwrap()).unwrap();
        }
        let batch = worker.collect().await.unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_interval_waits_for_the_first_event() {
        let (analytics, mut worker) = writer(100, 1000);
        let start = Instant::now();
        let late = analytics.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            late.try_record(Event::new(1, "x").unwrap()).unwrap();
        });
        let batch = worker.collect().await.unwrap();
        assert_eq!(batch.len(), 1);
        // Ticks at 1 s and 2 s found nothing; the event came at 2.5 s and went at 3 s.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_at_once() {
        let (analytics, mut worker) = writer(10, 1000);
        let start = Instant::now();
        for i in 0..25 {
            analytics.try_record(Event::new(i, "x").unwrap()).unwrap();
        }
        assert_eq!(worker.collect().await.unwrap().len(), 10);
        assert_eq!(worker.collect().await.unwrap().len(), 10);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(worker.collect().await.unwrap().len(), 5);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_wakes_the_worker_before_the_interval() {
        let (analytics, mut worker) = writer(10, 1000);
        let start = Instant::now();
        let producer = analytics.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for i in 0..10 {
                producer.try_record(Event::new(i, "x").unwrap()).unwrap();
            }
        });
        assert_eq!(worker.collect().await.unwrap().len(), 10);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_flushes_the_rest_then_ends() {
        let (analytics, mut worker) = writer(100, 1000);
        for i in 0..4 {
            analytics.try_record(Event::new(i, "x").unwrap()).unwrap();
        }
        let start = Instant::now();
        drop(analytics);
        assert_eq!(worker.collect().await.unwrap().len(), 4);
        assert!(worker.collect().await.is_none());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let (analytics, _worker) = writer(100, 5);
        for i in 0..5 {
            analytics.try_record(Event::new(i, "x").unwrap()).unwrap();
        }
        for i in 0..3 {
            assert_eq!(
                analytics.try_record(Event::new(i, "x").unwrap()),
                Err(crate::Rejected::QueueFull)
            );
        }
        // A group that does not fit is refused whole.
        let group = (0..2).map(|i| Event::new(i, "y").unwrap()).collect();
        assert_eq!(
            analytics.try_record_all(group),
            Err(crate::Rejected::QueueFull)
        );
        let stats = analytics.stats();
        assert_eq!(stats.enqueued, 5);
        assert_eq!(stats.dropped_queue_full, 5);
        assert_eq!(stats.pending, 5);
    }
}
