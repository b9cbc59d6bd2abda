//! SSH targets, over russh: one connection per (user, host, port), shared by every command on
//! that target, each command a channel of its own.
//!
//! What it guarantees:
//! - Host keys are checked strictly against a known_hosts file that Slipway manages; an unknown
//!   key is refused (or recorded, when the pool trusts on first use), a changed key always refused.
//! - No value is pasted into shell text unquoted, and no value appears in the remote process
//!   list: a command runs as `sh -s` with its script (environment, working directory, command,
//!   every part single-quoted) written to its standard input.
//! - A timeout kills the command's whole remote process tree: the command runs in a process group
//!   of its own, whose id the script reports on standard error behind a per-command marker that
//!   is stripped from the output; on timeout a second channel runs `kill -s KILL -- -PGID`.
//! - At most [`SshConfig::max_channels`] channels are open at once on a connection (sshd's
//!   `MaxSessions` is 10) and every channel is closed explicitly, even when its future is dropped.
//! - At most [`SshConfig::max_handshakes`] handshakes run at once per host, each retried with
//!   backoff; a connection that dropped is opened again on next use.
//!
//! The remote side needs a POSIX `sh`, `setsid` (util-linux or BusyBox) and the usual
//! coreutils (`mkdir`, `touch`, `rm`, `df`, `sha256sum`, `readlink`, `ln`, `mv -T`, `ls`,
//! `cat`); the login shell must understand POSIX single quotes (sh, bash, dash, zsh, ksh).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use russh::keys::known_hosts::{known_host_keys_path, learn_known_hosts_path};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig, client};
use sha2::{Digest, Sha256};
use slipway_core::plan::{Connection, SshAddress, Target};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    Exec, ExecOutcome, ExitStatus, Host, HostError, HostResult, OUTPUT_LIMIT, Program, keep_tail,
};
use crate::{HostFactory, LocalHosts};

/// Environment variable naming a private key to log in with (tried after the configured ones).
pub const SSH_KEY_ENV: &str = "SLIPWAY_SSH_KEY";

/// How an [`SshPool`] connects.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The known_hosts file Slipway manages (`<data_dir>/known_hosts`).
    pub known_hosts: PathBuf,
    /// Record the key of a host not yet in `known_hosts` instead of refusing it.
    pub trust_on_first_use: bool,
    /// Private keys to log in with, tried in order, then `$SLIPWAY_SSH_KEY` when set; when
    /// neither gives one: `~/.ssh/id_ed25519`, then `~/.ssh/id_rsa` (those that exist).
    pub identities: Vec<PathBuf>,
    /// Limit for one TCP connect + handshake + authentication.
    pub connect_timeout: Duration,
    /// Attempts per handshake (connection refused or reset, timeouts, protocol errors).
    pub handshake_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub retry_backoff: Duration,
    /// Handshakes at once per host (and port).
    pub max_handshakes: usize,
    /// Channels (commands) at once per connection; keep below sshd's `MaxSessions` (10).
    pub max_channels: usize,
    /// Keepalive interval; a connection that misses several is dropped and opened again.
    pub keepalive: Duration,
}

impl SshConfig {
    pub fn new(known_hosts: impl Into<PathBuf>) -> Self {
        SshConfig {
            known_hosts: known_hosts.into(),
            trust_on_first_use: false,
            identities: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            handshake_attempts: 3,
            retry_backoff: Duration::from_millis(300),
            max_handshakes: 4,
            max_channels: 8,
            keepalive: Duration::from_secs(15),
        }
    }

    pub fn trust_on_first_use(mut self, yes: bool) -> Self {
        self.trust_on_first_use = yes;
        self
    }

    pub fn identity(mut self, key: impl Into<PathBuf>) -> Self {
        self.identities.push(key.into());
        self
    }

    /// The keys a handshake tries, in order; a configured key must exist, a default one may not.
    fn key_candidates(&self) -> Vec<(PathBuf, bool)> {
        let mut keys: Vec<(PathBuf, bool)> =
            self.identities.iter().map(|p| (p.clone(), true)).collect();
        if let Some(k) = std::env::var_os(SSH_KEY_ENV).filter(|k| !k.is_empty()) {
            let k = PathBuf::from(k);
            if !keys.iter().any(|(p, _)| *p == k) {
                keys.push((k, true));
            }
        }
        if keys.is_empty()
            && let Some(home) = std::env::home_dir()
        {
            keys.push((home.join(".ssh").join("id_ed25519"), false));
            keys.push((home.join(".ssh").join("id_rsa"), false));
        }
        keys
    }
}

/// Connections to SSH targets, shared by every [`SshHost`] it hands out. Cheap to clone.
///
/// Connections belong to the tokio runtime that opened them: use one pool per runtime.
#[derive(Clone)]
pub struct SshPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    config: SshConfig,
    slots: Mutex<HashMap<(String, String, u16), Arc<Slot>>>,
    handshakes: Mutex<HashMap<(String, u16), Arc<Semaphore>>>,
    /// Serialises reading and extending the known_hosts file.
    known_hosts_lock: Arc<Mutex<()>>,
}

/// One (user, host, port): its connection, once open, and its login's home directory.
struct Slot {
    addr: SshAddress,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    home: OnceLock<String>,
    handshakes: Arc<Semaphore>,
}

struct Conn {
    handle: client::Handle<Client>,
    channels: Arc<Semaphore>,
    /// Channels that kill timed-out commands; separate, so that they never wait behind the
    /// commands they are to kill. `max_channels` + this stays within sshd's `MaxSessions`.
    kills: Arc<Semaphore>,
}

const KILL_CHANNELS: usize = 2;

impl SshPool {
    pub fn new(config: SshConfig) -> Self {
        SshPool {
            inner: Arc::new(PoolInner {
                config,
                slots: Mutex::new(HashMap::new()),
                handshakes: Mutex::new(HashMap::new()),
                known_hosts_lock: Arc::new(Mutex::new(())),
            }),
        }
    }

    pub fn config(&self) -> &SshConfig {
        &self.inner.config
    }

