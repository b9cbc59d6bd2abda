//! End-to-end tests of the `slipway` binary, driven through a small fluent harness.

mod deploy;
mod harness;
mod plan;
mod ssh;
