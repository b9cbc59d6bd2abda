//! SSH targets against a real OpenSSH sshd on loopback.
//!
//! With `SLIPWAY_TEST_SSH_PORT` (and `_KEY`, `_USER`, `_HOSTKEY_PUB`) set, that sshd is used;
//! otherwise `scripts/sshd-test` starts one for this test process (installing openssh-server
//! when run as root on Debian), which stops once the process has exited. No sshd is a failure,
//! not a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use slipway_core::plan::SshAddress;
use slipway_engine::host::ssh::{SshConfig, SshHost, SshPool};
use slipway_engine::host::{Exec, ExitStatus, Host, HostError, Program};

struct Sshd {
    port: u16,
    key: PathBuf,
    user: String,
    /// `ssh-ed25519 AAAA...`
    hostkey_pub: String,
}

fn sshd() -> &'static Sshd {
    static SSHD: OnceLock<Sshd> = OnceLock::new();
    SSHD.get_or_init(|| {
        if let Ok(port) = std::env::var("SLIPWAY_TEST_SSH_PORT") {
            let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("SLIPWAY_TEST_SSH_PORT is set but {k} is not"));
            return Sshd {
                port: port.parse().expect("SLIPWAY_TEST_SSH_PORT is a port"),
                key: PathBuf::from(var("SLIPWAY_TEST_SSH_KEY")),
                user: var("SLIPWAY_TEST_SSH_USER"),
                hostkey_pub: var("SLIPWAY_TEST_SSH_HOSTKEY_PUB"),
            };
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sshd-test");
        // Kept for the whole process: the sshd lives in it.
        let dir = tempfile::Builder::new().prefix("slipway-sshd").tempdir().expect("temp dir").keep();
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&dir)
            .env("SSHD_TEST_WATCH_PID", std::process::id().to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "the SSH tests need a real OpenSSH sshd, and {} could not start one ({}); install openssh-server \
             or point SLIPWAY_TEST_SSH_PORT/_KEY/_USER/_HOSTKEY_PUB at a running one.\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.join("env")).expect("sshd-test wrote env");
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('\'').to_string())
                .unwrap_or_else(|| panic!("{k} missing from {}", dir.join("env").display()))
        };
        Sshd {
            port: get("SLIPWAY_TEST_SSH_PORT").parse().expect("port"),
            key: PathBuf::from(get("SLIPWAY_TEST_SSH_KEY")),
            user: get("SLIPWAY_TEST_SSH_USER"),
            hostkey_pub: get("SLIPWAY_TEST_SSH_HOSTKEY_PUB"),
        }
    })
}

fn addr(port: u16) -> SshAddress {
    SshAddress {
        user: sshd().user.clone(),
        host: "127.0.0.1".into(),
        port,
    }
}

/// A pool whose known_hosts (in `dir`) already holds the test sshd's key.
fn trusted_pool(dir: &Path) -> SshPool {
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", sshd().port, sshd().hostkey_pub),
    )
    .expect("known_hosts");
    pool(&known, false)
}

fn pool(known_hosts: &Path, tofu: bool) -> SshPool {
    let mut config = SshConfig::new(known_hosts)
        .trust_on_first_use(tofu)
        .identity(&sshd().key);
    config.retry_backoff = Duration::from_millis(50);
    SshPool::new(config)
}

fn host(pool: &SshPool) -> SshHost {
    pool.host("web-1", &addr(sshd().port))
}

fn exec(program: Program, cwd: &Path) -> Exec {
    Exec {
        program,
        env: vec![],
        cwd: cwd.to_str().expect("utf-8").into(),
        timeout: None,
    }
}

fn shell(text: &str, cwd: &Path) -> Exec {
    exec(Program::Shell(text.into()), cwd)
}

fn text(output: &[u8]) -> String {
    String::from_utf8_lossy(output).into_owned()
}

