//! [`SpoolCollector`]: with a spool, the half of the worker that appends what the queue
//! holds to segment files, one segment per batch, for the other half to send.

use std::{
    fs::File,
    io::{self, Write as _},
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::time::Instant;

use crate::event::Event;

use super::{
    handle::{Ack, Shared},
    spool::{self, Fsync, Sealed, Spool},
    stats::Counters,
};

/// How many batches may wait in memory when the spool cannot be written.
const MAX_MEMORY_BATCHES: usize = 2;

/// The segment being filled.
struct Active {
    /// Its file and path; `None` when the disk failed and the batch is kept in memory.
    file: Option<(File, PathBuf)>,
    /// Bytes written to the file.
    bytes: u64,
    /// RowBinary bytes, for the batch's byte bound.
    encoded: usize,
    events: Vec<Event>,
    acks: Vec<Arc<Ack>>,
    opened: Instant,
    /// Written since the last fsync.
    dirty: bool,
}

/// Appends what the queue holds to the spool, one segment per batch.
pub(super) struct SpoolCollector<'a> {
    shared: &'a Shared,
    spool: &'a Spool,
    active: Option<Active>,
    buf: Vec<u8>,
    next_sync: Instant,
    /// In a streak of disk errors: logged once, not per event.
    failing: bool,
}

impl<'a> SpoolCollector<'a> {
    pub(super) fn new(shared: &'a Shared, spool: &'a Spool) -> Self {
        Self {
            shared,
            spool,
            active: None,
            buf: Vec::new(),
            next_sync: Instant::now(),
            failing: false,
        }
    }

    fn fsync_interval(&self) -> Option<Duration> {
        match self.spool.config.fsync {
            Fsync::Interval(every) => Some(every),
            _ => None,
        }
    }

    pub(super) async fn run(mut self) {
        let config = &self.shared.config;
        loop {
            self.drain().await;
            let closing = self.shared.is_closing();
            let aborted = self.shared.abort.load(Ordering::Acquire);
            let drained = self.shared.queue.is_empty();
            if let Some(active) = &self.active {
                let due = active.opened.elapsed() >= config.flush_interval;
                if due || (closing && drained) || aborted {
                    self.seal().await;
                }
            }
            self.sync_if_due().await;
            if (closing && drained || aborted) && self.active.is_none() {
                return;
            }
            // Drain at least once per fsync interval: a process that dies loses no event
            // taken longer ago than that.
            let drain_every = self
                .fsync_interval()
                .map_or(config.flush_interval, |every| {
                    every.min(config.flush_interval)
                });
            let mut wake_at = Instant::now() + drain_every;
            if let Some(active) = &self.active {
                wake_at = wake_at.min(active.opened + config.flush_interval);
                if active.dirty {
                    wake_at = wake_at.min(self.next_sync);
                }
            }
            tokio::select! {
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
                () = self.shared.until_aborted() => {}
            }
        }
    }

    /// Moves events from the queue into the current segment, sealing full ones.
    async fn drain(&mut self) {
        let config = &self.shared.config;
        let mut taken = 0;
        loop {
            let full = self
                .spool
                .is_full(self.buf.len() as u64 + MAX_RECORD_ESTIMATE);
            self.shared.spool_full.store(full, Ordering::Relaxed);
            if full {
                break;
            }
            let memory_only = self.active.as_ref().is_some_and(|a| a.file.is_none());
            if memory_only && self.spool.in_memory() >= MAX_MEMORY_BATCHES {
                // The disk fails and ClickHouse is behind: let the queue take the strain.
                break;
            }
            let Some(item) = self.shared.pop() else { break };
            taken += 1;
            if self.active.is_none() {
                self.flush_buf();
                self.active = Some(self.open());
            }
            let active = self.active.as_mut().expect("opened above");
            spool::encode(&item.event, &mut self.buf);
            active.encoded += item.event.encoded_len();
            active.events.push(item.event);
            active.acks.extend(item.ack);
            if active.events.len() >= config.max_rows || active.encoded >= config.max_bytes {
                self.seal().await;
            }
        }
        self.shared.release(taken);
        self.flush_buf();
    }

