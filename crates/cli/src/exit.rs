//! Exit codes, stable for scripts and CI pipelines; documented in the README.

use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// The input was understood but is wrong: an invalid plan, an unknown environment.
pub const INVALID: u8 = 1;
/// The input could not be read, or the command line was wrong.
pub const UNREADABLE: u8 = 2;

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
