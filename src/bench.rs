//! Entry points for the crate's own counted benchmarks (`benches/counts.rs`): the writer's
//! steps that have no public API of their own. Not part of the crate's API; hidden from its
//! documentation and free to change.

use std::sync::Arc;

use http::Method;

use crate::{
    RouteName,
    clock::Tick,
    event::{Capture, Event, Source},
    route::EventName,
    writer::spool,
};

pub use crate::writer::EventRow;

/// A request's capture as the layer queues it.
#[derive(Debug)]
pub struct QueuedCapture(Capture);

impl QueuedCapture {
    /// What the layer would capture for a `GET` of `route` by `account_id`, answered now.
    pub fn layer(account_id: u64, route: &str, status: u16) -> Self {
        let started = Tick::now();
        Self(Capture {
            account_id,
            name: EventName::Route(RouteName::from(Arc::<str>::from(route))),
            source: Source::layer(),
            method: Method::GET,
            status,
            started,
            at: Tick::now(),
        })
    }

    /// The event, as the writer's thread makes it when it takes the capture from the queue.
    ///
    /// # Panics
    ///
    /// If the route is no event type.
    pub fn into_event(self) -> Event {
        self.0.into_event().expect("a valid event type")
    }
}

/// Appends `events` as one spool segment (its header and one record per event) to `out`,
/// as the writer does before it writes the segment's file.
pub fn spool_append(events: &[Event], out: &mut Vec<u8>) {
    out.extend_from_slice(spool::MAGIC);
    for event in events {
        spool::encode(event, out);
    }
}

/// Reads a segment's events back, as a replay does after reading the segment's file.
pub fn spool_replay(segment: &[u8]) -> Vec<Event> {
    spool::read_records(segment).events
}
