//! End-to-end tests of the `slipway` binary, driven through a small fluent harness.

mod coordination;
mod deploy;
mod harness;
mod plan;
mod ssh;
