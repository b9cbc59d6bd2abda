//! `deploy`, `rollback`, the record commands, crash recovery and `demo`, through the real binary.

use std::time::{Duration, Instant};

use crate::harness::Test;

/// Two local targets; `install` uses a release directory and a command check that fails where
/// `unhealthy-<target>-<version>` exists in the test directory.
fn plan(dir: &std::path::Path) -> String {
    format!(
        r#"slipway: 1
release: {{ name: app, version: 1.0.0 }}
secrets:
  TOKEN: {{ env: APP_TOKEN }}
environments:
  staging:
    targets:
      web-1: {{ host: local, labels: [web] }}
      web-2: {{ host: local, labels: [web] }}
steps:
  - id: install
    on: [web]
    release_dir: app
    run: echo "installing $SLIPWAY_VERSION with $TOKEN"; echo "$SLIPWAY_VERSION" > VERSION
    strategy: {{ rolling: {{ batch: 1 }} }}
    validate:
      - command: test ! -e "{flags}/unhealthy-$SLIPWAY_TARGET-$SLIPWAY_VERSION"
        interval: 50ms
        deadline: 300ms
"#,
        flags = dir.display()
    )
}

fn world() -> Test {
    let t = Test::new().env("APP_TOKEN", "tok-9f8e7d6c5b4a");
    let text = plan(t.path());
    t.put("app.yaml", &text);
    t
}