    /// A host on this pool; nothing is opened until it is used.
    pub fn host(&self, name: impl Into<String>, addr: &SshAddress) -> SshHost {
        let key = (addr.user.clone(), addr.host.clone(), addr.port);
        let slot = {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry(key)
                .or_insert_with(|| {
                    let handshakes = {
                        let mut hs = self
                            .inner
                            .handshakes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        hs.entry((addr.host.clone(), addr.port))
                            .or_insert_with(|| {
                                Arc::new(Semaphore::new(self.inner.config.max_handshakes.max(1)))
                            })
                            .clone()
                    };
                    Arc::new(Slot {
                        addr: addr.clone(),
                        conn: tokio::sync::Mutex::new(None),
                        home: OnceLock::new(),
                        handshakes,
                    })
                })
                .clone()
        };
        SshHost {
            name: name.into(),
            pool: self.inner.clone(),
            slot,
        }
    }

    /// Closes every open connection (they open again on next use).
    pub async fn disconnect_all(&self) {
        let slots: Vec<Arc<Slot>> = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            if let Some(conn) = slot.conn.lock().await.take() {
                let _ = conn
                    .handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
        }
    }
}

/// Local targets and SSH targets; agent targets need `slipway serve`.
pub struct StandardHosts {
    pub local: LocalHosts,
    pub ssh: SshPool,
}

impl StandardHosts {
    /// Local targets under `data_dir`, SSH hosts checked against `<data_dir>/known_hosts`.
    pub fn new(data_dir: impl Into<PathBuf>, trust_on_first_use: bool) -> Self {
        let data_dir = data_dir.into();
        StandardHosts {
            ssh: SshPool::new(
                SshConfig::new(data_dir.join("known_hosts")).trust_on_first_use(trust_on_first_use),
            ),
            local: LocalHosts::new(data_dir),
        }
    }

    pub fn with_pool(local: LocalHosts, ssh: SshPool) -> Self {
        StandardHosts { local, ssh }
    }
}

impl HostFactory for StandardHosts {
    fn open(&self, environment: &str, target: &Target) -> Result<Arc<dyn Host>, String> {
        match &target.connection {
            Connection::Ssh(addr) => Ok(Arc::new(self.ssh.host(target.name.value.clone(), addr))),
            Connection::Local | Connection::Agent { .. } => self.local.open(environment, target),
        }
    }
}

/// One SSH target. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct SshHost {
    name: String,
    pool: Arc<PoolInner>,
    slot: Arc<Slot>,
}

impl SshHost {
    pub fn address(&self) -> &SshAddress {
        &self.slot.addr
    }

    fn display_addr(&self) -> String {
        let a = &self.slot.addr;
        if a.port == 22 {
            format!("{}@{}", a.user, a.host)
        } else {
            format!("{}@{}:{}", a.user, a.host, a.port)
        }
    }

    fn unreachable(&self, reason: String) -> HostError {
        HostError::Unreachable {
            target: format!("{} ({})", self.name, self.display_addr()),
            reason,
        }
    }

