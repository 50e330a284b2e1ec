//! dike on a Cortex-M3 (QEMU's lm3s6965evb), as an embedded user writes it: `static`
//! primitives, embassy tasks, `EmbassyTimer`, and an interrupt handler that drops gate permits.
//!
//! - A `Gate` of 2 shared by three worker tasks that hold their permit across awaits, a task
//!   that parks permits for the SysTick interrupt to drop (from interrupt context), and a task
//!   that hammers the gate (`stats`, `try_enter`, a waiter registered and cancelled) so that
//!   ticks land while the gate's critical sections are held.
//! - A `Throttle` of 100/s pacing a task; its admission times are read from the embassy clock.
//! - A `Retry` with exponential backoff around a flaky fake sensor driver.
//! - On a small heap (`embedded-alloc`): a `Batcher` turning six single-row calls into batches
//!   of 4 (by size) and 2 (by time), and a `Coalescer` sharing one execution among five
//!   identical requests; both driven concurrently inside one task by `dike::run::run_all`.
//!
//! The firmware checks its own invariants, prints a report over semihosting and exits with
//! code 0 only when every check held (run: `cargo run --release` in this folder, which starts
//! QEMU through the runner in `.cargo/config.toml`).

#![no_std]
#![no_main]

extern crate alloc;

mod driver;

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::convert::Infallible;
use core::future::{Future, poll_fn};
use core::hash::{BuildHasher, Hasher};
use core::num::NonZeroU32;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use core::task::Poll;
use core::time::Duration;

use cortex_m as _; // links cortex-m's critical-section implementation
use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hprintln};
use critical_section::Mutex;
use dike::batch::{BatchConfig, Batcher};
use dike::coalesce::{Coalescer, NoHooks};
use dike::gate::{Gate, Permit};
use dike::retry::Retry;
use dike::run::{Limits, run_all};
use dike::throttle::{Quota, Throttle};
use dike::time::{EmbassyTimer, Timer};
use embassy_executor::Spawner;
use embedded_alloc::LlffHeap as Heap;

#[global_allocator]
static HEAP: Heap = Heap::empty();
const HEAP_SIZE: usize = 8 * 1024;

/// At most two calls inside at once.
static GATE: Gate = Gate::new(2);
/// 100 starts per second, strictly spaced (burst 1).
static THROTTLE: Throttle = Throttle::const_new(Quota::per_second(100));

/// A permit handed over to the SysTick handler, which drops it on its next tick.
static PARKED: Mutex<RefCell<Option<Permit<'static>>>> = Mutex::new(RefCell::new(None));

const WORKERS: usize = 3;
const WORKER_ROUNDS: u32 = 40;
const PARKED_ROUNDS: u32 = 50;
const THROTTLED: usize = 20;

/// Permits held, as counted by their holders (raised after entering, lowered before leaving,
/// so it never exceeds the permits really out).
static INSIDE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ADMITTED: AtomicU32 = AtomicU32::new(0);
static TICKS: AtomicU32 = AtomicU32::new(0);
static ISR_DROPS: AtomicU32 = AtomicU32::new(0);
static HAMMER_OPS: AtomicU32 = AtomicU32::new(0);
static FINISHED: AtomicU32 = AtomicU32::new(0);
static WORK_DONE: AtomicBool = AtomicBool::new(false);

/// Called by the SysTick handler on every tick, in interrupt context.
pub fn on_tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    let parked = critical_section::with(|cs| PARKED.borrow_ref_mut(cs).take());
    if let Some(permit) = parked {
        INSIDE.fetch_sub(1, Ordering::SeqCst);
        ISR_DROPS.fetch_add(1, Ordering::Relaxed);
        drop(permit); // hands the permit to the next waiter and wakes its task
    }
}

fn entered() {
    ADMITTED.fetch_add(1, Ordering::Relaxed);
    let inside = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(inside, Ordering::Relaxed);
}

fn leaving() {
    INSIDE.fetch_sub(1, Ordering::SeqCst);
}

