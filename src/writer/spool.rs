//! The on-disk spool: accepted events are appended to segment files before they are sent,
//! and a segment is removed only once ClickHouse has acknowledged every row in it.
//!
//! A segment is one batch. Its file starts with [`MAGIC`], then holds records:
//!
//! ```text
//! u32 marker (0x5EED_E1E1) | u32 length | u32 CRC-32 of the payload | payload
//! ```
//!
//! The payload is one event. A record whose length or checksum is wrong (a torn write at a
//! crash, a flipped bit) is skipped and counted; reading goes on at the next marker, so the
//! rest of the segment is still replayed.

use std::{
    collections::VecDeque,
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, UNIX_EPOCH},
};

use http::Method;
use uuid::Uuid;

use tokio::sync::Notify;

use crate::event::{Event, Source};

use super::{handle::Ack, private};

/// The first bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"IDPSPL1\n";
const MARKER: u32 = 0x5EED_E1E1;
const HEADER: usize = 12;
/// No valid payload is longer: fixed fields and three texts with u16 lengths.
const MAX_PAYLOAD: usize = 40 + 3 * (2 + u16::MAX as usize);
const LOCK_FILE: &str = "spool.lock";
/// Past this many markers that start no good record, the rest of a segment is given up: a
/// crafted file full of markers costs a bounded scan (at most this many checksums), not one
/// at every byte.
const MAX_BAD_MARKERS: u32 = 256;
const SUFFIX: &str = ".seg";

/// When the spool writes taken events to its file and forces them to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fsync {
    /// Every so often (default: every 500 ms): events taken are appended to the spool file
    /// within one interval and synced at the next. A crash of the process can lose the
    /// events taken in the last interval; a crash of the machine, the last two.
    Interval(Duration),
    /// Once per batch: events are appended and synced when their batch is sealed (see
    /// [`with_flush_interval`](super::Builder::with_flush_interval)). A crash can lose up
    /// to one batch; the disk sees one sync a batch instead of two a second.
    EveryBatch,
}

impl Default for Fsync {
    fn default() -> Self {
        Self::Interval(Duration::from_millis(500))
    }
}

/// Spool settings, from [`Builder::with_spool_dir`](super::Builder::with_spool_dir).
#[derive(Debug, Clone)]
pub(crate) struct SpoolConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) fsync: Fsync,
    /// The longest a segment file can be: a batch's bytes and one record more. Set by the
    /// builder from its batch size; a longer file is no segment and is never read.
    pub(crate) max_segment_bytes: u64,
}

/// The longest a segment can be when a batch is sealed at `batch_bytes` of RowBinary: a
/// spool record is less than twice an event's RowBinary, and the last record can overshoot.
pub(crate) fn max_segment_bytes(batch_bytes: usize) -> u64 {
    (MAGIC.len() + 2 * batch_bytes + HEADER + MAX_PAYLOAD) as u64
}

/// Encodes one event as a record, appending it to `out`.
pub(crate) fn encode(event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MARKER.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // length and checksum, filled below
    out.extend_from_slice(event.event_id().as_bytes());
    out.extend_from_slice(&event.account_id().to_le_bytes());
    out.extend_from_slice(&event.unix_seconds().to_le_bytes());
    out.extend_from_slice(&event.status().to_le_bytes());
    out.extend_from_slice(&event.latency_us().to_le_bytes());
    for text in [event.event_type(), event.source(), event.method()] {
        // Each is at most 128 bytes (validated), so a u16 length is plenty.
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    let payload_len = (out.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn decode(mut p: &[u8]) -> Option<Event> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if p.len() < n {
            return None;
        }
        let (head, tail) = p.split_at(n);
        *p = tail;
        Some(head)
    }
    fn text<'a>(p: &mut &'a [u8]) -> Option<&'a str> {
        let len = u16::from_le_bytes(take(p, 2)?.try_into().ok()?) as usize;
        std::str::from_utf8(take(p, len)?).ok()
    }
    let id = Uuid::from_slice(take(&mut p, 16)?).ok()?;
    let account = u64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
    let secs = u32::from_le_bytes(take(&mut p, 4)?.try_into().ok()?);
    let status = u16::from_le_bytes(take(&mut p, 2)?.try_into().ok()?);
    let latency = u64::from_le_bytes(take(&mut p, 8)?.try_into().ok()?);
    let event_type = text(&mut p)?;
    let source = text(&mut p)?;
    let method = text(&mut p)?;
    if !p.is_empty() {
        return None;
    }
    let mut event = Event::new(account, event_type)
        .ok()?
        .with_event_id(id)
        .with_time(UNIX_EPOCH + Duration::from_secs(u64::from(secs)))
        .ok()?
        .with_status(status)
        .with_latency(Duration::from_micros(latency));
    if !source.is_empty() {
        event = event.with_source(Source::new(source).ok()?);
    }
    if !method.is_empty() {
        event = event.with_method(Method::from_bytes(method.as_bytes()).ok()?);
    }
    Some(event)
}