    /// The open connection, opening (or re-opening) it first if needed.
    async fn conn(&self) -> HostResult<Arc<Conn>> {
        let mut guard = self.slot.conn.lock().await;
        if let Some(c) = guard.as_ref()
            && !c.handle.is_closed()
        {
            return Ok(c.clone());
        }
        *guard = None;
        let conn = Arc::new(self.handshake().await.map_err(|e| self.unreachable(e))?);
        if self.slot.home.get().is_none() {
            let ch = open_channel(&conn, &conn.channels)
                .await
                .map_err(|e| self.unreachable(format!("cannot open a channel: {e}")))?;
            let out = run_short(ch, "pwd", Duration::from_secs(30))
                .await
                .map_err(|e| self.unreachable(format!("cannot query the home directory: {e}")))?;
            let home = String::from_utf8_lossy(&out.stdout)
                .trim_end_matches('\n')
                .to_string();
            if out.status != Some(ExitStatus::Exited(0)) || !home.starts_with('/') {
                return Err(self.unreachable(format!(
                    "cannot query the home directory: `pwd` printed {home:?}{}",
                    stderr_suffix(&out.stderr)
                )));
            }
            let _ = self.slot.home.set(home);
        }
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Connects and authenticates, retrying with backoff; returns a readable reason on failure.
    async fn handshake(&self) -> Result<Conn, String> {
        let cfg = &self.pool.config;
        let attempts = cfg.handshake_attempts.max(1);
        let mut backoff = cfg.retry_backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let outcome = {
                let _permit = self
                    .slot
                    .handshakes
                    .acquire()
                    .await
                    .map_err(|_| "handshake limiter closed".to_string())?;
                match tokio::time::timeout(cfg.connect_timeout, self.handshake_once()).await {
                    Ok(r) => r,
                    Err(_) => Err(Failure::retry(format!(
                        "timed out after {}s (connect, handshake and login)",
                        cfg.connect_timeout.as_secs_f64()
                    ))),
                }
            };
            match outcome {
                Ok(conn) => return Ok(conn),
                Err(f) if f.retry && attempt < attempts => {
                    last = f.reason;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(f) => {
                    return Err(if attempt > 1 {
                        format!("{} (after {attempt} attempts)", f.reason)
                    } else {
                        f.reason
                    });
                }
            }
        }
        Err(last)
    }

    async fn handshake_once(&self) -> Result<Conn, Failure> {
        let cfg = &self.pool.config;
        let addr = &self.slot.addr;
        let config = Arc::new(client::Config {
            keepalive_interval: Some(cfg.keepalive),
            keepalive_max: 4,
            nodelay: true,
            ..Default::default()
        });
        let handler = Client {
            host: addr.host.clone(),
            port: addr.port,
            known_hosts: cfg.known_hosts.clone(),
            trust_on_first_use: cfg.trust_on_first_use,
            lock: self.pool.known_hosts_lock.clone(),
        };
        let mut handle = client::connect(config, (addr.host.as_str(), addr.port), handler)
            .await
            .map_err(|e| describe_connect_error(e, &addr.host, addr.port, &cfg.known_hosts))?;

        let mut tried = Vec::new();
        let mut problems = Vec::new();
        for (path, required) in cfg.key_candidates() {
            if !path.exists() {
                if required {
                    problems.push(format!("key {} does not exist", path.display()));
                }
                continue;
            }
            let key = match russh::keys::load_secret_key(&path, None) {
                Ok(k) => k,
                Err(russh::keys::Error::KeyIsEncrypted) => {
                    problems.push(format!(
                        "key {} is passphrase-protected, which Slipway does not support (use a deploy key without one)",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(format!("cannot read key {}: {e}", path.display()));
                    continue;
                }
            };
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| Failure::retry(format!("handshake failed: {e}")))?
                    .flatten()
            } else {
                None
            };
            tried.push(path.display().to_string());
            let result = handle
                .authenticate_publickey(
                    addr.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(|e| Failure::retry(format!("authentication failed: {e}")))?;
            if result.success() {
                return Ok(Conn {
                    handle,
                    channels: Arc::new(Semaphore::new(cfg.max_channels.max(1))),
                    kills: Arc::new(Semaphore::new(KILL_CHANNELS)),
                });
            }
        }
        let mut reason = if tried.is_empty() {
            format!(
                "authentication as {} failed: no private key to offer (set {SSH_KEY_ENV} or create ~/.ssh/id_ed25519)",
                addr.user
            )
        } else {
            format!(
                "authentication as {} failed: the server accepted none of the keys {}",
                addr.user,
                tried.join(", ")
            )
        };
        if !problems.is_empty() {
            reason.push_str("; ");
            reason.push_str(&problems.join("; "));
        }
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Err(Failure::fatal(reason))
    }

    /// Opens a channel, with a permit from `pick`; reconnects once if the connection dropped.
    async fn channel(&self, kill: bool) -> HostResult<(Arc<Conn>, OpenChannel)> {
        for attempt in 0..2 {
            let conn = self.conn().await?;
            let sem = if kill { &conn.kills } else { &conn.channels };
            match open_channel(&conn, sem).await {
                Ok(ch) => return Ok((conn, ch)),
                Err(e) if attempt == 0 && conn.handle.is_closed() => {
                    let mut guard = self.slot.conn.lock().await;
                    if guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                        *guard = None;
                    }
                    drop(e);
                }
                Err(e) => return Err(self.unreachable(format!("cannot open a channel: {e}"))),
            }
        }
        Err(self.unreachable("the connection keeps dropping".into()))
    }

    /// Runs a fixed command (its arguments already quoted) and returns its outcome.
    async fn run(&self, command: &str, input: Input) -> HostResult<Finished> {
        let (_conn, ch) = self.channel(false).await?;
        pump(ch, command, input, Run::default())
            .await
            .map_err(|e| HostError::Io(format!("{}: {e}", self.name)))
    }

    /// Runs a fixed command that must succeed; returns its standard output.
    async fn run_ok(&self, what: &str, command: &str) -> HostResult<Vec<u8>> {
        let out = self.run(command, Input::None).await?;
        self.check(what, out)
    }

    fn check(&self, what: &str, out: Finished) -> HostResult<Vec<u8>> {
        match out.status {
            Some(ExitStatus::Exited(0)) => Ok(out.stdout),
            Some(status) => Err(HostError::Io(format!(
                "{what} on {}: {}{}",
                self.name,
                status.describe(),
                stderr_suffix(&out.stderr)
            ))),
            None => Err(self.lost(what)),
        }
    }

    fn lost(&self, what: &str) -> HostError {
        HostError::Io(format!(
            "{what} on {}: the connection closed before the command finished",
            self.name
        ))
    }

    /// Kills a remote process group over a channel of its own.
    async fn kill_group(&self, pgid: i32) -> HostResult<()> {
        let (_conn, ch) = self.channel(true).await?;
        let out = run_short(
            ch,
            &format!("kill -s KILL -- -{pgid}"),
            Duration::from_secs(20),
        )
        .await
        .map_err(HostError::Io)?;
        match out.status {
            Some(ExitStatus::Exited(0)) => Ok(()),
            _ => Err(HostError::Io(format!(
                "cannot kill process group {pgid} on {}{}",
                self.name,
                stderr_suffix(&out.stderr)
            ))),
        }
    }
}

/// Kills a command's process group when its `exec` future is dropped before it finished.
struct KillOnDrop {
    host: SshHost,
    pgid: Arc<AtomicI32>,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pgid = self.pgid.load(Ordering::SeqCst);
        if !self.armed || pgid <= 1 {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let host = self.host.clone();
            rt.spawn(async move {
                let _ = host.kill_group(pgid).await;
            });
        }
    }
}

/// A handshake failure: its reason, and whether trying again may help.
struct Failure {
    reason: String,
    retry: bool,
}

impl Failure {
    fn retry(reason: String) -> Self {
        Failure {
            reason,
            retry: true,
        }
    }
    fn fatal(reason: String) -> Self {
        Failure {
            reason,
            retry: false,
        }
    }
}

fn describe_connect_error(e: ClientError, host: &str, port: u16, known_hosts: &Path) -> Failure {
    use std::io::ErrorKind;
    match e {
        ClientError::UnknownHostKey {
            algorithm,
            fingerprint,
        } => Failure::fatal(format!(
            "host key for {} is not known ({algorithm} {fingerprint}); refusing to connect. \
             Check the fingerprint, then add the key to {} or allow trust on first use",
            host_port(host, port),
            known_hosts.display()
        )),
        ClientError::ChangedHostKey {
            algorithm,
            fingerprint,
            line,
        } => Failure::fatal(format!(
            "host key for {} changed: it now presents {algorithm} {fingerprint}, which differs from the key recorded in {} line {line}; refusing to connect (possible man-in-the-middle; if the host was reinstalled, remove that line)",
            host_port(host, port),
            known_hosts.display()
        )),
        ClientError::HostKey(reason) => Failure::fatal(reason),
        ClientError::Ssh(russh::Error::IO(io)) => match io.kind() {
            ErrorKind::ConnectionRefused => Failure::retry(format!(
                "connection refused ({} does not accept connections on port {port})",
                host
            )),
            ErrorKind::TimedOut => Failure::retry("connection timed out".into()),
            ErrorKind::NotFound => Failure::fatal(format!("cannot resolve host name {host}: {io}")),
            _ => Failure::retry(format!("connection failed: {io}")),
        },
        ClientError::Ssh(russh::Error::ConnectionTimeout) => {
            Failure::retry("connection timed out".into())
        }
        ClientError::Ssh(e @ (russh::Error::NoCommonAlgo { .. } | russh::Error::Version)) => {
            Failure::fatal(format!("SSH handshake failed: {e}"))
        }
        ClientError::Ssh(e) => Failure::retry(format!("SSH handshake failed: {e}")),
    }
}

fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The russh client handler: checks the server's host key against Slipway's known_hosts.
struct Client {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    trust_on_first_use: bool,
    lock: Arc<Mutex<()>>,
}

#[derive(Debug)]
enum ClientError {
    Ssh(russh::Error),
    UnknownHostKey {
        algorithm: String,
        fingerprint: String,
    },
    ChangedHostKey {
        algorithm: String,
        fingerprint: String,
        line: usize,
    },
    HostKey(String),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Ssh(e)
    }
}

impl client::Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(ClientError::HostKey(format!(
                    "{} presented a host certificate; Slipway checks plain host keys only",
                    host_port(&self.host, self.port)
                )));
            }
        };
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        verify_host_key(
            &self.known_hosts,
            &self.host,
            self.port,
            key,
            self.trust_on_first_use,
        )
        .map(|()| true)
    }
}

fn verify_host_key(
    known_hosts: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
    trust_on_first_use: bool,
) -> Result<(), ClientError> {
    let recorded = known_host_keys_path(host, port, known_hosts)
        .map_err(|e| ClientError::HostKey(format!("cannot read {}: {e}", known_hosts.display())))?;
    if recorded.iter().any(|(_, k)| k.key_data() == key.key_data()) {
        return Ok(());
    }
    let algorithm = key.algorithm().to_string();
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    // Any other key on record for this host means the host changed, whatever its type.
    if let Some((line, _)) = recorded.first() {
        return Err(ClientError::ChangedHostKey {
            algorithm,
            fingerprint,
            line: *line,
        });
    }
    if !trust_on_first_use {
        return Err(ClientError::UnknownHostKey {
            algorithm,
            fingerprint,
        });
    }
    learn_known_hosts_path(host, port, key, known_hosts).map_err(|e| {
        ClientError::HostKey(format!(
            "cannot record the host key of {} in {}: {e}",
            host_port(host, port),
            known_hosts.display()
        ))
    })
}

/// A channel with its permit; closed when dropped unless it was closed already.
struct OpenChannel {
    read: ChannelReadHalf,
    write: Option<ChannelWriteHalf<client::Msg>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl OpenChannel {
    /// Closes the channel and waits (briefly) for the server to confirm.
    async fn close(&mut self) {
        if let Some(write) = self.write.take() {
            let _ = write.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(msg) = self.read.wait().await {
                    if matches!(msg, ChannelMsg::Close) {
                        break;
                    }
                }
            })
            .await;
        }
        self.permit = None;
    }
}

impl Drop for OpenChannel {
    fn drop(&mut self) {
        // Dropped mid-command (its future was cancelled): close it all the same, so that sshd's
        // MaxSessions is not used up by forgotten channels.
        if let Some(write) = self.write.take() {
            let permit = self.permit.take();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = write.close().await;
                    drop(permit);
                });
            }
        }
    }
}

async fn open_channel(conn: &Conn, sem: &Arc<Semaphore>) -> Result<OpenChannel, String> {
    let permit = sem
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "channel limiter closed".to_string())?;
    let channel = conn
        .handle
        .channel_open_session()
        .await
        .map_err(|e| e.to_string())?;
    let (read, write) = channel.split();
    Ok(OpenChannel {
        read,
        write: Some(write),
        permit: Some(permit),
    })
}

/// Runs a command without input, for a short while: the home-directory query and the kill
/// channel, which opening a connection and killing a command use (so not [`pump`], which
/// reaches them; async recursion would make its future's `Send` unprovable).
async fn run_short(
    mut ch: OpenChannel,
    command: &str,
    limit: Duration,
) -> Result<Finished, String> {
    let mut fin = Finished {
        status: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        combined: Vec::new(),
        pgid: None,
        timed_out: false,
        kill_error: None,
        input_error: None,
    };
    let Some(write) = ch.write.as_ref() else {
        return Err("channel already closed".into());
    };
    write
        .exec(true, command.as_bytes().to_vec())
        .await
        .map_err(|e| format!("cannot start a command: {e}"))?;
    write.eof().await.map_err(|e| e.to_string())?;
    let closed = tokio::time::timeout(limit, async {
        loop {
            match ch.read.wait().await {
                None | Some(ChannelMsg::Close) => return true,
                Some(ChannelMsg::Failure) => return false,
                Some(msg) => take_message(msg, &mut fin, false, None),
            }
        }
    })
    .await
    .unwrap_or(false);
    if closed {
        ch.write = None;
        ch.permit = None;
    } else {
        ch.close().await;
    }
    Ok(fin)
}

/// What a command gets on its standard input (then end of file).
enum Input {
    None,
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// How to run a channel's command.
#[derive(Default)]
struct Run<'a> {
    timeout: Option<Duration>,
    /// Keep standard output and error interleaved in `combined` (bounded), as `exec` reports it.
    interleave: bool,
    /// Take the process-group marker line out of standard error.
    marker: Option<MarkerScan>,
    /// Kills the reported process group when the timeout runs out.
    killer: Option<&'a SshHost>,
}

