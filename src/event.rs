//! The [`Event`]: one row of the events table, validated when it is made.
//!
//! An event is captured once: its [`event_id`](Event::event_id) and its
//! [`time`](Event::time) are set when it is created, not when it is written, so a batch
//! that is retried (or replayed) writes the very same rows again, and ClickHouse can tell
//! them apart from new ones. (The layer's events are created from the request's capture
//! when the writer takes it from its queue, before any write: their time is still the
//! moment the response was ready.)

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::Method;
use uuid::Uuid;

use crate::{clock::Tick, error::InvalidEvent, route::EventName, text::Text};

/// The longest event type accepted, in bytes of UTF-8.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// The longest source name accepted, in bytes of UTF-8.
pub const MAX_SOURCE_LEN: usize = 64;

/// Which part of the system produced an event: the layer, or a named reporter.
///
/// Cheap to clone: [`Source::layer`] is a `&'static str`, a named source an `Arc<str>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Source(Text);

impl Source {
    /// The name recorded for events captured by [`AnalyticsLayer`](crate::AnalyticsLayer).
    pub const LAYER_NAME: &'static str = "layer";

    /// A source for events captured by the tower layer. Static: making, cloning and dropping
    /// it touch no shared counter.
    pub fn layer() -> Self {
        Self(Text::Static(Self::LAYER_NAME))
    }

    /// A named source, such as a reporter service. 1 to [`MAX_SOURCE_LEN`] bytes, no control
    /// characters.
    pub fn new(name: &str) -> Result<Self, InvalidEvent> {
        if name.is_empty() || name.len() > MAX_SOURCE_LEN || name.chars().any(char::is_control) {
            return Err(InvalidEvent::BadSource {
                max: MAX_SOURCE_LEN,
            });
        }
        if name == Self::LAYER_NAME {
            return Ok(Self::layer());
        }
        Ok(Self(Text::Shared(Arc::from(name))))
    }

    /// The source's name.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Checks an event type: 1 to [`MAX_EVENT_TYPE_LEN`] bytes of UTF-8, without control
/// characters, format characters (Unicode category Cf: bidi controls, zero-width characters,
/// the byte order mark) or line and paragraph separators, any of which can make two
/// different types read the same.
///
/// An event stores its type in Unicode Normalization Form C, so that `café` is one type
/// however it was typed; the length limit applies to the text as given and as normalized.
pub fn validate_event_type(event_type: &str) -> Result<(), InvalidEvent> {
    validate(event_type).map(|_| ())
}

/// What [`validate`] found: printable ASCII (stored as is), or other text.
enum Checked {
    Ascii,
    Unicode,
}

fn validate(event_type: &str) -> Result<Checked, InvalidEvent> {
    if event_type.is_empty() {
        return Err(InvalidEvent::EmptyType);
    }
    if event_type.len() > MAX_EVENT_TYPE_LEN {
        return Err(InvalidEvent::TypeTooLong {
            len: event_type.len(),
            max: MAX_EVENT_TYPE_LEN,
        });
    }
    // Printable ASCII, by far the most common, is checked eight bytes at a time.
    if printable_ascii(event_type.as_bytes()) {
        return Ok(Checked::Ascii);
    }
    if let Some((at, _)) = event_type.char_indices().find(|(_, c)| c.is_control()) {
        return Err(InvalidEvent::TypeControlChar(at));
    }
    // Only text with non-ASCII characters gets this far.
    if let Some((at, c)) = event_type.char_indices().find(|(_, c)| is_invisible(*c)) {
        return Err(InvalidEvent::TypeInvisibleChar {
            at,
            code: u32::from(c),
        });
    }
    Ok(Checked::Unicode)
}

/// A format character (Cf) or a line or paragraph separator (Zl, Zp).
fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
    !c.is_ascii()
        && matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// `text` in Normalization Form C: borrowed when it is already.
fn nfc(text: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::{IsNormalized, UnicodeNormalization as _, is_nfc_quick};
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => text.into(),
        _ if unicode_normalization::is_nfc(text) => text.into(),
        _ => text.nfc().collect::<String>().into(),
    }
}

