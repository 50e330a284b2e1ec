//! Interrupt safety of the gate, on the host: a signal handler stands in for an interrupt
//! handler, and a critical-section implementation that masks the signal on this thread stands
//! in for one that masks interrupts (as `cortex-m`'s `critical-section-single-core` does).
//!
//! The handler drops permits while the test thread is inside gate operations (registering a
//! waiter, polling it, cancelling one, `try_enter`, `stats`). With a lock that an interrupt
//! cannot wait for (the spin lock dike had before), the first signal that lands while the lock
//! is held spins for ever; here the section defers the signal until it ends.
//!
//! It needs dike without `std` (so its lock is the critical-section one):
//!
//! ```sh
//! timeout 120 cargo test --no-default-features --features alloc --test isr
//! ```
//!
//! With `std` it prints that it only runs without std and succeeds. A watchdog thread exits
//! with code 3 if the test thread stops making progress (a handler stuck on a lock cannot be
//! unwound).

#[cfg(feature = "std")]
fn main() {
    println!(
        "isr: skipped: only runs without std \
         (cargo test --no-default-features --features alloc --test isr)"
    );
}

#[cfg(all(not(feature = "std"), not(unix)))]
fn main() {
    println!("isr: skipped: needs Unix signals");
}

#[cfg(all(not(feature = "std"), unix))]
fn main() {
    isr::run();
}

#[cfg(all(not(feature = "std"), unix))]
mod isr {
    use core::cell::RefCell;
    use core::future::Future;
    use core::pin::Pin;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use core::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use dike::gate::{Enter, Gate, Permit};

    /// The "interrupt".
    const SIG: libc::c_int = libc::SIGALRM;
    /// Signals to take before the run ends.
    const SIGNALS: usize = 100_000;
    /// The interval timer's period.
    const PERIOD_US: libc::suseconds_t = 50;
    /// No progress for this long means a handler is stuck.
    const STALL: Duration = Duration::from_secs(5);

    /// The critical-section implementation of this binary: blocks `SIG` on the calling thread.
    /// The restore state says whether it was blocked already (nested sections, or a section
    /// inside the handler, where the kernel blocks `SIG` itself).
    struct SigMaskCs;
    critical_section::set_impl!(SigMaskCs);

