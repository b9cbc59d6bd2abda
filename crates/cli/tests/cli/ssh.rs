//! A whole deployment over SSH, against a real OpenSSH sshd on loopback (`scripts/sshd-test`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::Test;

struct Sshd {
    port: u16,
    key: PathBuf,
    user: String,
    hostkey_pub: String,
}

/// The test sshd: the one named by `SLIPWAY_TEST_SSH_*`, or one started for this test process.
fn sshd() -> &'static Sshd {
    static SSHD: OnceLock<Sshd> = OnceLock::new();
    SSHD.get_or_init(|| {
        let env_text = if std::env::var("SLIPWAY_TEST_SSH_PORT").is_ok() {
            [
                "SLIPWAY_TEST_SSH_PORT",
                "SLIPWAY_TEST_SSH_KEY",
                "SLIPWAY_TEST_SSH_USER",
                "SLIPWAY_TEST_SSH_HOSTKEY_PUB",
            ]
            .iter()
            .map(|k| format!("{k}={}\n", std::env::var(k).unwrap_or_default()))
            .collect::<String>()
        } else {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sshd-test");
            let dir = tempfile::Builder::new()
                .prefix("slipway-cli-sshd")
                .tempdir()
                .expect("temp dir")
                .keep();
            let out = Command::new("bash")
                .arg(&script)
                .arg("start")
                .arg(&dir)
                .env("SSHD_TEST_WATCH_PID", std::process::id().to_string())
                .output()
                .expect("run scripts/sshd-test");
            assert!(
                out.status.success(),
                "the SSH deploy test needs a real sshd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::read_to_string(dir.join("env")).expect("sshd-test wrote env")
        };
        let get = |k: &str| {
            env_text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('\'').to_string())
                .unwrap_or_else(|| panic!("{k} is not set"))
        };
        Sshd {
            port: get("SLIPWAY_TEST_SSH_PORT").parse().expect("port"),
            key: PathBuf::from(get("SLIPWAY_TEST_SSH_KEY")),
            user: get("SLIPWAY_TEST_SSH_USER"),
            hostkey_pub: get("SLIPWAY_TEST_SSH_HOSTKEY_PUB"),
        }
    })
}

#[test]
fn deploy_validate_and_roll_back_over_ssh() {
    let s = sshd();
    let t = Test::new().env("SLIPWAY_SSH_KEY", &s.key.display().to_string());
    // Strict host key checking: the record's known_hosts knows this sshd, nothing else.
    std::fs::create_dir_all(t.path().join(".slipway")).expect("home");
    std::fs::write(
        t.path().join(".slipway/known_hosts"),
        format!("[127.0.0.1]:{} {}\n", s.port, s.hostkey_pub),
    )
    .expect("known_hosts");
    let remote = t.path().join("remote");
    let plan = format!(
        r#"slipway: 1
release: {{ name: app, version: 1.0.0 }}
variables:
  evil: "$(touch pwned)"
environments:
  staging:
    targets:
      box-1: {{ ssh: "{user}@127.0.0.1:{port}", labels: [web] }}
steps:
  - id: install
    on: [web]
    release_dir: {remote}/app
    run: echo "$SLIPWAY_VERSION {{{{ vars.evil }}}}" > VERSION
    validate:
      - command: test "$SLIPWAY_VERSION" != 3.0.0
        interval: 100ms
        deadline: 500ms
  - id: stamp
    needs: [install]
    on: [web]
    run: [sh, -c, 'printf "%s" "$1" > "$2"', x, "{{{{ vars.evil }}}}", "{remote}/stamp"]
    rollback: [rm, -f, "{remote}/stamp"]
"#,
        user = s.user,
        port = s.port,
        remote = remote.display()
    );
    t.put("remote.yaml", &plan);
    for v in ["1.0.0", "2.0.0"] {
        t.args(["deploy", "remote.yaml", "--env", "staging", "--version", v])
            .run()
            .status(0);
    }
    let link = |t: &Test| {
        std::fs::read_link(t.path().join("remote/app/current"))
            .ok()
            .map(|l| l.to_string_lossy().into_owned())
    };
    assert_eq!(link(&t).as_deref(), Some("releases/2.0.0"));
    let version = std::fs::read_to_string(remote.join("app/current/VERSION")).expect("VERSION");
    assert_eq!(version.trim(), "2.0.0 $(touch pwned)");
    assert_eq!(
        std::fs::read_to_string(remote.join("stamp")).expect("stamp"),
        "$(touch pwned)"
    );
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    assert!(!Path::new(&home).join("pwned").exists() && !remote.join("app/current/pwned").exists());

    // 3.0.0 fails its check on the remote host and goes back to 2.0.0 there.
    let out = t
        .args([
            "deploy",
            "remote.yaml",
            "--env",
            "staging",
            "--version",
            "3.0.0",
        ])
        .run();
    out.status(3);
    assert_eq!(link(&t).as_deref(), Some("releases/2.0.0"));
    assert!(!remote.join("app/releases/3.0.0").exists());
    let inventory = t.args(["inventory", "-o", "json"]).run().json();
    assert_eq!(inventory[0]["current"], "2.0.0");
    assert_eq!(inventory[0]["kept"], serde_json::json!(["1.0.0", "2.0.0"]));

    // An unknown host key is refused before anything runs.
    std::fs::write(t.path().join(".slipway/known_hosts"), "").expect("forget the host");
    let refused = t
        .args([
            "deploy",
            "remote.yaml",
            "--env",
            "staging",
            "--version",
            "4.0.0",
        ])
        .run();
    refused.status(4);
    assert!(
        refused.all().to_lowercase().contains("host key"),
        "{}",
        refused.all()
    );
    assert_eq!(link(&t).as_deref(), Some("releases/2.0.0"));
}