/// Whether every byte is printable ASCII (`0x20..=0x7e`), eight bytes at a time.
fn printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let (chunks, rest) = bytes.as_chunks::<8>();
    let mut bad = 0;
    for chunk in chunks {
        let x = u64::from_le_bytes(*chunk);
        // The high bit of a byte is set in the first term if some byte is below 0x20, and
        // in the second if a byte is 0x7f or above; carries and borrows between bytes can
        // only flag a byte next to one that is flagged already.
        bad |= (x.wrapping_sub(ONES * 0x20) & !x) | x.wrapping_add(ONES) | x;
    }
    bad & HIGH == 0 && rest.iter().all(|b| (0x20..0x7f).contains(b))
}

/// One usage event of one account.
///
/// ```
/// use idp_analytics::Event;
///
/// let event = Event::new(42, "search")?.with_status(200);
/// assert_eq!(event.account_id(), 42);
/// assert_eq!(event.event_type(), "search");
/// assert!(Event::new(42, "").is_err());
/// # Ok::<(), idp_analytics::InvalidEvent>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    event_id: Uuid,
    account_id: u64,
    event_type: EventType,
    time: u32,
    source: Option<Source>,
    method: Option<Method>,
    status: u16,
    latency_us: u64,
}

impl Event {
    /// Captures an event now: a fresh [`event_id`](Self::event_id) (a UUID v7, which carries
    /// the capture time in milliseconds) and the current time, at second precision.
    pub fn new(account_id: u64, event_type: impl AsRef<str>) -> Result<Self, InvalidEvent> {
        Self::captured_at(account_id, event_type.as_ref(), SystemTime::now())
    }

    /// [`new`](Self::new), for a caller that has just read the wall clock: `now`.
    pub(crate) fn captured_at(
        account_id: u64,
        event_type: &str,
        now: SystemTime,
    ) -> Result<Self, InvalidEvent> {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok(Self::at(
            account_id,
            EventType::checked(event_type)?,
            since_epoch,
        ))
    }

    /// An event captured `since_epoch`: its id carries that time, and so does its time.
    fn at(account_id: u64, event_type: EventType, since_epoch: Duration) -> Self {
        Self {
            event_id: new_id(since_epoch),
            account_id,
            event_type,
            time: u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX),
            source: None,
            method: None,
            status: 0,
            latency_us: 0,
        }
    }

    /// Sets the event id, for an event that was given one elsewhere (a reporter that may
    /// send it again, or a replay). Events with the same id are one event.
    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// Sets when the event happened. Stored at second precision; the fraction is dropped.
    pub fn with_time(mut self, time: SystemTime) -> Result<Self, InvalidEvent> {
        self.time = unix_seconds(time).ok_or(InvalidEvent::TimeOutOfRange)?;
        Ok(self)
    }

    /// Sets which part of the system produced the event.
    pub fn with_source(mut self, source: Source) -> Self {
        self.source = Some(source);
        self
    }

    /// Sets the HTTP method of the request the event stands for.
    pub fn with_method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Sets the HTTP status of the response; 0 when there was none.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets how long the request took.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self
    }

    /// The event's id, unique per captured event.
    #[inline]
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// The account the event belongs to.
    #[inline]
    pub fn account_id(&self) -> u64 {
        self.account_id
    }

    /// What happened: a route template such as `/projects/{id}`, or a reported name.
    pub fn event_type(&self) -> &str {
        self.event_type.as_str()
    }

    /// [`event_type`](Self::event_type)'s bytes, without reading them back as UTF-8 (they
    /// were checked when the event was made): for encoders, once per row.
    #[inline]
    pub(crate) fn event_type_bytes(&self) -> &[u8] {
        self.event_type.as_bytes()
    }

    /// When the event happened.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::from(self.time))
    }

    /// When the event happened, in seconds since the Unix epoch.
    #[inline]
    pub fn unix_seconds(&self) -> u32 {
        self.time
    }

    /// The name of the part of the system that produced the event; empty if unset.
    #[inline]
    pub fn source(&self) -> &str {
        self.source.as_ref().map_or("", Source::as_str)
    }

    /// The HTTP method; empty where it does not apply.
    #[inline]
    pub fn method(&self) -> &str {
        self.method.as_ref().map_or("", Method::as_str)
    }

    /// The HTTP status; 0 where it does not apply.
    #[inline]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The request's latency in microseconds; 0 where it does not apply.
    #[inline]
    pub fn latency_us(&self) -> u64 {
        self.latency_us
    }

    /// The number of bytes this event takes in a RowBinary insert.
    pub fn encoded_len(&self) -> usize {
        fn string(s: &str) -> usize {
            // A LEB128 length prefix, then the bytes.
            let mut prefix = 1;
            let mut n = s.len() >> 7;
            while n > 0 {
                prefix += 1;
                n >>= 7;
            }
            prefix + s.len()
        }
        16 + 8
            + string(self.event_type.as_str())
            + 4
            + string(self.source())
            + string(self.method())
            + 2
            + 8
    }
}

