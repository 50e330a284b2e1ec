//! The named futures and streams of [`run`](super).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::engine::{BUDGET, Engine};
use super::limits::Pace;
use super::source::Source;

type Output<S> = <<S as Source>::Item as Future>::Output;
type EngineOf<'a, S, P> = Engine<'a, S, <P as Pace<'a>>::Pacer>;

/// Outputs put back in input order: the in-order prefix in a `Vec`, and the outputs that
/// arrived ahead of an earlier one in a window behind it (a slot per index), moved over as
/// soon as the gap closes. Outputs that arrive in order (the common case) go straight to the
/// `Vec`; the window holds only the out-of-order span.
#[derive(Debug)]
pub(super) struct InOrder<T> {
    done: Vec<T>,
    window: VecDeque<Option<T>>,
}

impl<T> InOrder<T> {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            done: Vec::with_capacity(capacity),
            window: VecDeque::new(),
        }
    }

    /// Stores the output of input `index` (each index once, never below `done.len()`).
    #[inline]
    pub(super) fn insert(&mut self, index: usize, value: T) {
        let offset = index - self.done.len();
        if offset == 0 && self.window.is_empty() {
            self.done.push(value);
            return;
        }
        if offset >= self.window.len() {
            self.window.resize_with(offset + 1, || None);
        }
        self.window[offset] = Some(value);
        while let Some(Some(_)) = self.window.front() {
            if let Some(Some(value)) = self.window.pop_front() {
                self.done.push(value);
            }
        }
    }

    fn clear(&mut self) {
        self.done = Vec::new();
        self.window = VecDeque::new();
    }

    /// Every output, in input order (the window is empty once every output arrived).
    pub(super) fn take(&mut self) -> Vec<T> {
        let mut done = core::mem::take(&mut self.done);
        done.extend(core::mem::take(&mut self.window).into_iter().flatten());
        done
    }
}

pin_project! {
    /// The future of [`run_all`](super::run_all) and
    /// [`run_all_settled`](super::run_all_settled): every output, in input order.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, RunAll, run_all};
    ///
    /// # smol::block_on(async {
    /// let run = run_all(['a', 'b'].map(|c| async move { c }), Limits::new());
    /// assert_eq!(run.await, ['a', 'b']);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct RunAll<'a, S, P>
    where
        S: Source,
        S::Item: Future,
        P: Pace<'a>,
    {
        #[pin]
        engine: Option<EngineOf<'a, S, P>>,
        results: InOrder<Output<S>>,
    }
}

impl<'a, S, P> RunAll<'a, S, P>
where
    S: Source,
    S::Item: Future,
    P: Pace<'a>,
{
    pub(crate) fn new(engine: EngineOf<'a, S, P>) -> Self {
        // As `collect` does: room for the input's lower bound, whose outputs are all kept.
        let results = InOrder::with_capacity(engine.remaining_hint());
        Self {
            engine: Some(engine),
            results,
        }
    }
}

impl<'a, S, P> Future for RunAll<'a, S, P>
where
    S: Source,
    S::Item: Future,
    P: Pace<'a>,
{
    type Output = Vec<Output<S>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(mut engine) = this.engine.as_mut().as_pin_mut() else {
            panic!("`RunAll` polled after completion");
        };
        let mut budget = BUDGET;
        loop {
            match engine.as_mut().poll_next(cx, &mut budget) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some((index, output))) => this.results.insert(index, output),
                Poll::Ready(None) => {
                    this.engine.set(None);
                    return Poll::Ready(this.results.take());
                }
            }
        }
    }
}

pin_project! {
    /// The future of [`try_run_all`](super::try_run_all): every `Ok` value in input order, or
    /// the first error (in completion order), unchanged, with every other task dropped.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, try_run_all};
    ///
    /// # smol::block_on(async {
    /// let ok = try_run_all([1, 2].map(|i| async move { Ok::<_, &str>(i) }), Limits::new());
    /// assert_eq!(ok.await, Ok(vec![1, 2]));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct TryRunAll<'a, S, P, T, E>
    where
        S: Source,
        S::Item: Future<Output = Result<T, E>>,
        P: Pace<'a>,
    {
        #[pin]
        engine: Option<EngineOf<'a, S, P>>,
        results: InOrder<T>,
    }
}

