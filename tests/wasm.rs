//! `WasmTimer` in Node via wasm-bindgen-test:
//! `cargo test --target wasm32-unknown-unknown --features wasm --test wasm`.
//!
//! On the host (`cargo test --features wasm --test wasm`), only what must not call any
//! JavaScript runs: building sleeps and timed gate entries (a JavaScript call panics there).

#[cfg(target_arch = "wasm32")]
#[path = "adapters/common.rs"]
mod common;

#[cfg(target_arch = "wasm32")]
mod node {
    use core::future::Future;
    use core::time::Duration;

    use dike::gate::Gate;
    use dike::time::{Timer, WasmTimer};
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    async fn wasm_timer_in_node() {
        let line = super::common::check_timer("wasm (node)", WasmTimer::new(), None).await;
        wasm_bindgen_test::console_log!("{line}");
    }

    #[wasm_bindgen_test]
    async fn sleeps_are_built_before_and_polled_later() {
        let timer = WasmTimer::new();
        let gate = Gate::new(1);
        let held = gate.try_enter().unwrap();
        let deadline = timer.now() + Duration::from_millis(2);
        let sleep = timer.sleep_until(deadline);
        let timed_out = gate.enter_until(&timer, deadline);
        sleep.await;
        assert!(timer.now() >= deadline);
        assert!(timed_out.await.is_err());
        drop(held);
        let mut sleep = core::pin::pin!(timer.sleep(Duration::from_millis(1)));
        (&mut sleep).await;
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        assert!(sleep.as_mut().poll(&mut cx).is_ready(), "stays ready");
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn building_a_sleep_calls_no_javascript() {
    use core::time::Duration;

    use dike::gate::Gate;
    use dike::time::{Timer, WasmTimer};

    // Off wasm every JavaScript call panics: these would, had building touched the clock or
    // armed a timeout.
    static TIMER: WasmTimer = WasmTimer::new();
    let gate = Gate::new(1);
    let sleep = TIMER.sleep_until(Duration::from_millis(5));
    let entry = gate.enter_until(&TIMER, Duration::from_secs(1));
    let never = TIMER.sleep_until(Duration::MAX);
    drop((sleep, entry, never));
}
