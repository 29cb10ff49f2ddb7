//! From a decoded JSON object to an [`Event`], or the list of what is wrong with it.
//!
//! The fields are `accountId` (required, a whole number from 0 to `u64::MAX`, `7.0` too), `event`
//! (required, a string of 1 to 128 bytes without control characters), `timestamp`
//! (optional: an RFC 3339 string or Unix seconds), `eventId` (optional: a UUID), and, for an
//! event that stands for an HTTP request, `method` (a method token of at most 16 bytes),
//! `status` (0 to 999) and `latencyUs` (microseconds), all optional. Every problem names its
//! field.
//!
//! # One event, one row
//!
//! The events table is keyed by `(account_id, inserted_at, event_id, source)`, so an event
//! resent with the same `eventId` is one row when it also has the same time. An event with
//! an `eventId` therefore gets its time from the request when it can: from `timestamp` when
//! given, otherwise from the `eventId` itself when it carries one (a UUID v7, as well as v1
//! and v6). Any other `eventId` (such as a UUID v4) without a `timestamp` is given the time
//! it is received here, which [`resend`](super::resend) replaces with the time of its first
//! report when it is sent again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use uuid::Uuid;

use crate::{
    error::InvalidEvent,
    event::{Event, MAX_EVENT_TYPE_LEN, Source, validate_event_type},
    time::parse_rfc3339,
};

use super::decode::{Name, kind};

/// The fields an event object may have.
const FIELDS: &str = "accountId, event, timestamp, eventId, method, status, latencyUs";

/// The longest `method` taken, in bytes.
pub(crate) const MAX_METHOD_LEN: usize = 16;

/// The longest part of an unknown field's name repeated in a message, in bytes.
const MAX_NAME_SHOWN: usize = 64;

/// The most problems stated for one event; the rest are counted ("and 3 more problems"),
/// so that the answer to a body of a thousand bad fields stays small.
pub(crate) const MAX_PROBLEMS_SHOWN: usize = 5;

/// What is wrong with one event: the first [`MAX_PROBLEMS_SHOWN`] problems, and how many more.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    shown: Vec<String>,
    more: usize,
}