fn unreachable_reason(e: HostError) -> String {
    match e {
        HostError::Unreachable { reason, .. } => reason,
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[tokio::test]
async fn ssh_exec_passes_values_verbatim_without_shell_injection() {
    let dir = tmp();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    let nasty =
        "$(touch pwned) `touch pwned2` it's \"quoted\" ${HOME}\nsecond line; touch pwned3 \\ '\\''";

    // Argv: each element arrives as one argument, untouched.
    let mut e = exec(
        Program::Argv(vec![
            "printf".into(),
            "[%s]\n".into(),
            nasty.into(),
            "$(touch pwned)".into(),
            "".into(),
            "a b".into(),
        ]),
        &work,
    );
    e.env = vec![("NASTY".into(), nasty.into())];
    let out = h.exec(e).await.expect("argv exec");
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", text(&out.output));
    assert_eq!(
        text(&out.output),
        format!("[{nasty}]\n[$(touch pwned)]\n[]\n[a b]\n")
    );

    // Shell: values reach the text only through the environment.
    let mut e = shell("printf '%s|%s' \"$NASTY\" \"$OTHER\"", &work);
    e.env = vec![("NASTY".into(), nasty.into()), ("OTHER".into(), "'".into())];
    let out = h.exec(e).await.expect("shell exec");
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", text(&out.output));
    assert_eq!(text(&out.output), format!("{nasty}|'"));

    // Shell text itself with quotes and a newline.
    let out = h
        .exec(shell("echo 'it'\"'\"'s'\necho two", &work))
        .await
        .expect("shell exec");
    assert_eq!(text(&out.output), "it's\ntwo\n");

    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !work.join(f).exists(),
            "{f} was created: a value was run as shell code"
        );
    }
    let home = std::env::home_dir().expect("home");
    assert!(!home.join("pwned").exists());
}

#[tokio::test]
async fn ssh_exec_cwd_exit_codes_signals_and_interleaved_output() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    let work = dir.path().join("with space 'q'");
    std::fs::create_dir(&work).expect("mkdir");

    let out = h.exec(shell("pwd; exit 3", &work)).await.expect("exec");
    assert_eq!(out.status, ExitStatus::Exited(3));
    assert_eq!(text(&out.output), format!("{}\n", work.display()));

    let out = h
        .exec(exec(Program::Argv(vec!["false".into()]), &work))
        .await
        .expect("exec");
    assert_eq!(out.status, ExitStatus::Exited(1));

    // A relative program path is relative to the working directory.
    std::fs::write(work.join("run.sh"), "#!/bin/sh\necho ran \"$1\"\n").expect("write");
    std::fs::set_permissions(
        work.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let out = h
        .exec(exec(
            Program::Argv(vec!["./run.sh".into(), "x y".into()]),
            &work,
        ))
        .await
        .expect("exec");
    assert_eq!(
        (out.status, text(&out.output)),
        (ExitStatus::Exited(0), "ran x y\n".into())
    );

    // Output and errors interleaved in order; the process-group marker never shows.
    let out = h
        .exec(shell(
            "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three",
            &work,
        ))
        .await
        .expect("exec");
    assert_eq!(text(&out.output), "one\ntwo\nthree\n");
    assert!(!text(&out.output).contains("SLIPWAY-PGID"));

    // Standard input is empty, as for local commands.
    let out = h.exec(shell("cat; echo done", &work)).await.expect("exec");
    assert_eq!(text(&out.output), "done\n");

    let out = h.exec(shell("kill -TERM $$", &work)).await.expect("exec");
    assert_eq!(out.status, ExitStatus::Signalled(15));

    // A working directory that does not exist is an error, not an exit status.
    let err = h
        .exec(shell("true", &dir.path().join("missing")))
        .await
        .expect_err("missing cwd");
    assert!(err.to_string().contains("cannot start command"), "{err}");

    // Long output keeps its tail.
    let out = h
        .exec(shell(
            "i=0; while [ $i -lt 40000 ]; do echo line-$i-xxxxxxxx; i=$((i+1)); done",
            &work,
        ))
        .await
        .expect("exec");
    assert!(out.output.len() <= slipway_engine::host::OUTPUT_LIMIT);
    assert!(text(&out.output).ends_with("line-39999-xxxxxxxx\n"));
}

fn processes_with(tag: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(tag)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

#[tokio::test]
async fn ssh_timeout_kills_the_whole_remote_process_tree() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    // A duration unique to this test, so that its processes can be told apart.
    let tag = format!(
        "300.{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .subsec_micros()
    );
    let mut e = shell(
        &format!("echo started; sleep {tag} & sleep {tag} & (sleep {tag}; echo never) ; wait"),
        dir.path(),
    );
    // Long enough for `echo started` to run first even on a busy machine.
    e.timeout = Some(Duration::from_secs(4));
    let started = Instant::now();
    let out = h.exec(e).await.expect("exec");
    assert_eq!(out.status, ExitStatus::TimedOut, "{}", text(&out.output));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        text(&out.output),
        "started\n",
        "output kept up to the timeout (after {:?})",
        started.elapsed()
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(&tag);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes survived the timeout: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The connection is still good, and its channels were given back.
    for _ in 0..10 {
        let out = h
            .exec(shell("echo ok", dir.path()))
            .await
            .expect("exec after timeout");
        assert_eq!(text(&out.output), "ok\n");
    }
}

