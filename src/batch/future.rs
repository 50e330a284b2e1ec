//! The named futures of [`Batcher`]: [`Call`] (a call's rows to its results), [`CallOwned`]
//! (the same, `'static`) and [`CallOne`] (one row to one result).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::ops::{ControlFlow, Deref};
use core::pin::Pin;
use core::task::{Context, Poll};

use super::state::{DriverSleep, Out, Ticket};
use super::{BatchError, BatchFn, Batcher, Part, Rows};
use crate::time::Timer;

/// The state machine of every call, reaching its batcher through `B` (`&Batcher` or
/// `Arc<Batcher>`). Dropping it while joined withdraws its rows or gives up its slice.
struct Member<B, I, F, T>
where
    B: Deref<Target = Batcher<I, F, T>>,
    I: Rows,
    F: BatchFn<I>,
    T: Timer,
{
    batcher: B,
    state: State<I>,
    /// The driver's sleep (boxed: only drivers have one, and a call stays small).
    sleep: Option<Pin<Box<DriverSleep<T::Sleep>>>>,
}

#[repr(u8)] // an explicit tag: cheaper to test than a niche in the rows
enum State<I: Rows> {
    /// Not polled yet: the rows wait to join.
    Start(Part<I>),
    Joined(Ticket),
    Done,
}

impl<B, I, F, T> Member<B, I, F, T>
where
    B: Deref<Target = Batcher<I, F, T>>,
    I: Rows,
    F: BatchFn<I>,
    T: Timer,
{
    #[inline]
    fn new(batcher: B, rows: Part<I>) -> Self {
        Self {
            batcher,
            state: State::Start(rows),
            sleep: None,
        }
    }

    #[inline]
    fn poll(&mut self, cx: &mut Context<'_>, name: &str) -> Poll<Out<I, F>> {
        let ticket = match &self.state {
            // Polled again while joined: no move of the state.
            State::Joined(ticket) => *ticket,
            State::Start(_) => match self.poll_join(cx) {
                ControlFlow::Continue(ticket) => ticket,
                ControlFlow::Break(poll) => return poll,
            },
            State::Done => panic!("`{name}` polled after completion"),
        };
        let out = self.batcher.poll_member(ticket, &mut self.sleep, cx);
        if out.is_ready() {
            self.state = State::Done;
        }
        out
    }

    /// The first poll: joins the open batch. `Break` is the call's outcome now (an error,
    /// or pending while another member drives); `Continue` is the ticket of a member that
    /// drives right away.
    #[inline]
    fn poll_join(&mut self, cx: &mut Context<'_>) -> ControlFlow<Poll<Out<I, F>>, Ticket> {
        let batcher = &*self.batcher;
        let ticket = match core::mem::replace(&mut self.state, State::Done) {
            State::Start(rows) => match batcher.join(rows, cx) {
                Err(err) => return ControlFlow::Break(Poll::Ready(Err(err))),
                Ok((ticket, drive)) => {
                    self.state = State::Joined(ticket);
                    if !drive {
                        return ControlFlow::Break(Poll::Pending);
                    }
                    ticket
                }
            },
            _ => unreachable!("only a call not yet joined joins"),
        };
        ControlFlow::Continue(ticket)
    }

    fn state(&self) -> &'static str {
        match self.state {
            State::Start(_) => "start",
            State::Joined(_) => "joined",
            State::Done => "done",
        }
    }
}

impl<B, I, F, T> Drop for Member<B, I, F, T>
where
    B: Deref<Target = Batcher<I, F, T>>,
    I: Rows,
    F: BatchFn<I>,
    T: Timer,
{
    fn drop(&mut self) {
        if let State::Joined(ticket) = self.state {
            self.batcher.drop_member(ticket);
        }
    }
}

/// The future returned by [`Batcher::call`]: resolves to the call's own slice of the
/// batch function's results.
///
/// The rows join the open batch on the first poll. Dropping the future is always safe:
/// see [Cancel safety](super#cancel-safety). Polling it again after it completed panics.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::batch::{BatchConfig, Batcher, Call};
/// use dike::time::ManualTimer;
/// use futures_util::FutureExt;
///
/// # fn main() -> Result<(), dike::error::ConfigError> {
/// let config = BatchConfig::new(2, Duration::from_secs(1));
/// let batcher = Batcher::new(ManualTimer::new(), config, |rows: Vec<u8>| async move {
///     Ok::<_, ()>(rows.iter().map(|x| x + 1).collect::<Vec<_>>())
/// })?;
/// let mut first: Call<'_, _, _, _> = batcher.call(vec![1]);
/// assert!((&mut first).now_or_never().is_none(), "1 of 2 rows: waits");
/// let second = batcher.call(vec![2]).now_or_never(); // seals, runs, completes
/// assert_eq!(second, Some(Ok(vec![3])));
/// assert_eq!(first.now_or_never(), Some(Ok(vec![2])));
/// # Ok(())
/// # }
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Call<'a, I: Rows, F: BatchFn<I>, T: Timer> {
    member: Member<&'a Batcher<I, F, T>, I, F, T>,
}

