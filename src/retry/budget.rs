//! # Implementation notes
//!
//! One `AtomicU32` of tokens. A retry withdraws `retry_cost` with a compare-exchange loop that
//! never lets the count go below zero (a failed withdrawal changes nothing); a success
//! deposits `success_refund` with a compare-exchange loop that saturates at `capacity`. No
//! lock, no allocation, 32-bit atomics only (thumbv7em has no 64-bit ones). The loom model in
//! `tests/loom_retry.rs` checks that concurrent withdrawals never overdraw.

use core::fmt;

use crate::error::{ConfigError, ConfigValue};
use crate::sync::atomic::{AtomicU32, Ordering};

/// A token bucket shared by many retrying calls, so that a failing dependency sees a bounded
/// share of retries instead of a retry storm (the AWS SDKs' "retry quota").
///
/// The bucket starts full with `capacity` tokens. Each retry withdraws `retry_cost` tokens;
/// when fewer are left the retry is refused and the call returns its error (reported to
/// [`notify`](super::Retry::notify) with no delay). Each successful call deposits
/// `success_refund` tokens, up to `capacity`. First attempts never cost anything: the budget
/// limits retries, not calls. A retry future dropped while it waits for its retry gives the
/// retry's tokens back.
///
/// The defaults are the AWS SDKs': 500 tokens, 5 per retry, 1 back per success, so with a
/// full bucket 100 retries can happen back to back, and sustained retrying is limited to one
/// retry per five successes.
///
/// Lock-free, `no_std`, `Sync`: share it by reference, in a `static`, or in an `Arc`
/// (anything that implements `Borrow<RetryBudget>`).
///
/// # Examples
///
/// ```
/// use dike::retry::RetryBudget;
///
/// static BUDGET: RetryBudget = RetryBudget::new();
/// assert_eq!(BUDGET.available(), 500);
///
/// let small = RetryBudget::with_capacity(10, 5, 1)?;
/// assert!(small.try_withdraw());
/// assert!(small.try_withdraw());
/// assert!(!small.try_withdraw(), "empty: the next retry is refused");
/// small.deposit();
/// assert_eq!(small.available(), 1);
/// # Ok::<(), dike::error::ConfigError>(())
/// ```
pub struct RetryBudget {
    tokens: AtomicU32,
    capacity: u32,
    retry_cost: u32,
    success_refund: u32,
}

