//! The crate's own monotonic time: microseconds since an arbitrary start.
//!
//! Pure cores (totem, quorum, the controller's decisions) take `now:
//! Instant` as an argument and never read a clock, so the same code runs
//! under the real clock in `hactld` and under a virtual clock in the
//! simulator. Only drivers call [`Clock::now`].

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in monotonic time, in microseconds since the clock's start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_micros(us: u64) -> Instant {
        Instant(us)
    }

    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        // A monotonic clock in microseconds overflows after 584,000 years:
        // saturate rather than wrap if a caller adds "forever".
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    /// Panics (a bug) if `earlier` is later than `self`.
    fn sub(self, earlier: Instant) -> Duration {
        assert!(
            earlier.0 <= self.0,
            "time went backwards: {earlier:?} > {self:?}"
        );
        Duration::from_micros(self.0 - earlier.0)
    }
}

/// The real monotonic clock, for drivers.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_in_microseconds_and_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!((t + Duration::from_micros(250)).as_micros(), 5_250);
        assert_eq!(Instant::from_millis(7) - t, Duration::from_millis(2));
        assert_eq!(t.saturating_since(Instant::from_millis(9)), Duration::ZERO);
        assert_eq!((t + Duration::MAX).as_micros(), u64::MAX);
    }

    #[test]
    fn the_real_clock_does_not_go_backwards() {
        let c = Clock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
    }
}
