//! # Implementation notes
//!
//! A pure state machine: every method takes `now` and nothing else from the outside world,
//! so it is tested without a runtime. The facade keeps it behind `crate::sync::Mutex`.
//!
//! ```text
//!            ratio ≥ r after ≥ min calls                 now ≥ until
//!  Closed ───────────────────────────────▶ Open{until} ─────────────▶ HalfOpen{round}
//!    ▲   ◀──────── `probes` successes ─────────────────────────────────┘  │   │
//!    │                                       ▲ any probe fails             │   │ a round lasts one
//!    │                                       └─────────────────────────────┘   │ break: stale probes'
//!    │ close()          isolate()                                              │ slots come back
//!    └─────────── Isolated ◀──────── (any state)                               └──▶ HalfOpen{new round}
//! ```
//!
//! Every transition bumps `epoch`. A ticket (a permit) remembers the epoch it was issued in;
//! a result whose ticket is of an older epoch is *late*: it is counted in `late` and changes
//! nothing (it can neither re-open nor extend an open breaker, nor close a half-open one).
//! A half-open round that lasts one break duration without concluding expires: the epoch
//! moves on, so its hung probes become late and their slots are free again; successes
//! already seen are kept. The breaker can never stay half-open with every slot held by a
//! probe that will never answer.
//!
//! The break after the `n`-th consecutive opening (without a close in between) is
//! `BreakDuration::for_opening(n)`: fixed, or `first · factorⁿ⁻¹` capped.

use core::time::Duration;

use super::window::Window;

/// A permit's identity: the epoch it was issued in, and whether it is a half-open probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) epoch: u64,
    pub(crate) probe: bool,
}

/// What a finished call reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    Success,
    Failure,
    /// Says nothing about the dependency (cancelled, or refused by another layer).
    Ignore,
}

/// The breaker's state, as reported to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls pass and are counted.
    Closed,
    /// Calls are refused until the break ends.
    Open,
    /// A few probe calls pass; their results close or re-open the breaker.
    HalfOpen,
    /// Opened by hand with [`isolate`](super::Breaker::isolate): every call is refused
    /// until [`close`](super::Breaker::close).
    Isolated,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Duration,
        length: Duration,
    },
    HalfOpen {
        round_start: Duration,
        length: Duration,
        in_flight: u32,
        successes: u32,
    },
    Isolated,
}

/// How long the breaker stays open: fixed, or growing with each consecutive opening.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::breaker::BreakDuration;
///
/// let s = Duration::from_secs;
/// let backoff = BreakDuration::exponential(s(5), 2.0, s(60))?;
/// let lengths: Vec<_> = (1..=6).map(|n| backoff.for_opening(n)).collect();
/// assert_eq!(lengths, [s(5), s(10), s(20), s(40), s(60), s(60)]);
/// assert_eq!(BreakDuration::fixed(s(5)).for_opening(9), s(5));
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakDuration {
    first: Duration,
    factor: f64,
    cap: Duration,
}

impl BreakDuration {
    /// The same break every time.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// let fixed = dike::breaker::BreakDuration::fixed(Duration::from_secs(30));
    /// assert_eq!(fixed.for_opening(3), Duration::from_secs(30));
    /// ```
    pub const fn fixed(length: Duration) -> Self {
        Self {
            first: length,
            factor: 1.0,
            cap: length,
        }
    }

    /// `first` for the first opening, `factor` times longer for each consecutive one (a
    /// failed half-open probe re-opens: that is the next opening), never above `cap`. A close
    /// starts the count again.
    ///
    /// # Errors
    ///
    /// [`ConfigError`](crate::error::ConfigError) naming `factor` unless it is finite and at
    /// least 1, or `cap` when it is below `first`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::breaker::BreakDuration;
    ///
    /// let s = Duration::from_secs;
    /// assert_eq!(BreakDuration::exponential(s(1), 3.0, s(60))?.for_opening(3), s(9));
    /// assert!(BreakDuration::exponential(s(10), 2.0, s(5)).is_err());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn exponential(
        first: Duration,
        factor: f64,
        cap: Duration,
    ) -> Result<Self, crate::error::ConfigError> {
        use crate::error::{ConfigError, ConfigValue};
        if !factor.is_finite() || factor < 1.0 {
            return Err(ConfigError::new(
                "factor",
                ConfigValue::Float(factor),
                "a finite number of at least 1",
            ));
        }
        if cap.as_nanos() < first.as_nanos() {
            return Err(ConfigError::new(
                "cap",
                ConfigValue::Duration(cap),
                "at least the first break",
            ));
        }
        Ok(Self { first, factor, cap })
    }

    /// The break after the `n`-th consecutive opening (`n ≥ 1`; 0 is read as 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// let b = dike::breaker::BreakDuration::exponential(Duration::from_secs(5), 2.0, Duration::from_secs(60))?;
    /// assert_eq!(b.for_opening(2), Duration::from_secs(10));
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn for_opening(&self, n: u32) -> Duration {
        let mut length = self.first;
        let mut k = 1;
        // Multiply step by step: no `powi` in core, and the cap stops the loop early.
        while k < n && length < self.cap {
            length = length.mul_f64(self.factor).min(self.cap);
            k += 1;
        }
        length.min(self.cap)
    }
}

