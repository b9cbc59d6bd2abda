//! Exit codes, stable for scripts and CI pipelines; documented in the README.

use std::process::ExitCode;

/// Success; for `deploy`, the deployment succeeded.
pub const OK: u8 = 0;
/// The input was understood but is wrong: an invalid plan, an unknown environment.
pub const INVALID: u8 = 1;
/// The input could not be read, or the command line was wrong.
pub const UNREADABLE: u8 = 2;
/// The deployment failed and every target was returned to the release it had.
pub const ROLLED_BACK: u8 = 3;
/// The deployment failed and could not be rolled back completely (or failed its preflight).
pub const FAILED: u8 = 4;
/// Refused before anything ran: the environment is busy, or a rule forbids it.
pub const REFUSED: u8 = 5;
/// The deployment was cancelled.
pub const CANCELLED: u8 = 6;
/// Accepted but not started: waiting for approvals, or scheduled for its window or `--at`.
pub const PENDING: u8 = 7;
/// No such deployment.
pub const NOT_FOUND_CODE: u8 = INVALID;

/// An error that decides its own exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        message: message.into(),
    })
}

pub fn finish(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Failure>().map_or(INVALID, |f| f.code);
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// The exit code a deployment's final state maps to.
pub fn for_state(state: slipway_core::lifecycle::DeploymentState) -> u8 {
    use slipway_core::lifecycle::DeploymentState::*;
    match state {
        Succeeded => OK,
        RolledBack => ROLLED_BACK,
        Failed => FAILED,
        Cancelled => CANCELLED,
        Rejected => REFUSED,
        AwaitingApproval | Scheduled | Queued | Running | RollingBack => OK,
    }
}