impl Problems {
    /// Adds a problem; past [`MAX_PROBLEMS_SHOWN`] it is only counted, never formatted.
    fn push(&mut self, problem: impl std::fmt::Display) {
        if self.shown.len() < MAX_PROBLEMS_SHOWN {
            self.shown.push(problem.to_string());
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    fn one(problem: impl std::fmt::Display) -> Self {
        let mut problems = Self::default();
        problems.push(problem);
        problems
    }

    /// The problems as one message: `"a; b; and 7 more problems"`.
    pub(crate) fn join(&self) -> String {
        let mut message = self.shown.join("; ");
        if self.more > 0 {
            let s = if self.more == 1 { "" } else { "s" };
            message.push_str(&format!("; and {} more problem{s}", self.more));
        }
        message
    }
}

/// How far from now an event's time may be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// How old an event may be.
    pub(crate) max_age: Duration,
    /// How far in the future an event may be (clocks differ).
    pub(crate) max_ahead: Duration,
}

/// Turns one JSON object into an event from `source`, or says everything wrong with it.
pub(crate) fn event(
    fields: Vec<(Name<'_>, Value)>,
    source: &Source,
    now: SystemTime,
    window: Window,
) -> Result<Event, Problems> {
    let mut problems = Problems::default();
    let mut account_id = None;
    let mut event_type = None;
    let mut timestamp = None;
    let mut event_id = None;
    let mut method = None;
    let mut status = None;
    let mut latency = None;
    for (name, value) in fields {
        let slot = match &*name {
            "accountId" => &mut account_id,
            "event" => &mut event_type,
            "timestamp" => &mut timestamp,
            "eventId" => &mut event_id,
            "method" => &mut method,
            "status" => &mut status,
            "latencyUs" => &mut latency,
            _ => {
                problems.push(format_args!(
                    "unknown field {}; the fields are {FIELDS}",
                    Shown(&name)
                ));
                continue;
            }
        };
        if slot.is_some() {
            problems.push(format_args!("field {name} is given more than once"));
        } else {
            *slot = Some(value);
        }
    }

    let account_id = required("accountId", account_id, &mut problems).and_then(|v| {
        account(&v)
            .map_err(|p| problems.push(format!("accountId {p}")))
            .ok()
    });
    let event_type = required("event", event_type, &mut problems).and_then(|v| {
        event_name(v)
            .map_err(|p| problems.push(format!("event {p}")))
            .ok()
    });
    let timestamp = optional(timestamp).and_then(|v| {
        unix_seconds(&v)
            .map_err(|p| problems.push(format!("timestamp {p}")))
            .ok()
            .map(|secs| ("timestamp", secs))
    });
    let event_id = optional(event_id).and_then(|v| {
        uuid(&v)
            .map_err(|p| problems.push(format!("eventId {p}")))
            .ok()
    });
    let method = optional(method).and_then(|v| {
        http_method(&v)
            .map_err(|p| problems.push(format!("method {p}")))
            .ok()
    });
    let status = optional(status).and_then(|v| {
        whole(&v, 999)
            .map_err(|p| problems.push(format!("status {p}")))
            .ok()
    });
    let latency = optional(latency).and_then(|v| {
        whole(&v, u64::MAX)
            .map_err(|p| problems.push(format!("latencyUs {p}")))
            .ok()
    });
    // An event with an id takes its time from the request when the request has one, so that
    // sent again it is the same row; an id without a time (a UUID v4) and no timestamp get
    // the time of the event's first report, found by `resend`.
    let time = match (timestamp, event_id) {
        (Some(t), _) => Some(t),
        (None, Some(id)) => id
            .get_timestamp()
            .map(|t| ("the time in eventId", t.to_unix().0 as i64)),
        (None, None) => None,
    };
    let time = time.and_then(|(what, secs)| {
        in_window(secs, now, window)
            .map_err(|p| problems.push(format!("{what} {p}")))
            .ok()
    });

    let (Some(account_id), Some(event_type), true) = (account_id, event_type, problems.is_empty())
    else {
        return Err(problems);
    };
    let mut event = Event::captured_at(account_id, &event_type, now)
        .map_err(|e| Problems::one(format_args!("event {e}")))?
        .with_source(source.clone());
    if let Some(id) = event_id {
        event = event.with_event_id(id);
    }
    if let Some(method) = method {
        event = event.with_method(method);
    }
    if let Some(status) = status {
        event = event.with_status(status as u16);
    }
    if let Some(latency) = latency {
        event = event.with_latency(std::time::Duration::from_micros(latency));
    }
    if let Some(time) = time {
        event = event
            .with_time(time)
            .map_err(|e| Problems::one(format_args!("timestamp: {e}")))?;
    }
    Ok(event)
}

/// An HTTP method token (`GET`, `POST`, ...), of at most [`MAX_METHOD_LEN`] bytes.
fn http_method(value: &Value) -> Result<http::Method, String> {
    const WHAT: &str = "must be an HTTP method such as \"GET\"";
    match value {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_METHOD_LEN => {
            http::Method::from_bytes(s.as_bytes()).map_err(|_| format!("{WHAT}, not {s:?}"))
        }
        Value::String(_) => Err(format!("{WHAT}, of 1 to {MAX_METHOD_LEN} bytes")),
        other => Err(format!("{WHAT}, not {}", kind(other))),
    }
}

/// A whole number from 0 to `max` (`7.0` too, as JSON Schema's integers).
fn whole(value: &Value, max: u64) -> Result<u64, String> {
    match account(value) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!(
            "must be a whole number from 0 to {max}, not {}",
            match value {
                Value::Number(n) => n.to_string(),
                other => kind(other).to_string(),
            }
        )),
    }
}

/// A field's name as it can be shown: at most [`MAX_NAME_SHOWN`] bytes, quoted.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.0;
        if name.len() <= MAX_NAME_SHOWN {
            return write!(f, "{name:?}");
        }
        let mut end = MAX_NAME_SHOWN;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}...", &name[..end])
    }
}

fn required(name: &str, value: Option<Value>, problems: &mut Problems) -> Option<Value> {
    match value {
        None => problems.push(format_args!("field {name} is missing")),
        Some(Value::Null) => problems.push(format_args!("{name} must not be null")),
        Some(value) => return Some(value),
    }
    None
}

/// An optional field: `null` is the same as absent.
fn optional(value: Option<Value>) -> Option<Value> {
    value.filter(|v| !v.is_null())
}

