//! # Implementation notes
//!
//! GCRA (the generic cell rate algorithm), the "virtual scheduling" form. All times are whole
//! nanoseconds since the timer's origin, as `u64` (enough for 584 years).
//!
//! Parameters, fixed at construction:
//! - `interval` `T` = `period / rate`, rounded **up** to a whole nanosecond, so the admitted
//!   rate never exceeds the configured one;
//! - `capacity` = `burst × T`: how far ahead of `now` the schedule may run.
//!
//! State: one atomic `tat`, the theoretical arrival time: the instant at which the schedule of
//! admissions made so far would be paid off. It starts at 0, "idle since the origin".
//!
//! Transition, for a cost of `n` at `now` ([`step`]):
//! - `start = max(tat, now)` (time spent idle is not banked beyond `capacity`: a `tat` in
//!   the past counts as `now`);
//! - admit iff `start + n×T <= now + capacity`, and then `tat = start + n×T`;
//! - otherwise reject with `NotUntil(start + n×T - capacity)`: the first instant at which the
//!   same request is admitted, if nothing else is admitted meanwhile. A rejection writes
//!   nothing.
//!
//! For `n = 1` the test reads `tat - (burst - 1)×T <= now`, the textbook form with tolerance
//! `τ = (burst - 1)×T`.
//!
//! The end of time: the engine's clock stops at the *horizon* `H = u64::MAX - capacity`; a
//! later `now` (a clock saturated at `u64::MAX`, a `ManualTimer` advanced by `Duration::MAX`)
//! counts as `H`. So `now + capacity` never overflows, `tat <= H + capacity = u64::MAX`
//! always, and every comparison is exact: nothing saturates into an admission. `start + n×T`
//! may exceed `u64::MAX` only when it is refused anyway, and the refusal's
//! `start - (capacity - n×T)` is computed without overflow. A refusal whose instant lies
//! beyond `H` can never be admitted, since the engine's clock never gets there: that is
//! [`Decision::Never`]. At the horizon a throttle therefore admits what is left of its burst,
//! then refuses for ever, rather than admit everything (the saturating arithmetic this
//! replaced admitted every request once `now` reached `u64::MAX`).
//!
//! Concurrency: [`Gcra::check`] is a load, then (admissions only) one `compare_exchange_weak`
//! loop on `tat`. Every admission is a successful CAS from the value its decision was computed
//! on, so two callers can never both spend the same slot. A rejection is a plain load. No
//! lock, no waker list: waiting is the caller's business (the `Acquire` future sleeps on its
//! timer until `NotUntil` and checks again), so nothing here is ever reserved on behalf of a
//! waiter that may be dropped. `Relaxed` ordering suffices: `tat` is the only shared datum and
//! publishes nothing else; all that matters is the single modification order of `tat`.
//!
//! Targets without a native 64-bit atomic (such as `thumbv7em-none-eabihf`) keep `tat` in a
//! [`crate::sync::Mutex`] instead ([`LockedTat`]: a critical section without `std`): the
//! check runs `step` inside one section. portable-atomic's 64-bit fallback is no choice there:
//! on targets with 32-bit CAS it is a seqlock whose writers spin, so an interrupt handler
//! checking the throttle while the code it interrupted is mid-write would spin for ever (its
//! `critical-section` feature only changes targets without any CAS). Both cells share one
//! interface and the unit tests run the locked one on the host against the atomic one.

#[cfg(any(loom, target_has_atomic = "64"))]
use crate::sync::AtomicU64;
#[cfg(any(loom, target_has_atomic = "64"))]
use crate::sync::atomic::Ordering;

/// The cell holding `tat` on this target.
#[cfg(any(loom, target_has_atomic = "64"))]
type Tat = AtomicTat;
#[cfg(not(any(loom, target_has_atomic = "64")))]
type Tat = LockedTat;

/// `tat` in one 64-bit atomic: lock-free.
#[cfg(any(loom, target_has_atomic = "64"))]
#[derive(Debug)]
pub(crate) struct AtomicTat(AtomicU64);