/// What reading a segment found.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub(crate) events: Vec<Event>,
    /// Records skipped for a bad length, checksum or payload, or torn at the end.
    pub(crate) corrupt: u64,
    /// Whether reading stopped early, at too many bad markers.
    pub(crate) gave_up: bool,
}

/// Reads every good record of a segment's bytes, skipping and counting bad ones.
pub(crate) fn read_records(bytes: &[u8]) -> Read {
    let mut read = Read::default();
    let mut at = if bytes.starts_with(MAGIC) {
        MAGIC.len()
    } else {
        read.corrupt += 1;
        0
    };
    let marker = MARKER.to_le_bytes();
    let mut resync = false;
    let mut bad_markers = 0;
    while at < bytes.len() {
        let record = &bytes[at..];
        let ok = record.len() >= HEADER && record[..4] == marker && {
            let len = u32::from_le_bytes(record[4..8].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(record[8..12].try_into().unwrap());
            len <= MAX_PAYLOAD
                && record.len() >= HEADER + len
                && crc32fast::hash(&record[HEADER..HEADER + len]) == crc
                && match decode(&record[HEADER..HEADER + len]) {
                    Some(event) => {
                        read.events.push(event);
                        at += HEADER + len;
                        true
                    }
                    None => false,
                }
        };
        if ok {
            resync = false;
            continue;
        }
        // A bad record: count it once, then look for the next marker.
        if !resync {
            read.corrupt += 1;
            resync = true;
        }
        bad_markers += 1;
        if bad_markers > MAX_BAD_MARKERS {
            read.gave_up = true;
            break;
        }
        at += 1;
        match bytes[at..].windows(4).position(|w| w == marker) {
            Some(next) => at += next,
            None => break,
        }
    }
    read
}

/// A sealed segment (one batch) waiting to be sent.
pub(crate) struct Sealed {
    /// Its file; `None` when the spool could not be written and the batch is kept in
    /// memory only.
    pub(crate) path: Option<PathBuf>,
    pub(crate) bytes: u64,
    /// The events, when they are still in memory; otherwise read from the file.
    pub(crate) events: Option<Vec<Event>>,
    /// Confirmations waiting on events of this batch, one entry per such event.
    pub(crate) acks: Vec<Arc<Ack>>,
    /// Left by a previous run.
    pub(crate) replay: bool,
}

/// The spool directory: its lock, the next segment number, and the sealed segments in
/// the order they are to be sent.
pub(crate) struct Spool {
    pub(crate) config: SpoolConfig,
    _lock: File,
    next_seq: Mutex<u64>,
    sealed: Mutex<VecDeque<Sealed>>,
    /// Bytes of segment files on disk, the one being written included.
    pub(crate) disk_bytes: AtomicU64,
    /// Segment files on disk, the one being written included.
    pub(crate) segments: AtomicU64,
    /// Wakes the sender: a segment was sealed, or the collector finished.
    pub(crate) ready: Notify,
}

impl Spool {
    /// Opens (creating, `0700`) the directory and takes its lock, so that two writers never
    /// share one spool. Lists the segments a previous run left, oldest first, leaving out
    /// anything that is not a regular file or is longer than a segment can be. Refuses a
    /// directory others could write (see [`private`]).
    pub(crate) fn open(config: SpoolConfig) -> io::Result<Self> {
        private::create_dir(&config.dir)?;
        let lock = private::open_or_create(&config.dir.join(LOCK_FILE))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "spool directory {} is in use by another writer",
                    config.dir.display()
                ),
            )
        })?;
        let mut found: Vec<(u64, PathBuf, u64)> = Vec::new();
        for entry in fs::read_dir(&config.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            // The entry itself, never what a link points to.
            let meta = entry.metadata()?;
            if !meta.is_file() || meta.len() > config.max_segment_bytes {
                tracing::warn!(
                    file = %entry.path().display(),
                    bytes = meta.len(),
                    "not a spool segment (not a regular file, or too long); leaving it"
                );
                continue;
            }
            found.push((seq, entry.path(), meta.len()));
        }
        found.sort();
        let next_seq = found.last().map_or(0, |(seq, _, _)| seq + 1);
        let disk_bytes = found.iter().map(|(_, _, bytes)| bytes).sum();
        let segments = found.len() as u64;
        let sealed = found
            .into_iter()
            .map(|(_, path, bytes)| Sealed {
                path: Some(path),
                bytes,
                events: None,
                acks: Vec::new(),
                replay: true,
            })
            .collect();
        Ok(Self {
            config,
            _lock: lock,
            next_seq: Mutex::new(next_seq),
            sealed: Mutex::new(sealed),
            disk_bytes: AtomicU64::new(disk_bytes),
            segments: AtomicU64::new(segments),
            ready: Notify::new(),
        })
    }

    /// Whether another segment may be written: the disk bound leaves room for a batch.
    pub(crate) fn is_full(&self, next: u64) -> bool {
        self.disk_bytes.load(Ordering::Relaxed) + next > self.config.max_bytes
    }

    /// Sealed segments waiting to be sent.
    pub(crate) fn backlog(&self) -> usize {
        self.sealed.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Memory-only batches waiting to be sent (the disk failed for them).
    pub(crate) fn in_memory(&self) -> usize {
        self.sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.path.is_none())
            .count()
    }

    /// Removes a segment's file once its rows are acknowledged (or dead-lettered).
    pub(crate) fn remove(&self, segment: &Sealed) -> io::Result<()> {
        if let Some(path) = &segment.path {
            fs::remove_file(path)?;
            self.disk_bytes.fetch_sub(segment.bytes, Ordering::Relaxed);
            self.segments.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Creates the file of a new segment.
    pub(crate) fn create_segment(&self) -> io::Result<(File, PathBuf)> {
        let seq = {
            let mut next = self.next_seq.lock().unwrap_or_else(|e| e.into_inner());
            let seq = *next;
            *next += 1;
            seq
        };
        let path = self.config.dir.join(format!("{seq:016x}{SUFFIX}"));
        let mut file = private::create_new(&path)?;
        self.segments.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = file.write_all(MAGIC) {
            let _ = fs::remove_file(&path);
            self.segments.fetch_sub(1, Ordering::Relaxed);
            return Err(err);
        }
        self.disk_bytes
            .fetch_add(MAGIC.len() as u64, Ordering::Relaxed);
        Ok((file, path))
    }

    pub(crate) fn push_sealed(&self, segment: Sealed) {
        self.sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(segment);
        self.ready.notify_one();
    }

    pub(crate) fn pop_sealed(&self) -> Option<Sealed> {
        self.sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Syncs the directory so that created and removed segment files are durable.
    pub(crate) fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.config.dir)?.sync_all()
    }
}