/// The most bytes of an event type kept inside the [`Event`] itself; longer ones go to the
/// heap. Route templates are mostly shorter, so recording a request allocates nothing (and
/// the writer's thread frees nothing the request's thread allocated).
const INLINE_EVENT_TYPE: usize = 62;

/// A valid event type: inline when short, on the heap when long.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum EventType {
    Inline {
        len: u8,
        bytes: [u8; INLINE_EVENT_TYPE],
    },
    Heap(Box<str>),
}

impl EventType {
    /// Validates `text` (see [`validate_event_type`]) and copies it.
    /// Text other than printable ASCII is stored in NFC.
    pub(crate) fn checked(text: &str) -> Result<Self, InvalidEvent> {
        match validate(text)? {
            Checked::Ascii => Ok(Self::new(text)),
            Checked::Unicode => {
                let normal = nfc(text);
                if normal.len() > MAX_EVENT_TYPE_LEN {
                    return Err(InvalidEvent::TypeTooLong {
                        len: normal.len(),
                        max: MAX_EVENT_TYPE_LEN,
                    });
                }
                Ok(Self::new(&normal))
            }
        }
    }

    fn new(text: &str) -> Self {
        if text.len() <= INLINE_EVENT_TYPE {
            let mut bytes = [0; INLINE_EVENT_TYPE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Self::Inline {
                len: text.len() as u8,
                bytes,
            }
        } else {
            Self::Heap(text.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(text) => text.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole: always UTF-8.
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).expect("copied from a str")
            }
            Self::Heap(text) => text,
        }
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// An event captured on a request's path and completed on the writer's thread.
///
/// The request pays for reading the clock once when the response is ready and for moving
/// what it holds already (the route's shared name, the method) into the queue; the event
/// type's check and copy, the latency's arithmetic, the event's id and its wall-clock time
/// are done when the writer takes the capture from its queue, before the event is batched,
/// spooled or retried, so every write of it carries the same id.
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) account_id: u64,
    /// The route's name, shared with the router; checked as an event type by
    /// [`into_event`](Self::into_event).
    pub(crate) name: EventName,
    pub(crate) source: Source,
    pub(crate) method: Method,
    pub(crate) status: u16,
    /// When the request came in.
    pub(crate) started: Tick,
    /// When the response was ready: the event's time.
    pub(crate) at: Tick,
}

impl Capture {
    /// The event, with an id and a time derived from [`at`](Self::at); an error if the
    /// route's name is no event type (too long, or with control characters).
    pub(crate) fn into_event(self) -> Result<Event, InvalidEvent> {
        let event_type = EventType::checked(self.name.as_str())?;
        Ok(Event {
            source: Some(self.source),
            method: Some(self.method),
            status: self.status,
            latency_us: self.at.micros_since(self.started),
            ..Event::at(self.account_id, event_type, self.at.since_epoch())
        })
    }
}

/// A UUID v7 for an event captured `since_epoch`: 48 bits of milliseconds, then 74 random
/// bits from a thread-local generator (`Uuid::now_v7` costs several times more for a
/// monotonic counter that event ids do not need).
fn new_id(since_epoch: Duration) -> Uuid {
    let random = Uuid::new_v4();
    let bytes: &[u8; 10] = random.as_bytes()[6..].try_into().expect("16 - 6 bytes");
    let millis = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
    uuid::Builder::from_unix_timestamp_millis(millis, bytes).into_uuid()
}

