//! Poll-level tests of the batcher.
