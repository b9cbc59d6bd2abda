//! Where steps run. A [`Host`] executes commands and the few file operations release directories
//! need, on one target; the engine never touches a target any other way.

pub mod local;
pub mod ssh;

use std::time::Duration;

use async_trait::async_trait;

/// What to run. Argv is executed directly; shell text goes to `sh -c`, with every value it
/// refers to passed as an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone)]
pub struct Exec {
    pub program: Program,
    /// Added to the host's environment.
    pub env: Vec<(String, String)>,
    /// Absolute path on the target.
    pub cwd: String,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    /// Killed by a signal that Slipway did not send.
    Signalled(i32),
    /// Slipway killed the whole process tree when the timeout ran out.
    TimedOut,
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(c) => Some(c),
            _ => None,
        }
    }

    pub fn describe(self) -> String {
        match self {
            ExitStatus::Exited(c) => format!("exited with status {c}"),
            ExitStatus::Signalled(s) => format!("killed by signal {s}"),
            ExitStatus::TimedOut => "timed out; its process tree was killed".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExecOutcome {
    pub status: ExitStatus,
    /// Standard output and error, interleaved as they arrived; only the last part when long.
    pub output: Vec<u8>,
    pub elapsed: Duration,
}

/// Most output kept per command, from its end.
pub const OUTPUT_LIMIT: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for HostError {
    fn from(e: std::io::Error) -> Self {
        HostError::Io(e.to_string())
    }
}

pub type HostResult<T> = Result<T, HostError>;

#[async_trait]
pub trait Host: Send + Sync {
    /// The target's name, for messages.
    fn name(&self) -> &str;

    /// Absolute form of a path on the target; relative paths resolve under the target's base
    /// directory (a local target's root, an SSH login's home).
    fn resolve(&self, path: &str) -> String;

    /// Checks that the target answers; for remote hosts this opens (and keeps) the connection.
    async fn connect(&self) -> HostResult<()>;

    async fn exec(&self, exec: Exec) -> HostResult<ExecOutcome>;

    async fn create_dir_all(&self, path: &str) -> HostResult<()>;

    /// Fails unless a file can be created in `path`.
    async fn check_writable(&self, path: &str) -> HostResult<()>;

    /// Free bytes on the file system holding `path`.
    async fn free_bytes(&self, path: &str) -> HostResult<u64>;

    /// Copies a file from the machine running Slipway to `path` on the target.
    async fn upload(&self, local: &std::path::Path, path: &str) -> HostResult<()>;

    /// SHA-256 of a file on the target, if it exists.
    async fn sha256(&self, path: &str) -> HostResult<Option<String>>;

    async fn read_link(&self, path: &str) -> HostResult<Option<String>>;

    /// Points the symlink `link` at `target` atomically: readers see the old or the new
    /// release, never neither.
    async fn switch_link(&self, link: &str, target: &str) -> HostResult<()>;

    async fn remove_link(&self, link: &str) -> HostResult<()>;

    /// Names of the entries of a directory; empty if it does not exist.
    async fn list_dir(&self, path: &str) -> HostResult<Vec<String>>;

    async fn exists(&self, path: &str) -> HostResult<bool>;

    async fn remove_dir_all(&self, path: &str) -> HostResult<()>;
}

/// Keeps the last `limit` bytes of a stream.
pub(crate) fn keep_tail(buf: &mut Vec<u8>, limit: usize) {
    if buf.len() > limit {
        let cut = buf.len() - limit;
        buf.drain(..cut);
    }
}
