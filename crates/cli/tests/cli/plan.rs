//! `check`, `plan`, `init` and `schema`.

use crate::harness::Test;

const SKETCH: &str = include_str!("../../../../examples/shop.slipway.yaml");

#[test]
fn check_accepts_the_sketch_plan() {
    let out = Test::new()
        .file("shop.yaml", SKETCH)
        .args(["check", "shop.yaml"])
        .run();
    out.status(0);
    assert!(
        out.stdout.starts_with("shop.yaml is valid (plan hash "),
        "{}",
        out.stdout
    );
}

#[test]
fn check_reports_every_error_with_line_and_column() {
    let plan = "slipway: 1\nrelease: { name: shop, version: 1.0.0 }\nenvironments:\n  staging:\n    targets:\n      web-1: { host: local, labels: [web] }\nsteps:\n  - id: install\n    on: [web]\n    run: ./install.sh\n    tiemout: 5m\n  - id: smoke\n    needs: [instal]\n    run: ./smoke.sh\n    retries: many\n";
    let out = Test::new()
        .file("broken.yaml", plan)
        .args(["check", "broken.yaml"])
        .run();
    out.status(1);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn check_json_gives_the_same_diagnostics_as_data() {
    let plan = "slipway: 1\nrelease: { name: shop }\nenvironments: {}\nsteps:\n  - id: a\n    needs: [a]\n    run: ./a\n";
    let out = Test::new()
        .file("p.yaml", plan)
        .args(["check", "p.yaml", "--output", "json"])
        .run();
    out.status(1);
    let json = out.json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"], 1);
    let d = &json["diagnostics"][0];
    assert_eq!(d["code"], "dependency_cycle");
    assert_eq!(d["file"], "p.yaml");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(5), Some(9))
    );
    assert_eq!(d["source_line"], "  - id: a");
}

#[test]
fn check_of_a_missing_file_is_exit_2() {
    let out = Test::new().args(["check", "nowhere.yaml"]).run();
    out.status(2);
    assert!(
        out.stderr.contains("cannot read nowhere.yaml"),
        "{}",
        out.stderr
    );
}

#[test]
fn plan_shows_batches_approvals_window_and_explained_risk() {
    let out = Test::new()
        .file("shop.yaml", SKETCH)
        .args([
            "plan",
            "shop.yaml",
            "--env",
            "production",
            "--at",
            "2026-11-26T10:00:00Z",
        ])
        .run();
    out.status(0);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn plan_json_inside_a_window_and_inside_a_freeze() {
    let t = Test::new().file("shop.yaml", SKETCH);
    // Saturday 28 November 2026, 23:00 London (GMT): inside the window.
    let json = t
        .args([
            "plan",
            "shop.yaml",
            "--env",
            "production",
            "--at",
            "2026-11-28T23:00:00Z",
            "-o",
            "json",
        ])
        .run()
        .json();
    assert_eq!(json["calendar"]["in_window"], true);
    assert_eq!(json["calendar"]["window_closes"], "2026-11-29T04:00:00Z");
    assert!(json["calendar"]["freeze"].is_null());
    assert_eq!(
        json["waves"],
        serde_json::json!([["migrate"], ["install"], ["confirm-dns"]])
    );
    let install = &json["steps"][1];
    assert_eq!(
        install["batches"],
        serde_json::json!([["web-1"], ["web-2"], ["web-3"]])
    );
    assert_eq!(json["approvals"]["required"], 2);
    assert_eq!(json["approvals"]["from"], serde_json::json!(["cab"]));
    assert_eq!(json["manual_steps"][0]["confirmed_by"], "network-team");
    assert!(
        json["risk"]["factors"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["factor"] != "outside_window"))
    );

    // Christmas Eve falls in the holiday freeze.
    let json = t
        .args([
            "plan",
            "shop.yaml",
            "--env",
            "production",
            "--at",
            "2026-12-24T12:00:00Z",
            "-o",
            "json",
        ])
        .run()
        .json();
    assert_eq!(json["calendar"]["freeze"]["reason"], "Holiday freeze");
    let factors: Vec<&str> = json["risk"]["factors"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["factor"].as_str()).collect())
        .unwrap_or_default();
    assert!(factors.contains(&"in_freeze"), "{factors:?}");
    assert!(
        json["blockers"][0]
            .as_str()
            .is_some_and(|b| b.contains("freeze"))
    );
}

#[test]
fn plan_for_an_unknown_environment_suggests_one() {
    let out = Test::new()
        .file("shop.yaml", SKETCH)
        .args(["plan", "shop.yaml", "--env", "prod"])
        .run();
    out.status(1);
    assert!(
        out.stderr.contains("no environment `prod`"),
        "{}",
        out.stderr
    );
}

#[test]
fn plan_marks_irreversible_steps_and_raises_risk() {
    let plan = "slipway: 1\nrelease: { name: db, version: 2.0.0 }\nenvironments:\n  staging:\n    targets:\n      db-1: { host: local }\nsteps:\n  - id: drop-column\n    run: [./bin/migrate, drop]\n";
    let json = Test::new()
        .file("p.yaml", plan)
        .args(["plan", "p.yaml", "--env", "staging", "-o", "json"])
        .run()
        .json();
    assert_eq!(
        json["irreversible_steps"],
        serde_json::json!(["drop-column"])
    );
    assert_eq!(json["steps"][0]["irreversible"], true);
    let factor = json["risk"]["factors"].as_array().and_then(|f| {
        f.iter()
            .find(|f| f["factor"] == "irreversible_steps")
            .cloned()
    });
    assert_eq!(
        factor.map(|f| f["points"].clone()),
        Some(serde_json::json!(8))
    );
}

#[test]
fn init_writes_a_plan_that_checks_and_refuses_to_overwrite() {
    let t = Test::new();
    t.args(["init", "slipway.yaml"]).run().status(0);
    t.args(["check", "slipway.yaml"]).run().status(0);
    let again = t.args(["init", "slipway.yaml"]).run();
    again.status(2);
    assert!(again.stderr.contains("already exists"));
}

#[test]
fn schema_is_a_json_schema() {
    let json = Test::new().args(["schema"]).run().json();
    assert!(
        json["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("json-schema.org"))
    );
    assert!(json["properties"]["steps"].is_object());
}
