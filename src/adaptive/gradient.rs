//! The delay-based algorithm: the limit follows `baseline / RTT`, with the baseline
//! measured on purpose, never guessed from one lucky sample.

use core::time::Duration;

use super::engine::Outcome;
use crate::error::{ConfigError, ConfigValue};

/// Fixed-point scale of the internal limit (1/256ths), so growth is smooth at small limits.
const SCALE: u64 = 256;
/// Fixed-point scale of ratios (1/1024ths).
const ONE: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting baseline samples since `since`; `pinned` once the gate was lowered to
    /// get them.
    Measuring {
        since: Duration,
        sum: u64,
        n: u32,
        pinned: bool,
        // When the first accepted call started: the cohort is the calls started from
        // `since` until `closed`, at least 16 mean RTTs after it.
        first: Duration,
        // Sum of squared RTTs (ns²), for the measurement's standard error.
        sq: u128,
        // Started by a lasting shift (or the first, or to confirm a rise): pinned at half
        // the limit, and its mean replaces the baseline as is.
        shift: bool,
        // Once precise: calls started after this are not in the cohort, and the
        // measurement ends 4 mean RTTs later (when the cohort's calls are nearly all back).
        closed: Option<Duration>,
    },
    /// Adjusting the limit; the next baseline measurement starts at `next`.
    Running { next: Duration },
}