#[tokio::test]
async fn ssh_dropped_exec_kills_its_remote_processes() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    let tag = format!(
        "301.{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .subsec_micros()
    );
    let e = shell(&format!("sleep {tag} & sleep {tag}; wait"), dir.path());
    assert!(
        tokio::time::timeout(Duration::from_secs(1), h.exec(e))
            .await
            .is_err(),
        "should still run"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_with(&tag);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes survived the dropped exec: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ssh_upload_and_sha256() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    let local = dir.path().join("artifact.bin");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &data).expect("write");
    let remote = dir.path().join("remote/sub dir/artifact.bin");
    let remote_s = remote.to_str().expect("utf-8");

    assert_eq!(h.sha256(remote_s).await.expect("sha256"), None);
    h.upload(&local, remote_s).await.expect("upload");
    assert_eq!(std::fs::read(&remote).expect("uploaded"), data);
    let expected = slipway_engine::artifact::sha256_file(&local).expect("local sha");
    assert_eq!(h.sha256(remote_s).await.expect("sha256"), Some(expected));
    assert!(!Path::new(&format!("{remote_s}.partial")).exists());

    // Overwrites; an empty file works too.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").expect("write");
    h.upload(&empty, remote_s).await.expect("upload empty");
    assert_eq!(
        h.sha256(remote_s).await.expect("sha256").as_deref(),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );

    // A target that cannot be written is an error.
    std::fs::write(dir.path().join("file"), b"x").expect("write");
    let bad = dir.path().join("file/under-a-file");
    assert!(
        h.upload(&local, bad.to_str().expect("utf-8"))
            .await
            .is_err()
    );
    assert!(
        h.upload(&dir.path().join("no-such-local"), remote_s)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn ssh_switch_link_read_link_and_remove_link() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    let base = dir.path();
    for r in ["releases/a", "releases/b"] {
        std::fs::create_dir_all(base.join(r)).expect("mkdir");
    }
    let link = base.join("current");
    let link_s = link.to_str().expect("utf-8");

    assert_eq!(h.read_link(link_s).await.expect("read_link"), None);
    h.switch_link(link_s, "releases/a").await.expect("switch");
    assert_eq!(
        h.read_link(link_s).await.expect("read_link").as_deref(),
        Some("releases/a")
    );
    let b = base.join("releases/b");
    // Over a link to a directory: replaced, not moved into the directory.
    h.switch_link(link_s, b.to_str().expect("utf-8"))
        .await
        .expect("switch");
    assert_eq!(std::fs::read_link(&link).expect("link"), b);
    assert!(!base.join("releases/a/current.slipway-new").exists());
    assert!(!base.join("current.slipway-new").exists());
    assert!(
        std::fs::read_dir(base.join("releases/a"))
            .expect("dir")
            .next()
            .is_none()
    );

    // Atomic: a reader polling the link during many switches always finds a release.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, link) = (stop.clone(), link.clone());
        std::thread::spawn(move || {
            let mut misses = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::fs::read_link(&link).is_err() {
                    misses += 1;
                }
            }
            misses
        })
    };
    for i in 0..20 {
        h.switch_link(
            link_s,
            if i % 2 == 0 {
                "releases/a"
            } else {
                "releases/b"
            },
        )
        .await
        .expect("switch");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        reader.join().expect("reader"),
        0,
        "the link was missing during a switch"
    );

    // Not a link: an error, like the local host.
    std::fs::write(base.join("plain"), b"x").expect("write");
    assert!(
        h.read_link(base.join("plain").to_str().expect("utf-8"))
            .await
            .is_err()
    );

    h.remove_link(link_s).await.expect("remove");
    assert!(!h.exists(link_s).await.expect("exists"));
    h.remove_link(link_s).await.expect("remove twice");
    assert!(base.join("releases/b").is_dir());
}