impl<'a, S, P, T, E> TryRunAll<'a, S, P, T, E>
where
    S: Source,
    S::Item: Future<Output = Result<T, E>>,
    P: Pace<'a>,
{
    pub(crate) fn new(engine: EngineOf<'a, S, P>) -> Self {
        // As `collect` does: room for the input's lower bound, whose outputs are all kept.
        let results = InOrder::with_capacity(engine.remaining_hint());
        Self {
            engine: Some(engine),
            results,
        }
    }
}

impl<'a, S, P, T, E> Future for TryRunAll<'a, S, P, T, E>
where
    S: Source,
    S::Item: Future<Output = Result<T, E>>,
    P: Pace<'a>,
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(mut engine) = this.engine.as_mut().as_pin_mut() else {
            panic!("`TryRunAll` polled after completion");
        };
        let mut budget = BUDGET;
        loop {
            match engine.as_mut().poll_next(cx, &mut budget) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some((index, Ok(value)))) => this.results.insert(index, value),
                Poll::Ready(Some((_, Err(err)))) => {
                    // Fail fast: every task still in flight is dropped here.
                    this.engine.set(None);
                    this.results.clear();
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(None) => {
                    this.engine.set(None);
                    return Poll::Ready(Ok(this.results.take()));
                }
            }
        }
    }
}

pin_project! {
    /// The future of [`run_each`](super::run_each): runs every task for its effect.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, run_each};
    ///
    /// # smol::block_on(async {
    /// let count = std::cell::Cell::new(0);
    /// run_each(|n: u32| { count.set(count.get() + n); async {} }, [1, 2, 3], Limits::new()).await;
    /// assert_eq!(count.get(), 6);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct RunEach<'a, S, P>
    where
        S: Source,
        S::Item: Future,
        P: Pace<'a>,
    {
        #[pin]
        engine: Option<EngineOf<'a, S, P>>,
    }
}

impl<'a, S, P> RunEach<'a, S, P>
where
    S: Source,
    S::Item: Future,
    P: Pace<'a>,
{
    pub(crate) fn new(engine: EngineOf<'a, S, P>) -> Self {
        Self {
            engine: Some(engine),
        }
    }
}

impl<'a, S, P> Future for RunEach<'a, S, P>
where
    S: Source,
    S::Item: Future,
    P: Pace<'a>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let Some(mut engine) = this.engine.as_mut().as_pin_mut() else {
            panic!("`RunEach` polled after completion");
        };
        let mut budget = BUDGET;
        loop {
            match engine.as_mut().poll_next(cx, &mut budget) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => {
                    this.engine.set(None);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// The input of [`run_any`](super::run_any) was empty: there is no first task to finish.
///
/// # Examples
///
/// ```
/// use dike::run::{EmptyInput, Limits, run_any};
///
/// # smol::block_on(async {
/// let none: Vec<core::future::Ready<u8>> = Vec::new();
/// assert_eq!(run_any(none, Limits::new()).await, Err(EmptyInput));
/// assert_eq!(EmptyInput.to_string(), "run_any of an empty input");
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, thiserror::Error)]
#[error("run_any of an empty input")]
pub struct EmptyInput;

pin_project! {
    /// The future of [`run_any`](super::run_any): the first output in completion order; every
    /// other task is dropped at that moment.
    ///
    /// Polling it again after it completed panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, run_any};
    ///
    /// # smol::block_on(async {
    /// let first = run_any([async { 7 }], Limits::new()).await;
    /// assert_eq!(first, Ok(7));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct RunAny<'a, S, P>
    where
        S: Source,
        S::Item: Future,
        P: Pace<'a>,
    {
        #[pin]
        engine: Option<EngineOf<'a, S, P>>,
    }
}

impl<'a, S, P> RunAny<'a, S, P>
where
    S: Source,
    S::Item: Future,
    P: Pace<'a>,
{
    pub(crate) fn new(engine: EngineOf<'a, S, P>) -> Self {
        Self {
            engine: Some(engine),
        }
    }
}

impl<'a, S, P> Future for RunAny<'a, S, P>
where
    S: Source,
    S::Item: Future,
    P: Pace<'a>,
{
    type Output = Result<Output<S>, EmptyInput>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(engine) = this.engine.as_mut().as_pin_mut() else {
            panic!("`RunAny` polled after completion");
        };
        let mut budget = BUDGET;
        let result = match engine.poll_next(cx, &mut budget) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some((_, output))) => Ok(output),
            Poll::Ready(None) => Err(EmptyInput),
        };
        this.engine.set(None); // drops every other task
        Poll::Ready(result)
    }
}

