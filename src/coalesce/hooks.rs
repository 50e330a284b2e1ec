//! Hooks: what a [`Coalescer`](super::Coalescer) reports about each call, and the debug hook.

use alloc::sync::Arc;
use core::fmt;

use super::RunError;

/// Callbacks a [`Coalescer`](super::Coalescer) makes for every call, the Rust form of
/// async_reduce's `BaseHooks`.
///
/// Every method has a default that does nothing, so a hook implements only what it needs.
/// For each call to [`run`](super::Coalescer::run): [`apply`](Hooks::apply), then either
/// [`execute`](Hooks::execute) (this caller's closure will run the work) or
/// [`join`](Hooks::join) (it reuses a run in flight). For each run, once:
/// [`success`](Hooks::success) or [`error`](Hooks::error) when the work completes (called
/// by whichever waiter completed it), or [`abandon`](Hooks::abandon) when every waiter left
/// before it completed and the work was dropped. So per run, `execute` is followed by exactly
/// one of `success`, `error` and `abandon`.
///
/// Hooks are combined by putting them in a tuple, `(a, b)` up to 4 (nest tuples for more):
/// each method calls the members in order. `&H` and `Arc<H>` are hooks when `H` is, so hooks
/// can be kept and read outside the coalescer.
///
/// # Implementing
///
/// - Methods take `&self` and may be called from several threads at once: use atomics or a
///   lock inside.
/// - They are called outside every lock of the coalescer, so they MAY call into it (even
///   `run` on the same coalescer), but MUST NOT block for long: `apply`, `execute` and `join`
///   run inside `run`, the others inside a waiter's `poll`.
/// - A panic in `apply`, `execute` or `join` unwinds out of `run`: that caller leaves the run
///   (if it was the executor, the callers that joined meanwhile get
///   [`RunError::Panicked`]). A panic in `success`, `error` or `abandon` unwinds out of the
///   poll or drop that called it, after the run has settled and its other waiters were woken.
///   Either way the coalescer stays consistent and the key is freed in due course.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use dike::coalesce::{Coalescer, Hooks};
///
/// #[derive(Default)]
/// struct CountJoins(AtomicUsize);
///
/// impl<K, T, E> Hooks<K, T, E> for CountJoins {
///     fn join(&self, _key: &K) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// # smol::block_on(async {
/// let coalescer = Coalescer::with_hooks(CountJoins::default());
/// let a = coalescer.run("k", || async { Ok::<_, ()>(1) });
/// let b = coalescer.run("k", || async { Ok::<_, ()>(2) });
/// assert_eq!(a.await.into_result(), Ok(1));
/// assert_eq!(b.await.into_result(), Ok(1));
/// assert_eq!(coalescer.hooks().0.load(Ordering::Relaxed), 1);
/// # let _: &Coalescer<String, i32, (), CountJoins> = &coalescer;
/// # });
/// ```
pub trait Hooks<K, T, E> {
    /// A call to `run` for `key` arrived.
    #[inline]
    fn apply(&self, key: &K) {
        let _ = key;
    }
    /// This call runs the work: its closure is about to be called.
    #[inline]
    fn execute(&self, key: &K) {
        let _ = key;
    }
    /// This call joins the run in flight for `key`; its closure is never called.
    #[inline]
    fn join(&self, key: &K) {
        let _ = key;
    }
    /// The work for `key` completed with `value` (once per run).
    #[inline]
    fn success(&self, key: &K, value: &T) {
        let _ = (key, value);
    }
    /// The work for `key` failed or panicked (once per run).
    #[inline]
    fn error(&self, key: &K, error: &RunError<E>) {
        let _ = (key, error);
    }
    /// Every waiter of the run for `key` left before it completed: the work was dropped
    /// unfinished (once per run).
    #[inline]
    fn abandon(&self, key: &K) {
        let _ = key;
    }
    /// Internal: `false` only for hooks that do nothing ([`NoHooks`], and combinations of
    /// it), so the coalescer skips them and keeps no copy of the key for them. Not part of
    /// the API: hooks that override it are not called.
    #[doc(hidden)]
    #[inline]
    fn __called(&self) -> bool {
        true
    }
}

