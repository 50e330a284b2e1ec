//! Throttle and Retry on `WasmTimer` where a browser user runs them: headless Chromium (and
//! Node). The browser clamps `setTimeout` and coarsens `performance.now()`; these tests check
//! that no sleep fires early and that admissions stay spaced under that resolution.
//!
//! Node: `cargo test --target wasm32-unknown-unknown --features wasm --test web`;
//! Chromium: the same with `WASM_BINDGEN_USE_BROWSER=1` (chromium and chromium-driver
//! installed; `webdriver.json` beside `Cargo.toml` gives Chromium's flags).

#![cfg(target_arch = "wasm32")]

use core::cell::Cell;
use core::num::NonZeroU32;
use core::time::Duration;
use std::rc::Rc;

use dike::retry::Retry;
use dike::throttle::Throttle;
use dike::time::{Timer, WasmTimer};
use wasm_bindgen_test::{console_log, wasm_bindgen_test};

/// An independent wall clock (milliseconds), to catch early firing against the host's own time.
fn wall_ms() -> f64 {
    js_sys::Date::now()
}

/// Whether the test runs in a page (Chromium) rather than Node.
fn host() -> &'static str {
    let global = js_sys::global();
    if js_sys::Reflect::has(&global, &"document".into()).unwrap_or(false) {
        "browser"
    } else {
        "node"
    }
}

#[wasm_bindgen_test]
async fn sleeps_never_fire_early() {
    let timer = WasmTimer::new();
    for ms in [1.0_f64, 4.0, 7.5, 16.0] {
        let d = Duration::from_secs_f64(ms / 1000.0);
        let deadline = timer.now() + d;
        let wall = wall_ms();
        timer.sleep_until(deadline).await;
        let late = timer.now().checked_sub(deadline);
        assert!(late.is_some(), "{}: a {ms} ms sleep fired early", host());
        // Date.now() has whole milliseconds: allow its rounding, nothing more.
        assert!(
            wall_ms() - wall >= ms.floor() - 1.0,
            "{}: wall clock",
            host()
        );
        console_log!("{}: {ms} ms sleep ended {:?} late", host(), late.unwrap());
    }
}

/// `WasmTimer` that remembers its latest `now()` reading: the instant the throttle decided on.
#[derive(Clone)]
struct Recording {
    inner: WasmTimer,
    last: Rc<Cell<Duration>>,
}

impl Timer for Recording {
    type Sleep = <WasmTimer as Timer>::Sleep;

    fn now(&self) -> Duration {
        let now = self.inner.now();
        self.last.set(now);
        now
    }

    fn sleep_until(&self, deadline: Duration) -> Self::Sleep {
        self.inner.sleep_until(deadline)
    }
}

#[wasm_bindgen_test]
async fn throttle_spaces_admissions() {
    let timer = Recording {
        inner: WasmTimer::new(),
        last: Rc::new(Cell::new(Duration::ZERO)),
    };
    // 50 per second, strictly spaced: one start every 20 ms.
    let throttle = Throttle::per_second(50).expect("valid rate");
    let interval = Duration::from_millis(20);
    let mut admitted = Vec::new();
    for _ in 0..10 {
        throttle.acquire(timer.clone()).await;
        // The clock reading the admission was decided on (a reading taken after the await
        // could lag it by any preemption of the host).
        admitted.push(timer.last.get());
    }
    // With burst 1 each admission comes at least one interval after the one before, on the
    // timer's own clock, whatever the browser's timer resolution.
    for pair in admitted.windows(2) {
        assert!(
            pair[1] - pair[0] >= interval,
            "{}: admissions {admitted:?}",
            host()
        );
    }
    let gaps: Vec<_> = admitted.windows(2).map(|w| w[1] - w[0]).collect();
    console_log!("{}: throttle gaps {gaps:?}", host());
}

#[wasm_bindgen_test]
async fn retry_waits_out_its_backoff() {
    let timer = WasmTimer::new();
    let calls = Cell::new(0u32);
    let policy = Retry::exponential(Duration::from_millis(10), 2.0)
        .expect("a valid backoff")
        .with_attempts(NonZeroU32::new(4).expect("4 attempts"));
    let start = timer.now();
    let wall = wall_ms();
    let result = policy
        .run(&timer, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err("busy") } else { Ok(n) } }
        })
        .await;
    let elapsed = timer.now() - start;
    assert_eq!(result, Ok(3));
    assert!(
        elapsed >= Duration::from_millis(30),
        "{}: {elapsed:?}",
        host()
    );
    assert!(wall_ms() - wall >= 29.0, "{}: wall clock", host());
    console_log!("{}: retry succeeded after 3 calls in {elapsed:?}", host());
}
