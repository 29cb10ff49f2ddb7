//! The clock the layer reads on the request path.
//!
//! [`quanta`] reads the processor's time-stamp counter where it is invariant (the same rate
//! on every core, in every power state), which costs a fraction of a system clock read, and
//! falls back to the monotonic clock elsewhere. A [`Tick`] is one raw reading: subtracting
//! two gives a latency, and the writer's thread turns one into wall-clock time.

use std::{
    cell::Cell,
    sync::LazyLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Calibrated once per process (under a millisecond), on first use.
static CLOCK: LazyLock<quanta::Clock> = LazyLock::new(quanta::Clock::new);

/// Calibrates the clock now, so that the first request does not.
pub(crate) fn calibrate() {
    LazyLock::force(&CLOCK);
}

/// One reading of the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(u64);

impl Tick {
    pub(crate) fn now() -> Self {
        Self(CLOCK.raw())
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later (counters of two cores
    /// a hair apart).
    pub(crate) fn since(self, earlier: Self) -> Duration {
        CLOCK.delta(earlier.0, self.0)
    }

    /// [`since`](Self::since) in whole microseconds.
    pub(crate) fn micros_since(self, earlier: Self) -> u64 {
        CLOCK.delta_as_nanos(earlier.0, self.0) / 1_000
    }

    /// The wall-clock time of this reading, since the Unix epoch.
    ///
    /// Derived from a per-thread pair of readings of this clock and of the wall clock, read
    /// again once a reading is [`WALL_CLOCK_REREAD`] past them: one wall-clock read per
    /// thread and second instead of one per event. The two clocks run at the same rate to
    /// within NTP's slew (0.05 %, half a millisecond a second), so the result is the wall
    /// clock's to well within an event's second precision, and a step of the wall clock is
    /// seen within a second. A reading older than the pair (a backlog) is placed by the
    /// pair as well as by a fresh one.
    pub(crate) fn since_epoch(self) -> Duration {
        let by = |(tick, wall): (Tick, Duration)| {
            if self >= tick {
                wall + self.since(tick)
            } else {
                wall.saturating_sub(tick.since(self))
            }
        };
        ANCHOR.with(|anchor| {
            if let Some(kept) = anchor.get()
                && self.since(kept.0) < WALL_CLOCK_REREAD
            {
                return by(kept);
            }
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let fresh = (Tick::now(), wall);
            anchor.set(Some(fresh));
            by(fresh)
        })
    }
}

/// How long a thread trusts its pair of clock readings before it reads them again.
const WALL_CLOCK_REREAD: Duration = Duration::from_secs(1);

thread_local! {
    /// A reading of this clock and of the wall clock, taken together.
    static ANCHOR: Cell<Option<(Tick, Duration)>> = const { Cell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall() -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
    }

    #[test]
    fn ticks_measure_time() {
        let start = Tick::now();
        let std_start = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        let (end, std_elapsed) = (Tick::now(), std_start.elapsed());
        let elapsed = end.since(start);
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        assert!(elapsed.abs_diff(std_elapsed) < Duration::from_millis(2));
        assert_eq!(start.since(end), Duration::ZERO);
        let micros = end.micros_since(start);
        assert_eq!(u128::from(micros), elapsed.as_micros());
    }

    #[test]
    fn the_derived_wall_clock_is_the_wall_clock() {
        let slack = Duration::from_millis(5);
        for _ in 0..3 {
            let before = wall();
            let derived = Tick::now().since_epoch();
            let after = wall();
            assert!(derived + slack >= before && derived <= after + slack);
            std::thread::sleep(Duration::from_millis(600));
        }
        // A reading taken before the thread's pair (a backlog) keeps its distance.
        let earlier = Tick::now();
        std::thread::sleep(Duration::from_millis(1_100));
        let now = Tick::now();
        let (derived, derived_earlier) = (now.since_epoch(), earlier.since_epoch());
        assert!(derived.abs_diff(wall()) < slack);
        let gap = derived - derived_earlier;
        assert!(
            gap.abs_diff(now.since(earlier)) < Duration::from_micros(1),
            "{gap:?}"
        );
    }
}