    fn sig_set() -> libc::sigset_t {
        // SAFETY: `sigemptyset` initialises the set; `sigaddset` with a valid signal.
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, SIG);
            set
        }
    }

    // SAFETY: a section masks `SIG` on its thread, and every user of the gate (the test thread
    // and the handler running on it) runs on that one thread, so a section is never entered
    // twice at once.
    unsafe impl critical_section::Impl for SigMaskCs {
        unsafe fn acquire() -> bool {
            let set = sig_set();
            // SAFETY: valid sets; `old` is written by the call.
            unsafe {
                let mut old: libc::sigset_t = core::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
                libc::sigismember(&old, SIG) == 1
            }
        }

        unsafe fn release(was_blocked: bool) {
            if !was_blocked {
                let set = sig_set();
                // SAFETY: a valid set.
                unsafe {
                    libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
                }
            }
        }
    }

    static GATE: Gate = Gate::new(2);
    /// The permit the handler drops.
    static SLOT: critical_section::Mutex<RefCell<Option<Permit<'static>>>> =
        critical_section::Mutex::new(RefCell::new(None));

    static SIGNALLED: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    /// Set while the test thread is inside a gate operation.
    static IN_GATE: AtomicBool = AtomicBool::new(false);
    static INSIDE: AtomicUsize = AtomicUsize::new(0);
    static PROGRESS: AtomicUsize = AtomicUsize::new(0);

    /// The "interrupt handler": drops the stored permit, if any. No allocation, no lock but
    /// the gate's own (through the critical section), no printing.
    extern "C" fn on_signal(_: libc::c_int) {
        SIGNALLED.fetch_add(1, Ordering::Relaxed);
        if IN_GATE.load(Ordering::Relaxed) {
            INSIDE.fetch_add(1, Ordering::Relaxed);
        }
        let permit = critical_section::with(|cs| SLOT.borrow_ref_mut(cs).take());
        if let Some(permit) = permit {
            // A waiter is queued, so this release takes the gate's lock and hands over.
            drop(permit);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn store(permit: Permit<'static>) {
        let old = critical_section::with(|cs| SLOT.borrow_ref_mut(cs).replace(permit));
        assert!(old.is_none(), "the slot was full");
    }

    fn poll(
        enter: &mut Enter<'static>,
    ) -> Poll<Result<Permit<'static>, dike::error::TooManyCalls>> {
        Pin::new(enter).poll(&mut Context::from_waker(Waker::noop()))
    }

    fn set_timer(period_us: libc::suseconds_t) {
        let interval = libc::timeval {
            tv_sec: 0,
            tv_usec: period_us,
        };
        let timer = libc::itimerval {
            it_interval: interval,
            it_value: interval,
        };
        // SAFETY: a valid timer value; the old value is not asked for.
        let rc = unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, core::ptr::null_mut()) };
        assert_eq!(rc, 0, "setitimer");
    }

    fn mask_signal(how: libc::c_int) {
        let set = sig_set();
        // SAFETY: a valid set.
        let rc = unsafe { libc::pthread_sigmask(how, &set, core::ptr::null_mut()) };
        assert_eq!(rc, 0, "pthread_sigmask");
    }

    fn install_handler() {
        // SAFETY: a zeroed sigaction with an empty mask and a handler of the right type.
        unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(libc::sigaction(SIG, &action, core::ptr::null_mut()), 0);
        }
    }

    /// Exits the process with code 3 if `PROGRESS` stalls (a handler stuck on a lock never
    /// returns, so nothing else could end the run).
    fn spawn_watchdog() {
        // Spawned with `SIG` blocked, so the process-directed timer signal always lands on
        // the test thread (threads inherit the mask).
        mask_signal(libc::SIG_BLOCK);
        std::thread::spawn(|| {
            let mut last = PROGRESS.load(Ordering::Relaxed);
            let mut since = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let now = PROGRESS.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() > STALL {
                    eprintln!(
                        "isr: STALLED for {STALL:?}: {now} rounds, {} signals, {} permits \
                         dropped by the handler, inside a gate operation: {}",
                        SIGNALLED.load(Ordering::Relaxed),
                        DROPPED.load(Ordering::Relaxed),
                        IN_GATE.load(Ordering::Relaxed),
                    );
                    // SAFETY: ends the process at once; the stuck thread cannot be unwound.
                    unsafe { libc::_exit(3) };
                }
            }
        });
        mask_signal(libc::SIG_UNBLOCK);
    }

    pub(super) fn run() {
        let start = Instant::now();
        spawn_watchdog();
        install_handler();

        // Limit 2: `held` for the whole run, the other one circulates between the handler
        // (which drops it) and the queued waiter (which gets it and stores it again).
        let held = GATE.try_enter().expect("free");
        let first = GATE.try_enter().expect("free");
        let mut waiter = GATE.enter();
        assert!(poll(&mut waiter).is_pending(), "the gate is full");
        store(first);

        let (mut grants, mut refused) = (0_usize, 0_usize);
        set_timer(PERIOD_US);
        while SIGNALLED.load(Ordering::Relaxed) < SIGNALS {
            IN_GATE.store(true, Ordering::Relaxed);
            // Poll the waiter; once served, queue the next one first, then store the permit
            // (stored first, the handler could release it into an empty queue).
            if let Poll::Ready(permit) = poll(&mut waiter) {
                let permit = permit.expect("no bound on waiters");
                grants += 1;
                waiter = GATE.enter();
                assert!(poll(&mut waiter).is_pending(), "the gate is full");
                store(permit);
            }
            // Barging is refused: both permits are held or handed over.
            assert!(GATE.try_enter().is_err(), "admitted beyond the limit");
            refused += 1;
            // Register and cancel a second waiter.
            let mut other = GATE.enter();
            assert!(poll(&mut other).is_pending(), "the gate is full");
            drop(other);
            let stats = GATE.stats();
            assert_eq!(stats.in_use, 2, "{stats:?}");
            assert!(stats.waiting <= 1, "{stats:?}");
            IN_GATE.store(false, Ordering::Relaxed);
            PROGRESS.fetch_add(1, Ordering::Relaxed);
        }
        set_timer(0);
        mask_signal(libc::SIG_BLOCK);

        let signalled = SIGNALLED.load(Ordering::Relaxed);
        let dropped = DROPPED.load(Ordering::Relaxed);
        let inside = INSIDE.load(Ordering::Relaxed);
        // Every hand-off came from a permit the handler dropped; the last drop may have
        // granted the waiter without the loop seeing it yet.
        assert!(
            grants <= dropped && dropped <= grants + 1,
            "grants {grants}, dropped {dropped}"
        );
        assert!(
            dropped >= 1_000,
            "the handler dropped only {dropped} permits"
        );
        assert!(
            inside >= 1_000,
            "only {inside} signals landed in a gate operation"
        );

        // Tear down: nothing lost, nothing leaked, every count consistent.
        drop(critical_section::with(|cs| SLOT.borrow_ref_mut(cs).take()));
        drop(waiter);
        drop(held);
        let stats = GATE.stats();
        assert_eq!((stats.in_use, stats.waiting), (0, 0), "{stats:?}");
        assert_eq!(stats.admitted, 2 + grants, "{stats:?}");
        assert_eq!(stats.rejected, refused, "{stats:?}");
        let both = (GATE.try_enter(), GATE.try_enter());
        assert!(both.0.is_ok() && both.1.is_ok(), "a permit was lost");
        drop(both);

        println!(
            "isr: ok: {signalled} signals, {dropped} permits dropped by the handler, {inside} \
             signals during a gate operation, {} rounds, in {:.1?}",
            PROGRESS.load(Ordering::Relaxed),
            start.elapsed()
        );
    }
}
