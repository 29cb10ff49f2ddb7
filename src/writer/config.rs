//! [`Builder`]: where the writer writes and how it batches, retries and times out.

use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::{
    error::{Error, Result},
    schema::Schema,
};

use super::{
    Analytics, Worker,
    spool::{Fsync, Spool, SpoolConfig},
};

/// Configures and starts the writer. Made by [`Analytics::builder`].
///
/// Every `with_*` method states its default. [`build`](Self::build) checks the whole
/// configuration at once and spawns the worker; [`build_pair`](Self::build_pair) hands the
/// worker to the caller instead.
#[derive(Clone, Debug)]
pub struct Builder {
    pub(crate) url: String,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) schema: Schema,
    pub(crate) create_schema: bool,
    pub(crate) queue_capacity: usize,
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) receive_timeout: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) dead_letter_dir: Option<PathBuf>,
    pub(crate) spool: Option<SpoolConfig>,
    /// Set by [`Analytics::builder_reporting_to`]: post batches there instead.
    pub(crate) report: Option<super::rest::Target>,
}

impl Builder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            user: None,
            password: None,
            schema: Schema::default(),
            create_schema: true,
            queue_capacity: 100_000,
            max_rows: 10_000,
            max_bytes: 8 * 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            receive_timeout: Duration::from_secs(30),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            dead_letter_dir: None,
            spool: None,
            report: None,
        }
    }

    pub(crate) fn reporting_to(url: impl Into<String>, token: impl Into<String>) -> Self {
        let mut builder = Self::new(url);
        builder.max_rows = super::rest::MAX_BATCH;
        builder.report = Some(super::rest::Target {
            url: builder.url.clone(),
            token: token.into(),
        });
        builder
    }

    /// The ClickHouse user. Default: none sent (the server's `default` user).
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The ClickHouse password. Default: none.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The database and table to write to. Default: `idp`.`events`.
    pub fn with_schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// Whether the worker creates the database and table when they are absent.
    /// Default: `true`. Either way it checks the table's columns before the first insert.
    pub fn with_create_schema(mut self, create: bool) -> Self {
        self.create_schema = create;
        self
    }

    /// How many events may wait in memory for the worker. Default: 100 000.
    ///
    /// The queue's slots are allocated when the writer is built, and an event type of up to
    /// 62 bytes is kept inside its slot, so a queued event takes no more memory than its
    /// slot. Measured (`cargo bench --bench memory`): 168 bytes per queued event, so the
    /// default queue holds about 16 MiB. When it is full, new events are refused and counted
    /// in [`Stats::dropped_queue_full`](super::Stats).
    pub fn with_queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// The most rows in one insert. Default: 10 000; for a writer
    /// [reporting to an endpoint](Analytics::builder_reporting_to), 1 000, which is also
    /// the most it takes.
    pub fn with_max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows;
        self
    }

    /// The most bytes (RowBinary) in one insert. Default: 8 MiB.
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How often the worker writes what it has, when a batch is not full sooner.
    /// Default: 1 s, which keeps a writer near ClickHouse's advice of about one insert a
    /// second. It is also the longest an event waits in memory while ClickHouse is up.
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// How long to wait for a TCP connection to ClickHouse. Default: 5 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long sending one chunk of an insert may take. Default: 10 s.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How long to wait for ClickHouse's answer once an insert (or a schema query) is sent.
    /// Default: 30 s.
    pub fn with_receive_timeout(mut self, timeout: Duration) -> Self {
        self.receive_timeout = timeout;
        self
    }

    /// The first and the longest wait between retries; waits double in between, with
    /// jitter. Default: 100 ms and 30 s.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// A directory for batches ClickHouse rejected as bad data: each such batch is kept
    /// there as a file of JSON lines, one event a line. Default: none, and such batches are
    /// logged whole at `error` level instead.
    pub fn with_dead_letter_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dead_letter_dir = Some(dir.into());
        self
    }

    /// Keeps accepted events in segment files under `dir` until ClickHouse has acknowledged
    /// them. Default: no spool (events wait in memory only).
    ///
    /// With a spool, events are appended to disk shortly after they are taken (see
    /// [`with_fsync`](Self::with_fsync)) and a segment file is removed only once ClickHouse
    /// has acknowledged every row in it. Segments a previous run left (after a crash, or a
    /// shutdown that ran out of time) are sent first, with their original `event_id`s.
    /// While ClickHouse is away, the in-memory queue only smooths bursts: an outage of any
    /// length up to [`with_spool_max_bytes`](Self::with_spool_max_bytes) loses nothing.
    /// One writer at a time may use a directory; [`build`](Self::build) fails if it is
    /// locked by another, or cannot be created.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let spool = self.spool.get_or_insert_with(|| SpoolConfig {
            dir: PathBuf::new(),
            max_bytes: 1 << 30,
            fsync: Fsync::default(),
        });
        spool.dir = dir.into();
        self
    }

    /// The most bytes the spool keeps on disk. Default: 1 GiB (about 10 million events).
    ///
    /// When it is full, the newest events are refused ([`Rejected::SpoolFull`](crate::Rejected),
    /// counted in [`Stats::dropped_spool_full`](super::Stats)): the layer drops them, the
    /// reporter endpoint answers `503`. Nothing already taken is dropped. Has no effect
    /// without [`with_spool_dir`](Self::with_spool_dir).
    pub fn with_spool_max_bytes(mut self, bytes: u64) -> Self {
        if let Some(spool) = &mut self.spool {
            spool.max_bytes = bytes;
        }
        self
    }

    /// When spooled events are forced to disk. Default: [`Fsync::Interval`] of 500 ms.
    /// This is the window of events a machine crash can lose; a process crash loses none
    /// that reached the spool. Has no effect without [`with_spool_dir`](Self::with_spool_dir).
    pub fn with_fsync(mut self, fsync: Fsync) -> Self {
        if let Some(spool) = &mut self.spool {
            spool.fsync = fsync;
        }
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if let Some(target) = &self.report {
            target.validate(self.max_rows)?;
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return bad("the ClickHouse URL must start with http:// or https://");
        }
        if self.queue_capacity == 0 {
            return bad("queue capacity must be at least 1");
        }
        if self.max_rows == 0 {
            return bad("max rows must be at least 1");
        }
        if self.max_bytes < 1024 {
            return bad("max bytes must be at least 1024");
        }
        for (name, d) in [
            ("flush interval", self.flush_interval),
            ("connect timeout", self.connect_timeout),
            ("send timeout", self.send_timeout),
            ("receive timeout", self.receive_timeout),
            ("minimum backoff", self.min_backoff),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be more than zero")));
            }
        }
        if self.max_backoff < self.min_backoff {
            return bad("maximum backoff must not be shorter than the minimum");
        }
        if let Some(spool) = &self.spool {
            if spool.dir.as_os_str().is_empty() {
                return bad("the spool directory must not be empty");
            }
            if spool.max_bytes < self.max_bytes as u64 * 2 {
                return bad("the spool must hold at least two batches (2 x max bytes)");
            }
            if spool.fsync == Fsync::Interval(Duration::ZERO) {
                return bad("the fsync interval must be more than zero");
            }
        }
        Ok(())
    }

    /// Checks the configuration, opens the spool if there is one, and spawns the worker on
    /// the current Tokio runtime.
    ///
    /// Nothing here waits for ClickHouse: the worker reads the server version, creates and
    /// checks the table in the background, retrying until the server answers, while events
    /// are already being taken.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn build(self) -> Result<Analytics> {
        let (analytics, worker) = self.build_pair()?;
        tokio::spawn(worker.run());
        Ok(analytics)
    }

    /// Like [`build`](Self::build), but returns the worker for the caller to run
    /// (`tokio::spawn(worker.run())`, or on a runtime of its choice).
    pub fn build_pair(self) -> Result<(Analytics, Worker)> {
        self.validate()?;
        let spool = self.spool.clone().map(Spool::open).transpose()?;
        let config = Arc::new(self);
        Ok(super::handle::pair(config, spool))
    }
}
