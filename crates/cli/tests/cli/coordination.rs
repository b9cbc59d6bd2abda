//! Approvals with separation of duties, plan-hash binding, windows, freezes and break-glass, and
//! manual steps confirmed by their owner role — through the command line.

use crate::harness::Test;

const ROLES: &[(&str, &[&str])] = &[
    ("alice", &["deployer"]),
    ("dan", &["deployer"]),
    ("bob", &["cab"]),
    ("carol", &["cab"]),
    ("erin", &["viewer"]),
    ("root", &["admin"]),
    ("nina", &["network-team"]),
];

fn plan(environment_extra: &str, extra_steps: &str) -> String {
    format!(
        r#"slipway: 1
release: {{ name: shop, version: 1.0.0, owner: alice }}
roles:
  cab: [bob, carol, frank]
environments:
  production:
    protected: true
    approvals: {{ required: 2, from: [cab] }}
{environment_extra}    targets:
      web-1: {{ host: local, labels: [web] }}
steps:
  - id: install
    on: [web]
    run: echo installing
{extra_steps}"#
    )
}

fn world(plan_text: &str) -> Test {
    let t = Test::new();
    t.put("shop.yaml", plan_text);
    for (name, roles) in ROLES {
        let mut args = vec!["user".to_string(), "add".into(), name.to_string()];
        for r in *roles {
            args.push("--role".into());
            args.push(r.to_string());
        }
        t.args(args).run().status(0);
    }
    t
}

