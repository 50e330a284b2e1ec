//! The named futures of [`Batcher`]: [`Call`] (a call's rows to its results) and [`CallOne`]
//! (one row to one result).

use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::state::Ticket;
use super::{BatchError, BatchFn, Batcher, Rows};
use crate::time::Timer;

/// Where a call stands; dropping it in `Joined` withdraws or abandons its part.
struct Membership<'a, I: Rows, F: BatchFn<I>, T: Timer> {
    batcher: &'a Batcher<I, F, T>,
    state: State<I>,
}

enum State<I> {
    /// Not polled yet: the rows wait to join.
    Start(I),
    Joined(Ticket),
    Done,
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Drop for Membership<'_, I, F, T> {
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
    member: Membership<'a, I, F, T>,
    /// The driver's sleep (boxed: only drivers have one, and a call stays small).
    sleep: Option<Pin<Box<T::Sleep>>>,
    sleep_at: Duration,
}

// Nothing in a call is ever pinned (its sleep is boxed), so it is `Unpin` whatever its rows.
impl<I: Rows, F: BatchFn<I>, T: Timer> Unpin for Call<'_, I, F, T> {}

impl<'a, I: Rows, F: BatchFn<I>, T: Timer> Call<'a, I, F, T> {
    #[inline]
    pub(super) fn new(batcher: &'a Batcher<I, F, T>, rows: I) -> Self {
        Self {
            member: Membership {
                batcher,
                state: State::Start(rows),
            },
            sleep: None,
            sleep_at: Duration::ZERO,
        }
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> Future for Call<'_, I, F, T> {
    type Output = Result<F::Output, BatchError<F::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let member = &mut this.member;
        let batcher = member.batcher;
        let ticket = match core::mem::replace(&mut member.state, State::Done) {
            State::Start(rows) => match batcher.join(rows, cx) {
                Err(err) => return Poll::Ready(Err(err)),
                Ok((ticket, drive)) => {
                    member.state = State::Joined(ticket);
                    if !drive {
                        return Poll::Pending;
                    }
                    ticket
                }
            },
            State::Joined(ticket) => {
                member.state = State::Joined(ticket);
                ticket
            }
            State::Done => panic!("`Call` polled after completion"),
        };
        let out = batcher.poll_member(ticket, &mut this.sleep, &mut this.sleep_at, cx);
        if out.is_ready() {
            member.state = State::Done;
        }
        out
    }
}

impl<I: Rows, F: BatchFn<I>, T: Timer> fmt::Debug for Call<'_, I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.member.state {
            State::Start(_) => "start",
            State::Joined(_) => "joined",
            State::Done => "done",
        };
        f.debug_struct("Call")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future returned by [`Batcher::call_one`]: resolves to the one result of the one
    /// row.
    ///
    /// A [`Call`] of a one-row `Vec`; the same cancel safety. Polling it again after it
    /// completed panics.
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
    pub struct CallOne<'a, A, F: BatchFn<Vec<A>>, T: Timer> {
        #[pin]
        call: Call<'a, Vec<A>, F, T>,
    }
}

impl<'a, A, R, F, T> CallOne<'a, A, F, T>
where
    F: BatchFn<Vec<A>, Output = Vec<R>>,
    T: Timer,
{
    #[inline]
    pub(super) fn new(call: Call<'a, Vec<A>, F, T>) -> Self {
        Self { call }
    }
}

impl<A, R, F, T> Future for CallOne<'_, A, F, T>
where
    F: BatchFn<Vec<A>, Output = Vec<R>>,
    T: Timer,
{
    type Output = Result<R, BatchError<F::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().call.poll(cx).map(|out| {
            // The batcher checked the result's length: the piece holds exactly one row.
            out.and_then(|rows| {
                rows.into_iter().next().ok_or(BatchError::WrongLength {
                    expected: 1,
                    actual: 0,
                })
            })
        })
    }
}

impl<A, F: BatchFn<Vec<A>>, T: Timer> fmt::Debug for CallOne<'_, A, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOne").field("call", &self.call).finish()
    }
}
