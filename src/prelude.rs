//! Extension traits, for a glob import: `use dike::prelude::*;`.
//!
//! # Examples
//!
//! ```
//! use dike::prelude::*;
//!
//! let op = || async { Ok::<_, ()>(1) };
//! let run = op.retry(dike::retry::Retry::new(), dike::time::ManualTimer::new());
//! assert_eq!(smol::block_on(run), Ok(1));
//! ```

pub use crate::retry::RetryExt;