fn current(t: &Test, target: &str) -> Option<String> {
    std::fs::read_link(
        t.path()
            .join(".slipway/targets/staging")
            .join(target)
            .join("app/current"),
    )
    .ok()
    .map(|p| {
        p.to_string_lossy()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

#[test]
fn deploy_succeeds_and_the_record_commands_show_it() {
    let t = world();
    t.args(["deploy", "app.yaml", "--env", "staging"])
        .run()
        .status(0);
    let out = t
        .args([
            "deploy",
            "app.yaml",
            "--env",
            "staging",
            "--version",
            "1.1.0",
        ])
        .run();
    out.status(0);
    assert!(
        out.stdout.contains("deployment #2 succeeded"),
        "{}",
        out.stdout
    );
    assert_eq!(current(&t, "web-1").as_deref(), Some("1.1.0"));

    let inventory = t
        .args(["inventory", "--env", "staging", "-o", "json"])
        .run()
        .json();
    assert_eq!(inventory[0]["current"], "1.1.0");
    assert_eq!(inventory[0]["previous"], "1.0.0");
    let history = t.args(["history", "-o", "json"]).run().json();
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    assert_eq!(history[0]["state"], "succeeded");
    let status = t.args(["status", "2", "-o", "json"]).run().json();
    assert_eq!(status["deployment"]["state"], "succeeded");
    assert!(status["step_runs"].as_array().is_some_and(|r| r.len() >= 4));
    let logs = t
        .args(["logs", "2", "--target", "web-2", "--step", "install"])
        .run();
    logs.status(0);
    assert!(
        logs.stdout.contains("installing 1.1.0 with ********"),
        "{}",
        logs.stdout
    );
    let verify = t.args(["audit", "verify"]).run();
    verify.status(0);
    assert!(verify.stdout.contains("intact"), "{}", verify.stdout);
}

#[test]
fn a_failed_health_check_rolls_back_with_exit_code_3_and_on_demand_rollback_works() {
    let t = world();
    t.args(["deploy", "app.yaml", "--env", "staging"])
        .run()
        .status(0);
    t.args([
        "deploy",
        "app.yaml",
        "--env",
        "staging",
        "--version",
        "2.0.0",
    ])
    .run()
    .status(0);
    t.put("unhealthy-web-1-3.0.0", "");
    let out = t
        .args([
            "deploy",
            "app.yaml",
            "--env",
            "staging",
            "--version",
            "3.0.0",
        ])
        .run();
    out.status(3);
    assert!(out.stdout.contains("rolled_back"), "{}", out.all());
    assert_eq!(current(&t, "web-1").as_deref(), Some("2.0.0"));
    assert_eq!(current(&t, "web-2").as_deref(), Some("2.0.0"));

    let back = t.args(["rollback", "--env", "staging"]).run();
    back.status(0);
    assert_eq!(current(&t, "web-1").as_deref(), Some("1.0.0"));
    let refused = t
        .args(["rollback", "--env", "staging", "--to", "0.9.0"])
        .run();
    refused.status(5);
    assert!(
        refused.stderr.contains("nothing was changed"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_second_deploy_to_a_busy_environment_is_refused() {
    let t = world();
    let text = plan(t.path()).replace("    validate:", "    timeout: 30s\n    validate:")
        + "  - id: hold\n    needs: [install]\n    manual: wait here\n    owner: ops\n";
    t.put("hold.yaml", &text);
    let mut first = t.args(["deploy", "hold.yaml", "--env", "staging"]).spawn();
    wait_for(&t, |s| {
        s["active"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["state"] == "running"))
            && s["locks"].as_array().is_some_and(|l| !l.is_empty())
    });
    let second = t.args(["deploy", "app.yaml", "--env", "staging"]).run();
    second.status(5);
    assert!(
        second.stderr.contains("busy") && second.stderr.contains("deployment #1"),
        "{}",
        second.stderr
    );
    t.args(["user", "add", "olga", "--role", "ops"])
        .run()
        .status(0);
    t.args(["confirm", "1", "hold", "--as", "olga"])
        .run()
        .status(0);
    let status = first.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let history = t.args(["history", "-o", "json"]).run().json();
    assert_eq!(
        history[0]["state"], "cancelled",
        "the refused deployment is recorded as such"
    );
    assert_eq!(
        history[0]["summary"]["reason"]
            .as_str()
            .map(|r| r.starts_with("refused")),
        Some(true)
    );
}

/// Polls `status --output json` until `ready` holds.
fn wait_for(t: &Test, ready: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let out = t.args(["status", "-o", "json"]).run();
        if out.code == 0 && ready(&out.json()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting; last status: {}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_recovers_to_a_final_state(t: &Test, expected_state: &str) {
    let out = t.args(["resume"]).run();
    out.status(0);
    let history = t.args(["history", "-o", "json"]).run().json();
    assert_eq!(history[0]["state"], expected_state, "{}", out.all());
    let status = t.args(["status", "-o", "json"]).run().json();
    assert_eq!(status["locks"], serde_json::json!([]), "the lock is free");
    t.args(["audit", "verify"]).run().status(0);
    // And the environment takes a new deployment.
    t.args([
        "deploy",
        "app.yaml",
        "--env",
        "staging",
        "--version",
        "9.0.0",
    ])
    .run()
    .status(0);
}

#[test]
fn kill_9_mid_deploy_then_resume_reaches_a_final_state_with_the_chain_intact() {
    let t = world();
    t.args(["deploy", "app.yaml", "--env", "staging"])
        .run()
        .status(0);
    // Hold the second deployment right after web-2's `current` switched, then kill it hard.
    let mut child = t
        .args([
            "deploy",
            "app.yaml",
            "--env",
            "staging",
            "--version",
            "2.0.0",
        ])
        .env("SLIPWAY_FAILPOINTS", "after_switch@web-2=sleep(60000)")
        .spawn();
    let link = t.path().join(".slipway/targets/staging/web-2/app/current");
    let start = Instant::now();
    while std::fs::read_link(&link)
        .map(|l| !l.ends_with("2.0.0"))
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "web-2 never switched"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert_eq!(
        current(&t, "web-2").as_deref(),
        Some("2.0.0"),
        "killed mid-deployment"
    );
    let status = t.args(["status", "2", "-o", "json"]).run().json();
    // Any command recovers first: the dead deployment is already rolled back.
    assert_eq!(status["deployment"]["state"], "rolled_back");
    assert_eq!(current(&t, "web-1").as_deref(), Some("1.0.0"));
    assert_eq!(current(&t, "web-2").as_deref(), Some("1.0.0"));
    let runs = status["step_runs"].as_array().cloned().unwrap_or_default();
    assert!(
        runs.iter().any(|r| r["state"] == "unknown"),
        "the interrupted intent is marked unknown"
    );
    assert_recovers_to_a_final_state(&t, "rolled_back");
}

#[test]
fn a_crash_at_any_point_is_recovered() {
    for (point, state_after) in [
        ("after_create", "failed"),
        ("after_preflight", "rolled_back"),
        ("after_intent@web-1", "rolled_back"),
        ("after_run@web-2", "rolled_back"),
        ("before_validate", "rolled_back"),
        ("before_rollback_unit@web-1", "rolled_back"),
        ("before_finish", "rolled_back"),
    ] {
        let t = world();
        t.args(["deploy", "app.yaml", "--env", "staging"])
            .run()
            .status(0);
        if point.starts_with("before_rollback_unit") {
            t.put("unhealthy-web-2-2.0.0", "");
        }
        let crashed = t
            .args([
                "deploy",
                "app.yaml",
                "--env",
                "staging",
                "--version",
                "2.0.0",
            ])
            .env("SLIPWAY_FAILPOINTS", &format!("{point}=abort"))
            .run();
        assert_ne!(crashed.code, 0, "{point}: the process should have died");
        let history = t.args(["history", "-o", "json"]).run().json();
        assert_eq!(history[0]["state"], state_after, "{point}");
        for target in ["web-1", "web-2"] {
            assert_eq!(
                current(&t, target).as_deref(),
                Some("1.0.0"),
                "{point}: {target}"
            );
        }
        let _ = std::fs::remove_file(t.path().join("unhealthy-web-2-2.0.0"));
        assert_recovers_to_a_final_state(&t, state_after);
    }
}

#[test]
fn a_secret_printed_by_a_step_appears_nowhere_in_the_record_or_output() {
    let t = world();
    let deploy = t
        .args(["deploy", "app.yaml", "--env", "staging", "-o", "json"])
        .run();
    deploy.status(0);
    let mut seen = deploy.all();
    for args in [
        vec!["logs", "1"],
        vec!["logs", "1", "-o", "json"],
        vec!["status", "1", "-o", "json"],
        vec!["history", "-o", "json"],
        vec!["watch", "1"],
    ] {
        seen.push_str(&t.args(args).run().all());
    }
    assert!(
        seen.contains("********"),
        "the masked secret shows as ********"
    );
    assert!(!seen.contains("tok-9f8e7d6c5b4a"), "secret in output");
    for entry in std::fs::read_dir(t.path().join(".slipway"))
        .expect("dir")
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("slipway.db")
        {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            assert!(
                !bytes.windows(16).any(|w| w == b"tok-9f8e7d6c5b4a"),
                "secret in {:?}",
                entry.file_name()
            );
        }
    }
}

#[test]
fn audit_verify_names_the_first_tampered_event() {
    let t = world();
    t.args(["deploy", "app.yaml", "--env", "staging"])
        .run()
        .status(0);
    let db = t.database();
    let sql = "DROP TRIGGER events_no_update; UPDATE events SET actor = 'mallory' WHERE seq = 2;";
    let status = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(&db)
        .arg(sql)
        .status()
        .expect("python3 edits the database");
    assert!(status.success());
    let out = t.args(["audit", "verify"]).run();
    out.status(4);
    assert!(out.stdout.contains("BROKEN at event 2"), "{}", out.stdout);
}

#[test]
fn demo_runs_v1_v2_and_rolls_back_v3() {
    let t = Test::new();
    let started = Instant::now();
    let out = t.args(["demo", "--dir", "demo", "-o", "json"]).run();
    out.status(0);
    assert!(started.elapsed() < Duration::from_secs(60));
    let json = out.json();
    assert_eq!(json["as_expected"], true);
    let states: Vec<&str> = json["stages"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states, ["succeeded", "succeeded", "rolled_back"]);
    assert_eq!(
        json["stages"][2]["serving"],
        serde_json::json!(["demo 2.0.0", "demo 2.0.0", "demo 2.0.0"])
    );
    assert_eq!(json["audit_intact"], true);
    // The services were stopped.
    for port in json["ports"].as_array().into_iter().flatten() {
        let port = port.as_u64().unwrap_or(0) as u16;
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still serves"
        );
    }
}
