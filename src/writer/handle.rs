//! [`Analytics`]: the cheap handle the request path enqueues through.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use crossbeam_queue::ArrayQueue;
use tokio::sync::{Notify, oneshot, watch};

use crate::{
    connection::Connection,
    error::{Error, Rejected},
    event::{Capture, Event},
    usage::Usage,
};

use super::{Builder, PauseReason, Stats, Worker, metrics::Metrics, spool::Spool, stats::Counters};

/// Why events were not written, reported to those who asked for a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteFailed {
    /// ClickHouse refused the batch as bad data; it went to the dead-letter file or log.
    #[error("ClickHouse rejected the batch: {0}")]
    DeadLettered(String),
    /// The writer shut down before the events were written.
    #[error("the writer shut down before the events were written")]
    ShutDown,
}

pub(crate) struct Queued {
    pub(crate) event: Event,
    pub(crate) ack: Option<Arc<Ack>>,
}

/// What the queue holds: an event, or a request's capture the worker completes when it
/// takes it (so that the request path pays for neither an id nor the wall clock).
pub(crate) enum Item {
    Event(Queued),
    Capture(Capture),
}

impl Item {
    /// The queued event; `None` for a capture whose route name is no event type.
    fn into_queued(self) -> Option<Queued> {
        match self {
            Self::Event(queued) => Some(queued),
            Self::Capture(capture) => capture
                .into_event()
                .ok()
                .map(|event| Queued { event, ack: None }),
        }
    }
}

/// Completion of a group of events someone waits on.
pub(crate) struct Ack {
    remaining: AtomicUsize,
    failure: Mutex<Option<WriteFailed>>,
    tx: Mutex<Option<oneshot::Sender<Result<(), WriteFailed>>>>,
}

impl Ack {
    /// Marks one event of the group as done.
    pub(crate) fn settle(&self, outcome: Result<(), &WriteFailed>) {
        if let Err(failure) = outcome {
            let mut first = self.failure.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| failure.clone());
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let failure = self
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(tx) = tx {
                let _ = tx.send(failure.map_or(Ok(()), Err));
            }
        }
    }
}

/// Resolves once ClickHouse has acknowledged every event of a
/// [`try_record_confirmed`](Analytics::try_record_confirmed) call, or one of them failed.
#[derive(Debug)]
#[must_use = "a confirmation does nothing unless awaited"]
pub struct Confirmation {
    rx: oneshot::Receiver<Result<(), WriteFailed>>,
}

impl Future for Confirmation {
    type Output = Result<(), WriteFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(WriteFailed::ShutDown)))
    }
}

/// What [`Analytics::shutdown`] managed.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Events written during the shutdown.
    pub written: u64,
    /// Segment files left in the spool: their events are sent when a writer next opens it.
    pub left_in_spool: u64,
    /// Events that could not be written before the deadline and are not in a spool. Some of
    /// them may have reached
    /// ClickHouse in an insert that was cut short; writing them again is safe, since a row
    /// with the same `event_id` is the same event.
    pub unwritten: Vec<Event>,
}

/// A value on a cache line of its own, so that writes to its neighbours do not slow it.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// State shared by the handles and the worker.
pub(crate) struct Shared {
    pub(crate) config: Arc<Builder>,
    pub(crate) connection: Connection,
    pub(crate) queue: ArrayQueue<Item>,
    /// Slots taken in the queue, reserved before a push so a group goes in whole or not at
    /// all. On a cache line of its own: producers and the worker both write it.
    reserved: Padded<AtomicUsize>,
    /// Slots the worker has released: with `reserved`, the count of events ever taken,
    /// without a counter of their own on the request path.
    released: AtomicU64,
    /// The worker is woken when a push brings `reserved` to this many.
    wake_at: usize,
    /// Wakes the worker's collecting loop: a burst, closing, room in the spool.
    pub(crate) wake: Notify,
    closing: AtomicBool,
    /// A shutdown's deadline has passed: the worker gives up what it is writing.
    pub(crate) abort: AtomicBool,
    pub(crate) abort_notify: Notify,
    pub(crate) spool: Option<Spool>,
    /// The spool is at its bound: handles refuse new events.
    pub(crate) spool_full: AtomicBool,
    /// The worker cannot write until someone acts (credentials, table); events are kept.
    pub(crate) paused: AtomicBool,
    /// Why the worker is paused, while it is.
    pub(crate) pause_reason: Mutex<Option<PauseReason>>,
    pub(crate) counters: Counters,
    pub(crate) metrics: Metrics,
    pub(crate) leftovers: Mutex<Vec<Event>>,
    pub(crate) done: watch::Sender<bool>,
}