pin_project! {
    /// The stream of [`amap`](super::amap): outputs in completion order.
    ///
    /// Each poll drives the whole run (see [Progress](super#progress)). After it returned
    /// `None` it keeps returning `None` (it is a `FusedStream`). Its `size_hint` is exact when
    /// the input's is. Dropping it drops every task in flight and releases their permits.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, amap};
    /// use futures_util::StreamExt;
    ///
    /// # smol::block_on(async {
    /// let mut doubled = amap(|x: u32| async move { x * 2 }, [1, 2], Limits::new());
    /// assert_eq!(doubled.next().await, Some(2));
    /// assert_eq!(doubled.next().await, Some(4));
    /// assert_eq!(doubled.next().await, None);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Amap<'a, S, P>
    where
        S: Source,
        S::Item: Future,
        P: Pace<'a>,
    {
        #[pin]
        engine: Option<EngineOf<'a, S, P>>,
    }
}

pin_project! {
    /// The stream of [`amap_indexed`](super::amap_indexed): `(input index, output)` in
    /// completion order.
    ///
    /// As [`Amap`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, amap_indexed};
    /// use futures_util::StreamExt;
    ///
    /// # smol::block_on(async {
    /// let out: Vec<_> = amap_indexed(|c: char| async move { c.to_ascii_uppercase() }, ['a', 'b'], Limits::new())
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [(0, 'A'), (1, 'B')]);
    /// # });
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct AmapIndexed<'a, S, P>
    where
        S: Source,
        S::Item: Future,
        P: Pace<'a>,
    {
        #[pin]
        engine: Option<EngineOf<'a, S, P>>,
    }
}

macro_rules! stream_impl {
    ($name:ident, $item:ty, |$index:ident, $output:ident| $map:expr) => {
        impl<'a, S, P> $name<'a, S, P>
        where
            S: Source,
            S::Item: Future,
            P: Pace<'a>,
        {
            pub(crate) fn new(engine: EngineOf<'a, S, P>) -> Self {
                Self {
                    engine: Some(engine),
                }
            }

            /// Tasks in flight now (started, not finished).
            ///
            /// # Examples
            ///
            /// ```
            /// use dike::run::{Limits, amap};
            ///
            /// let run = amap(|x: u8| async move { x }, [1, 2], Limits::new());
            /// assert_eq!(run.in_flight(), 0); // nothing starts before the first poll
            /// ```
            pub fn in_flight(&self) -> usize {
                self.engine.as_ref().map_or(0, |engine| engine.in_flight())
            }
        }

        impl<'a, S, P> Stream for $name<'a, S, P>
        where
            S: Source,
            S::Item: Future,
            P: Pace<'a>,
        {
            type Item = $item;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<$item>> {
                let mut this = self.project();
                let Some(engine) = this.engine.as_mut().as_pin_mut() else {
                    return Poll::Ready(None);
                };
                let mut budget = BUDGET;
                match engine.poll_next(cx, &mut budget) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(($index, $output))) => Poll::Ready(Some($map)),
                    Poll::Ready(None) => {
                        this.engine.set(None);
                        Poll::Ready(None)
                    }
                }
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.engine
                    .as_ref()
                    .map_or((0, Some(0)), |engine| engine.size_hint())
            }
        }

        impl<'a, S, P> FusedStream for $name<'a, S, P>
        where
            S: Source,
            S::Item: Future,
            P: Pace<'a>,
        {
            fn is_terminated(&self) -> bool {
                self.engine.is_none()
            }
        }

        impl<'a, S, P> fmt::Debug for $name<'a, S, P>
        where
            S: Source,
            S::Item: Future,
            P: Pace<'a>,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("engine", &self.engine)
                    .finish()
            }
        }
    };
}

stream_impl!(Amap, Output<S>, |_index, output| output);
stream_impl!(AmapIndexed, (usize, Output<S>), |index, output| (
    index, output
));

macro_rules! debug_impl {
    ($name:ident) => {
        impl<'a, S, P> fmt::Debug for $name<'a, S, P>
        where
            S: Source,
            S::Item: Future,
            P: Pace<'a>,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("engine", &self.engine)
                    .finish_non_exhaustive()
            }
        }
    };
}

debug_impl!(RunAll);
debug_impl!(RunEach);
debug_impl!(RunAny);

impl<'a, S, P, T, E> fmt::Debug for TryRunAll<'a, S, P, T, E>
where
    S: Source,
    S::Item: Future<Output = Result<T, E>>,
    P: Pace<'a>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryRunAll")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}
