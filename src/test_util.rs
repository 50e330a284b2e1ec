//! Helpers shared by the unit tests of every primitive: a waker that counts its wakes, and
//! polling a future once with a chosen waker.

use alloc::sync::Arc;
use alloc::task::Wake;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

/// A waker that counts its wakes.
#[derive(Default)]
pub(crate) struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A counting waker and the counter behind it.
pub(crate) fn counting() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter::default());
    (counter.clone(), Waker::from(counter))
}

/// How often `counter`'s waker was woken.
pub(crate) fn wakes(counter: &Counter) -> usize {
    counter.0.load(Ordering::SeqCst)
}

/// Polls `fut` once with `waker`.
pub(crate) fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}