impl Shared {
    #[inline(always)]
    fn reserve(&self, n: usize) -> Result<usize, Rejected> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Rejected::Closed);
        }
        if self.spool_full.load(Ordering::Relaxed) {
            return Err(Rejected::SpoolFull);
        }
        let cap = self.queue.capacity();
        let mut cur = self.reserved.load(Ordering::Relaxed);
        loop {
            if cur + n > cap {
                return Err(Rejected::QueueFull);
            }
            match self.reserved.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(cur + n),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Enqueued events so far: released by the worker, plus those in the queue.
    pub(crate) fn enqueued(&self) -> u64 {
        // `released` first: a slot moves from `reserved` to `released`, never back.
        let released = self.released.load(Ordering::Acquire);
        released + self.reserved.load(Ordering::Acquire) as u64
    }

    // Inlined, like the rest of the enqueue, so that the item is built in place and
    // copied once, into its slot.
    #[inline(always)]
    fn push_reserved(&self, item: Item) {
        // A reserved slot is always free: the worker releases a reservation only after it
        // popped the item.
        if self.queue.push(item).is_err() {
            unreachable!("queue slot reserved but full");
        }
    }

    /// Takes the oldest event. Its slot stays reserved until [`release`](Self::release),
    /// so that the worker touches the shared counter once per batch, not once per event.
    ///
    /// A request's capture whose route name is no event type is counted in
    /// [`Stats::dropped_invalid`] and its slot released at once.
    pub(crate) fn pop(&self) -> Option<Queued> {
        loop {
            if let Some(queued) = self.queue.pop()?.into_queued() {
                return Some(queued);
            }
            self.counters
                .dropped_invalid
                .fetch_add(1, Ordering::Relaxed);
            self.release(1);
        }
    }

    /// Frees `n` slots of events taken with [`pop`](Self::pop).
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.released.fetch_add(n as u64, Ordering::AcqRel);
            self.reserved.fetch_sub(n, Ordering::AcqRel);
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.counters.snapshot(self.enqueued());
        stats.paused = *self.pause_reason.lock().unwrap_or_else(|e| e.into_inner());
        stats.queued = self.queue.len() as u64;
        if let Some(spool) = &self.spool {
            stats.spooled_bytes = spool.disk_bytes.load(Ordering::Relaxed);
            stats.spooled_segments = spool.segments.load(Ordering::Relaxed);
        }
        stats
    }

    /// Resolves when a shutdown deadline has passed.
    pub(crate) async fn until_aborted(&self) {
        loop {
            let notified = self.abort_notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a notification in between is not missed.
            notified.as_mut().enable();
            if self.abort.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn count_rejected(&self, reason: Rejected, n: u64) {
        let counter = match reason {
            Rejected::QueueFull => &self.counters.dropped_queue_full,
            Rejected::Closed => &self.counters.dropped_closed,
            Rejected::SpoolFull => &self.counters.dropped_spool_full,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The handle to the writer: cheap to clone (one `Arc`), never waits.
///
/// Events go into a bounded in-memory queue; a background [`Worker`] batches them into
/// ClickHouse. When the last handle is dropped the worker writes what is queued and ends;
/// [`shutdown`](Self::shutdown) does the same and waits for it, with a deadline.
#[derive(Clone)]
pub struct Analytics {
    inner: Arc<Handle>,
}

/// Closes the writer when the last [`Analytics`] clone goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl fmt::Debug for Analytics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analytics")
            .field("table", &self.inner.shared.config.schema.qualified_table())
            .field("stats", &self.stats())
            .finish()
    }
}

pub(crate) fn pair(
    config: Arc<Builder>,
    connection: Connection,
    spool: Option<Spool>,
    rest: Option<super::rest::RestSink>,
) -> (Analytics, Worker) {
    let capacity = config.queue_capacity;
    let shared = Arc::new(Shared {
        metrics: Metrics::new(&config.schema.qualified_table()),
        connection,
        wake_at: config.max_rows.min(capacity.div_ceil(2)).max(1),
        queue: ArrayQueue::new(capacity),
        reserved: Padded(AtomicUsize::new(0)),
        released: AtomicU64::new(0),
        wake: Notify::new(),
        closing: AtomicBool::new(false),
        abort: AtomicBool::new(false),
        abort_notify: Notify::new(),
        spool,
        spool_full: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        pause_reason: Mutex::new(None),
        counters: Counters::default(),
        leftovers: Mutex::new(Vec::new()),
        done: watch::Sender::new(false),
        config,
    });
    let worker = Worker::new(shared.clone(), rest);
    let analytics = Analytics {
        inner: Arc::new(Handle { shared }),
    };
    (analytics, worker)
}

impl Analytics {
    /// Starts configuring a writer to the ClickHouse HTTP interface at `url`
    /// (e.g. `http://127.0.0.1:8123`).
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder::new(url)
    }

    /// Starts configuring a writer that owns no ClickHouse: it posts its batches to a
    /// reporter endpoint, `POST /events` of another process (`url` is the URL of that path,
    /// e.g. `https://idp.internal:3443/events`), with `token` as its bearer token.
    ///
    /// Everything else is the same writer: the queue, the batching (at most
    /// [`MAX_BATCH`](crate::writer::MAX_BATCH) events a request), the spool, shutdown and
    /// [`stats`](Self::stats). A batch is done only when the endpoint answers `200`; until
    /// then it is kept and sent again with the same `eventId`s and `timestamp`s, which the
    /// endpoint stores once. `401` pauses the writer and keeps the events; a `422` that
    /// names bad items by index dead-letters those (see
    /// [`with_dead_letter_dir`](Builder::with_dead_letter_dir)) and sends the others; `503`
    /// and other server errors, timeouts and connection errors are retried, after
    /// `Retry-After` when the answer has one.
    ///
    /// What a `200` promises depends on the endpoint's
    /// [`with_confirm_writes`](crate::reporter::ReporterBuilder::with_confirm_writes): with
    /// it, the events are in its ClickHouse, and nothing this writer sent is lost once it
    /// has its `200`. Without it, the events are in that process's queue: a crash of it
    /// before they reach its ClickHouse, or its spool when it has one (within its
    /// [`Fsync`](crate::writer::Fsync) interval), loses them, since this writer has already
    /// let them go.
    ///
    /// An `https://` URL is spoken through rustls (feature `rustls`; without it
    /// [`build`](Builder::build) refuses the URL and names the feature). The endpoint's
    /// certificate is checked against the same roots as a ClickHouse connection's: the
    /// platform's, `SSL_CERT_FILE`, `SSL_CERT_DIR`, and the CAs added with
    /// [`with_ca_file`](Builder::with_ca_file) or [`with_ca_pem`](Builder::with_ca_pem).
    /// A certificate that is not trusted or not for the URL's host, or a port that does not
    /// speak TLS, pauses the writer ([`PauseReason::UntrustedCertificate`] and its
    /// neighbours) and keeps the events. The connect timeout applies to the endpoint too.
    ///
    /// The ClickHouse settings of the builder (user, password, schema) have no effect here,
    /// and [`usage`](crate::Usage) must be pointed at the endpoint's ClickHouse, not at `url`.
    pub fn builder_reporting_to(url: impl Into<String>, token: impl Into<String>) -> Builder {
        Builder::reporting_to(url, token)
    }

    /// Starts configuring a writer over `connection`, whose URL, credentials, TLS roots and
    /// timeouts it uses, and whose pool of HTTP connections it shares with every client made
    /// from it.
    pub fn builder_with(connection: Connection) -> Builder {
        Builder::from_connection(connection)
    }

    /// The connection this writer writes through: make other clients from it.
    pub fn connection(&self) -> &Connection {
        &self.shared().connection
    }

    /// Usage queries over this writer's connection and tables: no second set of settings.
    pub fn usage(&self) -> Usage {
        Usage::from_connection(self.connection(), self.schema().clone())
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Enqueues one event without waiting. A full queue or a closed writer returns
    /// [`Rejected`] and counts the drop; nothing else happens to the caller.
    pub fn try_record(&self, event: Event) -> Result<(), Rejected> {
        self.enqueue(Item::Event(Queued { event, ack: None }))
    }

    /// Enqueues a request's capture, as [`try_record`](Self::try_record) does an event.
    #[inline(always)]
    pub(crate) fn try_capture(&self, capture: Capture) -> Result<(), Rejected> {
        self.enqueue(Item::Capture(capture))
    }

    #[inline(always)]
    fn enqueue(&self, item: Item) -> Result<(), Rejected> {
        let shared = self.shared();
        match shared.reserve(1) {
            Ok(len) => {
                shared.push_reserved(item);
                if len == shared.wake_at {
                    // Once per burst, not once per event.
                    shared.wake.notify_one();
                }
                Ok(())
            }
            Err(reason) => {
                shared.count_rejected(reason, 1);
                Err(reason)
            }
        }
    }

    /// Validates and enqueues an event of `event_type` for `account_id`, captured now.
    /// An invalid event type is counted in [`Stats::dropped_invalid`].
    pub fn record(&self, account_id: u64, event_type: &str) -> Result<(), Error> {
        let event = Event::new(account_id, event_type).inspect_err(|_| self.count_invalid())?;
        Ok(self.try_record(event)?)
    }

    /// Counts an event that could not be made because its input was invalid
    /// (for callers that validate before building an [`Event`]).
    pub fn count_invalid(&self) {
        self.shared()
            .counters
            .dropped_invalid
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Enqueues all of `events` or none of them, without waiting.
    pub fn try_record_all(&self, events: Vec<Event>) -> Result<(), Rejected> {
        self.enqueue_all(events, None)
    }

    /// Enqueues all of `events` or none, and returns a [`Confirmation`] that resolves once
    /// ClickHouse has acknowledged every one of them.
    pub fn try_record_confirmed(&self, events: Vec<Event>) -> Result<Confirmation, Rejected> {
        let (tx, rx) = oneshot::channel();
        if events.is_empty() {
            let _ = tx.send(Ok(()));
            return Ok(Confirmation { rx });
        }
        let ack = Arc::new(Ack {
            remaining: AtomicUsize::new(events.len()),
            failure: Mutex::new(None),
            tx: Mutex::new(Some(tx)),
        });
        self.enqueue_all(events, Some(ack))?;
        Ok(Confirmation { rx })
    }

    fn enqueue_all(&self, events: Vec<Event>, ack: Option<Arc<Ack>>) -> Result<(), Rejected> {
        let shared = self.shared();
        let n = events.len();
        if n == 0 {
            return Ok(());
        }
        let len = match shared.reserve(n) {
            Ok(len) => len,
            Err(reason) => {
                shared.count_rejected(reason, n as u64);
                return Err(reason);
            }
        };
        for event in events {
            shared.push_reserved(Item::Event(Queued {
                event,
                ack: ack.clone(),
            }));
        }
        if len >= shared.wake_at && len - n < shared.wake_at || ack.is_some() {
            shared.wake.notify_one();
        }
        Ok(())
    }

    /// Whether the writer still takes events.
    pub fn is_open(&self) -> bool {
        !self.shared().is_closing()
    }

    /// Whether the writer is paused: it met an error it cannot write past on its own
    /// (credentials, the table, TLS, an answer that is not ClickHouse's), so it keeps the
    /// events it has and tries again with backoff. [`Stats::paused`] says why. A reporter
    /// should answer `503` while this holds.
    pub fn is_paused(&self) -> bool {
        self.shared().paused.load(Ordering::Relaxed)
    }

    /// A snapshot of the writer's counters.
    pub fn stats(&self) -> Stats {
        self.shared().stats()
    }

    /// The schema (database and table) this writer writes to.
    pub fn schema(&self) -> &crate::schema::Schema {
        &self.shared().config.schema
    }

    /// A new client for this writer's first server and credentials (no default database),
    /// for the reads that go with writing, such as the reporter's look-up of resent ids.
    pub(crate) fn query_client(&self) -> clickhouse::Client {
        self.connection().client()
    }

    /// Stops taking events, writes everything queued, and waits until ClickHouse has
    /// acknowledged it, for at most `deadline`. Events still unwritten then are returned.
    ///
    /// Other clones of this handle stop taking events too. Returns at once if the worker was
    /// dropped without running.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let shared = self.shared();
        let written_before = shared.counters.written.load(Ordering::Relaxed);
        shared.close();
        let mut done = shared.done.subscribe();
        let finished = tokio::time::timeout(deadline, done.wait_for(|d| *d))
            .await
            .is_ok();
        if !finished {
            shared.abort.store(true, Ordering::Release);
            shared.abort_notify.notify_waiters();
            // The worker gives up its batch at the next step; wait for it briefly.
            let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
        }
        let mut unwritten =
            std::mem::take(&mut *shared.leftovers.lock().unwrap_or_else(|e| e.into_inner()));
        // If the worker never ran, the queue still holds the events.
        while let Some(item) = shared.pop() {
            shared.release(1);
            if let Some(ack) = &item.ack {
                ack.settle(Err(&WriteFailed::ShutDown));
            }
            shared
                .counters
                .unwritten_at_shutdown
                .fetch_add(1, Ordering::Relaxed);
            unwritten.push(item.event);
        }
        ShutdownReport {
            written: shared.counters.written.load(Ordering::Relaxed) - written_before,
            unwritten,
            left_in_spool: shared
                .spool
                .as_ref()
                .map_or(0, |s| s.segments.load(Ordering::Relaxed)),
        }
    }
}