// Nothing in a call is ever pinned (its sleep is boxed), so it is `Unpin` whatever its rows.
impl<I: Rows, F: BatchFn<I>, T: Timer> Unpin for Call<'_, I, F, T> {}

impl<'a, I: Rows, F: BatchFn<I>, T: Timer> Call<'a, I, F, T> {
    #[inline]
    pub(super) fn new(batcher: &'a Batcher<I, F, T>, rows: I) -> Self {
        Self {
            member: Member::new(batcher, Part::Rows(rows)),
        }
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Future for Call<'_, I, F, T> {
    type Output = Result<F::Output, BatchError<F::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = self.get_mut().member.poll(cx, "Call");
        out.map(|out| out.map(Part::into_rows))
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> fmt::Debug for Call<'_, I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("state", &self.member.state())
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Batcher::call_owned`]: a [`Call`] holding an `Arc` of its
/// batcher, so it is `'static` and can move into a spawned task.
///
/// The same cancel safety as [`Call`]. Polling it again after it completed panics.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use std::sync::Arc;
/// use dike::batch::{BatchConfig, Batcher, CallOwned};
/// use dike::time::ManualTimer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = BatchConfig::new(2, Duration::from_secs(1));
/// let batcher = Arc::new(
///     Batcher::new(ManualTimer::new(), config, |rows: Vec<u8>| async move {
///         Ok::<_, ()>(rows.iter().map(|x| x * 10).collect::<Vec<_>>())
///     })
///     .unwrap(),
/// );
/// let first: CallOwned<_, _, _> = batcher.call_owned(vec![1]);
/// let first = tokio::spawn(first);
/// let second = tokio::spawn(batcher.call_owned(vec![2]));
/// assert_eq!(first.await.unwrap(), Ok(vec![10]));
/// assert_eq!(second.await.unwrap(), Ok(vec![20]));
/// # }
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct CallOwned<I: Rows, F: BatchFn<I>, T: Timer> {
    member: Member<Arc<Batcher<I, F, T>>, I, F, T>,
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Unpin for CallOwned<I, F, T> {}

impl<I: Rows, F: BatchFn<I>, T: Timer> CallOwned<I, F, T> {
    #[inline]
    pub(super) fn new(batcher: Arc<Batcher<I, F, T>>, rows: I) -> Self {
        Self {
            member: Member::new(batcher, Part::Rows(rows)),
        }
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Future for CallOwned<I, F, T> {
    type Output = Result<F::Output, BatchError<F::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = self.get_mut().member.poll(cx, "CallOwned");
        out.map(|out| out.map(Part::into_rows))
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> fmt::Debug for CallOwned<I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOwned")
            .field("state", &self.member.state())
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Batcher::call_one`]: resolves to the one result of the one
/// row.
///
/// The row moves into the batch as it is and its result moves out as it is (for `Vec<T>`:
/// no allocation of the call's own). The same cancel safety as [`Call`]. Polling it again
/// after it completed panics.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use dike::batch::{BatchConfig, Batcher, CallOne};
/// use dike::time::ManualTimer;
/// use futures_util::FutureExt;
///
/// # fn main() -> Result<(), dike::error::ConfigError> {
/// let config = BatchConfig::new(1, Duration::from_secs(1));
/// let batcher = Batcher::new(ManualTimer::new(), config, |rows: Vec<u8>| async move {
///     Ok::<_, ()>(rows.iter().map(|&x| u32::from(x) * 1000).collect::<Vec<_>>())
/// })?;
/// let call: CallOne<'_, _, _, _> = batcher.call_one(7);
/// assert_eq!(call.now_or_never(), Some(Ok(7000)));
/// # Ok(())
/// # }
/// ```
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct CallOne<'a, I: Rows, F: BatchFn<I>, T: Timer> {
    member: Member<&'a Batcher<I, F, T>, I, F, T>,
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Unpin for CallOne<'_, I, F, T> {}

impl<'a, I: Rows, F: BatchFn<I>, T: Timer> CallOne<'a, I, F, T> {
    #[inline]
    pub(super) fn new(batcher: &'a Batcher<I, F, T>, row: I::Row) -> Self {
        Self {
            member: Member::new(batcher, Part::Row(row)),
        }
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Future for CallOne<'_, I, F, T> {
    type Output = Result<<F::Output as Rows>::Row, BatchError<F::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = self.get_mut().member.poll(cx, "CallOne");
        out.map(|out| {
            // The batcher checked the result's length: the piece holds exactly one row.
            out.and_then(|part| {
                part.into_row().map_err(|rows| BatchError::WrongLength {
                    expected: 1,
                    actual: rows.len(),
                })
            })
        })
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> fmt::Debug for CallOne<'_, I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOne")
            .field("state", &self.member.state())
            .finish_non_exhaustive()
    }
}
