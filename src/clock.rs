//! Time, injectable.
//!
//! Every layer that needs the time (key expiry, cache lifetimes, rate limits)
//! reads it from a [`Clock`]. In production that is the system's clock; in
//! tests it is a [`FakeClock`] that moves only when told to, so time-dependent
//! behaviour is tested exactly and instantly, never with `sleep`.
//!
//! ```
//! use std::time::Duration;
//! use tollgate::clock::FakeClock;
//!
//! let fake = FakeClock::new();
//! let clock = fake.clock();
//! let before = clock.now();
//! fake.advance(Duration::from_millis(1500));
//! assert_eq!(clock.now() - before, 1_500_000_000);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds on a clock's monotonic timeline (since the clock was made).
pub type Nanos = u64;

/// A source of time: monotonic nanoseconds for measuring intervals, and wall
/// time for expiry dates and reset timestamps.
///
/// Cheap to clone. The system clock's monotonic reading comes from
/// [`quanta`] (the CPU's time-stamp counter where it is reliable, the OS
/// clock otherwise): about 11 ns a reading on the development machine,
/// against 25 ns through `std::time::Instant` (`cargo bench --bench
/// rate_limit`, group `clock`). A fake clock costs one atomic load.
#[derive(Clone, Debug)]
pub struct Clock {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    System {
        clock: quanta::Clock,
        /// A raw reading taken when the clock was made.
        origin: u64,
        /// Unix nanoseconds when the clock was made.
        epoch: u64,
    },
    Fake(Arc<FakeState>),
}

impl Clock {
    /// The system's clocks: [`quanta`] for intervals, [`SystemTime`] for dates.
    pub fn system() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, saturating_nanos);
        Self {
            source: Source::System {
                clock,
                origin,
                epoch,
            },
        }
    }

    /// Monotonic nanoseconds since this clock was made.
    #[inline]
    pub fn now(&self) -> Nanos {
        match &self.source {
            Source::System { clock, origin, .. } => clock.delta_as_nanos(*origin, clock.raw()),
            Source::Fake(state) => state.elapsed.load(Ordering::Acquire),
        }
    }

    /// Unix nanoseconds at this clock's `now() == 0`: `epoch() + now()` is
    /// the wall time on the monotonic timeline, what calendar windows are
    /// aligned by. For the system clock it was read once, when the clock was
    /// made, so a later step of the system's clock does not move a window's
    /// boundary (nor a bucket's refill) under a running store.
    pub fn epoch(&self) -> u64 {
        match &self.source {
            Source::System { epoch, .. } => *epoch,
            Source::Fake(state) => state
                .unix_start
                .duration_since(UNIX_EPOCH)
                .map_or(0, saturating_nanos),
        }
    }

    /// The wall-clock time.
    pub fn unix_now(&self) -> SystemTime {
        match &self.source {
            Source::System { .. } => SystemTime::now(),
            Source::Fake(state) => {
                state.unix_start + Duration::from_nanos(state.elapsed.load(Ordering::Acquire))
            }
        }
    }

    /// The wall-clock time in whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> u64 {
        self.unix_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

/// Whole seconds, rounded up: a client told to wait `n` seconds that waits
/// `n` seconds is never early.
pub(crate) fn ceil_seconds(nanos: Nanos) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

/// `Retry-After`: whole seconds rounded up, at least 1.
pub(crate) fn retry_after_seconds(nanos: Nanos) -> u64 {
    ceil_seconds(nanos).max(1)
}

fn saturating_nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
struct FakeState {
    elapsed: AtomicU64,
    unix_start: SystemTime,
}

/// A clock for tests: it stands still until [`advance`](FakeClock::advance)d.
///
/// Hand [`FakeClock::clock`] to the layers under test and keep the
/// `FakeClock` to move time.
#[derive(Clone, Debug)]
pub struct FakeClock {
    state: Arc<FakeState>,
}

impl FakeClock {
    /// A fake clock whose wall time starts at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::starting_at(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    }

    /// A fake clock whose wall time starts at `unix_start`.
    pub fn starting_at(unix_start: SystemTime) -> Self {
        Self {
            state: Arc::new(FakeState {
                elapsed: AtomicU64::new(0),
                unix_start,
            }),
        }
    }

    /// The [`Clock`] that reads this fake time.
    pub fn clock(&self) -> Clock {
        Clock {
            source: Source::Fake(Arc::clone(&self.state)),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.state
            .elapsed
            .fetch_add(saturating_nanos(by), Ordering::AcqRel);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl From<FakeClock> for Clock {
    fn from(fake: FakeClock) -> Self {
        fake.clock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_both_timelines_together() {
        let fake = FakeClock::new();
        let clock = fake.clock();
        let unix = clock.unix_seconds();
        fake.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), 90_000_000_000);
        assert_eq!(clock.unix_seconds(), unix + 90);
        assert_eq!(clock.epoch(), 1_767_225_600 * 1_000_000_000);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = Clock::system();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        assert!(clock.unix_seconds() > 1_700_000_000);
    }
}
