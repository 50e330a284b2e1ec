//! `WasmTimer` in Node via wasm-bindgen-test:
//! `cargo test --target wasm32-unknown-unknown --features wasm --test wasm`.

#![cfg(target_arch = "wasm32")]

#[path = "adapters/common.rs"]
mod common;

use dike::time::WasmTimer;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
async fn wasm_timer_in_node() {
    let line = common::check_timer("wasm (node)", WasmTimer::new(), None).await;
    wasm_bindgen_test::console_log!("{line}");
}