async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

#[embassy_executor::task(pool_size = WORKERS)]
async fn worker(id: u32) {
    let timer = EmbassyTimer::new();
    for round in 0..WORKER_ROUNDS {
        let permit = GATE.enter().await.expect("the gate is open");
        entered();
        // Hold the permit across an await, 1 to 3 ms.
        timer
            .sleep(Duration::from_millis(u64::from(1 + (id + round) % 3)))
            .await;
        leaving();
        drop(permit);
    }
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

/// Enters the gate and parks the permit for the interrupt handler to drop.
#[embassy_executor::task]
async fn parker() {
    let timer = EmbassyTimer::new();
    for _ in 0..PARKED_ROUNDS {
        while critical_section::with(|cs| PARKED.borrow_ref(cs).is_some()) {
            timer.sleep(Duration::from_millis(1)).await;
        }
        let permit = GATE.enter().await.expect("the gate is open");
        entered();
        critical_section::with(|cs| *PARKED.borrow_ref_mut(cs) = Some(permit));
    }
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

/// Keeps the gate's critical sections busy while ticks arrive: stats, try_enter, and a waiter
/// that registers and is cancelled.
#[embassy_executor::task]
async fn hammer() {
    while !WORK_DONE.load(Ordering::SeqCst) {
        let stats = GATE.stats();
        assert!(stats.in_use <= 2, "in use {} > limit", stats.in_use);
        if let Ok(permit) = GATE.try_enter() {
            entered();
            leaving();
            drop(permit);
        }
        {
            let mut enter = pin!(GATE.enter());
            if let Poll::Ready(Ok(permit)) =
                poll_fn(|cx| Poll::Ready(enter.as_mut().poll(cx))).await
            {
                entered();
                leaving();
                drop(permit);
            }
        } // a pending waiter is cancelled here
        HAMMER_OPS.fetch_add(1, Ordering::Relaxed);
        yield_now().await;
    }
}

static STARTS: Mutex<RefCell<[Duration; THROTTLED]>> =
    Mutex::new(RefCell::new([Duration::ZERO; THROTTLED]));
static LAST_READING: Mutex<Cell<Duration>> = Mutex::new(Cell::new(Duration::ZERO));

/// `EmbassyTimer` that remembers its latest `now()` reading: the instant the throttle decided
/// an admission on (a reading taken after the `.await` could lag it across a tick).
#[derive(Clone, Copy)]
struct Recording;

impl Timer for Recording {
    type Sleep = <EmbassyTimer as Timer>::Sleep;

    fn now(&self) -> Duration {
        let now = EmbassyTimer::new().now();
        critical_section::with(|cs| LAST_READING.borrow(cs).set(now));
        now
    }

    fn sleep_until(&self, deadline: Duration) -> Self::Sleep {
        EmbassyTimer::new().sleep_until(deadline)
    }
}

#[embassy_executor::task]
async fn throttled() {
    for i in 0..THROTTLED {
        THROTTLE.acquire(Recording).await;
        let admitted = critical_section::with(|cs| LAST_READING.borrow(cs).get());
        critical_section::with(|cs| STARTS.borrow_ref_mut(cs)[i] = admitted);
    }
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SensorError {
    Busy,
}

static RETRY_RESULT: Mutex<Cell<Option<(Result<u16, SensorError>, u32, Duration)>>> =
    Mutex::new(Cell::new(None));

/// A fake sensor driver that is busy for its first two reads.
#[embassy_executor::task]
async fn flaky() {
    let timer = EmbassyTimer::new();
    let calls = Cell::new(0u32);
    let policy = Retry::exponential(Duration::from_millis(5), 2.0)
        .expect("a valid backoff")
        .with_attempts(NonZeroU32::new(4).expect("4 attempts"));
    let start = timer.now();
    let result = policy
        .run(&timer, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(SensorError::Busy)
                } else {
                    Ok(42)
                }
            }
        })
        .await;
    let elapsed = timer.now() - start;
    critical_section::with(|cs| {
        RETRY_RESULT
            .borrow(cs)
            .set(Some((result, calls.get(), elapsed)))
    });
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

/// What the batch function saw, batch by batch.
static BATCH_SIZES: Mutex<RefCell<Vec<usize>>> = Mutex::new(RefCell::new(Vec::new()));
/// Whether every batched caller got exactly its own result.
static BATCH_RESULTS_OK: AtomicBool = AtomicBool::new(false);

/// Six single-row calls to a batch function (target 4 rows, at most 5 ms of waiting), run
/// concurrently in this one task.
#[embassy_executor::task]
async fn batched() {
    let config = BatchConfig::new(4, Duration::from_millis(5));
    let batcher = Batcher::new(EmbassyTimer::new(), config, |rows: Vec<u32>| {
        critical_section::with(|cs| BATCH_SIZES.borrow_ref_mut(cs).push(rows.len()));
        async move { Ok::<_, Infallible>(rows.iter().map(|row| row * 10).collect::<Vec<_>>()) }
    })
    .expect("a valid batch config");
    let results = run_all((0..6u32).map(|i| batcher.call_one(i)), Limits::new()).await;
    let ok = results
        .iter()
        .zip(0u32..)
        .all(|(result, i)| result.as_ref().ok() == Some(&(i * 10)));
    BATCH_RESULTS_OK.store(ok, Ordering::SeqCst);
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

/// FNV-1a: without `std` the coalescer's map takes a hasher from the application. (Keys here
/// are the firmware's own; keys from a network would want a keyed hasher.)
#[derive(Clone, Copy, Default)]
struct Fnv;

struct FnvHasher(u64);

impl BuildHasher for Fnv {
    type Hasher = FnvHasher;

    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

static SENSOR_READS: AtomicU32 = AtomicU32::new(0);
/// (answers equal to the one value, joined answers, keys left in flight)
static COALESCED: Mutex<Cell<(u32, u32, usize)>> = Mutex::new(Cell::new((0, 0, usize::MAX)));

/// Five identical requests for sensor 7 at once: one read, five answers.
#[embassy_executor::task]
async fn coalesced() {
    let sensors: Coalescer<u32, u32, SensorError, NoHooks, Fnv> = Coalescer::with_hasher(Fnv);
    let read = || async {
        SENSOR_READS.fetch_add(1, Ordering::SeqCst);
        EmbassyTimer::new().sleep(Duration::from_millis(3)).await;
        Ok(421)
    };
    let outcomes = run_all((0..5).map(|_| sensors.run(&7, read)), Limits::new()).await;
    let right = outcomes
        .iter()
        .filter(|outcome| outcome.result() == &Ok(421))
        .count() as u32;
    let joined = outcomes
        .iter()
        .filter(|outcome| outcome.is_joined())
        .count() as u32;
    critical_section::with(|cs| {
        COALESCED
            .borrow(cs)
            .set((right, joined, sensors.in_flight()))
    });
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

struct Report {
    checks: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments<'_>) {
        self.checks += 1;
        if ok {
            hprintln!("ok   {}: {}", name, detail);
        } else {
            self.failed += 1;
            hprintln!("FAIL {}: {}", name, detail);
        }
    }
}

#[embassy_executor::task]
async fn supervisor() {
    let timer = EmbassyTimer::new();
    let tasks = WORKERS as u32 + 5; // workers, parker, throttled, flaky, batched, coalesced
    while FINISHED.load(Ordering::SeqCst) < tasks {
        timer.sleep(Duration::from_millis(5)).await;
    }
    WORK_DONE.store(true, Ordering::SeqCst);
    // Let the last parked permit go and the hammer stop.
    timer.sleep(Duration::from_millis(3)).await;

    let mut report = Report {
        checks: 0,
        failed: 0,
    };
    let stats = GATE.stats();
    let peak = PEAK.load(Ordering::Relaxed);
    report.check(
        "gate limit",
        peak == 2 && stats.peak_in_use <= 2,
        format_args!(
            "peak held {peak} (gate's own peak {}), limit 2",
            stats.peak_in_use
        ),
    );
    let admitted = ADMITTED.load(Ordering::Relaxed);
    report.check(
        "gate accounting",
        stats.in_use == 0 && stats.waiting == 0 && stats.admitted == admitted as usize,
        format_args!(
            "in use {}, waiting {}, admitted {} (counted by holders {admitted})",
            stats.in_use, stats.waiting, stats.admitted
        ),
    );
    let drops = ISR_DROPS.load(Ordering::Relaxed);
    report.check(
        "gate from interrupt",
        drops == PARKED_ROUNDS,
        format_args!(
            "{drops} permits dropped by the SysTick handler over {} ticks, {} hammer rounds",
            TICKS.load(Ordering::Relaxed),
            HAMMER_OPS.load(Ordering::Relaxed)
        ),
    );

    let starts = critical_section::with(|cs| *STARTS.borrow_ref(cs));
    let min_gap = starts
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .min()
        .unwrap_or(Duration::ZERO);
    let span = starts[THROTTLED - 1].saturating_sub(starts[0]);
    report.check(
        "throttle spacing",
        min_gap >= Duration::from_millis(10),
        format_args!(
            "{THROTTLED} admissions at 100/s on the embassy clock: smallest gap {min_gap:?}, \
             first to last {span:?}"
        ),
    );

    let retry = critical_section::with(|cs| RETRY_RESULT.borrow(cs).get());
    let (result, calls, elapsed) = retry.unwrap_or((Err(SensorError::Busy), 0, Duration::ZERO));
    report.check(
        "retry backoff",
        result == Ok(42) && calls == 3 && elapsed >= Duration::from_millis(15),
        format_args!("{result:?} after {calls} calls in {elapsed:?} (delays 5 ms, 10 ms)"),
    );

    let sizes = critical_section::with(|cs| BATCH_SIZES.borrow_ref(cs).clone());
    let batch_ok = BATCH_RESULTS_OK.load(Ordering::SeqCst);
    report.check(
        "batcher",
        sizes == [4, 2] && batch_ok,
        format_args!(
            "6 single-row calls became batches of {sizes:?} (by size, then by time); \
             every caller got its own result: {batch_ok}"
        ),
    );

    let (right, joined, in_flight) = critical_section::with(|cs| COALESCED.borrow(cs).get());
    let reads = SENSOR_READS.load(Ordering::SeqCst);
    report.check(
        "coalescer",
        reads == 1 && right == 5 && joined == 4 && in_flight == 0,
        format_args!(
            "5 identical requests: {reads} sensor read, {right} answers of 421, {joined} joined, \
             {in_flight} keys left in flight"
        ),
    );

    hprintln!(
        "heap: {} of {} bytes in use at the end",
        HEAP.used(),
        HEAP_SIZE
    );
    if report.failed == 0 {
        hprintln!("dike firmware: all {} checks passed", report.checks);
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        hprintln!(
            "dike firmware: {} of {} checks FAILED",
            report.failed,
            report.checks
        );
        debug::exit(debug::EXIT_FAILURE);
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // SAFETY: called once, before anything allocates.
    unsafe {
        embedded_alloc::init!(HEAP, HEAP_SIZE);
    }
    driver::init(cortex_m::Peripherals::take().expect("first take").SYST);
    for id in 0..WORKERS as u32 {
        spawner.spawn(worker(id).expect("worker slot"));
    }
    spawner.spawn(parker().expect("task slot"));
    spawner.spawn(hammer().expect("task slot"));
    spawner.spawn(throttled().expect("task slot"));
    spawner.spawn(flaky().expect("task slot"));
    spawner.spawn(batched().expect("task slot"));
    spawner.spawn(coalesced().expect("task slot"));
    spawner.spawn(supervisor().expect("task slot"));
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("FAIL hard fault: {:?}", frame);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("FAIL panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
