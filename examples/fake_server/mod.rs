//! The flaky server of the client examples, in-process: each call takes 5 ms on the given
//! timer, and every third call fails with 503.

use std::cell::Cell;
use std::time::Duration;

use dike::time::Timer;

/// What the server answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// 503: try again later.
    Unavailable,
    /// 404: retrying will not help.
    #[allow(dead_code)] // shows a permanent error that `when` refuses to retry
    NotFound,
}

impl Error {
    /// Worth retrying?
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

/// The fake server, counting the calls it gets.
pub struct FakeServer<T> {
    timer: T,
    calls: Cell<u32>,
}

impl<T: Timer> FakeServer<T> {
    pub fn new(timer: T) -> Self {
        Self {
            timer,
            calls: Cell::new(0),
        }
    }

    /// `GET /items/{id}`.
    pub async fn get(&self, id: u32) -> Result<String, Error> {
        let call = self.calls.get() + 1;
        self.calls.set(call);
        self.timer.sleep(Duration::from_millis(5)).await;
        if call % 3 == 0 {
            Err(Error::Unavailable)
        } else {
            Ok(format!("item {id}"))
        }
    }

    pub fn calls(&self) -> u32 {
        self.calls.get()
    }
}