/// No hooks: the default of a [`Coalescer`](super::Coalescer).
///
/// # Examples
///
/// ```
/// use dike::coalesce::{Coalescer, NoHooks};
///
/// let coalescer: Coalescer<u64, String, ()> = Coalescer::new();
/// let _: &NoHooks = coalescer.hooks();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoHooks;

impl<K, T, E> Hooks<K, T, E> for NoHooks {
    #[inline]
    fn __called(&self) -> bool {
        false
    }
}

impl<K, T, E, H: Hooks<K, T, E> + ?Sized> Hooks<K, T, E> for &H {
    fn apply(&self, key: &K) {
        (**self).apply(key);
    }
    fn execute(&self, key: &K) {
        (**self).execute(key);
    }
    fn join(&self, key: &K) {
        (**self).join(key);
    }
    fn success(&self, key: &K, value: &T) {
        (**self).success(key, value);
    }
    fn error(&self, key: &K, error: &RunError<E>) {
        (**self).error(key, error);
    }
    fn abandon(&self, key: &K) {
        (**self).abandon(key);
    }
    #[inline]
    fn __called(&self) -> bool {
        (**self).__called()
    }
}

impl<K, T, E, H: Hooks<K, T, E> + ?Sized> Hooks<K, T, E> for Arc<H> {
    fn apply(&self, key: &K) {
        (**self).apply(key);
    }
    fn execute(&self, key: &K) {
        (**self).execute(key);
    }
    fn join(&self, key: &K) {
        (**self).join(key);
    }
    fn success(&self, key: &K, value: &T) {
        (**self).success(key, value);
    }
    fn error(&self, key: &K, error: &RunError<E>) {
        (**self).error(key, error);
    }
    fn abandon(&self, key: &K) {
        (**self).abandon(key);
    }
    #[inline]
    fn __called(&self) -> bool {
        (**self).__called()
    }
}

/// Hooks in a tuple, called in order.
macro_rules! tuple_hooks {
    ($($h:ident . $i:tt),+) => {
        impl<K, T, E, $($h: Hooks<K, T, E>),+> Hooks<K, T, E> for ($($h,)+) {
            fn apply(&self, key: &K) {
                $(self.$i.apply(key);)+
            }
            fn execute(&self, key: &K) {
                $(self.$i.execute(key);)+
            }
            fn join(&self, key: &K) {
                $(self.$i.join(key);)+
            }
            fn success(&self, key: &K, value: &T) {
                $(self.$i.success(key, value);)+
            }
            fn error(&self, key: &K, error: &RunError<E>) {
                $(self.$i.error(key, error);)+
            }
            fn abandon(&self, key: &K) {
                $(self.$i.abandon(key);)+
            }
            #[inline]
            fn __called(&self) -> bool {
                false $(|| self.$i.__called())+
            }
        }
    };
}

tuple_hooks!(A.0);
tuple_hooks!(A.0, B.1);
tuple_hooks!(A.0, B.1, C.2);
tuple_hooks!(A.0, B.1, C.2, D.3);

