//! The one place atomics, `Arc` and the blocking lock come from.
//!
//! Under `cfg(loom)` everything is loom's, so the loom models in `tests/loom_*.rs` see every
//! synchronisation point. With `std` the lock is `std::sync::Mutex` (poisoning ignored: no
//! critical section in dike can leave its data half-updated). Without `std` it is a
//! [`critical-section`](https://docs.rs/critical-section) mutex: on a single-core
//! microcontroller a critical section masks interrupts, so an interrupt handler that touches
//! the same primitive (drops a permit, polls a waiter) waits for the section to end instead of
//! spinning for ever on a lock held by the code it interrupted. The target provides the
//! critical-section implementation, as every embassy application already does (for example
//! `cortex-m`'s `critical-section-single-core` feature). There is no spin loop anywhere in dike.
//!
//! The lock is closure-scoped ([`Mutex::with`]): nothing can escape the section, and the
//! house rule "never wake, drop a waker or call user code with a lock held" is visible at each
//! call site: a section returns what must be woken or dropped, and the caller does it after.

#![allow(dead_code, unused_imports)]

#[cfg(all(feature = "alloc", not(loom)))]
pub(crate) use alloc::sync::Arc;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic;
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, atomic};

/// A blocking mutex for short critical sections that never await, never wake and never call
/// user code.
#[derive(Debug)]
pub(crate) struct Mutex<T> {
    #[cfg(all(feature = "std", not(loom)))]
    inner: std::sync::Mutex<T>,
    #[cfg(all(not(feature = "std"), not(loom)))]
    inner: critical_section::Mutex<core::cell::RefCell<T>>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Self {
            #[cfg(feature = "std")]
            inner: std::sync::Mutex::new(value),
            #[cfg(not(feature = "std"))]
            inner: critical_section::Mutex::new(core::cell::RefCell::new(value)),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Self {
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Runs `f` with the lock held and returns its result.
    ///
    /// `f` must not take this lock again, wake a waker, drop one, or call user code: return
    /// such things and act on them after the section.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(all(feature = "std", not(loom)))]
        {
            let mut guard = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        }
        #[cfg(all(not(feature = "std"), not(loom)))]
        {
            critical_section::with(|cs| f(&mut self.inner.borrow_ref_mut(cs)))
        }
        #[cfg(loom)]
        {
            f(&mut self.inner.lock().unwrap())
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// A 64-bit atomic, where the target has one. Targets without (such as `thumbv7em`) keep
/// 64-bit state behind [`Mutex`] instead: portable-atomic's fallback is a seqlock whose writers
/// spin, which an interrupt handler must never do on one core.
#[cfg(all(not(loom), target_has_atomic = "64"))]
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
