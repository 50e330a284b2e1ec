//! With the `tracing` feature, every sealed batch emits one debug event with its row count and
//! the seal reason. Its own test binary, because it installs a global subscriber.

#![cfg(feature = "tracing")]

use core::convert::Infallible;
use core::fmt;
use core::time::Duration;
use std::sync::Mutex;

use dike::batch::{BatchConfig, Batcher};
use dike::time::ManualTimer;
use futures_util::FutureExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Collects `(level, fields)` of every event, fields as `name=value` joined by spaces.
struct Collect(Mutex<Vec<(Level, String)>>);

static EVENTS: Collect = Collect(Mutex::new(Vec::new()));

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(&format!("{}={value:?}", field.name()));
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
        let mut fields = String::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn each_sealed_batch_emits_one_debug_event() {
    tracing::subscriber::set_global_default(&EVENTS).unwrap();
    let timer = ManualTimer::new();
    let config = BatchConfig::new(2, Duration::from_millis(10));
    let batcher = Batcher::new(timer.clone(), config, |rows: Vec<u8>| async move {
        Ok::<_, Infallible>(rows)
    })
    .unwrap();
    // By size: 1 + 2 rows.
    let mut a = Box::pin(batcher.call(vec![1]));
    assert!(a.as_mut().now_or_never().is_none());
    assert_eq!(
        batcher.call(vec![2, 3]).now_or_never(),
        Some(Ok(vec![2, 3]))
    );
    assert_eq!(a.now_or_never(), Some(Ok(vec![1])));
    // By time.
    let mut b = Box::pin(batcher.call(vec![4]));
    assert!(b.as_mut().now_or_never().is_none());
    timer.advance(Duration::from_millis(10));
    assert_eq!(b.now_or_never(), Some(Ok(vec![4])));
    // Explicitly.
    let mut c = Box::pin(batcher.call(vec![5]));
    assert!(c.as_mut().now_or_never().is_none());
    batcher.flush();
    assert_eq!(c.now_or_never(), Some(Ok(vec![5])));

    let events = EVENTS.0.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            (
                Level::DEBUG,
                "message=batch: sealed rows=3 reason=Size".to_string()
            ),
            (
                Level::DEBUG,
                "message=batch: sealed rows=1 reason=Time".to_string()
            ),
            (
                Level::DEBUG,
                "message=batch: sealed rows=1 reason=Explicit".to_string()
            ),
        ]
    );
}
