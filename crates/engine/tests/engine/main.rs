//! Engine integration tests: real processes and directories on local targets, a real SQLite file,
//! and (in `ssh`) a real sshd on loopback.

mod local;
mod ssh;
