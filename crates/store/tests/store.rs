//! The store conformance suite. Every check takes any `Store`, and every check runs on each backend:
//! SQLite (a temp file) and PostgreSQL (a fresh database per test on the server that
//! `SLIPWAY_TEST_POSTGRES` names; see `postgres_admin_url`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use slipway_store::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// An empty database of one backend, for one test; removed when dropped.
enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::Sqlite(tempfile::tempdir().expect("temp dir")),
            Backend::Postgres => TestDb::Postgres(PgDatabase::create().await),
        }
    }

    /// What `SqlStore::open` is given: a file path, or a `postgres://` URL.
    fn location(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => dir
                .path()
                .join("record.db")
                .to_str()
                .expect("utf-8 path")
                .to_string(),
            TestDb::Postgres(db) => db.url.clone(),
        }
    }

    /// A store on this database; each call is a separate pool, as a second process would have.
    async fn open(&self) -> SqlStore {
        SqlStore::open(&self.location()).await.expect("open")
    }

    /// Runs SQL behind the store's back on a connection of its own, as an attacker with access
    /// to the database could.
    async fn raw_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::{Connection, Executor};
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            TestDb::Sqlite(_) => {
                let url = format!("sqlite://{}", self.location());
                let mut conn = sqlx::SqliteConnection::connect(&url).await?;
                conn.execute(sql).await.map(|_| ())
            }
            TestDb::Postgres(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await?;
                conn.execute(sql).await.map(|_| ())
            }
        }
    }

    /// The statement that switches off the trigger refusing updates of the audit log.
    fn disable_update_trigger(&self) -> &'static str {
        match self {
            TestDb::Sqlite(_) => "DROP TRIGGER events_no_update;",
            TestDb::Postgres(_) => "ALTER TABLE events DISABLE TRIGGER events_no_update;",
        }
    }
}

async fn fresh(backend: Backend) -> (TestDb, SqlStore) {
    let db = TestDb::new(backend).await;
    let store = db.open().await;
    (db, store)
}

/// The server for the PostgreSQL tests: `SLIPWAY_TEST_POSTGRES`, a URL for a role that may create
/// databases. Unset, the tests run `scripts/postgres-test` once, which starts this machine's
/// PostgreSQL (as root) and prints such a URL; if that fails too, they fail and say what to do.
fn postgres_admin_url() -> &'static str {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let found = URL.get_or_init(|| {
        if let Some(url) = std::env::var("SLIPWAY_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            return Ok(url.trim().to_string());
        }
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/postgres-test");
        let script = script.canonicalize().unwrap_or(script);
        let failure = match std::process::Command::new(&script)
            .stdin(std::process::Stdio::null())
            .output()
        {
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if out.status.success() && stdout.starts_with("postgres") {
                    if !stderr.is_empty() {
                        eprintln!("{stderr}");
                    }
                    return Ok(stdout);
                }
                format!("it failed ({}): {stderr}", out.status)
            }
            Err(e) => format!("it could not be run: {e}"),
        };
        Err(format!(
            "the PostgreSQL store tests need a PostgreSQL server. SLIPWAY_TEST_POSTGRES is not set, \
             so they ran {} to start this machine's, and {failure}\n\
             Start one and name it, for example as root: `pg_ctlcluster 15 main start` (or \
             `apt-get install postgresql`), then `export SLIPWAY_TEST_POSTGRES=\"$(scripts/postgres-test)\"`; \
             or set SLIPWAY_TEST_POSTGRES=postgres://USER:PASSWORD@HOST:PORT/DATABASE for a role \
             with CREATEDB (each test creates and drops a database of its own there).",
            script.display()
        ))
    });
    match found {
        Ok(url) => url,
        Err(message) => panic!("{message}"),
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |q| &tail[q..]);
    format!("{scheme}://{authority}/{name}{query}")
}

