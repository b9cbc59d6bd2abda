//! A local target: a directory of its own on this machine, and processes started there.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{
    Exec, ExecOutcome, ExitStatus, Host, HostError, HostResult, OUTPUT_LIMIT, Program, keep_tail,
};

pub struct LocalHost {
    name: String,
    root: PathBuf,
}

impl LocalHost {
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        LocalHost {
            name: name.into(),
            root: root.into(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn io(path: &str, e: std::io::Error) -> HostError {
    HostError::Io(format!("{path}: {e}"))
}

#[async_trait]
impl Host for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn resolve(&self, path: &str) -> String {
        let p = Path::new(path);
        if p.is_absolute() {
            path.to_string()
        } else {
            self.root.join(p).to_string_lossy().into_owned()
        }
    }

    async fn connect(&self) -> HostResult<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| HostError::Unreachable {
                target: self.name.clone(),
                reason: format!("cannot create its root {}: {e}", self.root.display()),
            })
    }

    async fn exec(&self, exec: Exec) -> HostResult<ExecOutcome> {
        let mut cmd = match &exec.program {
            Program::Argv(argv) => {
                let Some((program, args)) = argv.split_first() else {
                    return Err(HostError::Io("empty command".into()));
                };
                // A relative program path is relative to the working directory, as in a shell.
                let program = if program.contains('/') && !program.starts_with('/') {
                    Path::new(&exec.cwd)
                        .join(program)
                        .to_string_lossy()
                        .into_owned()
                } else {
                    program.clone()
                };
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            Program::Shell(text) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(text);
                c
            }
        };
        cmd.current_dir(&exec.cwd)
            .envs(exec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills everything it started.
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| HostError::Io(format!("cannot start command in {}: {e}", exec.cwd)))?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            let buf = output.clone();
            readers.push(tokio::spawn(async move { pump(&mut out, &buf).await }));
        }
        if let Some(mut err) = child.stderr.take() {
            let buf = output.clone();
            readers.push(tokio::spawn(async move { pump(&mut err, &buf).await }));
        }
        let waited = match exec.timeout {
            Some(limit) => tokio::time::timeout(limit, child.wait()).await.ok(),
            None => Some(child.wait().await),
        };
        let status = match waited {
            Some(status) => {
                let status = status?;
                match status.code() {
                    Some(code) => ExitStatus::Exited(code),
                    None => ExitStatus::Signalled(status.signal().unwrap_or(0)),
                }
            }
            None => {
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                let _ = child.wait().await;
                ExitStatus::TimedOut
            }
        };
        // Grandchildren may still hold the pipes open after a normal exit; don't wait for them long.
        for r in readers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), r).await;
        }
        let output = std::mem::take(
            &mut *output
                .lock()
                .map_err(|_| HostError::Io("output lock poisoned".into()))?,
        );
        Ok(ExecOutcome {
            status,
            output,
            elapsed: started.elapsed(),
        })
    }

    async fn create_dir_all(&self, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|e| io(&path, e))
    }

    async fn check_writable(&self, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|e| io(&path, e))?;
        let probe = Path::new(&path).join(format!(".slipway-write-test-{}", std::process::id()));
        tokio::fs::write(&probe, b"ok")
            .await
            .map_err(|e| io(&path, e))?;
        tokio::fs::remove_file(&probe)
            .await
            .map_err(|e| io(&path, e))
    }

    async fn free_bytes(&self, path: &str) -> HostResult<u64> {
        let path = self.resolve(path);
        let stat = nix::sys::statvfs::statvfs(Path::new(&path))
            .map_err(|e| HostError::Io(format!("{path}: {e}")))?;
        Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
    }

    async fn upload(&self, local: &Path, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        if let Some(parent) = Path::new(&path).parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io(&path, e))?;
        }
        let tmp = format!("{path}.partial");
        tokio::fs::copy(local, &tmp)
            .await
            .map_err(|e| io(&path, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| io(&path, e))
    }

    async fn sha256(&self, path: &str) -> HostResult<Option<String>> {
        let path = self.resolve(path);
        match tokio::fs::metadata(&path).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        }
        let p = PathBuf::from(&path);
        tokio::task::spawn_blocking(move || crate::artifact::sha256_file(&p).map(Some))
            .await
            .map_err(|e| HostError::Io(e.to_string()))?
            .map_err(|e| io(&path, e))
    }

    async fn read_link(&self, path: &str) -> HostResult<Option<String>> {
        let path = self.resolve(path);
        match tokio::fs::read_link(&path).await {
            Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    async fn switch_link(&self, link: &str, target: &str) -> HostResult<()> {
        let link = self.resolve(link);
        let tmp = format!("{link}.slipway-new");
        let _ = tokio::fs::remove_file(&tmp).await;
        tokio::fs::symlink(target, &tmp)
            .await
            .map_err(|e| io(&tmp, e))?;
        // rename(2) over the old link is atomic.
        tokio::fs::rename(&tmp, &link)
            .await
            .map_err(|e| io(&link, e))
    }

    async fn remove_link(&self, link: &str) -> HostResult<()> {
        let link = self.resolve(link);
        match tokio::fs::remove_file(&link).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&link, e)),
        }
    }

    async fn list_dir(&self, path: &str) -> HostResult<Vec<String>> {
        let path = self.resolve(path);
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&path).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&path, e)),
        };
        while let Some(entry) = rd.next_entry().await.map_err(|e| io(&path, e))? {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }

    async fn exists(&self, path: &str) -> HostResult<bool> {
        let path = self.resolve(path);
        Ok(tokio::fs::symlink_metadata(&path).await.is_ok())
    }

    async fn remove_dir_all(&self, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }
}

async fn pump(reader: &mut (impl AsyncReadExt + Unpin), buf: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > 2 * OUTPUT_LIMIT {
                        keep_tail(&mut b, OUTPUT_LIMIT);
                    }
                }
            }
        }
    }
}
