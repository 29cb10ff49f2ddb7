//! [`Worker`]: collects events from the queue into batches and writes them, retrying until
//! ClickHouse acknowledges each batch.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::event::Event;

use super::{
    PauseReason,
    collector::SpoolCollector,
    handle::{Ack, Queued, Shared, WriteFailed},
    rest::{self, RestSink},
    sink::{self, Failure, Sink},
    spool::{self, Sealed},
    stats::{Counters, StatsLog},
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
    /// Set for a writer made by [`Analytics::builder_reporting_to`](super::Analytics::builder_reporting_to):
    /// batches go to a reporter endpoint instead of `sink`.
    rest: Option<RestSink>,
    prepared: bool,
    backoff: Backoff,
    log: StatsLog,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("table", &self.shared.config.schema.qualified_table())
            .field("server", &self.sink.version())
            .finish_non_exhaustive()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Run to the end, or never run at all: either way nothing is in its hands now.
        self.shared.done.send_replace(true);
    }
}

/// How the write of one batch ended.
pub(super) enum Outcome {
    Written,
    DeadLettered,
    Aborted,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, rest: Option<RestSink>) -> Self {
        let config = &shared.config;
        let backoff = Backoff::new(config.min_backoff, config.max_backoff);
        let sink = Sink::new(&shared.connection, &config.schema);
        Self {
            shared,
            sink,
            rest,
            prepared: false,
            backoff,
            log: StatsLog::new(),
        }
    }

    /// Runs until the writer is closed and drained, or aborted by a shutdown deadline.
    pub async fn run(mut self) {
        let table = self.shared.config.schema.qualified_table();
        tracing::debug!(%table, spool = self.shared.spool.is_some(), "analytics writer started");
        let shared = self.shared.clone();
        let work = async {
            if self.shared.spool.is_some() {
                self.run_spooled().await;
            } else {
                self.run_direct().await;
            }
        };
        #[cfg(feature = "metrics")]
        {
            let publish = async {
                loop {
                    shared.metrics.publish(&shared.stats());
                    tokio::time::sleep(super::metrics::PUBLISH_EVERY).await;
                }
            };
            tokio::select! {
                () = work => {}
                () = publish => {}
            }
            shared.metrics.publish(&shared.stats());
        }
        #[cfg(not(feature = "metrics"))]
        work.await;
        drop(shared);
        tracing::debug!(%table, "analytics writer stopped");
    }

    /// Takes batches from the queue as [`run`](Self::run) does, and drops them: nothing is
    /// written. For measuring what the request path costs with the queue drained as usual,
    /// without ClickHouse's work on the same machine.
    #[doc(hidden)]
    pub async fn run_discarding(mut self) {
        while let Some(batch) = self.collect().await {
            drop(batch);
        }
    }

    /// Without a spool: batches go from the queue straight to ClickHouse.
    async fn run_direct(&mut self) {
        while let Some(batch) = self.collect().await {
            self.log.observe(self.shared.stats());
            let (events, acks) = split(batch);
            if !self.send(events, &acks).await {
                break;
            }
        }
    }

    /// Writes one batch and settles its confirmations. False when a shutdown deadline
    /// passed; the events are then handed back to the shutdown.
    async fn send(&mut self, events: Vec<Event>, acks: &[Arc<Ack>]) -> bool {
        let outcome = self.write(&events).await;
        match outcome {
            Outcome::Written => settle(acks, Ok(())),
            Outcome::DeadLettered => {
                settle(acks, Err(&WriteFailed::DeadLettered("bad data".into())));
            }
            Outcome::Aborted => {
                settle(acks, Err(&WriteFailed::ShutDown));
                self.give_back(events);
            }
        }
        !matches!(outcome, Outcome::Aborted)
    }

    fn give_back(&self, events: Vec<Event>) {
        Counters::add(&self.shared.counters.unwritten_at_shutdown, events.len());
        self.shared
            .leftovers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(events);
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
            let before = batch.len();
            while batch.len() < config.max_rows && bytes < config.max_bytes {
                let Some(item) = self.shared.pop() else { break };
                bytes += item.event.encoded_len();
                batch.push(item);
            }
            self.shared.release(batch.len() - before);
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

    /// With a spool: one loop appends what the queue holds to segment files and seals one
    /// segment per batch; the other sends sealed segments in order and removes each once
    /// ClickHouse has acknowledged it.
    async fn run_spooled(&mut self) {
        let shared = self.shared.clone();
        let Some(spool) = shared.spool.as_ref() else {
            return;
        };
        let collector_done = AtomicBool::new(false);
        let collect = async {
            SpoolCollector::new(&shared, spool).run().await;
            collector_done.store(true, Ordering::Release);
            spool.ready.notify_one();
        };
        let send = async {
            loop {
                let Some(mut segment) = spool.pop_sealed() else {
                    if collector_done.load(Ordering::Acquire) && spool.backlog() == 0 {
                        break;
                    }
                    let ready = spool.ready.notified();
                    tokio::select! {
                        () = ready => {}
                        () = shared.until_aborted() => break,
                    }
                    continue;
                };
                let events = match segment.events.take() {
                    Some(events) => events,
                    None => match self.read_back(&segment).await {
                        Some(events) => events,
                        None => continue,
                    },
                };
                let acks = std::mem::take(&mut segment.acks);
                let outcome = self.write(&events).await;
                match outcome {
                    Outcome::Written | Outcome::DeadLettered => {
                        if let Err(err) = spool.remove(&segment) {
                            Counters::add(&shared.counters.spool_errors, 1);
                            tracing::error!(error = %err, "could not remove a written spool segment; it will be sent again (without visible duplicates)");
                        }
                        shared.wake.notify_one();
                        let result = match outcome {
                            Outcome::Written => Ok(()),
                            _ => Err(WriteFailed::DeadLettered("bad data".into())),
                        };
                        settle(&acks, result.as_ref().map(|_| ()));
                    }
                    Outcome::Aborted => {
                        settle(&acks, Err(&WriteFailed::ShutDown));
                        if segment.path.is_none() {
                            self.give_back(events);
                        }
                        break;
                    }
                }
            }
            // Past a shutdown deadline: batches that never reached the disk go back to the
            // caller; spooled ones stay for the next run.
            while let Some(segment) = spool.pop_sealed() {
                settle(&segment.acks, Err(&WriteFailed::ShutDown));
                if segment.path.is_none() {
                    self.give_back(segment.events.unwrap_or_default());
                }
            }
        };
        tokio::join!(collect, send);
    }

    /// Reads a segment back from disk, counting what a previous run left and what is
    /// corrupt. `None` when there is nothing to send (the file is gone or empty).
    async fn read_back(&self, segment: &Sealed) -> Option<Vec<Event>> {
        let spool = self.shared.spool.as_ref()?;
        let path = segment.path.clone()?;
        let counters = &self.shared.counters;
        let max = spool.config.max_segment_bytes;
        let read = tokio::task::spawn_blocking(move || spool::read_segment(&path, max)).await;
        let read = match read {
            Ok(Ok(read)) => read,
            Ok(Err(err)) => {
                Counters::add(&counters.spool_errors, 1);
                tracing::error!(error = %err, segment = ?segment.path, "could not read a spool segment; skipping it");
                let _ = spool.remove(segment);
                return None;
            }
            Err(_) => return None,
        };
        if read.corrupt > 0 {
            Counters::add(&counters.corrupt_records, read.corrupt as usize);
            tracing::warn!(corrupt = read.corrupt, good = read.events.len(), gave_up = read.gave_up, segment = ?segment.path, "skipped torn or corrupted spool records");
        }
        if segment.replay {
            Counters::add(&counters.replayed, read.events.len());
        }
        if read.events.is_empty() {
            let _ = spool.remove(segment);
            return None;
        }
        Some(read.events)
    }

    fn aborted(&self) -> bool {
        self.shared.abort.load(Ordering::Acquire)
    }

    /// Sleeps for `duration`, or less if a shutdown deadline passes. False if aborted.
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.shared.until_aborted() => false,
        }
    }

    /// Writes one batch, retrying transient failures with backoff until ClickHouse
    /// acknowledges it, it is refused as bad data, or a shutdown deadline passes.
    async fn write(&mut self, events: &[Event]) -> Outcome {
        if let Some(rest) = &self.rest {
            let shared = &self.shared;
            return rest::write(rest, shared, &mut self.backoff, &mut self.log, events).await;
        }
        let config = self.shared.config.clone();
        let shared = self.shared.clone();
        let counters = &shared.counters;
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
                let started = Instant::now();
                let inserted = self.sink.insert(&config.schema, events).await;
                if inserted.is_ok() {
                    shared.metrics.insert_took(started.elapsed());
                }
                inserted
            };
            let result = tokio::select! {
                r = attempt => r,
                () = self.shared.until_aborted() => return Outcome::Aborted,
            };
            self.log.observe(self.shared.stats());
            let error = match result {
                Ok(()) => {
                    self.resume();
                    Counters::add(&counters.written, events.len());
                    Counters::add(&counters.batches, 1);
                    self.backoff.reset();
                    tracing::debug!(rows = events.len(), "analytics batch written");
                    return Outcome::Written;
                }
                Err(error) => error,
            };
            let failure = tokio::select! {
                f = self.sink.diagnose(&error) => f,
                () = self.shared.until_aborted() => return Outcome::Aborted,
            };
            match failure {
                Failure::BadData => {
                    Counters::add(&counters.dead_lettered, events.len());
                    let reason = error.to_string();
                    let place =
                        sink::dead_letter(config.dead_letter_dir.as_deref(), events, &reason);
                    tracing::debug!(rows = events.len(), %place, "analytics batch dead-lettered");
                    return Outcome::DeadLettered;
                }
                Failure::Pause(reason) => {
                    self.prepared = false;
                    self.pause_for(reason, &error, events.len());
                }
                Failure::Transient => {
                    tracing::warn!(error = %error, rows = events.len(), "analytics insert failed; retrying");
                }
            }
            Counters::add(&counters.retried_batches, 1);
            // The same batch goes to the next server of the list, if there are several: on
            // a cluster any server takes it, and the shard it lands on is the same.
            self.sink.next_server();
            let wait = self.backoff.next();
            if !self.pause(wait).await {
                return Outcome::Aborted;
            }
        }
    }
}