/// A database of its own for one test, so the tests can run in parallel; dropped with it.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        use sqlx::{Connection, Executor};
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let admin_url = postgres_admin_url().to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let name = format!(
            "slipway_t_{}_{nanos:x}_{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot connect to the PostgreSQL server of SLIPWAY_TEST_POSTGRES: {e}")
            });
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        PgDatabase {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: drop the database from a thread with a
        // runtime of its own. FORCE ends the store's pooled connections.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            use sqlx::{Connection, Executor};
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                admin
                    .execute(sqlx::AssertSqlSafe(sql))
                    .await
                    .map_err(|e| e.to_string())?;
                admin.close().await.ok();
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
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

/// Text comes back as written, lists of names come back in byte order, times of any size survive,
/// on every backend. (Process output may hold NUL, which PostgreSQL cannot keep: it becomes
/// U+FFFD on every backend.)
async fn text_order_and_numbers_survive(store: &impl Store) {
    let entry = |target: &str| TargetRelease {
        environment: "order".into(),
        target: target.into(),
        current: Some("1.0.0 ‘quoted’ 🚀".into()),
        previous: None,
        kept: vec![],
        deployment_id: None,
        updated_at: 4_102_444_800_000,
    };
    store
        .set_inventory(
            ["web-10", "ä-1", "web-1", "Web-2", "web-2"]
                .into_iter()
                .map(entry)
                .collect(),
            None,
        )
        .await
        .expect("set");
    let inv = store.inventory(Some("order")).await.expect("inventory");
    assert_eq!(
        inv.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        ["Web-2", "web-1", "web-10", "web-2", "ä-1"]
    );
    assert_eq!(inv[0].current.as_deref(), Some("1.0.0 ‘quoted’ 🚀"));
    assert_eq!(inv[0].updated_at, 4_102_444_800_000);
    for name in ["zoe", "Zed", "adam"] {
        store
            .upsert_user(
                User {
                    name: name.into(),
                    roles: vec![],
                    created_at: i64::MAX,
                    disabled: name == "Zed",
                },
                ev("user_added"),
            )
            .await
            .expect("user");
    }
    let users = store.users().await.expect("users");
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["Zed", "adam", "bob", "zoe"]);
    assert!(users[0].disabled && !users[1].disabled);
    assert_eq!(users[0].created_at, i64::MAX);

    let d = store
        .create_deployment(new_deployment("order"), ev("created"))
        .await
        .expect("create");
    let listed = store
        .deployments(DeploymentFilter {
            environment: Some("order".into()),
            limit: Some(1),
            without_plan: true,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        listed,
        vec![Deployment {
            plan_source: String::new(),
            ..d.clone()
        }]
    );
    let ids = store
        .start_step_runs(
            vec![NewStepRun {
                deployment_id: d.id,
                step_id: "install".into(),
                target: "web-1".into(),
                phase: "run".into(),
                attempt: 2,
                started_at: -5,
            }],
            None,
        )
        .await
        .expect("intent");
    store
        .finish_step_runs(
            vec![StepRunResult {
                id: ids[0],
                state: "failed".into(),
                finished_at: 4_102_444_800_000,
                exit_code: Some(-9),
                output: "ok\0 done 'quoted' \"double\" é\n".into(),
                message: Some("killed\0".into()),
            }],
            None,
        )
        .await
        .expect("finish");
    let run = &store.step_runs(d.id).await.expect("runs")[0];
    assert_eq!(run.output, "ok\u{fffd} done 'quoted' \"double\" é\n");
    assert_eq!(run.message.as_deref(), Some("killed\u{fffd}"));
    assert_eq!(
        (run.attempt, run.started_at, run.finished_at, run.exit_code),
        (2, -5, Some(4_102_444_800_000), Some(-9))
    );
    let data = json!({"nul": "a\u{0}b", "deep": {"list": [1, 2.5, null, true]}});
    store
        .append_events(vec![NewEvent::new(Some(d.id), 7, "odd", "ø", data.clone())])
        .await
        .expect("append");
    let last = store
        .events(EventFilter {
            deployment_id: Some(d.id),
            ..Default::default()
        })
        .await
        .expect("events")
        .pop()
        .expect("an event");
    assert_eq!((last.kind.as_str(), last.actor.as_str()), ("odd", "ø"));
    assert_eq!(last.data, data);
}

/// Racing writers: exactly one wins each compare-and-set, on every backend.
async fn races_have_one_winner(store: &(impl Store + Clone)) {
    const RACERS: usize = 8;
    let lock = |holder: String| Lock {
        environment: "race".into(),
        holder,
        deployment_id: None,
        pid: 1,
        host: "h".into(),
        acquired_at: 0,
        expires_at: 1_000,
    };
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let s = store.clone();
        let l = lock(format!("racer-{i}"));
        tasks.push(tokio::spawn(async move { s.try_lock(l, 0).await }));
    }
    let mut acquired = 0;
    for t in tasks {
        if t.await.expect("task").expect("lock") == LockOutcome::Acquired {
            acquired += 1;
        }
    }
    assert_eq!(acquired, 1, "one racer takes a free lock");
    let holder = store.locks().await.expect("locks")[0].holder.clone();
    // Once it has run out, again only one of the racers takes it over.
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let s = store.clone();
        let l = Lock {
            expires_at: 5_000,
            ..lock(format!("late-{i}"))
        };
        tasks.push(tokio::spawn(async move { s.try_lock(l, 2_000).await }));
    }
    let mut acquired = 0;
    for t in tasks {
        match t.await.expect("task").expect("lock") {
            LockOutcome::Acquired => acquired += 1,
            LockOutcome::Held(held) => {
                assert_ne!(held.holder, holder);
                assert_eq!(held.expires_at, 5_000);
            }
        }
    }
    assert_eq!(acquired, 1, "one racer takes an expired lock");

    let d = store
        .create_deployment(new_deployment("race"), ev("created"))
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let moved = s
                .transition(
                    d.id,
                    &[DeploymentState::Queued],
                    DeploymentState::Running,
                    StatePatch::default(),
                    ev("started"),
                )
                .await
                .expect("transition");
            let confirmed = s
                .confirm_step(
                    Confirmation {
                        deployment_id: d.id,
                        step_id: "dns".into(),
                        actor: format!("racer-{i}"),
                        at: 1,
                    },
                    ev("confirmed"),
                )
                .await
                .expect("confirm");
            (moved, confirmed)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    assert_eq!(results.iter().filter(|r| r.0).count(), 1, "one start");
    assert_eq!(
        results.iter().filter(|r| r.1).count(),
        1,
        "one confirmation"
    );
    // Losers wrote no events.
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
    assert_eq!(kinds, ["created", "started"]);
}

