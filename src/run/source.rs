//! Inputs of a run: any [`IntoIterator`], or a [`Stream`] wrapped by [`from_stream`].
//!
//! Every function of [`run`](super) takes its input as an [`IntoSource`]: an iterator is
//! pulled with `next()`, a stream is polled with `poll_next`. Either way the input is consumed
//! lazily, one item at a time, only when a task may start.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

/// The input of a run, as taken by every run function: any [`IntoIterator`], or a
/// [`Stream`] wrapped by [`from_stream`].
///
/// Sealed: implemented for those two and nothing else.
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, from_stream, run_all};
///
/// # smol::block_on(async {
/// let from_vec = run_all([1, 2].map(|i| async move { i }), Limits::new()).await;
/// let items = futures_util::stream::iter([1, 2].map(|i| async move { i }));
/// let from_stream = run_all(from_stream(items), Limits::new()).await;
/// assert_eq!(from_vec, from_stream);
/// # });
/// ```
pub trait IntoSource: private::Sealed {
    /// The items.
    type Item;
    /// The source the run pulls from.
    type Source: Source<Item = Self::Item>;
    /// Converts into the source.
    #[doc(hidden)]
    fn into_source(self) -> Self::Source;
}

/// What a run pulls its items from, one at a time ([`Iter`], [`FromStream`], [`Map`]).
///
/// Sealed: its methods are internal. It appears in the type of a run (`RunAll<'_, S, _>`);
/// name it only to store a run in a struct.
///
/// # Examples
///
/// ```
/// use dike::run::source::{Iter, Source};
/// use dike::run::{Limits, NoRate, RunAll, run_all};
///
/// fn keep<S: Source>(run: RunAll<'_, S, NoRate>) -> RunAll<'_, S, NoRate>
/// where
///     S::Item: Future,
/// {
///     run
/// }
/// let run: RunAll<'_, Iter<_>, NoRate> = keep(run_all([1, 2].map(|i| async move { i }), Limits::new()));
/// # let _ = run;
/// ```
pub trait Source: private::Sealed {
    /// The items (the tasks' futures, for the source of a run).
    type Item;
    /// What is pulled from the input when a slot is free, before the task's start.
    #[doc(hidden)]
    type Raw;
    /// The next raw item, when a slot is free.
    #[doc(hidden)]
    fn poll_item(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Raw>>;
    /// Makes the item of `raw`, at the task's start.
    #[doc(hidden)]
    fn make(self: Pin<&mut Self>, raw: Self::Raw) -> Self::Item;
    /// The input's `size_hint`: an upper bound of 0 ends the run without pulling; the lower
    /// bound sizes `run_all`'s output.
    #[doc(hidden)]
    fn size_hint(&self) -> (usize, Option<usize>);
}

mod private {
    pub trait Sealed {}
}

impl<I: IntoIterator> private::Sealed for I {}
impl<S: Stream> private::Sealed for FromStream<S> {}
impl<I> private::Sealed for Iter<I> {}
impl<S, F> private::Sealed for Map<S, F> {}

impl<I: IntoIterator> IntoSource for I {
    type Item = I::Item;
    type Source = Iter<I::IntoIter>;

    #[inline]
    fn into_source(self) -> Iter<I::IntoIter> {
        Iter {
            iter: self.into_iter(),
        }
    }
}

impl<S: Stream> IntoSource for FromStream<S> {
    type Item = S::Item;
    type Source = Self;

    #[inline]
    fn into_source(self) -> Self {
        self
    }
}

/// An iterator as the input of a run. Made by the run functions from any [`IntoIterator`].
///
/// # Examples
///
/// ```
/// # smol::block_on(async {
/// // A lazy iterator: each future is created only when a slot is free.
/// let futures = (1..=3).map(|i| async move { i * 10 });
/// let out = dike::run::run_all(futures, dike::run::Limits::new().max_at_once(1)?).await;
/// assert_eq!(out, [10, 20, 30]);
/// # Ok::<(), dike::error::ConfigError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Iter<I> {
    iter: I,
}

impl<I: Iterator> Source for Iter<I> {
    type Item = I::Item;
    type Raw = I::Item;

    #[inline]
    fn make(self: Pin<&mut Self>, raw: I::Item) -> I::Item {
        raw
    }

    #[inline]
    fn poll_item(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        // The iterator is never pinned (`Iter` does not project), so this is a plain borrow.
        Poll::Ready(self.get_mut().iter.next())
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<I> Unpin for Iter<I> {}

pin_project! {
    /// A [`Stream`] as the input of a run, made by [`from_stream`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::{Limits, amap, from_stream};
    /// use futures_util::StreamExt;
    ///
    /// # smol::block_on(async {
    /// let items = futures_util::stream::iter(["a", "b"]);
    /// let upper: Vec<String> = amap(|s: &str| async move { s.to_uppercase() }, from_stream(items), Limits::new())
    ///     .collect()
    ///     .await;
    /// assert_eq!(upper.len(), 2);
    /// # });
    /// ```
    #[derive(Debug, Clone)]
    #[must_use = "streams do nothing unless polled"]
    pub struct FromStream<S> {
        #[pin]
        stream: S,
    }
}

/// Takes a [`Stream`] as the input of a run (aiometer takes async iterators too).
///
/// The stream is polled for its next item only when a slot is free, so a run never buffers
/// the input. While the stream is pending, the run holds no gate permit and no start time.
///
/// # Examples
///
/// ```
/// use dike::run::{Limits, from_stream, run_each};
///
/// # smol::block_on(async {
/// let seen = std::cell::RefCell::new(Vec::new());
/// let items = futures_util::stream::iter(1..=3);
/// run_each(|i| { seen.borrow_mut().push(i); async {} }, from_stream(items), Limits::new()).await;
/// assert_eq!(*seen.borrow(), [1, 2, 3]);
/// # });
/// ```
pub fn from_stream<S: Stream>(stream: S) -> FromStream<S> {
    FromStream { stream }
}

impl<S: Stream> Source for FromStream<S> {
    type Item = S::Item;
    type Raw = S::Item;

    #[inline]
    fn make(self: Pin<&mut Self>, raw: S::Item) -> S::Item {
        raw
    }

    #[inline]
    fn poll_item(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.project().stream.poll_next(cx)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

pin_project! {
    /// A source of futures made by applying `f` to each item of another source (the input of
    /// [`amap`](super::amap) and [`run_each`](super::run_each)). The item is pulled when a
    /// slot is free; `f` is called at the task's start (after its permit and start time),
    /// and its future is polled at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::run::source::{Iter, Map};
    /// use dike::run::{Amap, Limits, NoRate, amap};
    ///
    /// let double = |x: u32| async move { x * 2 };
    /// let stream: Amap<'_, Map<Iter<std::ops::Range<u32>>, _>, NoRate> = amap(double, 0..3, Limits::new());
    /// # let _ = stream;
    /// ```
    pub struct Map<S, F> {
        #[pin]
        source: S,
        f: F,
    }
}

impl<S, F> Map<S, F> {
    pub(crate) fn new(source: S, f: F) -> Self {
        Self { source, f }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for Map<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<S, F, Fut> Source for Map<S, F>
where
    S: Source,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    type Item = Fut;
    type Raw = S::Item;

    #[inline]
    fn poll_item(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        match this.source.as_mut().poll_item(cx) {
            Poll::Ready(Some(raw)) => Poll::Ready(Some(this.source.make(raw))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `f` is called here, at the task's start.
    #[inline]
    fn make(self: Pin<&mut Self>, raw: S::Item) -> Fut {
        (self.project().f)(raw)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.size_hint()
    }
}