impl RetryBudget {
    /// The AWS defaults: 500 tokens, 5 per retry, 1 back per success.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            tokens: AtomicU32::new(500),
            capacity: 500,
            retry_cost: 5,
            success_refund: 1,
        }
    }

    /// The AWS defaults: 500 tokens, 5 per retry, 1 back per success.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            tokens: AtomicU32::new(500),
            capacity: 500,
            retry_cost: 5,
            success_refund: 1,
        }
    }

    /// A full bucket of `capacity` tokens; a retry costs `retry_cost`, a success refunds
    /// `success_refund` (0 makes a budget that only drains: at most `capacity / retry_cost`
    /// retries, ever).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `retry_cost` when it is 0 (retries would be free), or
    /// `capacity` when it is below `retry_cost` (no retry could ever happen).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::with_capacity(100, 10, 1)?;
    /// assert_eq!(budget.available(), 100);
    ///
    /// // `const`, so a custom budget can live in a `static`:
    /// static SMALL: RetryBudget = match RetryBudget::with_capacity(50, 5, 1) {
    ///     Ok(budget) => budget,
    ///     Err(_) => panic!("invalid retry budget"),
    /// };
    /// assert_eq!(SMALL.capacity(), 50);
    /// assert_eq!(RetryBudget::with_capacity(4, 5, 1).unwrap_err().parameter(), "capacity");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[cfg(not(loom))]
    pub const fn with_capacity(
        capacity: u32,
        retry_cost: u32,
        success_refund: u32,
    ) -> Result<Self, ConfigError> {
        if let Err(e) = validate(capacity, retry_cost) {
            return Err(e);
        }
        Ok(Self {
            tokens: AtomicU32::new(capacity),
            capacity,
            retry_cost,
            success_refund,
        })
    }

    /// A full bucket of `capacity` tokens; a retry costs `retry_cost`, a success refunds
    /// `success_refund` (0 makes a budget that only drains: at most `capacity / retry_cost`
    /// retries, ever).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `retry_cost` when it is 0 (retries would be free), or
    /// `capacity` when it is below `retry_cost` (no retry could ever happen).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::with_capacity(100, 10, 1)?;
    /// assert_eq!(budget.available(), 100);
    ///
    /// // `const`, so a custom budget can live in a `static`:
    /// static SMALL: RetryBudget = match RetryBudget::with_capacity(50, 5, 1) {
    ///     Ok(budget) => budget,
    ///     Err(_) => panic!("invalid retry budget"),
    /// };
    /// assert_eq!(SMALL.capacity(), 50);
    /// assert_eq!(RetryBudget::with_capacity(4, 5, 1).unwrap_err().parameter(), "capacity");
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    #[cfg(loom)]
    pub fn with_capacity(
        capacity: u32,
        retry_cost: u32,
        success_refund: u32,
    ) -> Result<Self, ConfigError> {
        validate(capacity, retry_cost)?;
        Ok(Self {
            tokens: AtomicU32::new(capacity),
            capacity,
            retry_cost,
            success_refund,
        })
    }

    /// Tokens in the bucket now.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryBudget;
    ///
    /// assert_eq!(RetryBudget::new().available(), 500);
    /// ```
    pub fn available(&self) -> u32 {
        self.tokens.load(Ordering::Acquire)
    }

    /// The bucket's size.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryBudget;
    ///
    /// assert_eq!(RetryBudget::new().capacity(), 500);
    /// ```
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Withdraws one retry's tokens if that many are left; `false` (and no change) otherwise.
    ///
    /// The retry loop calls this before each retry; call it yourself to account retries made
    /// outside dike.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::with_capacity(5, 5, 1)?;
    /// assert!(budget.try_withdraw());
    /// assert!(!budget.try_withdraw());
    /// # Ok::<(), dike::error::ConfigError>(())
    /// ```
    pub fn try_withdraw(&self) -> bool {
        let mut current = self.tokens.load(Ordering::Relaxed);
        loop {
            let Some(left) = current.checked_sub(self.retry_cost) else {
                return false;
            };
            match self.tokens.compare_exchange_weak(
                current,
                left,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Deposits one success's refund, up to the capacity.
    ///
    /// The retry loop calls this when a call succeeds.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::retry::RetryBudget;
    ///
    /// let budget = RetryBudget::new();
    /// budget.deposit();
    /// assert_eq!(budget.available(), 500, "never above capacity");
    /// ```
    pub fn deposit(&self) {
        self.add(self.success_refund);
    }

    /// Gives back the tokens of a retry withdrawn but never made.
    pub(crate) fn cancel_withdrawal(&self) {
        self.add(self.retry_cost);
    }

    fn add(&self, amount: u32) {
        if amount == 0 {
            return;
        }
        let mut current = self.tokens.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(amount).min(self.capacity);
            if next == current {
                return;
            }
            match self.tokens.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

const fn validate(capacity: u32, retry_cost: u32) -> Result<(), ConfigError> {
    if retry_cost == 0 {
        return Err(ConfigError::new(
            "retry_cost",
            ConfigValue::Int(0),
            "at least 1",
        ));
    }
    if capacity < retry_cost {
        return Err(ConfigError::new(
            "capacity",
            ConfigValue::Int(capacity as i128),
            "at least retry_cost",
        ));
    }
    Ok(())
}

#[cfg(not(loom))]
impl Default for RetryBudget {
    /// [`RetryBudget::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RetryBudget {
    /// `RetryBudget { available: 490, capacity: 500, retry_cost: 5, success_refund: 1 }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("available", &self.available())
            .field("capacity", &self.capacity)
            .field("retry_cost", &self.retry_cost)
            .field("success_refund", &self.success_refund)
            .finish()
    }
}