async fn conformance(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    deployments_move_only_from_the_expected_state(&store).await;
    step_runs_are_intents_then_results(&store).await;
    the_chain_verifies_and_survives_concurrent_writers(&store).await;
    inventory_is_upserted_per_target(&store).await;
    one_lock_per_environment_with_a_lease(&store).await;
    a_manual_step_is_confirmed_once(&store).await;
    people_tokens_and_decisions(&store).await;
    text_order_and_numbers_survive(&store).await;
    races_have_one_winner(&store).await;
    assert_eq!(store.verify_chain().await.expect("verify").first_bad, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    conformance(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    conformance(Backend::Postgres).await;
}

/// Two stores on one database (two pools, as two processes would have), opened (and so migrating)
/// at the same time, append to one chain.
async fn two_writers_keep_one_chain(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (first, second) = tokio::join!(db.open(), db.open());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_keep_one_chain() {
    two_writers_keep_one_chain(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_processes_keep_one_chain() {
    two_writers_keep_one_chain(Backend::Postgres).await;
}

async fn tampering_is_found(backend: Backend) {
    let (db, store) = fresh(backend).await;
    for i in 0..5 {
        store
            .append_events(vec![ev(&format!("e{i}"))])
            .await
            .expect("append");
    }
    // The log refuses updates and deletes through SQL...
    for sql in [
        "UPDATE events SET actor = 'mallory' WHERE seq = 3",
        "DELETE FROM events WHERE seq = 5",
    ] {
        let refused = db.raw_sql(sql).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("append-only")),
            "{sql}: {refused:?}"
        );
    }
    if backend == Backend::Postgres {
        let refused = db.raw_sql("TRUNCATE events").await;
        assert!(refused.is_err_and(|e| e.to_string().contains("append-only")));
    }
    drop(store);
    // ...so a tamperer switches the trigger off first; verification still names the event.
    db.raw_sql(&format!(
        "{} UPDATE events SET actor = 'mallory' WHERE seq = 3;",
        db.disable_update_trigger()
    ))
    .await
    .expect("tamper");
    let store = db.open().await;
    let report = store.verify_chain().await.expect("verify");
    assert_eq!(report.first_bad.map(|b| b.0), Some(3));
    assert_eq!(report.events, 2);
}

#[tokio::test]
async fn tampering_is_found_and_named() {
    tampering_is_found(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_tampering_is_found_and_named() {
    tampering_is_found(Backend::Postgres).await;
}