/// The breaker's settings, fixed at construction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) failure_ratio: f64,
    pub(crate) min_calls: u32,
    pub(crate) probes: u32,
    pub(crate) breaks: BreakDuration,
    pub(crate) slow_call: Option<Duration>,
    pub(crate) on_event: Option<fn(super::BreakerEvent)>,
}

/// The counters of [`BreakerStats`](super::BreakerStats), kept beside the state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) rejected: u64,
    pub(crate) late: u64,
    pub(crate) opened: u64,
}

/// The state machine.
#[derive(Debug, Clone)]
pub(crate) struct Engine<W> {
    pub(crate) window: W,
    phase: Phase,
    epoch: u64,
    // Consecutive openings since the last close.
    openings: u32,
    pub(crate) counters: Counters,
    // The latest `now` seen, for reading a time window outside a call.
    pub(crate) last_now: Duration,
}

/// A transition, for the facade's hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    To(BreakerState),
}

impl<W: Window> Engine<W> {
    pub(crate) const fn new(window: W) -> Self {
        Self {
            window,
            phase: Phase::Closed,
            epoch: 0,
            openings: 0,
            counters: Counters {
                rejected: 0,
                late: 0,
                opened: 0,
            },
            last_now: Duration::ZERO,
        }
    }

    pub(crate) fn state(&self, now: Duration) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until, .. } if now < until => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
            Phase::Isolated => BreakerState::Isolated,
        }
    }

    /// Admits a call at `now`, or refuses it with how long until a call may pass (`None`
    /// while isolated).
    pub(crate) fn acquire(
        &mut self,
        now: Duration,
        config: &Config,
    ) -> (Result<Ticket, Option<Duration>>, Transition) {
        self.last_now = self.last_now.max(now);
        let mut transition = Transition::None;
        if let Phase::Open { until, length } = self.phase {
            if now < until {
                self.counters.rejected += 1;
                return (Err(Some(until - now)), transition);
            }
            self.phase = Phase::HalfOpen {
                round_start: now,
                length,
                in_flight: 0,
                successes: 0,
            };
            self.epoch += 1;
            transition = Transition::To(BreakerState::HalfOpen);
        }
        let result = match &mut self.phase {
            Phase::Closed => Ok(Ticket {
                epoch: self.epoch,
                probe: false,
            }),
            Phase::HalfOpen {
                round_start,
                length,
                in_flight,
                ..
            } => {
                if now >= round_start.saturating_add(*length) && *in_flight > 0 {
                    // A round lasted a whole break: its unanswered probes are hung. Their
                    // slots come back; their results, if any, will be late.
                    *round_start = now;
                    *in_flight = 0;
                    self.epoch += 1;
                }
                if *in_flight < config.probes {
                    *in_flight += 1;
                    Ok(Ticket {
                        epoch: self.epoch,
                        probe: true,
                    })
                } else {
                    let free_at = round_start.saturating_add(*length);
                    Err(Some(free_at.saturating_sub(now)))
                }
            }
            Phase::Isolated => Err(None),
            Phase::Open { .. } => unreachable!("left above"),
        };
        if result.is_err() {
            self.counters.rejected += 1;
        }
        (result, transition)
    }

    /// Records the result of the call `ticket` admitted.
    pub(crate) fn complete(
        &mut self,
        now: Duration,
        ticket: Ticket,
        report: Report,
        config: &Config,
    ) -> Transition {
        self.last_now = self.last_now.max(now);
        if ticket.epoch != self.epoch {
            if report != Report::Ignore {
                self.counters.late += 1;
            }
            return Transition::None;
        }
        if ticket.probe {
            let Phase::HalfOpen {
                in_flight,
                successes,
                ..
            } = &mut self.phase
            else {
                // Same epoch, so still the half-open phase it was issued in.
                return Transition::None;
            };
            *in_flight = in_flight.saturating_sub(1);
            match report {
                Report::Ignore => Transition::None,
                Report::Failure => self.open(now, config),
                Report::Success => {
                    *successes += 1;
                    if *successes >= config.probes {
                        self.close();
                        Transition::To(BreakerState::Closed)
                    } else {
                        Transition::None
                    }
                }
            }
        } else {
            if report == Report::Ignore || !matches!(self.phase, Phase::Closed) {
                return Transition::None;
            }
            self.window.record(now, report == Report::Failure);
            let (calls, failures) = self.window.counts(now);
            if calls >= config.min_calls
                && f64::from(failures) >= config.failure_ratio * f64::from(calls)
            {
                self.open(now, config)
            } else {
                Transition::None
            }
        }
    }

    fn open(&mut self, now: Duration, config: &Config) -> Transition {
        self.openings = self.openings.saturating_add(1);
        let length = config.breaks.for_opening(self.openings);
        self.phase = Phase::Open {
            until: now.saturating_add(length),
            length,
        };
        self.epoch += 1;
        self.counters.opened += 1;
        Transition::To(BreakerState::Open)
    }

    pub(crate) fn close(&mut self) {
        self.phase = Phase::Closed;
        self.window.clear();
        self.openings = 0;
        self.epoch += 1;
    }

    pub(crate) fn isolate(&mut self) {
        self.phase = Phase::Isolated;
        self.epoch += 1;
    }

    /// Probes in flight (0 unless half-open).
    pub(crate) fn probes_in_flight(&self) -> u32 {
        match self.phase {
            Phase::HalfOpen { in_flight, .. } => in_flight,
            _ => 0,
        }
    }
}
