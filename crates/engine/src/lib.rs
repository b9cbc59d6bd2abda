//! Slipway's execution engine: runs a recorded deployment on its targets — preflight, batches,
//! validation gates, release directories, rollback — and writes every intent to the store before
//! acting on it, so that any process can finish a run whose process died.

pub mod artifact;
pub mod checks;
pub mod context;
pub mod coordinator;
mod engine;
pub mod failpoint;
pub mod host;
pub mod identity;
pub mod progress;
mod recover;
mod run;
pub mod secrets;

pub use coordinator::{CoordinationError, CoordinationResult, Standing};
pub use engine::{
    DeployRequest, Engine, EngineConfig, EngineError, EngineResult, Holder, HostFactory,
    LocalHosts, now_millis,
};
pub use failpoint::Failpoints;
pub use progress::{Observer, Progress, Silent};
pub use secrets::{Masker, Secrets};