fn state(t: &Test, id: u32) -> String {
    t.args(["status", &id.to_string(), "-o", "json"])
        .run()
        .json()["deployment"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn approvals_need_a_quorum_of_other_people_and_bind_to_the_plan_hash() {
    let t = world(&plan("", ""));
    let out = t
        .args(["deploy", "shop.yaml", "--env", "production", "--as", "dan"])
        .run();
    out.status(7);
    assert!(
        out.stdout.contains("awaits 2 approval(s) from cab"),
        "{}",
        out.stdout
    );
    assert_eq!(state(&t, 1), "awaiting_approval");

    for (who, code) in [
        ("dan", "self_approval"),
        ("alice", "plan_owner_approval"),
        ("erin", "missing_role"),
    ] {
        let refused = t.args(["approve", "1", "--as", who]).run();
        refused.status(5);
        assert!(refused.stderr.contains(code), "{who}: {}", refused.stderr);
    }
    t.args(["approve", "1", "--as", "bob"]).run().status(0);
    let again = t.args(["approve", "1", "--as", "bob"]).run();
    again.status(5);
    assert!(
        again.stderr.contains("already_decided"),
        "one person counts once: {}",
        again.stderr
    );
    assert_eq!(state(&t, 1), "awaiting_approval");

    // A changed plan voids the approval given so far.
    t.put(
        "shop-v2.yaml",
        &plan("", "").replace("echo installing", "echo installing v2"),
    );
    let amended = t
        .args(["amend", "1", "shop-v2.yaml", "--as", "dan", "-o", "json"])
        .run();
    amended.status(0);
    assert_eq!(
        amended.json()["approvals"]["approvers"],
        serde_json::json!([])
    );
    assert_eq!(amended.json()["approvals"]["voided"], 1);
    t.args(["approve", "1", "--as", "carol"]).run().status(0);
    assert_eq!(state(&t, 1), "awaiting_approval");
    t.args([
        "approve",
        "1",
        "--as",
        "bob",
        "--reason",
        "checked the new plan",
    ])
    .run()
    .status(0);
    assert_eq!(state(&t, 1), "queued");

    let run = t.args(["start", "1"]).run();
    run.status(0);
    assert_eq!(state(&t, 1), "succeeded");
    let events = t.args(["watch", "1", "-o", "json"]).run().stdout;
    for kind in [
        "approval_requested",
        "approved",
        "plan_amended",
        "queued",
        "deployment_succeeded",
    ] {
        assert!(
            events.contains(&format!("\"kind\":\"{kind}\"")),
            "{kind} missing from the record"
        );
    }
}

#[test]
fn a_rejection_needs_a_reason_and_ends_the_deployment() {
    let t = world(&plan("", ""));
    t.args(["deploy", "shop.yaml", "--env", "production", "--as", "dan"])
        .run()
        .status(7);
    let empty = t
        .args(["reject", "1", "--as", "bob", "--reason", " "])
        .run();
    empty.status(5);
    assert!(empty.stderr.contains("reason_required"), "{}", empty.stderr);
    t.args([
        "reject",
        "1",
        "--as",
        "bob",
        "--reason",
        "no rollback plan for the DB",
    ])
    .run()
    .status(0);
    let status = t.args(["status", "1", "-o", "json"]).run().json();
    assert_eq!(status["deployment"]["state"], "rejected");
    assert_eq!(
        status["deployment"]["summary"]["reason"],
        "no rollback plan for the DB"
    );
    t.args(["start", "1"]).run().status(5);
}

#[test]
fn outside_its_window_a_deployment_is_scheduled_for_the_next_opening() {
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .weekday()
        .to_monday_zero_offset() as usize;
    let window = format!(
        "    windows: [\"{} 10:00-11:00 UTC\"]\n",
        day[(today + 3) % 7]
    );
    let text = plan(&window, "").replace(
        "    protected: true\n    approvals: { required: 2, from: [cab] }\n",
        "",
    );
    let t = world(&text);
    let out = t
        .args([
            "deploy",
            "shop.yaml",
            "--env",
            "production",
            "--as",
            "dan",
            "-o",
            "json",
        ])
        .run();
    out.status(7);
    let d = &out.json()["deployment"];
    assert_eq!(d["state"], "scheduled");
    let at = d["scheduled_for"].as_i64().unwrap_or_default();
    let opening = jiff::Timestamp::from_millisecond(at)
        .expect("time")
        .to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!((opening.hour(), opening.minute()), (10, 0));
    assert_eq!(
        opening.weekday().to_monday_zero_offset() as usize,
        (today + 3) % 7
    );
    // `--at` schedules for later even where no window applies.
    let t2 = world(&plan("", "").replace(
        "    protected: true\n    approvals: { required: 2, from: [cab] }\n",
        "",
    ));
    let later = t2
        .args([
            "deploy",
            "shop.yaml",
            "--env",
            "production",
            "--at",
            "2030-01-01T00:00:00Z",
            "-o",
            "json",
        ])
        .run();
    later.status(7);
    assert_eq!(
        later.json()["deployment"]["scheduled_for"],
        1_893_456_000_000i64
    );
}

#[test]
fn a_freeze_blocks_unless_an_admin_breaks_glass_with_a_reason() {
    let freeze =
        "    freezes:\n      - { from: 2000-01-01, to: 2099-12-31, reason: Forever freeze }\n";
    let text = plan(freeze, "").replace(
        "    protected: true\n    approvals: { required: 2, from: [cab] }\n",
        "",
    );
    let t = world(&text);
    let frozen = t
        .args(["deploy", "shop.yaml", "--env", "production", "--as", "dan"])
        .run();
    frozen.status(5);
    assert!(
        frozen.stderr.contains("Forever freeze") && frozen.stderr.contains("[frozen]"),
        "{}",
        frozen.stderr
    );
    let not_admin = t
        .args([
            "deploy",
            "shop.yaml",
            "--env",
            "production",
            "--as",
            "dan",
            "--break-glass",
            "hotfix",
        ])
        .run();
    not_admin.status(5);
    assert!(
        not_admin.stderr.contains("admin_only"),
        "{}",
        not_admin.stderr
    );
    let glass = t
        .args([
            "deploy",
            "shop.yaml",
            "--env",
            "production",
            "--as",
            "root",
            "--break-glass",
            "payments down, hotfix",
        ])
        .run();
    glass.status(0);
    let status = t.args(["status", "1", "-o", "json"]).run().json();
    assert_eq!(
        status["deployment"]["break_glass"]["reason"],
        "payments down, hotfix"
    );
    assert_eq!(status["deployment"]["break_glass"]["by"], "root");
}

#[test]
fn a_manual_step_is_confirmed_only_by_its_owner_role() {
    let extra = "  - id: confirm-dns\n    needs: [install]\n    manual: Point the CDN at the new origin\n    owner: network-team\n";
    let text = plan("", extra).replace(
        "    protected: true\n    approvals: { required: 2, from: [cab] }\n",
        "",
    );
    let t = world(&text);
    let mut running = t
        .args(["deploy", "shop.yaml", "--env", "production", "--as", "dan"])
        .spawn();
    let start = std::time::Instant::now();
    loop {
        let status = t.args(["status", "1", "-o", "json"]).run();
        if status.stdout.contains("waiting_for_confirmation") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "never waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let wrong = t.args(["confirm", "1", "confirm-dns", "--as", "bob"]).run();
    wrong.status(5);
    assert!(wrong.stderr.contains("not_step_owner"), "{}", wrong.stderr);
    t.args(["confirm", "1", "confirm-dns", "--as", "nina"])
        .run()
        .status(0);
    assert_eq!(running.wait().expect("wait").code(), Some(0));
}
