//! The store conformance suite. Every check takes any `Store`, so each backend runs the same story.

use serde_json::json;
use slipway_store::*;

async fn sqlite() -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("record.db");
    let store = SqlStore::open(path.to_str().expect("utf-8 path"))
        .await
        .expect("open");
    (dir, store)
}

fn new_deployment(env: &str) -> NewDeployment {
    NewDeployment {
        kind: DeploymentKind::Deploy,
        environment: env.into(),
        plan_name: "shop".into(),
        plan_file: "shop.yaml".into(),
        plan_hash: "abc".into(),
        plan_source: "slipway: 1\n".into(),
        version: Some("2.0.0".into()),
        requester: "alice".into(),
        state: DeploymentState::Queued,
        created_at: 1_000,
        scheduled_for: None,
        rollback_of: None,
        params: json!({"note": "x"}),
        risk: Some(json!({"approvals": {"required": 1}})),
    }
}

fn ev(kind: &str) -> NewEvent {
    NewEvent::new(None, 1_000, kind, "tester", json!({"k": kind}))
}

async fn deployments_move_only_from_the_expected_state(store: &impl Store) {
    let d = store
        .create_deployment(new_deployment("staging"), ev("created"))
        .await
        .expect("create");
    assert_eq!(d.state, DeploymentState::Queued);
    assert_eq!(d.params, json!({"note": "x"}));
    let moved = store
        .transition(
            d.id,
            &[DeploymentState::Queued],
            DeploymentState::Running,
            StatePatch {
                started_at: Some(2_000),
                ..Default::default()
            },
            ev("started"),
        )
        .await
        .expect("transition");
    assert!(moved);
    // A second process making the same move loses the race and changes nothing.
    let again = store
        .transition(
            d.id,
            &[DeploymentState::Queued],
            DeploymentState::Running,
            StatePatch::default(),
            ev("started"),
        )
        .await
        .expect("transition");
    assert!(!again);
    let summary = json!({"targets": {"web-1": "2.0.0"}});
    assert!(
        store
            .transition(
                d.id,
                &[DeploymentState::Running],
                DeploymentState::Succeeded,
                StatePatch {
                    finished_at: Some(3_000),
                    summary: Some(summary.clone()),
                    ..Default::default()
                },
                ev("succeeded")
            )
            .await
            .expect("transition")
    );
    let d = store.deployment(d.id).await.expect("get").expect("exists");
    assert_eq!(
        (d.state, d.started_at, d.finished_at),
        (DeploymentState::Succeeded, Some(2_000), Some(3_000))
    );
    assert_eq!(d.summary, Some(summary));
    // Events were written with the deployment id, in order.
    let kinds: Vec<String> = store
        .events(EventFilter {
            deployment_id: Some(d.id),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "started", "succeeded"]);
    // Final deployments cannot be cancelled.
    assert!(
        !store
            .request_cancel(d.id, ev("cancel"))
            .await
            .expect("cancel")
    );
    let other = store
        .create_deployment(new_deployment("production"), ev("created"))
        .await
        .expect("create");
    let listed = store
        .deployments(DeploymentFilter {
            environment: Some("production".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![other.id]
    );
    let active = store
        .deployments(DeploymentFilter {
            states: vec![DeploymentState::Queued],
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(active.len(), 1);
    assert!(
        store
            .request_cancel(other.id, ev("cancel"))
            .await
            .expect("cancel")
    );
    assert!(
        store
            .deployment(other.id)
            .await
            .expect("get")
            .expect("exists")
            .cancel_requested
    );
}

async fn step_runs_are_intents_then_results(store: &impl Store) {
    let d = store
        .create_deployment(new_deployment("staging"), ev("created"))
        .await
        .expect("create");
    let runs = (1..=3)
        .map(|i| NewStepRun {
            deployment_id: d.id,
            step_id: "install".into(),
            target: format!("web-{i}"),
            phase: "run".into(),
            attempt: 1,
            started_at: 10,
        })
        .collect();
    let ids = store
        .start_step_runs(runs, Some(ev("batch_started")))
        .await
        .expect("intents");
    assert_eq!(ids.len(), 3);
    let recorded = store.step_runs(d.id).await.expect("runs");
    assert!(
        recorded
            .iter()
            .all(|r| r.state == "started" && r.finished_at.is_none())
    );
    store
        .finish_step_runs(
            vec![StepRunResult {
                id: ids[1],
                state: "failed".into(),
                finished_at: 20,
                exit_code: Some(3),
                output: "boom\n".into(),
                message: Some("exit 3".into()),
            }],
            None,
        )
        .await
        .expect("finish");
    let recorded = store.step_runs(d.id).await.expect("runs");
    assert_eq!(recorded[1].state, "failed");
    assert_eq!(recorded[1].exit_code, Some(3));
    assert_eq!(recorded[1].output, "boom\n");
    assert_eq!(recorded[0].state, "started");
}

async fn the_chain_verifies_and_survives_concurrent_writers(store: &(impl Store + Clone)) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                s.append_events(vec![ev(&format!("t{t}-{i}")), ev("pair")])
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let report = store.verify_chain().await.expect("verify");
    assert_eq!(report.first_bad, None);
    assert!(report.events >= 400);
    let events = store.events(EventFilter::default()).await.expect("events");
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
}

async fn inventory_is_upserted_per_target(store: &impl Store) {
    let entry = |target: &str, current: &str, kept: &[&str]| TargetRelease {
        environment: "staging".into(),
        target: target.into(),
        current: Some(current.into()),
        previous: None,
        kept: kept.iter().map(|s| s.to_string()).collect(),
        deployment_id: None,
        updated_at: 5,
    };
    store
        .set_inventory(
            vec![
                entry("web-1", "1.0.0", &["1.0.0"]),
                entry("web-2", "1.0.0", &["1.0.0"]),
            ],
            None,
        )
        .await
        .expect("set");
    store
        .set_inventory(
            vec![entry("web-1", "2.0.0", &["1.0.0", "2.0.0"])],
            Some(ev("inventory")),
        )
        .await
        .expect("set");
    let inv = store.inventory(Some("staging")).await.expect("inventory");
    assert_eq!(inv.len(), 2);
    assert_eq!(inv[0].current.as_deref(), Some("2.0.0"));
    assert_eq!(inv[0].kept, ["1.0.0", "2.0.0"]);
    assert!(
        store
            .inventory(Some("production"))
            .await
            .expect("inventory")
            .is_empty()
    );
}

async fn one_lock_per_environment_with_a_lease(store: &impl Store) {
    let lock = |holder: &str, expires_at: i64| Lock {
        environment: "production".into(),
        holder: holder.into(),
        deployment_id: Some(1),
        pid: 42,
        host: "h".into(),
        acquired_at: 0,
        expires_at,
    };
    assert_eq!(
        store.try_lock(lock("a", 100), 0).await.expect("lock"),
        LockOutcome::Acquired
    );
    match store.try_lock(lock("b", 200), 50).await.expect("lock") {
        LockOutcome::Held(held) => assert_eq!(held.holder, "a"),
        other => panic!("expected held, got {other:?}"),
    }
    // The holder renews; after the lease runs out without renewal, another can take it.
    assert!(
        store
            .renew_lock("production", "a", 150)
            .await
            .expect("renew")
    );
    assert!(matches!(
        store.try_lock(lock("b", 300), 120).await.expect("lock"),
        LockOutcome::Held(_)
    ));
    assert_eq!(
        store.try_lock(lock("b", 300), 151).await.expect("lock"),
        LockOutcome::Acquired
    );
    assert!(
        !store
            .renew_lock("production", "a", 400)
            .await
            .expect("renew")
    );
    // Taking over from a holder known dead only works if it still holds the lock.
    assert!(
        store
            .take_over_lock("b", lock("c", 500))
            .await
            .expect("take over")
    );
    assert!(
        !store
            .take_over_lock("b", lock("d", 500))
            .await
            .expect("take over")
    );
    store
        .release_lock("production", "c")
        .await
        .expect("release");
    assert!(store.locks().await.expect("locks").is_empty());
}

async fn a_manual_step_is_confirmed_once(store: &impl Store) {
    let d = store
        .create_deployment(new_deployment("staging"), ev("created"))
        .await
        .expect("create");
    let c = Confirmation {
        deployment_id: d.id,
        step_id: "confirm-dns".into(),
        actor: "nina".into(),
        at: 9,
    };
    assert!(
        store
            .confirm_step(c.clone(), ev("confirmed"))
            .await
            .expect("confirm")
    );
    assert!(
        !store
            .confirm_step(
                Confirmation {
                    actor: "other".into(),
                    ..c
                },
                ev("confirmed")
            )
            .await
            .expect("confirm")
    );
    let all = store.confirmations(d.id).await.expect("confirmations");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].actor, "nina");
}

async fn people_tokens_and_decisions(store: &impl Store) {
    let user = User {
        name: "bob".into(),
        roles: vec!["cab".into(), "deployer".into()],
        created_at: 1,
        disabled: false,
    };
    store
        .upsert_user(user.clone(), ev("user_added"))
        .await
        .expect("user");
    assert_eq!(store.user("bob").await.expect("user"), Some(user.clone()));
    store
        .upsert_user(
            User {
                roles: vec!["viewer".into()],
                ..user.clone()
            },
            ev("user_changed"),
        )
        .await
        .expect("user");
    assert_eq!(
        store.user("bob").await.expect("user").map(|u| u.roles),
        Some(vec!["viewer".to_string()])
    );
    let token = NewToken {
        id: "t1".into(),
        user: "bob".into(),
        name: "ci".into(),
        hash: "h-abc".into(),
        created_at: 10,
        expires_at: Some(100),
    };
    store
        .create_token(token, ev("token_created"))
        .await
        .expect("token");
    let found = store.token_by_hash("h-abc", 50).await.expect("lookup");
    assert_eq!(
        found.map(|(t, u)| (t.id, u.name)),
        Some(("t1".to_string(), "bob".to_string()))
    );
    assert!(
        store
            .token_by_hash("h-abc", 100)
            .await
            .expect("lookup")
            .is_none(),
        "expired"
    );
    assert!(
        store
            .token_by_hash("h-nope", 50)
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        store
            .revoke_token("t1", 60, ev("token_revoked"))
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_token("t1", 61, ev("token_revoked"))
            .await
            .expect("revoke")
    );
    assert!(
        store
            .token_by_hash("h-abc", 50)
            .await
            .expect("lookup")
            .is_none(),
        "revoked"
    );
    assert_eq!(
        store.tokens(Some("bob")).await.expect("tokens")[0].revoked_at,
        Some(60)
    );

    let d = store
        .create_deployment(new_deployment("production"), ev("created"))
        .await
        .expect("create");
    assert_eq!(d.risk, Some(json!({"approvals": {"required": 1}})));
    let decision = Decision {
        approver: "bob".into(),
        approve: true,
        reason: None,
        plan_hash: "abc".into(),
        at: 20,
    };
    store
        .record_decision(d.id, decision.clone(), ev("approved"))
        .await
        .expect("decide");
    assert_eq!(
        store.decisions(d.id).await.expect("decisions"),
        vec![decision]
    );
    assert!(
        store
            .amend_plan(
                d.id,
                &[DeploymentState::Queued],
                "slipway: 1 # v2\n".into(),
                "def".into(),
                None,
                ev("amended")
            )
            .await
            .expect("amend")
    );
    let amended = store.deployment(d.id).await.expect("get").expect("exists");
    assert_eq!(
        (amended.plan_hash.as_str(), amended.risk.is_some()),
        ("def", true)
    );
    assert!(
        !store
            .amend_plan(
                d.id,
                &[DeploymentState::Running],
                String::new(),
                String::new(),
                None,
                ev("amended")
            )
            .await
            .expect("amend")
    );
    assert!(
        store
            .set_break_glass(
                d.id,
                json!({"by": "root", "reason": "outage"}),
                ev("break_glass")
            )
            .await
            .expect("glass")
    );
    assert_eq!(
        store
            .deployment(d.id)
            .await
            .expect("get")
            .and_then(|d| d.break_glass)
            .map(|b| b["reason"].clone()),
        Some(json!("outage"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let (_dir, store) = sqlite().await;
    deployments_move_only_from_the_expected_state(&store).await;
    step_runs_are_intents_then_results(&store).await;
    the_chain_verifies_and_survives_concurrent_writers(&store).await;
    inventory_is_upserted_per_target(&store).await;
    one_lock_per_environment_with_a_lease(&store).await;
    a_manual_step_is_confirmed_once(&store).await;
    people_tokens_and_decisions(&store).await;
    assert_eq!(store.verify_chain().await.expect("verify").first_bad, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_keep_one_chain() {
    let (dir, first) = sqlite().await;
    let second = SqlStore::open(dir.path().join("record.db").to_str().expect("utf-8"))
        .await
        .expect("open again");
    let a = tokio::spawn(async move {
        for i in 0..50 {
            first
                .append_events(vec![ev(&format!("a{i}"))])
                .await
                .expect("append");
        }
        first
    });
    for i in 0..50 {
        second
            .append_events(vec![ev(&format!("b{i}"))])
            .await
            .expect("append");
    }
    let first = a.await.expect("task");
    let report = first.verify_chain().await.expect("verify");
    assert_eq!((report.events, report.first_bad), (100, None));
}

#[tokio::test]
async fn tampering_is_found_and_named() {
    let (dir, store) = sqlite().await;
    for i in 0..5 {
        store
            .append_events(vec![ev(&format!("e{i}"))])
            .await
            .expect("append");
    }
    // The log refuses updates through SQL...
    let path = dir.path().join("record.db");
    let refused = try_sql(&path, "UPDATE events SET actor = 'mallory' WHERE seq = 3").await;
    assert!(refused.is_err_and(|e| e.to_string().contains("append-only")));
    drop(store);
    // ...so a tamperer drops the trigger first; verification still names the event.
    try_sql(
        &path,
        "DROP TRIGGER events_no_update; UPDATE events SET actor = 'mallory' WHERE seq = 3;",
    )
    .await
    .expect("tamper");
    let store = SqlStore::open(path.to_str().expect("utf-8"))
        .await
        .expect("reopen");
    let report = store.verify_chain().await.expect("verify");
    assert_eq!(report.first_bad.map(|b| b.0), Some(3));
}

/// Edits the database behind the store's back, as an attacker with file access could.
async fn try_sql(path: &std::path::Path, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
    conn.execute(sqlx::AssertSqlSafe(sql.to_string()))
        .await
        .map(|_| ())
}
