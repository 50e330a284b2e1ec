//! The one place atomics, `Arc` and the blocking lock come from.
//!
//! Under `cfg(loom)` everything is loom's, so the loom models in `tests/loom.rs` see every
//! synchronisation point. With `std` the lock is `std::sync::Mutex` (poisoning ignored: no
//! critical section in dike can leave its data half-updated); without it, a spin lock.

#![allow(dead_code, unused_imports)]

#[cfg(all(feature = "alloc", not(loom)))]
pub(crate) use alloc::sync::Arc;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic;
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, atomic};

/// A blocking mutex for short critical sections that never await.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(all(feature = "std", not(loom)))]
    inner: std::sync::Mutex<T>,
    #[cfg(all(not(feature = "std"), not(loom)))]
    inner: spin::Mutex<T>,
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
            inner: spin::Mutex::new(value),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Self {
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Locks, ignoring poisoning.
    #[inline]
    pub(crate) fn lock(&self) -> impl core::ops::DerefMut<Target = T> + '_ {
        #[cfg(all(feature = "std", not(loom)))]
        {
            self.inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
        #[cfg(all(not(feature = "std"), not(loom)))]
        {
            self.inner.lock()
        }
        #[cfg(loom)]
        {
            self.inner.lock().unwrap()
        }
    }
}

/// A 64-bit atomic on every target: core's where the target has one, portable-atomic's
/// fallback (a seqlock over 32-bit CAS) on targets that do not, such as `thumbv7em`.
#[cfg(all(not(loom), target_has_atomic = "64"))]
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(all(not(loom), not(target_has_atomic = "64")))]
pub(crate) use portable_atomic::AtomicU64;