/// A hook that describes every event in one line, async_reduce's `DebugHooks`.
///
/// Each line goes to a sink, a closure taking [`fmt::Arguments`]: print it, log it, or collect
/// it. [`DebugHooks::stderr`] prints to standard error (`std`); with the `tracing` feature,
/// [`DebugHooks::tracing`] emits a `debug` event per line. The lines, for a key `k` (printed
/// with `Debug`):
///
/// ```text
/// [k] apply
/// [k] execute
/// [k] join
/// [k] success: <value, Debug>
/// [k] error: <error, Display>
/// [k] abandon
/// ```
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use dike::coalesce::{Coalescer, DebugHooks};
///
/// # smol::block_on(async {
/// let lines = Mutex::new(Vec::new());
/// let debug = DebugHooks::new(|line: std::fmt::Arguments<'_>| {
///     lines.lock().unwrap().push(line.to_string());
/// });
/// let coalescer: Coalescer<u32, u32, String, _> = Coalescer::with_hooks(debug);
/// let _ = coalescer.run(&7, || async { Ok(49) }).await;
/// assert_eq!(*lines.lock().unwrap(), ["[7] apply", "[7] execute", "[7] success: 49"]);
/// # });
/// ```
///
/// To a writer (here a file-like `Vec<u8>` behind a lock):
///
/// ```
/// use std::io::Write;
/// use std::sync::{Arc, Mutex};
/// use dike::coalesce::{Coalescer, DebugHooks};
///
/// let log = Arc::new(Mutex::new(Vec::<u8>::new()));
/// let writer = Arc::clone(&log);
/// let coalescer: Coalescer<u8, u8, String, _> = Coalescer::with_hooks(DebugHooks::new(
///     move |line: std::fmt::Arguments<'_>| {
///         let _ = writeln!(writer.lock().unwrap(), "{line}");
///     },
/// ));
/// let _pending = coalescer.run(&1, || async { Ok(1) });
/// assert_eq!(String::from_utf8_lossy(&log.lock().unwrap()), "[1] apply\n[1] execute\n");
/// ```
#[derive(Clone, Copy)]
pub struct DebugHooks<F> {
    sink: F,
}

impl<F: Fn(fmt::Arguments<'_>)> DebugHooks<F> {
    /// A debug hook that hands each line to `sink`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::DebugHooks;
    ///
    /// let hooks = DebugHooks::new(|line: std::fmt::Arguments<'_>| println!("coalesce: {line}"));
    /// # let _ = hooks;
    /// ```
    pub const fn new(sink: F) -> Self {
        Self { sink }
    }
}

#[cfg(feature = "std")]
impl DebugHooks<fn(fmt::Arguments<'_>)> {
    /// A debug hook that prints each line to standard error, as the original does.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, DebugHooks};
    ///
    /// let coalescer: Coalescer<u32, u32, (), _> = Coalescer::with_hooks(DebugHooks::stderr());
    /// # let _ = coalescer;
    /// ```
    pub fn stderr() -> Self {
        Self::new(|line| std::eprintln!("{line}"))
    }
}

#[cfg(feature = "tracing")]
impl DebugHooks<fn(fmt::Arguments<'_>)> {
    /// A debug hook that emits each line as a `tracing` event at `DEBUG` level.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::coalesce::{Coalescer, DebugHooks};
    ///
    /// let coalescer: Coalescer<u32, u32, (), _> = Coalescer::with_hooks(DebugHooks::tracing());
    /// # let _ = coalescer;
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
    pub fn tracing() -> Self {
        Self::new(|line| tracing::debug!("coalesce {line}"))
    }
}

impl<F> fmt::Debug for DebugHooks<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugHooks").finish_non_exhaustive()
    }
}

impl<K, T, E, F> Hooks<K, T, E> for DebugHooks<F>
where
    K: fmt::Debug,
    T: fmt::Debug,
    E: fmt::Display,
    F: Fn(fmt::Arguments<'_>),
{
    fn apply(&self, key: &K) {
        (self.sink)(format_args!("[{key:?}] apply"));
    }
    fn execute(&self, key: &K) {
        (self.sink)(format_args!("[{key:?}] execute"));
    }
    fn join(&self, key: &K) {
        (self.sink)(format_args!("[{key:?}] join"));
    }
    fn success(&self, key: &K, value: &T) {
        (self.sink)(format_args!("[{key:?}] success: {value:?}"));
    }
    fn error(&self, key: &K, error: &RunError<E>) {
        match error {
            RunError::Failed(e) => (self.sink)(format_args!("[{key:?}] error: {e}")),
            RunError::Panicked => (self.sink)(format_args!("[{key:?}] error: {error}")),
        }
    }
    fn abandon(&self, key: &K) {
        (self.sink)(format_args!("[{key:?}] abandon"));
    }
}