/// How a channel ended.
struct Finished {
    /// `None` when the channel closed without an exit status (connection lost, or abandoned).
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Standard output and error interleaved, with `Run::interleave`.
    combined: Vec<u8>,
    /// The process group reported behind the marker.
    pgid: Option<i32>,
    /// The timeout ran out before the command finished.
    timed_out: bool,
    /// Why the process group could not be killed, if it could not.
    kill_error: Option<String>,
    /// Writing standard input failed (the command may not have read it all).
    input_error: Option<String>,
}

/// How long a killed command's channel may take to close, and how long a timed-out command may
/// take to report its process group, before the channel is abandoned.
const KILL_GRACE: Duration = Duration::from_secs(10);
const MARKER_GRACE: Duration = Duration::from_secs(5);

type KillFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = HostResult<()>> + Send + 'a>>;

/// Starts `command` on the channel, feeds it `input`, and reads it until it closes (the exit
/// status may come after end of file). On timeout, kills the reported process group over a
/// second channel while still reading this one, so that the connection never stalls.
async fn pump(
    mut ch: OpenChannel,
    command: &str,
    input: Input,
    mut run: Run<'_>,
) -> Result<Finished, String> {
    let mut fin = Finished {
        status: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        combined: Vec::new(),
        pgid: None,
        timed_out: false,
        kill_error: None,
        input_error: None,
    };
    let Some(write) = ch.write.take() else {
        return Err("channel already closed".into());
    };
    let mut closed = false;
    let result: Result<(), String> = async {
        write
            .exec(true, command.as_bytes().to_vec())
            .await
            .map_err(|e| format!("cannot start a command: {e}"))?;
        let writer = async {
            match input {
                Input::None => {}
                Input::Bytes(b) => write.data_bytes(b).await.map_err(|e| e.to_string())?,
                Input::File(path) => {
                    let file = tokio::fs::File::open(&path)
                        .await
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    write.data(file).await.map_err(|e| e.to_string())?;
                }
            }
            write.eof().await.map_err(|e| e.to_string())
        };
        tokio::pin!(writer);
        let mut writing = true;
        let mut deadline = run.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut kill: Option<KillFuture<'_>> = None;
        let mut killed = false;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let killing = async {
                match kill.as_mut() {
                    Some(k) => k.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut writer, if writing => {
                    writing = false;
                    if let Err(e) = r {
                        fin.input_error = Some(e);
                    }
                }
                msg = ch.read.wait() => match msg {
                    None | Some(ChannelMsg::Close) => {
                        closed = true;
                        break;
                    }
                    Some(ChannelMsg::Failure) => {
                        return Err("the server refused to run the command".to_string());
                    }
                    Some(msg) => {
                        take_message(msg, &mut fin, run.interleave, run.marker.as_mut());
                        // A command that timed out before it reported its process group.
                        if fin.timed_out && kill.is_none() && !killed
                            && let (Some(killer), Some(pgid)) = (run.killer, run.marker.as_ref().and_then(|m| m.found))
                        {
                            kill = Some(Box::pin(killer.kill_group(pgid)));
                            deadline = None;
                        }
                    }
                },
                r = killing => {
                    kill = None;
                    killed = true;
                    if let Err(e) = r {
                        fin.kill_error = Some(e.to_string());
                    }
                    deadline = Some(tokio::time::Instant::now() + KILL_GRACE);
                }
                () = sleep => {
                    if fin.timed_out {
                        // The grace period ran out too: abandon the channel.
                        if !killed {
                            // Best effort: the marker never came, so only the main process
                            // can be signalled.
                            let _ = write.signal(Sig::KILL).await;
                            fin.kill_error = Some("the command did not report its process group".into());
                        }
                        break;
                    }
                    fin.timed_out = true;
                    match (run.killer, run.marker.as_ref().and_then(|m| m.found)) {
                        (Some(killer), Some(pgid)) => {
                            kill = Some(Box::pin(killer.kill_group(pgid)));
                            deadline = None;
                        }
                        (Some(_), None) => deadline = Some(tokio::time::Instant::now() + MARKER_GRACE),
                        (None, _) => break,
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    if let Some(scan) = run.marker.as_mut() {
        fin.pgid = scan.found;
        scan.finish(&mut fin.stderr, run.interleave.then_some(&mut fin.combined));
    }
    if run.interleave {
        keep_tail(&mut fin.combined, OUTPUT_LIMIT);
    }
    if closed {
        // The server closed it and russh answered: nothing left to close.
        ch.permit = None;
    } else {
        ch.write = Some(write);
        ch.close().await;
    }
    result.map(|()| fin)
}

fn take_message(
    msg: ChannelMsg,
    fin: &mut Finished,
    interleave: bool,
    marker: Option<&mut MarkerScan>,
) {
    match msg {
        ChannelMsg::Data { data } => {
            if interleave {
                push_bounded(&mut fin.combined, &data);
            } else {
                fin.stdout.extend_from_slice(&data);
            }
        }
        ChannelMsg::ExtendedData { data, .. } => {
            let mut clean = Vec::new();
            let data: &[u8] = match marker {
                Some(m) => {
                    m.feed(&data, &mut clean);
                    &clean
                }
                None => &data,
            };
            if interleave {
                push_bounded(&mut fin.combined, data);
            } else {
                fin.stderr.extend_from_slice(data);
            }
        }
        ChannelMsg::ExitStatus { exit_status } => {
            fin.status = Some(ExitStatus::Exited(
                i32::try_from(exit_status).unwrap_or(i32::MAX),
            ));
        }
        ChannelMsg::ExitSignal { signal_name, .. } => {
            fin.status = Some(ExitStatus::Signalled(signal_number(&signal_name)));
        }
        _ => {}
    }
}

fn push_bounded(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(data);
    if buf.len() > 2 * OUTPUT_LIMIT {
        keep_tail(buf, OUTPUT_LIMIT);
    }
}

fn signal_number(sig: &Sig) -> i32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(name) => match name.as_str() {
            "BUS" => 7,
            "USR2" => 12,
            "XCPU" => 24,
            "XFSZ" => 25,
            _ => 0,
        },
    }
}

/// Finds `<marker><digits>\n` in a stream of standard error and takes it out, passing everything
/// else through in order (holding back at most a marker's length while a match is possible).
struct MarkerScan {
    marker: Vec<u8>,
    pending: Vec<u8>,
    found: Option<i32>,
    /// The process group, for whoever must kill it if the command is abandoned.
    shared: Option<Arc<AtomicI32>>,
}

impl MarkerScan {
    fn new(marker: &str) -> Self {
        MarkerScan {
            marker: marker.as_bytes().to_vec(),
            pending: Vec::new(),
            found: None,
            shared: None,
        }
    }

    fn sharing(mut self, pgid: Arc<AtomicI32>) -> Self {
        self.shared = Some(pgid);
        self
    }

    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.found.is_some() {
            out.extend_from_slice(data);
            return;
        }
        self.pending.extend_from_slice(data);
        let m = self.marker.len();
        if let Some(pos) = find(&self.pending, &self.marker) {
            let rest = &self.pending[pos + m..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let digits = &rest[..nl];
                    let pgid = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse::<i32>().ok())
                        .filter(|p| *p > 1);
                    if let Some(pgid) = pgid {
                        self.found = Some(pgid);
                        if let Some(shared) = &self.shared {
                            shared.store(pgid, Ordering::SeqCst);
                        }
                        out.extend_from_slice(&self.pending[..pos]);
                        out.extend_from_slice(&self.pending[pos + m + nl + 1..]);
                        self.pending.clear();
                    } else {
                        // Not ours after all: pass it through.
                        out.append(&mut self.pending);
                    }
                }
                None if rest.len() > 24 => out.append(&mut self.pending),
                None => {
                    out.extend_from_slice(&self.pending[..pos]);
                    self.pending.drain(..pos);
                }
            }
        } else {
            // Keep the longest tail that could still begin the marker.
            let keep = (1..m.min(self.pending.len() + 1))
                .rev()
                .find(|&k| self.pending.ends_with(&self.marker[..k]))
                .unwrap_or(0);
            let cut = self.pending.len() - keep;
            out.extend_from_slice(&self.pending[..cut]);
            self.pending.drain(..cut);
        }
    }

    fn finish(&mut self, stderr: &mut Vec<u8>, combined: Option<&mut Vec<u8>>) {
        let rest = std::mem::take(&mut self.pending);
        match combined {
            Some(c) => c.extend_from_slice(&rest),
            None => stderr.extend_from_slice(&rest),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Single-quotes a value for a POSIX shell: `it's` becomes `'it'\''s'`.
pub fn sh_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// A marker no command output will contain by chance: per command, from the time, the process
/// and a counter.
fn new_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hex::encode(h.finalize());
    format!("SLIPWAY-PGID-{}:", &digest[..20])
}

/// The script `sh -s` reads for one command: exports, `cd`, then the command in a process group
/// of its own, which it reports on standard error behind `marker` before it starts.
fn exec_script(exec: &Exec, marker: &str) -> Result<String, String> {
    let mut script = String::new();
    for (name, value) in &exec.env {
        if !valid_env_name(name) {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        if value.contains('\0') {
            return Err(format!("the value of {name} contains a NUL byte"));
        }
        script.push_str(&format!("export {name}={}\n", sh_quote(value)));
    }
    let words: Vec<String> = match &exec.program {
        Program::Argv(argv) => {
            if argv.is_empty() {
                return Err("empty command".into());
            }
            if argv.iter().any(|a| a.contains('\0')) {
                return Err("the command contains a NUL byte".into());
            }
            argv.iter().map(|a| sh_quote(a)).collect()
        }
        Program::Shell(text) => {
            if text.contains('\0') {
                return Err("the command contains a NUL byte".into());
            }
            vec!["/bin/sh".into(), "-c".into(), sh_quote(text)]
        }
    };
    let command = words.join(" ");
    let report = format!("printf '{marker}%s\\n' \"$$\" >&2");
    // The process-group id is this shell's pid when it leads its group already (sshd starts
    // each session in a new session); otherwise setsid(1) makes a new one (it does not fork
    // when the caller is not a group leader, so the exit status stays the command's own).
    let wrapper = format!("{report}; exec \"$@\"");
    script.push_str(&format!(
        "cd -- {cwd} || exit 125\n\
         slipway_pgrp=\n\
         {{ read -r _ _ _ _ slipway_pgrp _ </proc/$$/stat; }} 2>/dev/null\n\
         [ -n \"$slipway_pgrp\" ] || slipway_pgrp=$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')\n\
         if [ \"$slipway_pgrp\" = \"$$\" ]; then\n\
         {report}\n\
         exec {command} </dev/null\n\
         fi\n\
         exec setsid /bin/sh -c {wrapper} sh {command} </dev/null\n",
        cwd = sh_quote(&exec.cwd),
        wrapper = sh_quote(&wrapper),
    ));
    Ok(script)
}

fn stderr_suffix(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        let mut t: String = text.chars().rev().take(2000).collect();
        t = t.chars().rev().collect();
        format!(": {t}")
    }
}

fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    let idx = trimmed.rfind('/')?;
    Some(if idx == 0 { "/" } else { &trimmed[..idx] })
}

/// Parses `df -Pk` output: the available 1024-byte blocks of the last line, found as the field
/// before the capacity (`NN%`), so that file-system names with spaces do not matter.
fn parse_df(out: &str) -> Option<u64> {
    let line = out.lines().rev().find(|l| !l.trim().is_empty())?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let cap = fields
        .iter()
        .position(|f| f.ends_with('%') && f[..f.len() - 1].chars().all(|c| c.is_ascii_digit()))?;
    let avail: u64 = fields.get(cap.checked_sub(1)?)?.parse().ok()?;
    Some(avail.saturating_mul(1024))
}

#[async_trait]
impl Host for SshHost {
    fn name(&self) -> &str {
        &self.name
    }

    /// Relative paths resolve under the login's home directory. Before the first connection
    /// the home directory is not known yet; the path is then returned as it is, which still
    /// names the same file on the target (every command starts in the home directory).
    fn resolve(&self, path: &str) -> String {
        if path.starts_with('/') {
            return path.to_string();
        }
        let Some(home) = self.slot.home.get() else {
            return path.to_string();
        };
        let rel = path.strip_prefix("./").unwrap_or(path);
        match rel {
            "" | "." => home.clone(),
            _ if home.ends_with('/') => format!("{home}{rel}"),
            _ => format!("{home}/{rel}"),
        }
    }

    async fn connect(&self) -> HostResult<()> {
        self.conn().await.map(|_| ())
    }

    async fn exec(&self, exec: Exec) -> HostResult<ExecOutcome> {
        let marker = new_marker();
        let script = exec_script(&exec, &marker).map_err(HostError::Io)?;
        let started = Instant::now();
        let (_conn, ch) = self.channel(false).await?;
        let pgid = Arc::new(AtomicI32::new(0));
        // If this future is dropped mid-command, the command's processes are killed, as a
        // local command's are.
        let mut abandon = KillOnDrop {
            host: self.clone(),
            pgid: pgid.clone(),
            armed: true,
        };
        let fin = pump(
            ch,
            "sh -s",
            Input::Bytes(script.into_bytes()),
            Run {
                timeout: exec.timeout,
                interleave: true,
                marker: Some(MarkerScan::new(&marker).sharing(pgid)),
                killer: Some(self),
            },
        )
        .await;
        abandon.armed = false;
        let fin = fin.map_err(|e| HostError::Io(format!("{}: {e}", self.name)))?;
        let status = if fin.timed_out {
            if let Some(e) = &fin.kill_error {
                return Err(HostError::Io(format!(
                    "command on {} timed out and its processes could not all be killed: {e}",
                    self.name
                )));
            }
            ExitStatus::TimedOut
        } else {
            match fin.status {
                Some(status) if fin.pgid.is_none() => {
                    // The command never started (the marker comes first): bad cwd, no setsid.
                    return Err(HostError::Io(format!(
                        "cannot start command in {} on {} ({}){}",
                        exec.cwd,
                        self.name,
                        status.describe(),
                        stderr_suffix(&fin.combined)
                    )));
                }
                Some(status) => status,
                None => return Err(self.lost("command")),
            }
        };
        Ok(ExecOutcome {
            status,
            output: fin.combined,
            elapsed: started.elapsed(),
        })
    }

    async fn create_dir_all(&self, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        self.run_ok(
            &format!("mkdir {path}"),
            &format!("mkdir -p -- {}", sh_quote(&path)),
        )
        .await
        .map(drop)
    }

    async fn check_writable(&self, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        let probe = format!(
            "{}/.slipway-write-test-{}",
            path.trim_end_matches('/'),
            &new_marker()[13..25]
        );
        let (p, q) = (sh_quote(&path), sh_quote(&probe));
        self.run_ok(
            &format!("write test in {path}"),
            &format!("mkdir -p -- {p} && touch -- {q} && rm -f -- {q}"),
        )
        .await
        .map(drop)
    }

    async fn free_bytes(&self, path: &str) -> HostResult<u64> {
        let path = self.resolve(path);
        let out = self
            .run_ok(
                &format!("df {path}"),
                &format!("df -Pk -- {}", sh_quote(&path)),
            )
            .await?;
        let text = String::from_utf8_lossy(&out);
        parse_df(&text).ok_or_else(|| {
            HostError::Io(format!(
                "df {path} on {}: cannot read its output: {text:?}",
                self.name
            ))
        })
    }

    async fn upload(&self, local: &Path, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        // Fail early, and with a local error, if the file cannot be read here.
        tokio::fs::metadata(local)
            .await
            .map_err(|e| HostError::Io(format!("{}: {e}", local.display())))?;
        let tmp = format!("{path}.partial");
        let mkdir = match parent_of(&path) {
            Some(parent) => format!("mkdir -p -- {} && ", sh_quote(parent)),
            None => String::new(),
        };
        let command = format!(
            "{mkdir}cat > {t} && mv -f -- {t} {p}",
            t = sh_quote(&tmp),
            p = sh_quote(&path)
        );
        let out = self.run(&command, Input::File(local.to_path_buf())).await?;
        let what = format!("upload to {path}");
        if let Some(e) = out.input_error.clone()
            && out.status == Some(ExitStatus::Exited(0))
        {
            return Err(HostError::Io(format!(
                "{what} on {}: sending the file failed: {e}",
                self.name
            )));
        }
        self.check(&what, out).map(drop)
    }

    async fn sha256(&self, path: &str) -> HostResult<Option<String>> {
        let path = self.resolve(path);
        let p = sh_quote(&path);
        let out = self
            .run_ok(
                &format!("sha256sum {path}"),
                &format!("if test -e {p}; then sha256sum < {p}; else echo absent; fi"),
            )
            .await?;
        let text = String::from_utf8_lossy(&out);
        let first = text.split_whitespace().next().unwrap_or("");
        if first == "absent" {
            return Ok(None);
        }
        if first.len() == 64 && first.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Some(first.to_ascii_lowercase()))
        } else {
            Err(HostError::Io(format!(
                "sha256sum {path} on {}: unexpected output {text:?}",
                self.name
            )))
        }
    }

    async fn read_link(&self, path: &str) -> HostResult<Option<String>> {
        let path = self.resolve(path);
        let p = sh_quote(&path);
        let out = self
            .run_ok(
                &format!("readlink {path}"),
                &format!(
                    "if test -L {p}; then readlink -- {p}; elif test -e {p}; then echo {msg} >&2; exit 1; fi",
                    msg = sh_quote(&format!("{path}: not a symbolic link"))
                ),
            )
            .await?;
        if out.is_empty() {
            return Ok(None);
        }
        let mut text = String::from_utf8_lossy(&out).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(Some(text))
    }

    async fn switch_link(&self, link: &str, target: &str) -> HostResult<()> {
        let link = self.resolve(link);
        let tmp = format!("{link}.slipway-new");
        let (l, t, n) = (sh_quote(&link), sh_quote(target), sh_quote(&tmp));
        // rename(2) over the old link is atomic; `mv -T` never moves into a linked directory.
        self.run_ok(
            &format!("switch {link} to {target}"),
            &format!("rm -f -- {n} && ln -s -- {t} {n} && mv -T -f -- {n} {l}"),
        )
        .await
        .map(drop)
    }

    async fn remove_link(&self, link: &str) -> HostResult<()> {
        let link = self.resolve(link);
        self.run_ok(
            &format!("remove {link}"),
            &format!("rm -f -- {}", sh_quote(&link)),
        )
        .await
        .map(drop)
    }

    async fn list_dir(&self, path: &str) -> HostResult<Vec<String>> {
        let path = self.resolve(path);
        let p = sh_quote(&path);
        let out = self
            .run_ok(
                &format!("list {path}"),
                &format!(
                    "if test -d {p}; then ls -1A -- {p}; elif test -e {p}; then echo {msg} >&2; exit 1; fi",
                    msg = sh_quote(&format!("{path}: not a directory"))
                ),
            )
            .await?;
        let mut names: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn exists(&self, path: &str) -> HostResult<bool> {
        let path = self.resolve(path);
        let p = sh_quote(&path);
        let out = self
            .run(&format!("test -e {p} || test -L {p}"), Input::None)
            .await?;
        match out.status {
            Some(ExitStatus::Exited(0)) => Ok(true),
            Some(ExitStatus::Exited(1)) => Ok(false),
            _ => self.check(&format!("test -e {path}"), out).map(|_| false),
        }
    }

    async fn remove_dir_all(&self, path: &str) -> HostResult<()> {
        let path = self.resolve(path);
        self.run_ok(
            &format!("remove {path}"),
            &format!("rm -rf -- {}", sh_quote(&path)),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("plain"), "'plain'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn marker_is_taken_out_across_chunks() {
        let mut scan = MarkerScan::new("SLIPWAY-PGID-abc:");
        let mut out = Vec::new();
        scan.feed(b"before\nSLIPWAY-PG", &mut out);
        scan.feed(b"ID-abc:42", &mut out);
        assert!(scan.found.is_none());
        scan.feed(b"31\nafter", &mut out);
        assert_eq!(scan.found, Some(4231));
        let mut rest = Vec::new();
        scan.finish(&mut rest, None);
        assert_eq!(out, b"before\nafter");
        assert!(rest.is_empty());
    }

    #[test]
    fn text_like_the_marker_passes_through() {
        let mut scan = MarkerScan::new("SLIPWAY-PGID-abc:");
        let mut out = Vec::new();
        scan.feed(b"SLIPWAY-PGID-abc:x\nSLIP", &mut out);
        let mut rest = Vec::new();
        scan.finish(&mut rest, None);
        out.extend(rest);
        assert_eq!(out, b"SLIPWAY-PGID-abc:x\nSLIP");
        assert!(scan.found.is_none());
    }

    #[test]
    fn df_output() {
        let out = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/my disk 100 40 60 40% /mnt/a b\n";
        assert_eq!(parse_df(out), Some(60 * 1024));
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of("/a/b/c"), Some("/a/b"));
        assert_eq!(parent_of("/c"), Some("/"));
        assert_eq!(parent_of("c"), None);
        assert_eq!(parent_of("a/c"), Some("a"));
    }
}

