//! What every loom model needs: run a future on the model's own thread, sleeping until woken.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;
use std::task::Wake;

use loom::sync::Notify;

/// Wakes a thread blocked in [`block_on`].
pub struct Unpark(pub Notify);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.notify();
    }
}

/// Polls `fut` to completion on this thread, sleeping until woken between polls: a future that
/// is never woken deadlocks, and loom reports it.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let unpark = Arc::new(Unpark(Notify::new()));
    let waker = Waker::from(Arc::clone(&unpark));
    let mut fut = core::pin::pin!(fut);
    loop {
        if let Poll::Ready(output) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        unpark.0.wait();
    }
}

/// Polls `fut` once with a waker that does nothing.
#[allow(dead_code)] // not every model polls by hand
pub fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}