#[tokio::test]
async fn ssh_directories_listing_free_space_and_removal() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    let d = dir.path().join("rel/one");
    let d_s = d.to_str().expect("utf-8");

    assert_eq!(
        h.list_dir(d_s).await.expect("list missing"),
        Vec::<String>::new()
    );
    assert!(!h.exists(d_s).await.expect("exists"));
    h.create_dir_all(d_s).await.expect("mkdir");
    assert!(d.is_dir());
    h.check_writable(d_s).await.expect("writable");
    assert_eq!(
        std::fs::read_dir(&d).expect("dir").count(),
        0,
        "write test left a file"
    );
    for f in ["b", ".hidden", "a file", "-dash"] {
        std::fs::write(d.join(f), b"x").expect("write");
    }
    std::os::unix::fs::symlink("nowhere", d.join("dangling")).expect("symlink");
    assert_eq!(
        h.list_dir(d_s).await.expect("list"),
        vec!["-dash", ".hidden", "a file", "b", "dangling"]
    );
    assert!(
        h.exists(d.join("dangling").to_str().expect("utf-8"))
            .await
            .expect("exists")
    );
    assert!(
        h.list_dir(d.join("b").to_str().expect("utf-8"))
            .await
            .is_err(),
        "listing a file"
    );

    let free = h.free_bytes(d_s).await.expect("free");
    let stat = nix::sys::statvfs::statvfs(&d).expect("statvfs");
    let local = stat.blocks_available().saturating_mul(stat.fragment_size());
    assert!(
        free > 0 && free.abs_diff(local) < 64 * 1024 * 1024,
        "df says {free}, statvfs {local}"
    );
    assert!(
        h.free_bytes(dir.path().join("missing").to_str().expect("utf-8"))
            .await
            .is_err()
    );

    // check_writable fails where nothing can be created.
    std::fs::write(dir.path().join("f"), b"x").expect("write");
    assert!(
        h.check_writable(dir.path().join("f/sub").to_str().expect("utf-8"))
            .await
            .is_err()
    );

    h.remove_dir_all(dir.path().join("rel").to_str().expect("utf-8"))
        .await
        .expect("rm");
    assert!(!dir.path().join("rel").exists());
    h.remove_dir_all(dir.path().join("rel").to_str().expect("utf-8"))
        .await
        .expect("rm missing");
}

fn fingerprint(pub_key: &str, dir: &Path) -> String {
    let f = dir.join("key.pub");
    std::fs::write(&f, format!("{pub_key}\n")).expect("write");
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&f)
        .output()
        .expect("ssh-keygen");
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

#[tokio::test]
async fn ssh_host_keys_unknown_refused_tofu_recorded_changed_refused() {
    let dir = tmp();
    let known = dir.path().join("data/known_hosts");
    let expected = fingerprint(&sshd().hostkey_pub, dir.path());

    // Unknown: refused, naming the host and the fingerprint; nothing recorded.
    let strict = pool(&known, false);
    let reason = unreachable_reason(host(&strict).connect().await.expect_err("unknown key"));
    assert!(
        reason.contains(&format!("[127.0.0.1]:{}", sshd().port)),
        "{reason}"
    );
    assert!(reason.contains(&expected), "{reason} lacks {expected}");
    assert!(reason.contains("not known"), "{reason}");
    assert!(!known.exists());

    // Trust on first use: recorded in OpenSSH's format, then trusted by a strict pool.
    let tofu = pool(&known, true);
    host(&tofu).connect().await.expect("tofu connect");
    let recorded = std::fs::read_to_string(&known).expect("known_hosts written");
    assert_eq!(
        recorded.trim(),
        format!("[127.0.0.1]:{} {}", sshd().port, sshd().hostkey_pub)
    );
    host(&pool(&known, false))
        .connect()
        .await
        .expect("strict connect after tofu");
    host(&tofu).connect().await.expect("again");
    assert_eq!(
        std::fs::read_to_string(&known).expect("known_hosts"),
        recorded,
        "recorded twice"
    );

    // Changed: refused, with or without trust on first use.
    let other = dir.path().join("other");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let other_pub = std::fs::read_to_string(dir.path().join("other.pub")).expect("pub");
    let other_pub: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let changed = dir.path().join("changed_hosts");
    std::fs::write(
        &changed,
        format!(
            "# managed by slipway\n[127.0.0.1]:{} {}\n",
            sshd().port,
            other_pub.join(" ")
        ),
    )
    .expect("write");
    for tofu in [false, true] {
        let reason = unreachable_reason(
            host(&pool(&changed, tofu))
                .connect()
                .await
                .expect_err("changed key"),
        );
        assert!(
            reason.contains(&format!("host key for [127.0.0.1]:{} changed", sshd().port)),
            "{reason}"
        );
        assert!(reason.contains(&expected), "{reason}");
    }
    assert_eq!(
        std::fs::read_to_string(&changed)
            .expect("read")
            .lines()
            .count(),
        2,
        "changed key must not be recorded"
    );
}

