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
/// Call it with [`call(arg)`](LimitJobs::call) (a tuple for several arguments) or
/// [`call0()`](LimitJobs::call0) for a function of no argument; run any other future under
/// the same limit with [`run(fut)`](LimitJobs::run). A call is admitted or rejected on its
/// first poll; `f` runs only for admitted calls, and the slot is held until the call's
/// future completes or is dropped. `limit` 0 rejects every call.
///
/// [`LimitJobs`] is cheap to clone (clones share the limit), and its call futures are
/// `'static` when `f` and the argument are, so they can be spawned. To share one limit
/// between several functions, build each with [`LimitJobs::with_gate`] over one
/// `Arc<Gate>`.
///
/// # Examples
///
/// The Python README example: three simultaneous calls to a function limited to two.
///
/// ```
/// use dike::gate::limit_jobs;
/// use futures_util::future::join3;
///
/// async fn web_request() -> &'static str {
///     smol::future::yield_now().await; // a slow request
///     "<Response [200 OK]>"
/// }
///
/// # smol::block_on(async {
/// let web_request = limit_jobs(2, web_request);
/// let (a, b, c) = join3(web_request.call0(), web_request.call0(), web_request.call0()).await;
/// assert_eq!(a, Ok("<Response [200 OK]>"));
/// assert_eq!(b, Ok("<Response [200 OK]>"));
/// assert_eq!(c.unwrap_err().to_string(), "too many calls: limit of 2 reached");
/// # });
/// ```
pub fn limit_jobs<F>(limit: usize, f: F) -> LimitJobs<F> {
    LimitJobs::with_gate(Arc::new(Gate::new(limit)), f)
}

/// An async function limited to a number of concurrent calls; built by [`limit_jobs`] or
/// [`LimitJobs::with_gate`].
///
/// `F` is the function. Without one ([`LimitJobs::new`], `F = ()`), the type is simply
/// `LimitJobs`: a nameable, cloneable limit for a struct field or axum's `State`, that runs
/// futures with [`run`](LimitJobs::run).
///
/// # Examples
///
/// One limit in axum's `State`, shared by every request (a full service is in
/// `examples/axum_gate.rs`):
///
/// ```
/// use axum::extract::State;
/// use axum::http::StatusCode;
/// use axum::{Router, routing::get};
/// use dike::gate::LimitJobs;
///
/// async fn render_report() -> String {
///     "report".to_owned()
/// }
///
/// async fn report(State(jobs): State<LimitJobs>) -> Result<String, StatusCode> {
///     jobs.run(render_report()).await.map_err(|_too_many| StatusCode::SERVICE_UNAVAILABLE)
/// }
///
/// let app: Router = Router::new().route("/report", get(report)).with_state(LimitJobs::new(4));
/// # let _ = app;
/// ```
///
/// A bound function, called by value:
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
pub struct LimitJobs<F = ()> {
    gate: Arc<Gate>,
    f: Arc<F>,
}

impl LimitJobs {
    /// A limit of `limit` concurrent jobs with no bound function: run futures under it with
    /// [`run`](LimitJobs::run). Its type, `LimitJobs`, is nameable (axum `State`, struct
    /// fields).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::LimitJobs;
    ///
    /// # smol::block_on(async {
    /// let jobs: LimitJobs = LimitJobs::new(2);
    /// assert_eq!(jobs.run(async { 1 + 1 }).await, Ok(2));
    /// # });
    /// ```
    pub fn new(limit: usize) -> Self {
        Self::with_gate(Arc::new(Gate::new(limit)), ())
    }
}

