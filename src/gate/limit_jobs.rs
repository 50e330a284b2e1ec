//! [`limit_jobs`]: an async function behind a gate that rejects instead of waiting.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::Gate;
use crate::error::TooManyCalls;

/// Wraps the async function `f` so that at most `limit` calls run at once; a call made while
/// `limit` are running fails at once with [`TooManyCalls`], like Python dike's
/// `@limit_jobs(limit=...)` decorator.
///
/// `f` takes one argument; pass a tuple for several, or `()` for none. A call is admitted
/// or rejected on its first poll; `f` runs only for admitted calls, and the slot is held
/// until the call's future completes or is dropped. `limit` 0 rejects every call.
///
/// [`LimitJobs`] is cheap to clone (clones share the limit), and its call futures are
/// `'static` when `f` and the argument are, so they can be spawned.
///
/// # Examples
///
/// The Python README example: three simultaneous calls to a function limited to two.
///
/// ```
/// use dike::gate::limit_jobs;
/// use futures_util::future::join3;
///
/// # smol::block_on(async {
/// let web_request = limit_jobs(2, |()| async {
///     smol::future::yield_now().await; // a slow request
///     "<Response [200 OK]>"
/// });
/// let (a, b, c) = join3(web_request.call(()), web_request.call(()), web_request.call(())).await;
/// assert_eq!(a, Ok("<Response [200 OK]>"));
/// assert_eq!(b, Ok("<Response [200 OK]>"));
/// assert_eq!(c.unwrap_err().to_string(), "too many calls: limit of 2 reached");
/// # });
/// ```
pub fn limit_jobs<F>(limit: usize, f: F) -> LimitJobs<F> {
    LimitJobs {
        inner: Arc::new(Inner {
            gate: Gate::new(limit),
            f,
        }),
    }
}

/// An async function limited to a number of concurrent calls; built by [`limit_jobs`].
///
/// # Examples
///
/// ```
/// use dike::gate::limit_jobs;
///
/// # smol::block_on(async {
/// let double = limit_jobs(1, |x: u32| async move { x * 2 });
/// assert_eq!(double.call(21).await, Ok(42));
/// assert_eq!(double.gate().stats().admitted, 1);
/// # });
/// ```
pub struct LimitJobs<F> {
    inner: Arc<Inner<F>>,
}

struct Inner<F> {
    gate: Gate,
    f: F,
}

impl<F> LimitJobs<F> {
    /// Calls the function with `arg` if fewer than `limit` calls are running.
    ///
    /// The returned future checks the limit on its first poll: admitted, it runs `f(arg)`
    /// holding a slot until it completes; rejected, it resolves to [`TooManyCalls`] without
    /// calling `f`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the call (and `f`'s future, if started)
    /// and frees its slot.
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] of kind [`Full`](crate::error::TooManyCallsKind::Full) when `limit`
    /// calls are already running.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::limit_jobs;
    ///
    /// # smol::block_on(async {
    /// let add = limit_jobs(4, |(a, b): (i32, i32)| async move { a + b });
    /// assert_eq!(add.call((2, 3)).await, Ok(5));
    /// # });
    /// ```
    pub fn call<A, Fut>(&self, arg: A) -> LimitedCall<F, A, Fut>
    where
        F: Fn(A) -> Fut,
        Fut: Future,
    {
        LimitedCall {
            state: State::Start {
                inner: Arc::clone(&self.inner),
                arg,
            },
        }
    }

    /// The gate that limits the calls: for [`stats`](Gate::stats) and
    /// [`set_limit`](Gate::set_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::limit_jobs;
    ///
    /// let jobs = limit_jobs(2, |()| async {});
    /// jobs.gate().set_limit(5);
    /// assert_eq!(jobs.gate().limit(), 5);
    /// ```
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }
}

impl<F> Clone for LimitJobs<F> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F> fmt::Debug for LimitJobs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitJobs")
            .field("gate", &self.inner.gate)
            .finish_non_exhaustive()
    }
}

/// A slot of a [`LimitJobs`] gate, released on drop.
struct Slot<F> {
    inner: Arc<Inner<F>>,
}

impl<F> Drop for Slot<F> {
    fn drop(&mut self) {
        self.inner.gate.engine.release();
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, A, Fut> {
        Start { inner: Arc<Inner<F>>, arg: A },
        // `fut` is declared first so it is dropped before the slot is released.
        Running { #[pin] fut: Fut, slot: Slot<F> },
        Done,
    }
}

pin_project! {
    /// The future of one [`LimitJobs::call`]: resolves to the function's output, or to
    /// [`TooManyCalls`] if the call was rejected.
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::limit_jobs;
    ///
    /// # smol::block_on(async {
    /// let jobs = limit_jobs(1, |()| async { "done" });
    /// let call = jobs.call(());
    /// // Nothing is admitted until the call is polled.
    /// assert_eq!(jobs.gate().stats().in_use, 0);
    /// assert_eq!(call.await, Ok("done"));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct LimitedCall<F, A, Fut> {
        #[pin]
        state: State<F, A, Fut>,
    }
}

impl<F, A, Fut> Future for LimitedCall<F, A, Fut>
where
    F: Fn(A) -> Fut,
    Fut: Future,
{
    type Output = Result<Fut::Output, TooManyCalls>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Start { inner, .. } => {
                    if !inner.gate.engine.try_acquire() {
                        let err = inner.gate.full();
                        state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                    let StateReplace::Start { inner, arg } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was just matched as Start");
                    };
                    // The slot exists before `f` runs, so a panicking `f` still releases it.
                    let slot = Slot { inner };
                    let fut = (slot.inner.f)(arg);
                    state.set(State::Running { fut, slot });
                }
                StateProj::Running { fut, .. } => {
                    let output = ready!(fut.poll(cx));
                    state.set(State::Done);
                    return Poll::Ready(Ok(output));
                }
                StateProj::Done => panic!("`LimitedCall` polled after completion"),
            }
        }
    }
}

impl<F, A, Fut> fmt::Debug for LimitedCall<F, A, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start { .. } => "start",
            State::Running { .. } => "running",
            State::Done => "done",
        };
        f.debug_struct("LimitedCall")
            .field("state", &state)
            .finish()
    }
}