/// A delay-based limit (Gradient2 / Vegas family) with their known failures fixed.
///
/// **The limit.** A window collects the calls that finish from one mean RTT after the last
/// change of the limit (so that every call in it ran under the current limit), at least
/// as many as the limit and at least 16. With `rtt` its mean and `se` the standard error of
/// that mean (from the window's own spread):
///
/// ```text
/// gap    = (limit − mean in-flight) / limit      (the window's calls, each with itself)
/// q      = max(tolerance − gap / 2, tolerance / 2)
/// aim    = baseline × (1 + q)
/// if |rtt − aim| ≤ 2 × se: keep collecting (up to 16 windows' worth, then start afresh)
/// g      = clamp(aim / rtt, 0.5, 1 + tolerance)
/// target = limit × g, and when growing at most max(limit, 2 × peak in-flight)
/// limit  = (limit + target) / 2
/// ```
///
/// Below the knee `rtt ≈ baseline`, so the limit grows by up to `tolerance / 2` per window;
/// above it the server queues, `rtt ≈ baseline × in_flight / capacity`, and the limit settles
/// where the in-flight calls are `capacity × (1 + q)`, and the limit itself about
/// `capacity × (1 + tolerance)`: a little above the knee, so the server never idles. A
/// [`Outcome::Dropped`] sample multiplies the limit by 0.9.
///
/// Why each rule (the upward excursions of an earlier version came from the first two):
///
/// - *The aim counts the free permits.* The RTT sees the calls in flight, the callers see the
///   limit, and the two differ: a permit freed by a completion stays free until the next
///   arrival (with Poisson arrivals at `λ` and completions at `μ < λ`, about
///   `ρ / (1 − ρ)` permits, `ρ = μ / λ`: 1.5–2 at 1.5 × overload, 0.5 at 3 ×, whatever the
///   server's size; a static limit shows the same gap), and the gate admits the limit rounded
///   down. Aiming the in-flight calls at `capacity × (1 + tolerance)` put the limit that
///   many slots higher, 10 % of a 16-worker server. The window measures the gap (its calls'
///   mean in-flight against the limit) and gives half of it back from the queue's share of
///   the tolerance: the limit keeps within the tolerance, and the queue keeps at least half
///   of it (counting all of the gap leaves too short a queue to ride out spread-out service
///   times, and a gap larger than the tolerance, when the arrivals barely exceed the
///   capacity, would leave none).
///
/// - *One mean RTT of dead time after each change.* The calls that finish just after a
///   change started under the previous limit; a window made of them answers the question
///   before last, and the loop overshoots (a step response with a one-window delay rings).
///   Right after a baseline measurement they are the pinned, unqueued calls, and read as room
///   to grow: the limit jumped above `1.25 × knee` after every measurement.
/// - *A dead band of two standard errors.* A window's mean is noisy (few calls, or spread-out
///   service times); moving the limit on noise makes it random-walk around the target, by
///   more the fewer calls per window. A window that cannot tell `rtt` from `aim` keeps
///   collecting until it can: the step is taken on evidence, and the noise sets how long
///   that takes, not how far the limit strays. No constant depends on the server.
/// - *Growth capped at twice the peak in-flight.* Netflix's guard (grow only while
///   `2 × in-flight ≥ limit`) still let one step of `tolerance / 2` pass the bound; capping
///   the target itself keeps an app-limited limit at most 2× what was used (k = 2: room for
///   a burst of twice the observed concurrency before the first refusal).
///
/// **The baseline** is the *mean* RTT of a measurement's cohort: the calls that started after
/// it began with the gate pinned (`in_flight ≤ pin`), until the mean is precise (at least
/// `samples` calls, default 32, over at least 16 mean RTTs, and 4 standard errors within
/// `tolerance × mean`, so an error in it cannot pass for the tolerance), and then every
/// call of that cohort that is back within 4 more mean RTTs (a complete cohort: cutting it
/// at a fixed end time would keep the short calls and lose the long ones, a low, "lucky"
/// mean, 7 % low with exponential service times). At low load such calls come by
/// themselves; otherwise, after a grace time (default 50 ms), the gate is pinned for as long
/// as the measurement takes (Envoy's pinned re-measure; its epoch filter is the
/// `started after` rule). Two kinds:
///
/// - *Periodic* (every `period`, default 10 s, jittered ±25 % from a seed so that clients do
///   not pin together): pinned at `limit / (1 + tolerance / 2)`, half a tolerance above the
///   knee once the limit has settled at `knee × (1 + tolerance)`, so the pin does not starve
///   the server. Its calls may queue a little, so they can read high by up to the tolerance
///   but never low: the baseline takes a fall beyond two standard errors, ignores a rise
///   within the tolerance (it cannot ratchet itself up through its own pinned queue, which
///   with a pin at the knee made it a random walk that drifted up), and a rise beyond the
///   tolerance (slower service) is confirmed by a second measurement pinned at half the
///   limit.
/// - *Trusting* (the first, with nothing to judge the initial limit by; after the limit fell
///   below half its value at the last measurement, a lasting shift or a real loss of
///   capacity; and the confirmation above): pinned at half the limit, below the knee unless
///   the limit is more than twice above it, and its mean is taken as is.
///
/// This fixes, in turn:
///
/// - *the lucky minimum* (Netflix Vegas, concurrency-limits #37): a mean of a complete
///   cohort of unqueued calls, not the smallest RTT ever seen;
/// - *upward drift under sustained overload* (Gradient2, #134): the baseline never learns
///   from queued calls, so a lasting queue cannot become the new normal;
/// - *growth while app-limited*: the limit stays at most `2 × peak in-flight`;
/// - *a lasting shift* (slower service): re-learned at once (the limit halves), or at the
///   next measurement.
///
/// **Defaults and why.** `tolerance` 0.15: enough room above the knee (0.15 × the knee, for
/// the queue and the free permits) that no worker idles between two calls, little enough
/// that latency stays within 15 % of unqueued.
/// `g ≥ 0.5`: the limit at most halves per window (a capacity loss is followed in a few
/// windows, one noisy window cannot collapse it). Two standard errors (≈ 95 %) for every
/// "is this different" test; 4 for the baseline's precision, so that its error stays a
/// quarter of the tolerance. 16 mean RTTs per cohort and 4 more for its stragglers (an
/// exponential service time leaves e⁻⁴ ≈ 2 % of the last calls out). `samples` 32 and
/// the 50 ms grace: a floor for very fast or very slow servers. `period` 10 s: a slow drift
/// of the service time is followed within seconds, and pins cost at most a few percent.
/// None of them is tuned to a server: the same defaults hold on issue 16's simulated server
/// and on two others (see `BENCHMARKS.md`), where the limit settles at 1.15–1.19 × the knee
/// on each.
///
/// Integer and fixed-point arithmetic only (no `f64` on the sample path, no `sqrt` or
/// `log10`): deterministic, `no_std`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::adaptive::{Gradient, Outcome};
///
/// let ms = Duration::from_millis;
/// let mut g = Gradient::new(20);
/// // Unqueued calls (2 in flight) give the baseline: 10 ms.
/// let mut now = ms(0);
/// while g.baseline().is_none() {
///     now += ms(10);
///     g.on_sample(now, ms(10), 2, Outcome::Success);
/// }
/// assert_eq!(g.baseline(), Some(ms(10)));
/// // Calls at twice the baseline: the server queues; the limit comes down.
/// for _ in 0..64 {
///     now += ms(1);
///     g.on_sample(now, ms(20), 20, Outcome::Success);
/// }
/// assert!(g.limit() < 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gradient {
    limit: u64,
    min: u32,
    max: u32,
    tolerance: u64,
    samples: u32,
    grace: Duration,
    period: Duration,
    seed: u64,
    baseline: Option<Duration>,
    last_rtt: Duration,
    phase: Phase,
    // The window: sum of RTTs (ns), samples, peak in-flight.
    sum: u64,
    sq: u128,
    n: u32,
    peak: u32,
    // Sum of the window's in-flight counts (each call's, itself included).
    busy: u64,
    // The limit when the baseline was last measured: falling below half of it is a lasting
    // shift (or a real capacity loss), and triggers a new measurement.
    measured_at: u64,
    // One mean RTT after the limit last changed (an adjustment, or the end of a
    // measurement): the window takes only calls that finish from then on.
    epoch: Duration,
}