#[cfg(any(loom, target_has_atomic = "64"))]
impl AtomicTat {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    #[inline]
    pub(crate) fn load(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Applies the pure transition `f` to the current value and stores its `Ok`, as one
    /// atomic step: returns `f`'s result for the value it was applied to.
    #[inline]
    pub(crate) fn update(&self, f: impl Fn(u64) -> Result<u64, u64>) -> Result<u64, u64> {
        let mut tat = self.load();
        loop {
            let new = f(tat)?;
            match self
                .0
                .compare_exchange_weak(tat, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(new),
                Err(actual) => tat = actual,
            }
        }
    }
}

/// `tat` behind the crate's lock (a critical section without `std`): for targets without a
/// native 64-bit atomic. `f` is the pure `step`, never user code.
#[cfg(all(not(loom), any(test, not(target_has_atomic = "64"))))]
#[derive(Debug)]
pub(crate) struct LockedTat(crate::sync::Mutex<u64>);

#[cfg(all(not(loom), any(test, not(target_has_atomic = "64"))))]
impl LockedTat {
    pub(crate) const fn new() -> Self {
        Self(crate::sync::Mutex::new(0))
    }

    #[cfg(test)]
    pub(crate) fn load(&self) -> u64 {
        self.0.with(|tat| *tat)
    }

    /// As [`AtomicTat::update`], inside one lock section.
    #[inline]
    pub(crate) fn update(&self, f: impl Fn(u64) -> Result<u64, u64>) -> Result<u64, u64> {
        self.0.with(|tat| {
            let new = f(*tat)?;
            *tat = new;
            Ok(new)
        })
    }
}

/// The outcome of one [`Gcra::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Admitted; the cost is spent.
    Ok,
    /// Rejected; the same request is admitted at this instant (nanoseconds) at the earliest.
    NotUntil(u64),
    /// Rejected for ever: the request fits only after the engine's horizon (the end of time).
    Never,
}

/// The engine's last instant for a given `capacity`: later clock readings count as this.
#[inline]
pub(crate) const fn horizon(capacity: u64) -> u64 {
    u64::MAX - capacity
}

/// The pure GCRA transition: `Ok(new_tat)` when admitted, `Err(not_until)` when not.
///
/// `cost` is `n × T` and must not exceed `capacity`; `now` past the [`horizon`] counts as the
/// horizon. `not_until` beyond the horizon means never.
#[inline]
pub(crate) const fn step(tat: u64, now: u64, cost: u64, capacity: u64) -> Result<u64, u64> {
    let horizon = horizon(capacity);
    let now = if now > horizon { horizon } else { now };
    let start = if tat > now { tat } else { now };
    // now <= horizon, so now + capacity <= u64::MAX: exact.
    match start.checked_add(cost) {
        Some(end) if end <= now + capacity => Ok(end),
        // Refused: start + cost > now + capacity >= capacity, so start > capacity - cost and
        // this is start + cost - capacity, exact and > now.
        _ => Err(start - (capacity - cost)),
    }
}

/// A GCRA cell-rate checker: the whole state of a throttle.
#[derive(Debug)]
pub(crate) struct Gcra {
    tat: Tat,
    interval: u64,
    capacity: u64,
}

impl Gcra {
    /// A checker that is idle since the origin. `interval >= 1` and `capacity = burst ×
    /// interval` (no overflow) are the caller's to ensure.
    #[cfg(not(loom))]
    pub(crate) const fn new(interval: u64, capacity: u64) -> Self {
        Self {
            tat: Tat::new(),
            interval,
            capacity,
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(interval: u64, capacity: u64) -> Self {
        Self {
            tat: Tat::new(),
            interval,
            capacity,
        }
    }

    /// The emission interval `T`, in nanoseconds.
    pub(crate) const fn interval(&self) -> u64 {
        self.interval
    }

    /// Admits `n` cells at `now` or says when it could. `n × T` must not exceed the capacity
    /// (the facade checks `n <= burst`).
    #[inline]
    pub(crate) fn check(&self, now: u64, n: u32) -> Decision {
        // n <= burst, and burst × T fits in u64 (checked at construction).
        let cost = u64::from(n) * self.interval;
        match self.tat.update(|tat| step(tat, now, cost, self.capacity)) {
            Ok(_) => Decision::Ok,
            Err(not_until) if not_until > horizon(self.capacity) => Decision::Never,
            Err(not_until) => Decision::NotUntil(not_until),
        }
    }

    /// The current theoretical arrival time.
    #[cfg(test)]
    pub(crate) fn tat(&self) -> u64 {
        self.tat.load()
    }
}
