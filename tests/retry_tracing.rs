//! With the `tracing` feature, each non-final failure emits a warn event in the spirit of
//! Python dike's "Caught exception … Retrying in 0.01s ...". Its own test binary, because it
//! installs a global subscriber.

#![cfg(feature = "tracing")]

use core::fmt;
use core::pin::pin;
use core::time::Duration;
use std::sync::Mutex;

use dike::retry::{Retry, RetryBudget};
use dike::time::ManualTimer;
use futures_util::FutureExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Collects `(level, message)` of every event.
struct Collect(Mutex<Vec<(Level, String)>>);

static EVENTS: Collect = Collect(Mutex::new(Vec::new()));

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for &'static Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn each_non_final_failure_emits_a_warning() {
    tracing::subscriber::set_global_default(&EVENTS).unwrap();

    let timer = ManualTimer::new();
    let policy = Retry::fixed(Duration::from_millis(10))
        .try_with_attempts(2)
        .unwrap();
    let mut run = pin!(policy.run(&timer, || async { Err::<(), _>("Request failed!") }));
    let result = loop {
        if let Some(result) = run.as_mut().now_or_never() {
            break result;
        }
        timer.advance_to_next();
    };
    assert_eq!(result, Err("Request failed!"));
    let events = core::mem::take(&mut *EVENTS.0.lock().unwrap());
    assert_eq!(
        events,
        [(
            Level::WARN,
            "Caught error \"Request failed!\". Retrying in 0.01s ...".to_owned()
        )],
        "one warning: the final error is returned, not logged"
    );

    // A retry refused by the budget is a warning too.
    let budget = RetryBudget::with_capacity(5, 5, 1).unwrap();
    let policy = Retry::new().with_budget(&budget);
    let mut run = pin!(policy.run(&timer, || async { Err::<(), _>("down") }));
    let result = loop {
        if let Some(result) = run.as_mut().now_or_never() {
            break result;
        }
    };
    assert_eq!(result, Err("down"));
    let events = core::mem::take(&mut *EVENTS.0.lock().unwrap());
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].1, "Caught error \"down\". Retrying in 0s ...");
    assert_eq!(
        events[1].1,
        "Caught error \"down\". Retry budget exhausted, not retrying"
    );
}
