//! Small errors shared by several primitives.
//!
//! Each operation has its own small error, named after it; the ones here are shared:
//! [`ConfigError`] for every constructor that validates its input.

use core::fmt;
use core::time::Duration;

/// A configuration value was rejected at construction.
///
/// Every constructor that can be handed a meaningless value (a zero attempt count, a NaN
/// multiplier, a zero rate) returns this instead of panicking. It names the parameter, the
/// value given and what was expected.
///
/// # Examples
///
/// ```
/// use dike::error::{ConfigError, ConfigValue};
///
/// let err = ConfigError::new("attempts", ConfigValue::Int(0), "at least 1");
/// assert_eq!(err.parameter(), "attempts");
/// assert_eq!(err.to_string(), "invalid attempts = 0: expected at least 1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("invalid {parameter} = {value}: expected {expected}")]
pub struct ConfigError {
    parameter: &'static str,
    value: ConfigValue,
    expected: &'static str,
}

impl ConfigError {
    /// A rejected `value` for `parameter`; `expected` says what would have been accepted.
    pub const fn new(parameter: &'static str, value: ConfigValue, expected: &'static str) -> Self {
        Self {
            parameter,
            value,
            expected,
        }
    }

    /// The name of the rejected parameter, as spelled in the API.
    pub const fn parameter(&self) -> &'static str {
        self.parameter
    }

    /// The value that was given.
    pub const fn value(&self) -> ConfigValue {
        self.value
    }

    /// What would have been accepted, e.g. `"at least 1"`.
    pub const fn expected(&self) -> &'static str {
        self.expected
    }
}

/// The rejected value inside a [`ConfigError`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ConfigValue {
    /// An integer (counts, limits).
    Int(i128),
    /// A floating-point number (multipliers, rates).
    Float(f64),
    /// A duration.
    Duration(Duration),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Duration(v) => write!(f, "{v:?}"),
        }
    }
}