impl<F> LimitJobs<F> {
    /// Limits `f` by an existing gate: several functions built over clones of one
    /// `Arc<Gate>` share one limit (and count in its [`stats`](Gate::stats)), and code that
    /// holds the gate can also [`try_enter`](Gate::try_enter) it directly.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dike::gate::{Gate, LimitJobs};
    ///
    /// # smol::block_on(async {
    /// let db = Arc::new(Gate::new(1));
    /// let read = LimitJobs::with_gate(Arc::clone(&db), |id: u32| async move { id });
    /// let write = LimitJobs::with_gate(Arc::clone(&db), |id: u32| async move { id + 100 });
    ///
    /// let held = db.try_enter().unwrap(); // the one slot, taken
    /// assert!(read.call(1).await.is_err());
    /// assert!(write.call(1).await.is_err());
    /// drop(held);
    /// assert_eq!(write.call(1).await, Ok(101));
    /// assert_eq!(db.stats().rejected, 2);
    /// # });
    /// ```
    pub fn with_gate(gate: Arc<Gate>, f: F) -> Self {
        Self {
            gate,
            f: Arc::new(f),
        }
    }

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
        self.start(Callee::Shared(Arc::clone(&self.f)), arg)
    }

    /// Calls the function, which takes no argument, if fewer than `limit` calls are running;
    /// [`call`](LimitJobs::call) for `async fn f()`.
    ///
    /// # Cancel safety
    ///
    /// As for [`call`](LimitJobs::call): dropping the future frees its slot.
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] when `limit` calls are already running.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::limit_jobs;
    ///
    /// async fn ping() -> &'static str {
    ///     "pong"
    /// }
    ///
    /// # smol::block_on(async {
    /// let ping = limit_jobs(1, ping);
    /// assert_eq!(ping.call0().await, Ok("pong"));
    /// # });
    /// ```
    // The `fn` adapter keeps every call form one future type, `LimitedCall`.
    #[allow(clippy::type_complexity)]
    pub fn call0<Fut>(&self) -> LimitedCall<fn(Arc<F>) -> Fut, Arc<F>, Fut>
    where
        F: Fn() -> Fut,
        Fut: Future,
    {
        self.start(Callee::Owned(call0::<F, Fut>), Arc::clone(&self.f))
    }

    /// Runs `fut` under the same limit: admitted or rejected on the first poll, like a call.
    /// A rejected `fut` is dropped without being polled, so an `async fn`'s body never
    /// starts.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `fut` and frees its slot.
    ///
    /// # Errors
    ///
    /// [`TooManyCalls`] when `limit` jobs are already running.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::gate::LimitJobs;
    ///
    /// # smol::block_on(async {
    /// let jobs = LimitJobs::new(1);
    /// let slow = jobs.run(smol::future::yield_now());
    /// let mut slow = core::pin::pin!(slow);
    /// assert!(futures_util::poll!(slow.as_mut()).is_pending()); // holds the only slot
    /// assert!(jobs.run(async { "another" }).await.is_err());
    /// assert_eq!(slow.await, Ok(()));
    /// # });
    /// ```
    pub fn run<Fut: Future>(&self, fut: Fut) -> LimitedCall<fn(Fut) -> Fut, Fut, Fut> {
        self.start(Callee::Owned(identity::<Fut>), fut)
    }

    /// The gate that limits the calls: for [`stats`](Gate::stats),
    /// [`set_limit`](Gate::set_limit), or to share it with [`with_gate`](LimitJobs::with_gate).
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
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    fn start<G, A, Fut>(&self, f: Callee<G>, arg: A) -> LimitedCall<G, A, Fut> {
        LimitedCall {
            state: State::Start {
                gate: Arc::clone(&self.gate),
                f,
                arg,
            },
        }
    }
}

impl<F> Clone for LimitJobs<F> {
    fn clone(&self) -> Self {
        Self {
            gate: Arc::clone(&self.gate),
            f: Arc::clone(&self.f),
        }
    }
}

impl<F> fmt::Debug for LimitJobs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitJobs")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

/// The function a [`LimitedCall`] calls once admitted: the [`LimitJobs`]' own (shared), or
/// a plain `fn` that adapts [`call0`](LimitJobs::call0) and [`run`](LimitJobs::run) to the
/// one-argument shape.
enum Callee<F> {
    Shared(Arc<F>),
    Owned(F),
}

impl<F> Callee<F> {
    fn get(&self) -> &F {
        match self {
            Self::Shared(f) => f,
            Self::Owned(f) => f,
        }
    }
}

fn call0<F: Fn() -> Fut, Fut>(f: Arc<F>) -> Fut {
    f()
}

fn identity<Fut>(fut: Fut) -> Fut {
    fut
}

/// A slot of a [`LimitJobs`] gate, released on drop.
struct Slot {
    gate: Arc<Gate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.engine.release();
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, A, Fut> {
        Start { gate: Arc<Gate>, f: Callee<F>, arg: A },
        // `fut` is declared first so it is dropped before the slot is released.
        Running { #[pin] fut: Fut, slot: Slot },
        Done,
    }
}

pin_project! {
    /// The future of one [`LimitJobs::call`], [`call0`](LimitJobs::call0) or
    /// [`run`](LimitJobs::run): resolves to the job's output, or to [`TooManyCalls`] if it
    /// was rejected.
    ///
    /// # Panics
    ///
    /// Polling it again after it completed panics ("`LimitedCall` polled after
    /// completion").
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
                StateProj::Start { gate, .. } => {
                    if !gate.engine.try_acquire() {
                        let err = gate.full();
                        state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                    let StateReplace::Start { gate, f, arg } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was just matched as Start");
                    };
                    // The slot exists before `f` runs, so a panicking `f` still releases it.
                    let slot = Slot { gate };
                    let fut = (f.get())(arg);
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
            .field("state", &format_args!("{state}"))
            .finish()
    }
}