fn account(value: &Value) -> Result<u64, String> {
    const RANGE: &str = "must be a whole number from 0 to 18446744073709551615";
    match value {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(id), _) => Ok(id),
            (None, _) if n.is_i64() => Err("must not be negative".into()),
            // A whole number written with a fraction (`7.0`) is an integer to JSON Schema, and
            // so to the endpoint's OpenAPI document. Below 2^64, such an f64 is exactly a u64.
            (None, Some(f))
                if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) =>
            {
                Ok(f as u64)
            }
            (None, Some(f)) if f < 0.0 => Err("must not be negative".into()),
            (None, _) => Err(format!("{RANGE}, not {n}")),
        },
        other => Err(format!("{RANGE}, not {}", kind(other))),
    }
}

fn event_name(value: Value) -> Result<String, String> {
    let Value::String(name) = value else {
        return Err(format!(
            "must be a string of 1 to {MAX_EVENT_TYPE_LEN} bytes, not {}",
            kind(&value)
        ));
    };
    match validate_event_type(&name) {
        Ok(()) => Ok(name),
        Err(InvalidEvent::EmptyType) => Err("must not be empty".into()),
        Err(InvalidEvent::TypeTooLong { len, max }) => {
            Err(format!("is {len} bytes long; at most {max} are allowed"))
        }
        Err(InvalidEvent::TypeControlChar(at)) => {
            Err(format!("contains a control character at byte {at}"))
        }
        Err(InvalidEvent::TypeInvisibleChar { at, code }) => Err(format!(
            "contains an invisible character (U+{code:04X}) at byte {at}; format \
             characters and line or paragraph separators are not allowed"
        )),
        Err(other) => Err(other.to_string()),
    }
}

fn unix_seconds(value: &Value) -> Result<i64, String> {
    const FORMS: &str = "must be an RFC 3339 date-time such as \"2024-05-01T12:30:00Z\" or a number of Unix seconds";
    match value {
        Value::String(text) => parse_rfc3339(text).ok_or_else(|| FORMS.into()),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(secs), _) => Ok(secs),
            (None, Some(secs)) if secs.is_finite() && secs.abs() < 1e15 => Ok(secs.floor() as i64),
            _ => Err(format!("{FORMS}, not {n}")),
        },
        other => Err(format!("{FORMS}, not {}", kind(other))),
    }
}

fn uuid(value: &Value) -> Result<Uuid, String> {
    const FORM: &str = "must be a UUID such as \"0191f8a4-7e0b-7c7e-a3a5-5f4b3c2d1e0f\"";
    let Value::String(text) = value else {
        return Err(format!("{FORM}, not {}", kind(value)));
    };
    match Uuid::try_parse(text) {
        Ok(id) if id.is_nil() => Err("must not be the nil UUID".into()),
        Ok(id) => Ok(id),
        Err(_) => Err(FORM.into()),
    }
}

fn in_window(secs: i64, now: SystemTime, window: Window) -> Result<SystemTime, String> {
    let time = u64::try_from(secs)
        .ok()
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or("is before 1970")?;
    if let Ok(ahead) = time.duration_since(now)
        && ahead > window.max_ahead
    {
        return Err(format!(
            "is more than {} in the future",
            describe(window.max_ahead)
        ));
    }
    if let Ok(age) = now.duration_since(time)
        && age > window.max_age
    {
        return Err(format!("is more than {} old", describe(window.max_age)));
    }
    Ok(time)
}

