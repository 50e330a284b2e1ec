//! Extension traits, for a glob import: `use dike::prelude::*;`.
//!
//! # Examples
//!
//! ```
//! use dike::prelude::*;
//!
//! let op = || async { Ok::<_, ()>(1) };
//! let policy = dike::retry::Retry::new();
//! let run = op.retry(&policy, dike::time::ManualTimer::new());
//! assert_eq!(smol::block_on(run), Ok(1));
//! ```

pub use crate::retry::RetryExt;
