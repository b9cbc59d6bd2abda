//! Live progress, for terminals and streams. The record in the store is the source of truth; this
//! is only what an observer is told as it happens.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// A stage of the deployment as a whole: preflight, staging the artifact, rollback, …
    Stage {
        deployment: i64,
        message: String,
    },
    StepStarted {
        step: String,
        targets: usize,
        batches: usize,
    },
    BatchStarted {
        step: String,
        batch: usize,
        batches: usize,
        targets: Vec<String>,
    },
    UnitFinished {
        step: String,
        target: String,
        ok: bool,
        message: String,
    },
    CheckFinished {
        step: String,
        target: String,
        ok: bool,
        message: String,
    },
    Waiting {
        step: String,
        message: String,
    },
    StepFinished {
        step: String,
        ok: bool,
    },
    Finished {
        deployment: i64,
        state: String,
        message: String,
    },
}

pub trait Observer: Send + Sync {
    fn notify(&self, event: &Progress);
}

/// Tells no one.
pub struct Silent;

impl Observer for Silent {
    fn notify(&self, _: &Progress) {}
}