/// A duration in the largest whole unit that states it exactly: "7 days", "5 minutes".
pub(crate) fn describe(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        0 => return format!("{} ms", d.as_millis()),
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_714_566_600; // 2024-05-01T12:30:00Z

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    const WINDOW: Window = Window {
        max_age: Duration::from_secs(7 * 86_400),
        max_ahead: Duration::from_secs(300),
    };

    fn check(value: Value) -> Result<Event, Vec<String>> {
        let Value::Object(map) = value else { panic!() };
        event(
            map.into_iter().map(|(k, v)| (Name::from(k), v)).collect(),
            &Source::new("billing").unwrap(),
            now(),
            WINDOW,
        )
        .map_err(|p| {
            assert_eq!(p.more, 0);
            p.shown
        })
    }

    /// The one problem found; panics if the object is valid or has several.
    fn problem(value: Value) -> String {
        let problems = check(value).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems.into_iter().next().unwrap()
    }

    #[test]
    fn the_seed_request() {
        let e = check(json!({"accountId": 1, "event": "search"})).unwrap();
        assert_eq!(e.account_id(), 1);
        assert_eq!(e.event_type(), "search");
        assert_eq!(e.source(), "billing");
    }

    #[test]
    fn required_fields() {
        assert_eq!(problem(json!({"event": "x"})), "field accountId is missing");
        assert_eq!(problem(json!({"accountId": 1})), "field event is missing");
        assert_eq!(
            problem(json!({"accountId": null, "event": "x"})),
            "accountId must not be null"
        );
        assert_eq!(
            problem(json!({"accountId": 1, "event": null})),
            "event must not be null"
        );
        let both = check(json!({})).unwrap_err();
        assert_eq!(
            both,
            ["field accountId is missing", "field event is missing"]
        );
    }

    #[test]
    fn account_ids() {
        for ok in [json!(0), json!(1), json!(u64::MAX)] {
            let id = ok.as_u64().unwrap();
            assert_eq!(
                check(json!({"accountId": ok, "event": "x"}))
                    .unwrap()
                    .account_id(),
                id
            );
        }
        let value = |v: Value| {
            let Value::Object(mut map) = json!({"event": "x"}) else {
                panic!()
            };
            map.insert("accountId".into(), v);
            problem(Value::Object(map))
        };
        assert_eq!(value(json!(-1)), "accountId must not be negative");
        let range = "accountId must be a whole number from 0 to 18446744073709551615, not";
        assert_eq!(value(json!("1")), format!("{range} a string"));
        assert_eq!(value(json!(true)), format!("{range} a boolean"));
        assert_eq!(value(json!([1])), format!("{range} an array"));
        assert_eq!(value(json!({"id": 1})), format!("{range} an object"));
        assert_eq!(value(json!(1.5)), format!("{range} 1.5"));
        assert_eq!(value(json!(-2.0)), "accountId must not be negative");
        assert_eq!(value(json!(1e20)), format!("{range} 1e+20"));
        // A whole number with a fraction is the whole number, as JSON Schema has it.
        for (number, id) in [
            (json!(1.0), 1),
            (json!(181225.0), 181_225),
            (json!(1e19), 10u64.pow(19)),
        ] {
            let e = check(json!({"accountId": number, "event": "x"})).unwrap();
            assert_eq!(e.account_id(), id);
        }
        // What serde_json makes of u64::MAX + 1.
        let too_big: Value = serde_json::from_str("18446744073709551616").unwrap();
        assert!(value(too_big).starts_with(range));
    }

    #[test]
    fn request_fields() {
        let e = check(json!({"accountId": 1, "event": "x", "method": "PATCH", "status": 204.0, "latencyUs": 1500}))
            .unwrap();
        assert_eq!(
            (e.method(), e.status(), e.latency_us()),
            ("PATCH", 204, 1500)
        );
        // null is absence, as the published schema says.
        let e = check(json!({"accountId": 1, "event": "x", "method": null, "status": null, "latencyUs": null}))
            .unwrap();
        assert_eq!((e.method(), e.status(), e.latency_us()), ("", 0, 0));
        assert!(
            problem(json!({"accountId": 1, "event": "x", "status": 1000}))
                .starts_with("status must be")
        );
        assert!(
            problem(json!({"accountId": 1, "event": "x", "status": -1}))
                .starts_with("status must be")
        );
        assert!(
            problem(json!({"accountId": 1, "event": "x", "method": "GE T"}))
                .starts_with("method must be")
        );
        assert!(
            problem(json!({"accountId": 1, "event": "x", "method": ""}))
                .starts_with("method must be")
        );
        assert!(
            problem(json!({"accountId": 1, "event": "x", "latencyUs": "5"}))
                .starts_with("latencyUs must be")
        );
    }

    #[test]
    fn event_names() {
        let name = |v: Value| problem(json!({"accountId": 1, "event": v}));
        assert_eq!(name(json!("")), "event must not be empty");
        assert_eq!(
            name(json!("a".repeat(129))),
            "event is 129 bytes long; at most 128 are allowed"
        );
        assert_eq!(
            name(json!("ab\u{0}c")),
            "event contains a control character at byte 2"
        );
        assert_eq!(
            name(json!("\u{85}")),
            "event contains a control character at byte 0"
        );
        assert_eq!(
            name(json!(7)),
            "event must be a string of 1 to 128 bytes, not a number"
        );
        assert_eq!(
            name(json!(["search"])),
            "event must be a string of 1 to 128 bytes, not an array"
        );
        for ok in ["a", "'); DROP TABLE events; --", "/projects/{id}", "€uro"] {
            let e = check(json!({"accountId": 1, "event": ok})).unwrap();
            assert_eq!(e.event_type(), ok);
        }
        assert!(check(json!({"accountId": 1, "event": "a".repeat(128)})).is_ok());
    }

    #[test]
    fn unknown_and_repeated_fields() {
        assert_eq!(
            problem(json!({"accountId": 1, "event": "x", "account_id": 2})),
            "unknown field \"account_id\"; the fields are accountId, event, timestamp, eventId, method, status, latencyUs"
        );
        let long = "n".repeat(1000);
        let message = problem(json!({"accountId": 1, "event": "x", long: 1}));
        assert!(message.len() < 200, "{message}");
        let fields = vec![
            ("accountId".into(), json!(1)),
            ("event".into(), json!("x")),
            ("accountId".into(), json!(2)),
        ];
        let problems = event(fields, &Source::layer(), now(), WINDOW)
            .unwrap_err()
            .shown;
        assert_eq!(problems, ["field accountId is given more than once"]);
    }

    #[test]
    fn problems_past_the_cap_are_counted() {
        let mut fields = vec![("accountId".into(), json!(1)), ("event".into(), json!("x"))];
        fields.extend((0..10_000).map(|_| (Name::from("a".to_owned()), json!(0))));
        let problems = event(fields, &Source::layer(), now(), WINDOW).unwrap_err();
        assert_eq!(problems.shown.len(), MAX_PROBLEMS_SHOWN);
        assert_eq!(problems.more, 10_000 - MAX_PROBLEMS_SHOWN);
        let message = problems.join();
        assert!(message.ends_with("; and 9995 more problems"), "{message}");
        assert!(message.len() < 1000, "{}", message.len());
    }

    #[test]
    fn every_problem_is_listed() {
        let problems =
            check(json!({"accountId": "1", "event": "", "timestamp": true, "x": 1})).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for field in ["accountId", "event", "timestamp", "\"x\""] {
            assert!(
                problems.iter().any(|p| p.contains(field)),
                "{field}: {problems:?}"
            );
        }
    }

    #[test]
    fn timestamps_in_either_form() {
        let at = |t: Value| check(json!({"accountId": 1, "event": "x", "timestamp": t}));
        let expect = NOW - 3600;
        assert_eq!(
            at(json!("2024-05-01T11:30:00Z")).unwrap().unix_seconds() as u64,
            expect
        );
        assert_eq!(
            at(json!("2024-05-01T13:30:00.75+02:00"))
                .unwrap()
                .unix_seconds() as u64,
            expect
        );
        assert_eq!(at(json!(expect)).unwrap().unix_seconds() as u64, expect);
        assert_eq!(
            at(json!(expect as f64 + 0.9)).unwrap().unix_seconds() as u64,
            expect
        );
        // `null` is no timestamp: the event is taken as happening now.
        assert!(at(Value::Null).is_ok());
        for bad in [
            json!("yesterday"),
            json!("2024-05-01"),
            json!(true),
            json!([1]),
        ] {
            let p = at(bad).unwrap_err();
            assert!(
                p[0].starts_with("timestamp must be an RFC 3339 date-time"),
                "{p:?}"
            );
        }
    }

    #[test]
    fn timestamps_outside_the_window() {
        let at = |t: i64| check(json!({"accountId": 1, "event": "x", "timestamp": t}));
        let now = NOW as i64;
        assert!(at(now + 300).is_ok());
        assert_eq!(
            at(now + 301).unwrap_err(),
            ["timestamp is more than 5 minutes in the future"]
        );
        assert!(at(now - 7 * 86_400).is_ok());
        assert_eq!(
            at(now - 7 * 86_400 - 1).unwrap_err(),
            ["timestamp is more than 7 days old"]
        );
        assert_eq!(at(-1).unwrap_err(), ["timestamp is before 1970"]);
        // Milliseconds by mistake.
        assert!(at(now * 1000).is_err());
        let p = check(json!({"accountId": 1, "event": "x", "timestamp": 1e300})).unwrap_err();
        assert!(p[0].starts_with("timestamp must be"), "{p:?}");
    }

    #[test]
    fn the_window_is_configurable() {
        let fields = |t: u64| {
            vec![
                ("accountId".into(), json!(1)),
                ("event".into(), json!("x")),
                ("timestamp".into(), json!(t)),
            ]
        };
        let window = Window {
            max_age: Duration::from_secs(3600),
            max_ahead: Duration::from_secs(60),
        };
        let source = Source::layer();
        assert!(event(fields(NOW - 3600), &source, now(), window).is_ok());
        assert_eq!(
            event(fields(NOW - 3601), &source, now(), window)
                .unwrap_err()
                .shown,
            ["timestamp is more than 1 hour old"]
        );
        assert_eq!(
            event(fields(NOW + 61), &source, now(), window)
                .unwrap_err()
                .shown,
            ["timestamp is more than 1 minute in the future"]
        );
    }

    #[test]
    fn event_ids() {
        let v4 = "6f2c1b9e-3d4a-4f5b-8c7d-9e0a1b2c3d4e";
        let with = |fields: Value| check(fields);
        let e =
            with(json!({"accountId": 1, "event": "x", "eventId": v4, "timestamp": NOW})).unwrap();
        assert_eq!(e.event_id().to_string(), v4);
        assert_eq!(u64::from(e.unix_seconds()), NOW);
        // Upper case and braces are UUIDs too.
        let upper = format!("{{{}}}", v4.to_uppercase());
        let e = with(json!({"accountId": 1, "event": "x", "eventId": upper, "timestamp": NOW}))
            .unwrap();
        assert_eq!(e.event_id().to_string(), v4);

        for (id, expect) in [
            (json!("not-a-uuid"), "eventId must be a UUID such as"),
            (json!(12), "eventId must be a UUID such as"),
            (
                json!("00000000-0000-0000-0000-000000000000"),
                "eventId must not be the nil UUID",
            ),
        ] {
            let p = with(json!({"accountId": 1, "event": "x", "eventId": id, "timestamp": NOW}))
                .unwrap_err();
            assert!(p[0].starts_with(expect), "{p:?}");
        }
    }

    #[test]
    fn an_event_id_fixes_the_time() {
        // A v4 id carries no time: without a timestamp the event is taken with the time it
        // was received, for `resend` to replace with its first report's.
        let v4 = "6f2c1b9e-3d4a-4f5b-8c7d-9e0a1b2c3d4e";
        let e = check(json!({"accountId": 1, "event": "x", "eventId": v4})).unwrap();
        assert_eq!(e.event_id().to_string(), v4);
        assert_eq!(u64::from(e.unix_seconds()), NOW);

        // A v7 id carries its time: the event takes it, the same on every resend.
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, NOW - 60, 500_000_000);
        let v7 = Uuid::new_v7(ts);
        let fields = json!({"accountId": 1, "event": "x", "eventId": v7.to_string()});
        let first = check(fields.clone()).unwrap();
        let again = check(fields).unwrap();
        assert_eq!(u64::from(first.unix_seconds()), NOW - 60);
        assert_eq!(first, again);

        // ... unless a timestamp is given, which wins.
        let e = check(
            json!({"accountId": 1, "event": "x", "eventId": v7.to_string(),
            "timestamp": NOW - 10}),
        )
        .unwrap();
        assert_eq!(u64::from(e.unix_seconds()), NOW - 10);

        // The id's time is held to the same window.
        let old = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            NOW - 8 * 86_400,
            0,
        ));
        let p =
            check(json!({"accountId": 1, "event": "x", "eventId": old.to_string()})).unwrap_err();
        assert_eq!(p, ["the time in eventId is more than 7 days old"]);
    }

    #[test]
    fn durations_are_described_in_whole_units() {
        assert_eq!(describe(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(describe(Duration::from_secs(86_400)), "1 day");
        assert_eq!(describe(Duration::from_secs(300)), "5 minutes");
        assert_eq!(describe(Duration::from_secs(7200)), "2 hours");
        assert_eq!(describe(Duration::from_secs(90)), "90 seconds");
        assert_eq!(describe(Duration::from_millis(1500)), "1 second");
        assert_eq!(describe(Duration::from_millis(200)), "200 ms");
    }
}
