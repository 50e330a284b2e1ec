//! # Implementation notes
//!
//! One `Arc<Mutex<State>>` shared by every clone. `State` holds the current time and a
//! `BTreeMap` of registered sleepers keyed by `(deadline, id)`: iteration order is deadline
//! order, ties broken by registration order, so `advance` wakes in exactly that order.
//!
//! A [`ManualSleep`] registers itself on its first pending poll and keeps one entry, whose
//! waker a later poll refreshes. `advance` removes every due entry under the lock, releases
//! the lock, then wakes them in order: a woken task that immediately polls, or a waker that
//! re-enters the timer, never deadlocks. A sleep removes its own entry when it completes or is
//! dropped, so nothing grows with sleeps that are created and abandoned. A waker that is
//! replaced (a poll with a different waker) or removed (a dropped sleep) leaves the lock
//! section and is dropped after it: its drop may run arbitrary code, including a call on this
//! very timer (`tests/time.rs` checks every such path).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use super::Timer;
use crate::sync::{Arc, Mutex};

/// A virtual clock for deterministic tests: time moves only when [`advance`] is called.
///
/// Clones share one clock. Time starts at zero. [`advance`] moves time forward and wakes, in
/// deadline order, every sleeper whose deadline has been reached; [`next_deadline`] tells a
/// test where the next sleeper waits so it can jump straight there with
/// [`advance_to_next`]. `ManualTimer` is `Send + Sync` and its sleeps are `Send`, so it drives
/// tests on a multi-threaded runtime too.
///
/// Every time-based test in dike runs on it: no test sleeps for real except the runtime
/// adapters' own.
///
/// [`advance`]: ManualTimer::advance
/// [`next_deadline`]: ManualTimer::next_deadline
/// [`advance_to_next`]: ManualTimer::advance_to_next
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::time::{ManualTimer, Timer};
/// use futures_util::FutureExt;
///
/// let timer = ManualTimer::new();
/// let mut late = Box::pin(timer.sleep(Duration::from_secs(2)));
/// let mut early = Box::pin(timer.sleep(Duration::from_secs(1)));
/// assert!((&mut late).now_or_never().is_none());
/// assert!((&mut early).now_or_never().is_none());
///
/// assert_eq!(timer.advance_to_next(), Some(Duration::from_secs(1)));
/// assert!((&mut early).now_or_never().is_some());
/// assert!((&mut late).now_or_never().is_none());
///
/// timer.advance(Duration::MAX); // saturates; never panics
/// assert_eq!(timer.now(), Duration::MAX);
/// assert!(late.now_or_never().is_some());
/// ```
#[derive(Clone, Default)]
pub struct ManualTimer {
    shared: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    now: Duration,
    sleepers: BTreeMap<(Duration, u64), Waker>,
    next_id: u64,
}

impl ManualTimer {
    /// A new clock at time zero with no sleepers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `duration` (saturating at [`Duration::MAX`]) and wakes every
    /// sleeper whose deadline is now reached, earliest deadline first.
    ///
    /// Woken sleepers complete when next polled. Time jumps in one step: a task woken here
    /// reads the new time, not its own deadline. To visit each deadline in turn, use
    /// [`advance_to_next`](ManualTimer::advance_to_next).
    pub fn advance(&self, duration: Duration) {
        let due = self.shared.with(|state| {
            let target = state.now.saturating_add(duration);
            state.set_time(target)
        });
        wake_all(due);
    }

    /// Moves time forward to `instant`, if it is later than now, waking due sleepers as
    /// [`advance`](ManualTimer::advance) does. An earlier `instant` changes nothing: time
    /// never goes backwards.
    pub fn advance_to(&self, instant: Duration) {
        let due = self.shared.with(|state| state.set_time(instant));
        wake_all(due);
    }

    /// The earliest deadline among registered sleepers, or `None` if nothing sleeps.
    ///
    /// A sleep registers on its first poll that returns `Pending`; one that was created but
    /// never polled is not counted.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.shared.with(|state| state.next_deadline())
    }

    /// Jumps to [`next_deadline`](ManualTimer::next_deadline), waking the sleepers due then,
    /// and returns it; `None` (and no change) when nothing sleeps.
    pub fn advance_to_next(&self) -> Option<Duration> {
        let (next, due) = self.shared.with(|state| {
            let next = state.next_deadline()?;
            Some((next, state.set_time(next)))
        })?;
        wake_all(due);
        Some(next)
    }

    /// How many sleepers are registered (polled, pending, not yet woken or dropped).
    pub fn sleepers(&self) -> usize {
        self.shared.with(|state| state.sleepers.len())
    }
}

impl State {
    fn next_deadline(&self) -> Option<Duration> {
        self.sleepers.keys().next().map(|&(d, _)| d)
    }

    /// Moves time to `target` (never backwards) and takes out the wakers now due, in order,
    /// for the caller to wake once the lock is released.
    fn set_time(&mut self, target: Duration) -> Vec<Waker> {
        if target > self.now {
            self.now = target;
        }
        let mut due = Vec::new();
        while let Some(entry) = self.sleepers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            due.push(entry.remove());
        }
        due
    }
}

/// Wakes `due` in order; called with no lock held.
fn wake_all(due: Vec<Waker>) {
    for waker in due {
        waker.wake();
    }
}

impl fmt::Debug for ManualTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (now, sleepers) = self.shared.with(|state| (state.now, state.sleepers.len()));
        f.debug_struct("ManualTimer")
            .field("now", &now)
            .field("sleepers", &sleepers)
            .finish()
    }
}

impl Timer for ManualTimer {
    type Sleep = ManualSleep;

    fn now(&self) -> Duration {
        self.shared.with(|state| state.now)
    }

    fn sleep_until(&self, deadline: Duration) -> ManualSleep {
        ManualSleep {
            timer: self.clone(),
            deadline,
            id: None,
        }
    }
}

/// The sleep of a [`ManualTimer`]; completes once the clock reaches its deadline.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct ManualSleep {
    timer: ManualTimer,
    deadline: Duration,
    /// The key of this sleep's entry, once registered.
    id: Option<u64>,
}

impl ManualSleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl fmt::Debug for ManualSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.id.is_some())
            .finish()
    }
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let deadline = this.deadline;
        let id = &mut this.id;
        // A replaced waker may run arbitrary code when dropped (even touch this timer): it
        // leaves the section and is dropped after the lock is released.
        let (ready, stale) = this.timer.shared.with(|state| {
            if state.now >= deadline {
                let stale = id
                    .take()
                    .and_then(|id| state.sleepers.remove(&(deadline, id)));
                return (true, stale);
            }
            let key = (
                deadline,
                *id.get_or_insert_with(|| {
                    state.next_id += 1;
                    state.next_id - 1
                }),
            );
            let stale = match state.sleepers.get_mut(&key) {
                Some(waker) if waker.will_wake(cx.waker()) => None,
                Some(waker) => Some(core::mem::replace(waker, cx.waker().clone())),
                None => state.sleepers.insert(key, cx.waker().clone()),
            };
            (false, stale)
        });
        drop(stale);
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let key = (self.deadline, id);
            // Dropped after the section: a waker's drop may touch this timer.
            let stale = self.timer.shared.with(|state| state.sleepers.remove(&key));
            drop(stale);
        }
    }
}