fn unix_seconds(time: SystemTime) -> Option<u32> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    u32::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_limits() {
        assert_eq!(Event::new(1, "").unwrap_err(), InvalidEvent::EmptyType);
        assert!(Event::new(1, "a".repeat(128)).is_ok());
        assert_eq!(
            Event::new(1, "a".repeat(129)).unwrap_err(),
            InvalidEvent::TypeTooLong { len: 129, max: 128 }
        );
        // 43 three-byte characters are 129 bytes: the limit is in bytes, not characters.
        assert!(matches!(
            Event::new(1, "€".repeat(43)),
            Err(InvalidEvent::TypeTooLong { len: 129, .. })
        ));
        assert_eq!(
            Event::new(1, "a\nb").unwrap_err(),
            InvalidEvent::TypeControlChar(1)
        );
        assert_eq!(
            Event::new(1, "ab\u{7f}").unwrap_err(),
            InvalidEvent::TypeControlChar(2)
        );
        assert!(Event::new(1, "'); DROP TABLE events; --").is_ok());
        assert!(Event::new(1, "/projects/{id}").is_ok());
    }

    #[test]
    fn invisible_characters_are_refused() {
        for (text, at, code) in [
            ("/projects/\u{200b}{id}", 10, 0x200b), // zero-width space
            ("/projects/{id}\u{202e}", 14, 0x202e), // right-to-left override
            ("\u{feff}search", 0, 0xfeff),          // byte order mark
            ("a\u{2028}b", 1, 0x2028),              // line separator
            ("a\u{2029}b", 1, 0x2029),              // paragraph separator
            ("caf\u{e9}\u{2066}", 5, 0x2066),       // left-to-right isolate
        ] {
            assert_eq!(
                Event::new(1, text).unwrap_err(),
                InvalidEvent::TypeInvisibleChar { at, code },
                "{text:?}"
            );
            assert!(validate_event_type(text).is_err());
        }
        // Letters of any script, and symbols, are fine.
        for text in ["café", "поиск", "検索", "€ export", "naïve/ürl"] {
            assert_eq!(Event::new(1, text).unwrap().event_type(), text);
        }
    }

    #[test]
    fn event_types_are_stored_in_nfc() {
        let composed = "caf\u{e9}";
        let decomposed = "cafe\u{301}";
        assert_ne!(composed, decomposed);
        assert_eq!(Event::new(1, decomposed).unwrap().event_type(), composed);
        assert_eq!(Event::new(1, composed).unwrap().event_type(), composed);
        // Hangul jamo compose into one syllable: shorter, never longer, here.
        assert_eq!(
            Event::new(1, "\u{1100}\u{1161}").unwrap().event_type(),
            "\u{ac00}"
        );
        // ASCII is never touched.
        assert_eq!(Event::new(1, "/a/{b}").unwrap().event_type(), "/a/{b}");
    }

    #[test]
    fn printable_ascii_is_every_byte_from_space_to_tilde() {
        let printable = |b: u8| (0x20..0x7f).contains(&b);
        // Every byte value, at every position of a string long enough for two words and a
        // tail, among printable neighbours of every kind.
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    for fill in [b' ', b'~', b'a'] {
                        let mut bytes = vec![fill; len];
                        bytes[at] = b;
                        assert_eq!(printable_ascii(&bytes), printable(b), "{bytes:?}");
                    }
                }
            }
        }
        assert!(printable_ascii(b""));
        assert!(printable_ascii(b"/users/{id}/projects"));
    }

    #[test]
    fn short_and_long_event_types_read_back_whole() {
        for text in [
            "x",
            "/users/{id}/projects",
            &"é".repeat(31),
            &"a".repeat(62),
            &"b".repeat(63),
            &"c".repeat(128),
        ] {
            let event = Event::new(1, text).unwrap();
            assert_eq!(event.event_type(), text);
            assert_eq!(event.clone(), event);
        }
        assert_ne!(Event::new(1, "a").unwrap().event_type(), "ab");
    }

    #[test]
    fn each_event_gets_its_own_id_and_keeps_it() {
        let a = Event::new(1, "x").unwrap();
        let b = Event::new(1, "x").unwrap();
        assert_ne!(a.event_id(), b.event_id());
        let a2 = a.clone().with_status(500);
        assert_eq!(a.event_id(), a2.event_id());
    }

    #[test]
    fn ids_are_v7_and_carry_the_capture_time() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let e = Event::new(1, "x").unwrap();
        assert_eq!(e.event_id().get_version_num(), 7);
        let (secs, _) = e.event_id().get_timestamp().unwrap().to_unix();
        assert!(secs >= before.as_secs() && secs <= before.as_secs() + 2);
        assert_eq!(u64::from(e.unix_seconds()), secs);
        let ids: std::collections::HashSet<Uuid> = (0..10_000)
            .map(|_| Event::new(1, "x").unwrap().event_id())
            .collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn time_is_second_precision_and_range_checked() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        let e = Event::new(1, "x").unwrap().with_time(t).unwrap();
        assert_eq!(e.unix_seconds(), 1_700_000_000);
        assert_eq!(e.time(), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let too_late = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) + 1);
        assert_eq!(
            Event::new(1, "x").unwrap().with_time(too_late).unwrap_err(),
            InvalidEvent::TimeOutOfRange
        );
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert!(Event::new(1, "x").unwrap().with_time(before_epoch).is_err());
    }

    #[test]
    fn a_capture_becomes_the_event_it_stands_for() {
        let capture = |started: Tick, at| Capture {
            account_id: 9,
            name: EventName::Route(crate::RouteName::from_static("/users/{id}/projects")),
            source: Source::layer(),
            method: Method::POST,
            status: 201,
            started,
            at,
        };
        let started = Tick::now();
        std::thread::sleep(Duration::from_millis(2));
        let at = Tick::now();
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let event = capture(started, at).into_event().unwrap();
        assert_eq!(event.account_id(), 9);
        assert_eq!(event.event_type(), "/users/{id}/projects");
        assert_eq!(event.source(), "layer");
        assert_eq!(event.method(), "POST");
        assert_eq!(event.status(), 201);
        assert_eq!(event.latency_us(), at.micros_since(started));
        assert!(event.latency_us() >= 2_000, "{}", event.latency_us());
        assert_eq!(event.event_id().get_version_num(), 7);
        let (secs, _) = event.event_id().get_timestamp().unwrap().to_unix();
        assert_eq!(u64::from(event.unix_seconds()), secs);
        assert!(secs.abs_diff(before.as_secs()) <= 1);
        // A capture taken later is later, and each capture is its own event.
        std::thread::sleep(Duration::from_millis(1_100));
        let later = capture(started, Tick::now()).into_event().unwrap();
        assert!((1..=2).contains(&(later.unix_seconds() - event.unix_seconds())));
        assert_ne!(
            capture(started, at).into_event().unwrap().event_id(),
            event.event_id()
        );
        // A route name that is no event type makes no event.
        let bad = Capture {
            name: EventName::Route(crate::RouteName::from_static("a\u{1b}b")),
            ..capture(started, at)
        };
        assert_eq!(bad.into_event(), Err(InvalidEvent::TypeControlChar(1)));
    }

    #[test]
    fn source_names_are_checked() {
        assert!(Source::new("billing").is_ok());
        assert!(Source::new("").is_err());
        assert!(Source::new(&"s".repeat(65)).is_err());
        assert!(Source::new("a\tb").is_err());
        assert_eq!(Source::layer().as_str(), "layer");
        assert_eq!(Source::layer(), Source::new("layer").unwrap());
        assert_eq!(
            format!("{:?} {}", Source::layer(), Source::new("billing").unwrap()),
            "\"layer\" billing"
        );
    }

    #[test]
    fn encoded_len_counts_rowbinary_bytes() {
        let e = Event::new(7, "search")
            .unwrap()
            .with_source(Source::layer())
            .with_method(Method::GET);
        // uuid 16 + u64 8 + (1+6) + u32 4 + (1+5) + (1+3) + u16 2 + u64 8
        assert_eq!(e.encoded_len(), 16 + 8 + 7 + 4 + 6 + 4 + 2 + 8);
        let long = Event::new(7, "a".repeat(128)).unwrap();
        assert_eq!(long.encoded_len(), 16 + 8 + 130 + 4 + 1 + 1 + 2 + 8);
    }
}