/// The script itself, run by a local `sh -s` that (unlike sshd's session shell) does not lead
/// its process group, so the `setsid` branch runs.
#[cfg(test)]
mod script_tests {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    use super::*;

    fn start(exec: &Exec, marker: &str) -> std::process::Child {
        let script = exec_script(exec, marker).expect("script");
        let mut child = Command::new("sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).expect("write script");
        drop(stdin);
        child
    }

    #[test]
    fn setsid_branch_keeps_status_values_and_reports_its_group() {
        let value = "a'b $(touch /nonexistent/pwned) \"q\"\nline2\\";
        let exec = Exec {
            program: Program::Shell("printf '%s' \"$V\"; echo err >&2; exit 7".into()),
            env: vec![("V".into(), value.into())],
            cwd: "/".into(),
            timeout: None,
        };
        let out = start(&exec, "SLIPWAY-PGID-test:")
            .wait_with_output()
            .expect("wait");
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(String::from_utf8_lossy(&out.stdout), value);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().next().expect("marker line");
        let pgid: i32 = line
            .strip_prefix("SLIPWAY-PGID-test:")
            .expect("marker first")
            .parse()
            .expect("pgid");
        assert_ne!(pgid, nix::unistd::getpgrp().as_raw());
        assert!(stderr.ends_with("err\n"), "{stderr}");
    }

    #[test]
    fn setsid_branch_group_kill_takes_the_whole_tree() {
        let tag = format!("300.{}", std::process::id());
        let exec = Exec {
            program: Program::Shell(format!("sleep {tag} & sleep {tag}")),
            env: vec![],
            cwd: "/".into(),
            timeout: None,
        };
        let mut child = start(&exec, "SLIPWAY-PGID-kill:");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("marker");
        let pgid: i32 = line
            .trim()
            .strip_prefix("SLIPWAY-PGID-kill:")
            .expect("marker")
            .parse()
            .expect("pgid");
        std::thread::sleep(Duration::from_millis(200));
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("killpg");
        let status = child.wait().expect("wait");
        assert!(!status.success());
        std::thread::sleep(Duration::from_millis(200));
        let left = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(Result::ok)
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&tag))
                    .unwrap_or(false)
            })
            .count();
        assert_eq!(left, 0, "sleep {tag} processes survived");
    }

    #[test]
    fn bad_cwd_exits_125_before_the_marker() {
        let exec = Exec {
            program: Program::Argv(vec!["true".into()]),
            env: vec![],
            cwd: "/nonexistent/slipway".into(),
            timeout: None,
        };
        let out = start(&exec, "SLIPWAY-PGID-cwd:")
            .wait_with_output()
            .expect("wait");
        assert_eq!(out.status.code(), Some(125));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("SLIPWAY-PGID-cwd:"));
    }
}