impl Gradient {
    /// Starts at `initial` (clamped to `[1, 1000]`), measuring its baseline first; tolerance
    /// 0.15, 32 baseline samples, 50 ms grace, a measurement every 10 s ± 25 %.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::Gradient::new(20).limit(), 20);
    /// ```
    pub const fn new(initial: u32) -> Self {
        let initial = if initial < 1 {
            1
        } else if initial > 1000 {
            1000
        } else {
            initial
        };
        Self {
            limit: initial as u64 * SCALE,
            min: 1,
            max: 1000,
            tolerance: 154, // 0.15 × 1024
            samples: 32,
            grace: Duration::from_millis(50),
            period: Duration::from_secs(10),
            seed: 0x5EED,
            baseline: None,
            last_rtt: Duration::ZERO,
            phase: Phase::Measuring {
                since: Duration::ZERO,
                sum: 0,
                n: 0,
                pinned: false,
                first: Duration::ZERO,
                sq: 0,
                shift: true,
                closed: None,
            },
            measured_at: initial as u64 * SCALE,
            epoch: Duration::ZERO,
            sum: 0,
            sq: 0,
            n: 0,
            peak: 0,
            busy: 0,
        }
    }

    /// Keeps the limit within `[min, max]` (default `[1, 1000]`).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `min` when it is 0, or `max` when it is below `min`.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = dike::adaptive::Gradient::new(20).with_bounds(4, 500)?;
    /// assert_eq!(g.limit(), 20);
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub const fn with_bounds(mut self, min: u32, max: u32) -> Result<Self, ConfigError> {
        if min == 0 {
            return Err(ConfigError::new("min", ConfigValue::Int(0), "at least 1"));
        }
        if max < min {
            return Err(ConfigError::new(
                "max",
                ConfigValue::Int(max as i128),
                "at least min",
            ));
        }
        self.min = min;
        self.max = max;
        let limit = self.limit / SCALE;
        if limit < min as u64 {
            self.limit = min as u64 * SCALE;
        } else if limit > max as u64 {
            self.limit = max as u64 * SCALE;
        }
        Ok(self)
    }

