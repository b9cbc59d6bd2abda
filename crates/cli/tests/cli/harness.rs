//! A small fluent harness that runs the real `slipway` binary in a temporary directory.
#![allow(dead_code)] // each test binary uses a different part of it

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Test {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Self {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The record the commands of this test write.
    pub fn database(&self) -> PathBuf {
        self.dir.path().join(".slipway/slipway.db")
    }

    /// Writes a file in place (the builder form is `file`).
    pub fn put(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).expect("write file");
    }

    pub fn file(self, name: &str, content: &str) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write file");
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the arguments of the next run; the harness can run several commands in one directory.
    pub fn args<I, S>(&self, args: I) -> Run<'_>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Run {
            test: self,
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    fn binary() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_slipway"))
    }
}

pub struct Run<'t> {
    test: &'t Test,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Run<'_> {
    /// An environment variable for this run only.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(Test::binary());
        cmd.args(&self.args)
            .current_dir(self.test.dir.path())
            .env("NO_COLOR", "1")
            .env("SLIPWAY_HOME", self.test.dir.path().join(".slipway"))
            .env_remove("SLIPWAY_DATABASE")
            .env_remove("SLIPWAY_FAILPOINTS");
        for (k, v) in self.test.env.iter().chain(&self.env) {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the command in the background, its output discarded.
    pub fn spawn(self) -> std::process::Child {
        self.command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn slipway")
    }

    pub fn run(self) -> Output {
        let out = self.command().output().expect("run slipway");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    pub fn status(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code {} (expected {expected})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Everything the command printed, for searches.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}