/// Reads a segment file: a regular file (no link followed) of at most `max_bytes`.
pub(crate) fn read_segment(path: &Path, max_bytes: u64) -> io::Result<Read> {
    use std::io::Read as _;
    let file = private::open_to_read(path, max_bytes)?;
    let mut bytes = Vec::new();
    // Bounded even if the file grows after it was checked.
    file.take(max_bytes).read_to_end(&mut bytes)?;
    Ok(read_records(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::new(i, format!("/projects/{i}"))
                    .unwrap()
                    .with_source(Source::layer())
                    .with_method(Method::PATCH)
                    .with_status(200 + i as u16)
                    .with_latency(Duration::from_micros(i * 7))
            })
            .collect()
    }

    fn segment(events: &[Event]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for e in events {
            encode(e, &mut bytes);
        }
        bytes
    }

    #[test]
    fn records_round_trip() {
        let events = sample(50);
        let read = read_records(&segment(&events));
        assert_eq!(read.corrupt, 0);
        assert_eq!(read.events, events);
        let plain = vec![Event::new(1, "x").unwrap()];
        assert_eq!(read_records(&segment(&plain)).events, plain);
    }

    #[test]
    fn a_torn_last_record_is_counted_and_the_rest_kept() {
        let events = sample(10);
        let bytes = segment(&events);
        for cut in [bytes.len() - 1, bytes.len() - 20, bytes.len() - 40] {
            let read = read_records(&bytes[..cut]);
            assert_eq!(read.corrupt, 1, "cut at {cut}");
            assert_eq!(read.events, events[..9]);
        }
    }

    #[test]
    fn a_flipped_byte_loses_only_its_record() {
        let events = sample(10);
        let clean = segment(&events);
        let record = (clean.len() - MAGIC.len()) / 10;
        // Flip a byte in the payload, the length, the checksum and the marker of record 4.
        for offset in [HEADER + 3, 5, 9, 1] {
            let mut bytes = clean.clone();
            bytes[MAGIC.len() + 4 * record + offset] ^= 0x40;
            let read = read_records(&bytes);
            assert_eq!(read.corrupt, 1, "offset {offset}");
            let mut expected = events.clone();
            expected.remove(4);
            assert_eq!(read.events, expected, "offset {offset}");
        }
    }

    #[test]
    fn a_file_of_markers_costs_a_bounded_scan() {
        // 4 MiB of markers, each claiming the longest payload, none with a good checksum.
        let mut bytes = MAGIC.to_vec();
        let mut fake = MARKER.to_le_bytes().to_vec();
        fake.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
        fake.extend_from_slice(&[0; 4]);
        while bytes.len() < 4 << 20 {
            bytes.extend_from_slice(&fake);
        }
        let read = read_records(&bytes);
        assert!(read.gave_up);
        assert!(read.events.is_empty());
        assert_eq!(read.corrupt, 1);

        // A few bad markers before good records: the records are still read.
        let events = sample(10);
        let mut bytes = MAGIC.to_vec();
        for _ in 0..100 {
            bytes.extend_from_slice(&fake);
        }
        for e in &events {
            encode(e, &mut bytes);
        }
        let read = read_records(&bytes);
        assert!(!read.gave_up);
        assert_eq!(read.events, events);
    }

    #[test]
    fn garbage_is_counted_not_panicked_on() {
        let read = read_records(b"not a segment at all");
        assert!(read.events.is_empty());
        assert!(read.corrupt >= 1);
        let read = read_records(&[]);
        assert!(read.events.is_empty());
    }
}