impl Worker {
    /// Pauses the writer for `reason`, logging it once (again only if the reason changes).
    fn pause_for(&self, reason: PauseReason, error: &crate::Error, rows: usize) {
        pause(&self.shared, reason, &sink::chain_text(error), rows);
    }

    /// Ends a pause, if there is one, logging what it was.
    fn resume(&self) {
        resume(&self.shared, "ClickHouse acknowledged a batch");
    }
}

/// Pauses the writer for `reason`, logging it once (again only if the reason changes);
/// `detail` says what happened. Both sinks' pauses.
pub(super) fn pause(shared: &Shared, reason: PauseReason, detail: &str, rows: usize) {
    let changed = {
        let mut current = shared
            .pause_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let changed = *current != Some(reason);
        *current = Some(reason);
        changed
    };
    shared.paused.store(true, Ordering::Relaxed);
    if changed {
        Counters::add(&shared.counters.pauses, 1);
        shared.metrics.paused(reason);
        tracing::error!(
            reason = reason.as_str(),
            error = %detail,
            url = %shared.connection.display_url(),
            rows,
            pending = shared.stats().pending,
            "analytics writer paused: {reason}; every event is kept (in memory, and in the \
             spool if there is one) and writing is tried again with backoff"
        );
    } else {
        tracing::debug!(reason = reason.as_str(), error = %detail, "analytics writer still paused");
    }
}