    /// How far above the baseline the RTT may sit at the settled limit, in `(0, 1]`
    /// (default 0.15: the limit settles at about 1.15 × the knee).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `tolerance` outside `(0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(dike::adaptive::Gradient::new(20).with_tolerance(0.0).is_err());
    /// ```
    pub const fn with_tolerance(mut self, tolerance: f64) -> Result<Self, ConfigError> {
        if !(tolerance > 0.0 && tolerance <= 1.0) {
            return Err(ConfigError::new(
                "tolerance",
                ConfigValue::Float(tolerance),
                "more than 0 and at most 1",
            ));
        }
        self.tolerance = (tolerance * ONE as f64) as u64;
        Ok(self)
    }

    /// How often the baseline is measured again (jittered ±25 %; default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// let g = dike::adaptive::Gradient::new(20).with_period(Duration::from_secs(30));
    /// # let _ = g;
    /// ```
    pub const fn with_period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// The seed of the measurement jitter (fixed by default: the same samples give the same
    /// trajectory). Give each client its own.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = dike::adaptive::Gradient::new(20).with_seed(7);
    /// # let _ = g;
    /// ```
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The current limit (lower while a baseline measurement pins it: see the type's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::Gradient::new(8).limit(), 8);
    /// ```
    pub const fn limit(&self) -> u32 {
        let limit = (self.limit / SCALE) as u32;
        match self.phase {
            Phase::Measuring { pinned: true, .. } => self.pinned_limit(),
            _ => limit,
        }
    }

    /// The limit while measuring: `limit / (1 + tolerance / 2)` for a periodic measurement
    /// (half a tolerance above the knee once the limit has settled); half the limit for a
    /// trusting one (the first, after a lasting shift, or confirming a rise).
    const fn pinned_limit(&self) -> u32 {
        let half = matches!(self.phase, Phase::Measuring { shift: true, .. });
        let pinned = if half || self.baseline.is_none() {
            (self.limit / SCALE / 2) as u32
        } else {
            (self.limit * ONE / (ONE + self.tolerance / 2) / SCALE) as u32
        };
        if pinned < self.min {
            self.min
        } else if pinned < 1 {
            1
        } else {
            pinned
        }
    }

    /// The baseline RTT, once measured.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::Gradient::new(8).baseline(), None);
    /// ```
    pub const fn baseline(&self) -> Option<Duration> {
        self.baseline
    }

    /// The last sample's RTT.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(dike::adaptive::Gradient::new(8).last_rtt(), core::time::Duration::ZERO);
    /// ```
    pub const fn last_rtt(&self) -> Duration {
        self.last_rtt
    }

    /// Feeds one sample: `rtt` of a call that finished at `now`, with `in_flight` calls
    /// (itself included) in flight when it started. Returns the new limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use dike::adaptive::{Gradient, Outcome};
    /// let mut g = Gradient::new(10);
    /// assert_eq!(g.on_sample(Duration::ZERO, Duration::ZERO, 1, Outcome::Dropped), 9);
    /// ```
    pub fn on_sample(
        &mut self,
        now: Duration,
        rtt: Duration,
        in_flight: u32,
        outcome: Outcome,
    ) -> u32 {
        match outcome {
            Outcome::Ignore => return self.limit(),
            Outcome::Dropped => {
                self.limit = self.limit * 9 / 10;
                self.clamp();
                return self.limit();
            }
            Outcome::Success => {}
        }
        self.last_rtt = rtt;
        let started = now.saturating_sub(rtt);
        let rtt_ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        let pin = self.pinned_limit();
        if let Phase::Measuring {
            since,
            sum,
            n,
            pinned,
            first,
            sq,
            shift,
            closed,
            ..
        } = &mut self.phase
        {
            if started >= *since && in_flight <= pin {
                if *n == 0 {
                    *first = started;
                }
                if closed.is_none_or(|end| started <= end) {
                    *sum = sum.saturating_add(rtt_ns);
                    *sq = sq.saturating_add(u128::from(rtt_ns) * u128::from(rtt_ns));
                    *n += 1;
                }
                let mean = *sum / u64::from((*n).max(1));
                let m = u128::from(mean);
                let rtts =
                    |k: u64| first.saturating_add(Duration::from_nanos(mean.saturating_mul(k)));
                if closed.is_none() && *n >= self.samples && now >= rtts(16) {
                    // Precise: 4 standard errors within the tolerance (an error in the
                    // baseline cannot pass for the tolerance), or a long time spent.
                    let n = u128::from(*n);
                    let var_mean = (*sq / n).saturating_sub(m.saturating_mul(m)) / n;
                    let tol = m * u128::from(self.tolerance) / u128::from(ONE);
                    if var_mean.saturating_mul(16) <= tol.saturating_mul(tol) || now >= rtts(256) {
                        *closed = Some(now);
                    }
                }
                let done = closed.is_some_and(|end| {
                    now >= end.saturating_add(Duration::from_nanos(mean.saturating_mul(4)))
                });
                if done {
                    let (shift, sq, n) = (*shift, *sq, *n);
                    let Some(baseline) = self.accept(mean, sq, n, shift) else {
                        self.phase = Phase::Measuring {
                            since: now,
                            sum: 0,
                            n: 0,
                            pinned: true,
                            first: now,
                            sq: 0,
                            shift: true,
                            closed: None,
                        };
                        return self.limit();
                    };
                    self.baseline = Some(Duration::from_nanos(baseline));
                    let next = now.saturating_add(self.jittered_period());
                    self.phase = Phase::Running { next };
                    self.measured_at = self.limit;
                    self.epoch = now.saturating_add(Duration::from_nanos(mean));
                    self.reset_window();
                }
            } else if !*pinned && now >= since.saturating_add(self.grace) {
                *pinned = true;
            }
            return self.limit();
        }
        if let Phase::Running { next } = self.phase {
            if now >= next || self.limit < self.measured_at / 2 {
                self.phase = Phase::Measuring {
                    since: now,
                    sum: 0,
                    n: 0,
                    pinned: false,
                    first: now,
                    sq: 0,
                    shift: self.limit < self.measured_at / 2,
                    closed: None,
                };
                return self.limit();
            }
        }
        if now < self.epoch {
            return self.limit();
        }
        self.sum = self.sum.saturating_add(rtt_ns);
        self.sq = self
            .sq
            .saturating_add(u128::from(rtt_ns) * u128::from(rtt_ns));
        self.n += 1;
        self.peak = self.peak.max(in_flight);
        self.busy = self.busy.saturating_add(u64::from(in_flight));
        let window = ((self.limit / SCALE) as u32).max(16);
        if self.n >= window {
            if self.conclusive() {
                let mean = Duration::from_nanos(self.sum / u64::from(self.n));
                self.adjust();
                self.epoch = now.saturating_add(mean);
            } else if self.n >= window.saturating_mul(16) {
                self.reset_window();
            }
        }
        self.limit()
    }

    /// The new baseline from a measurement (`mean`, squared sum `sq`, `n` calls).
    ///
    /// After a lasting shift, the first time, or to confirm a rise (pinned at half the
    /// limit) the mean is taken as is. Otherwise the pinned calls ran at
    /// `limit / (1 + tolerance / 2)`, half a tolerance above the knee if the old baseline was
    /// right, more if it was too high: their mean can read high by the pin's own queue, up
    /// to the tolerance, never low (the cohort is complete). So the baseline moves down on
    /// any fall beyond the noise (two standard errors); a rise within the tolerance is no
    /// evidence and is ignored (the baseline cannot ratchet itself up through its own pinned
    /// queue); a larger one (slower service) returns `None`: confirm it at half the limit.
    fn accept(&self, mean: u64, sq: u128, n: u32, shift: bool) -> Option<u64> {
        let Some(old) = self.baseline else {
            return Some(mean);
        };
        if shift {
            return Some(mean);
        }
        let old = u64::try_from(old.as_nanos()).unwrap_or(u64::MAX);
        let n = u128::from(n);
        let m = u128::from(mean);
        let var_mean = (sq / n).saturating_sub(m.saturating_mul(m)) / n;
        let d = u128::from(mean.abs_diff(old));
        let significant = d.saturating_mul(d) > var_mean.saturating_mul(4);
        let ceiling = u128::from(old) * u128::from(ONE + self.tolerance) / u128::from(ONE);
        if !significant {
            Some(old)
        } else if mean < old {
            Some(mean)
        } else if m > ceiling {
            None
        } else {
            Some(old)
        }
    }

    /// Whether the window's mean RTT is off the target `baseline × (1 + tolerance)` by more
    /// than two standard errors (its own noise): only then does the limit move.
    fn conclusive(&self) -> bool {
        let Some(baseline) = self.baseline else {
            return false;
        };
        let target = self.aim(u64::try_from(baseline.as_nanos()).unwrap_or(u64::MAX));
        let n = u128::from(self.n);
        let m = u128::from(self.sum) / n;
        let var_mean = (self.sq / n).saturating_sub(m.saturating_mul(m)) / n;
        let d = m.abs_diff(target);
        d.saturating_mul(d) > var_mean.saturating_mul(4)
    }

    fn adjust(&mut self) {
        let Some(baseline) = self.baseline else {
            return;
        };
        let base = u64::try_from(baseline.as_nanos()).unwrap_or(u64::MAX);
        let mean = (self.sum / u64::from(self.n)).max(1);
        let ceiling = ONE + self.tolerance;
        let g = (self.aim(base) * u128::from(ONE) / u128::from(mean)) as u64;
        let g = g.clamp(ONE / 2, ceiling);
        let mut target = self.limit * g / ONE;
        let used = u64::from(self.peak) * 2 * SCALE;
        if target > self.limit {
            target = target.min(used.max(self.limit));
        }
        self.limit = (self.limit + target) / 2;
        self.clamp();
        self.reset_window();
    }

    fn clamp(&mut self) {
        self.limit = self
            .limit
            .clamp(u64::from(self.min) * SCALE, u64::from(self.max) * SCALE);
    }

    fn reset_window(&mut self) {
        self.sum = 0;
        self.sq = 0;
        self.n = 0;
        self.peak = 0;
        self.busy = 0;
    }

    /// The window's aim for the RTT, `baseline × (1 + q)` (see the type's docs).
    fn aim(&self, base: u64) -> u128 {
        let q = self.queue_share();
        u128::from(base) * u128::from(ONE + q) / u128::from(ONE)
    }

    /// `q`: the tolerance less half the window's gap (its limit less its calls' mean
    /// in-flight, as a share of the limit), at least half the tolerance; in 1/1024ths.
    fn queue_share(&self) -> u64 {
        let n = u64::from(self.n.max(1));
        let mean = self.busy * SCALE / n;
        let gap = self.limit.saturating_sub(mean);
        let f = gap * ONE / self.limit.max(1);
        self.tolerance.saturating_sub(f / 2).max(self.tolerance / 2)
    }

    /// `period × U(0.75, 1.25)`, from SplitMix64 over the seed.
    fn jittered_period(&mut self) -> Duration {
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 768..1280 thousandths-of-1024.
        let factor = 768 + z % 512;
        let nanos = self.period.as_nanos() * u128::from(factor) / u128::from(ONE);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}