    fn open(&mut self) -> Active {
        let file = match self.spool.create_segment() {
            Ok(file) => {
                self.failing = false;
                Some(file)
            }
            Err(err) => {
                self.disk_error("could not create a spool segment", &err);
                None
            }
        };
        Active {
            bytes: if file.is_some() {
                spool::MAGIC.len() as u64
            } else {
                0
            },
            file,
            encoded: 0,
            events: Vec::new(),
            acks: Vec::new(),
            opened: Instant::now(),
            dirty: true,
        }
    }

    fn disk_error(&mut self, what: &str, err: &io::Error) {
        Counters::add(&self.shared.counters.spool_errors, 1);
        if !self.failing {
            tracing::error!(error = %err, dir = %self.spool.config.dir.display(), "{what}; keeping events in memory until the disk recovers");
        }
        self.failing = true;
    }

    /// Appends the encoded records to the current segment's file. On failure the segment's
    /// file is given up and its events are kept in memory.
    fn flush_buf(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let Some(active) = self.active.as_mut() else {
            self.buf.clear();
            return;
        };
        let result = match &mut active.file {
            Some((file, _)) => file.write_all(&self.buf),
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                if active.file.is_some() {
                    let n = self.buf.len() as u64;
                    active.bytes += n;
                    active.dirty = true;
                    self.spool.disk_bytes.fetch_add(n, Ordering::Relaxed);
                }
            }
            Err(err) => {
                if let Some((_, path)) = active.file.take() {
                    let _ = std::fs::remove_file(&path);
                    self.spool
                        .disk_bytes
                        .fetch_sub(active.bytes, Ordering::Relaxed);
                    self.spool.segments.fetch_sub(1, Ordering::Relaxed);
                    active.bytes = 0;
                }
                self.disk_error("could not write to the spool", &err);
            }
        }
        self.buf.clear();
    }

    async fn sync_if_due(&mut self) {
        let Some(every) = self.fsync_interval() else {
            return;
        };
        if Instant::now() < self.next_sync {
            return;
        }
        self.next_sync = Instant::now() + every;
        if let Some(active) = self.active.as_mut().filter(|a| a.dirty) {
            active.dirty = false;
            if let Some((file, _)) = &active.file
                && let Err(err) = sync(file).await
            {
                self.disk_error("could not sync the spool", &err);
            }
        }
    }

    /// Closes the current segment (synced to disk) and hands it to the sender.
    async fn seal(&mut self) {
        self.flush_buf();
        let Some(active) = self.active.take() else {
            return;
        };
        if active.events.is_empty() {
            if let Some((_, path)) = active.file {
                let _ = self.spool.remove(&Sealed {
                    path: Some(path),
                    bytes: active.bytes,
                    events: None,
                    acks: Vec::new(),
                    replay: false,
                });
            }
            return;
        }
        let path = match active.file {
            Some((file, path)) => match sync(&file).await {
                Ok(()) => {
                    let _ = self.spool.sync_dir();
                    Some(path)
                }
                Err(err) => {
                    self.disk_error("could not sync a spool segment", &err);
                    Some(path)
                }
            },
            None => None,
        };
        // Keep the events in memory only when they are sent next, so an outage costs disk,
        // not memory.
        let keep = path.is_none() || self.spool.backlog() == 0;
        self.spool.push_sealed(Sealed {
            path,
            bytes: active.bytes,
            events: keep.then_some(active.events),
            acks: active.acks,
            replay: false,
        });
    }
}

/// A generous size of one spool record, to tell whether another fits under the bound.
const MAX_RECORD_ESTIMATE: u64 = 512;

async fn sync(file: &File) -> io::Result<()> {
    let file = file.try_clone()?;
    tokio::task::spawn_blocking(move || file.sync_data())
        .await
        .map_err(io::Error::other)?
}