/// Ends a pause, if there is one, logging what it was and `why` it ended.
pub(super) fn resume(shared: &Shared, why: &str) {
    if !shared.paused.swap(false, Ordering::Relaxed) {
        return;
    }
    let reason = shared
        .pause_reason
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(reason) = reason {
        tracing::info!(
            reason = reason.as_str(),
            url = %shared.connection.display_url(),
            "analytics writer resumed: {why} (it was paused: {reason})"
        );
    }
}

fn split(batch: Vec<Queued>) -> (Vec<Event>, Vec<Arc<Ack>>) {
    let mut acks = Vec::new();
    let events = batch
        .into_iter()
        .map(|q| {
            acks.extend(q.ack);
            q.event
        })
        .collect();
    (events, acks)
}

fn settle(acks: &[Arc<Ack>], outcome: Result<(), &WriteFailed>) {
    for ack in acks {
        ack.settle(outcome);
    }
}

/// Exponential backoff with jitter: each wait is drawn between half and all of the current
/// step, and the step doubles up to the maximum.
pub(super) struct Backoff {
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

    pub(super) fn reset(&mut self) {
        self.step = self.min;
    }

    pub(super) fn next(&mut self) -> Duration {
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
    async fn shutdown_without_a_worker_hands_everything_back() {
        let (analytics, worker) = writer(100, 1000);
        for i in 0..7 {
            analytics.try_record(Event::new(i, "x").unwrap()).unwrap();
        }
        drop(worker);
        let start = Instant::now();
        let report = analytics.shutdown(Duration::from_secs(30)).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(report.written, 0);
        assert_eq!(report.unwritten.len(), 7);
        assert_eq!(analytics.stats().pending, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_its_deadline_for_a_worker_that_cannot_write() {
        let (analytics, worker) = writer(100, 1000);
        tokio::spawn(worker.run());
        for i in 0..3 {
            analytics.try_record(Event::new(i, "x").unwrap()).unwrap();
        }
        let start = Instant::now();
        // Nothing listens on port 1: every attempt fails and is retried until the deadline.
        let report = analytics.shutdown(Duration::from_secs(3)).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        assert_eq!(report.unwritten.len(), 3);
        assert!(analytics.stats().retried_batches >= 1);
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