#[tokio::test]
async fn ssh_connect_failures_are_unreachable_with_a_reason() {
    let dir = tmp();
    // Refused: a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let p = trusted_pool(dir.path());
    let reason = unreachable_reason(
        p.host("db", &addr(closed))
            .connect()
            .await
            .expect_err("refused"),
    );
    assert!(reason.contains("refused"), "{reason}");
    assert!(reason.contains("after 3 attempts"), "{reason}");

    // Authentication: a key the server does not know.
    let stranger = dir.path().join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let mut config = SshConfig::new(dir.path().join("known_hosts")).identity(&stranger);
    config.retry_backoff = Duration::from_millis(10);
    let reason = unreachable_reason(
        SshPool::new(config)
            .host("web", &addr(sshd().port))
            .connect()
            .await
            .expect_err("auth"),
    );
    assert!(
        reason.contains("authentication as") && reason.contains("failed"),
        "{reason}"
    );

    // A configured key that does not exist is named.
    let mut config =
        SshConfig::new(dir.path().join("known_hosts")).identity(dir.path().join("nope"));
    config.retry_backoff = Duration::from_millis(10);
    let reason = unreachable_reason(
        SshPool::new(config)
            .host("web", &addr(sshd().port))
            .connect()
            .await
            .expect_err("no key"),
    );
    assert!(reason.contains("nope"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_thirty_concurrent_execs_share_one_connection() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h: Arc<dyn Host> = Arc::new(host(&pool));
    h.connect().await.expect("connect");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let h = h.clone();
        let cwd = dir.path().to_path_buf();
        tasks.push(tokio::spawn(async move {
            let mut e = shell(
                // Shell expansions only: no other program may print into the output.
                "sleep 0.3; c=${SSH_CLIENT#* }; echo \"$N ${SSH_CLIENT%% *} ${c%% *}\"",
                &cwd,
            );
            e.env = vec![("N".into(), i.to_string())];
            h.exec(e).await
        }));
    }
    let mut ports = std::collections::BTreeSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.expect("join").expect("exec");
        assert_eq!(out.status, ExitStatus::Exited(0), "{}", text(&out.output));
        let line = text(&out.output);
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields.first().copied(),
            Some(i.to_string().as_str()),
            "{line}"
        );
        ports.insert(fields.get(2).map(|s| s.to_string()));
    }
    // Every command came from the same client port: one connection.
    assert_eq!(ports.len(), 1, "client ports: {ports:?}");
    // At most 8 channels at once: 30 commands of 0.3 s need at least 4 rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(1150),
        "{:?}: more than 8 channels at once?",
        started.elapsed()
    );

    // A dropped connection is opened again on next use.
    pool.disconnect_all().await;
    let out = h
        .exec(shell("echo again", dir.path()))
        .await
        .expect("exec after reconnect");
    assert_eq!(text(&out.output), "again\n");
}

#[tokio::test]
async fn ssh_resolve_relative_paths_under_home() {
    let dir = tmp();
    let pool = trusted_pool(dir.path());
    let h = host(&pool);
    assert_eq!(h.resolve("/srv/app"), "/srv/app");
    // Before connecting the home is unknown; the relative path still names the same file there.
    assert_eq!(h.resolve("apps/x"), "apps/x");
    h.connect().await.expect("connect");
    let out = h
        .exec(shell("printf %s \"$HOME\"", Path::new("/")))
        .await
        .expect("exec");
    let home = text(&out.output);
    assert!(home.starts_with('/'));
    assert_eq!(
        h.resolve("apps/x"),
        format!("{}/apps/x", home.trim_end_matches('/'))
    );
    assert_eq!(h.resolve("."), home);
    assert_eq!(
        h.resolve("./y"),
        format!("{}/y", home.trim_end_matches('/'))
    );
    // A second host on the same pool knows it at once.
    assert_eq!(
        host(&pool).resolve("z"),
        format!("{}/z", home.trim_end_matches('/'))
    );

    // File operations on relative paths land under the home directory.
    let name = format!(".slipway-test-{}", std::process::id());
    h.create_dir_all(&format!("{name}/sub"))
        .await
        .expect("mkdir");
    assert!(Path::new(&home).join(&name).join("sub").is_dir());
    assert!(h.exists(&name).await.expect("exists"));
    h.remove_dir_all(&name).await.expect("rm");
    assert!(!Path::new(&home).join(&name).exists());
}
