use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_core::lifecycle::DeploymentState;
use slipway_engine::{
    DeployRequest, Engine, EngineConfig, EngineError, Failpoints, LocalHosts, Observer, Progress,
    Secrets, Silent,
};
use slipway_store::{SqlStore, Store};

struct World {
    dir: tempfile::TempDir,
    engine: Arc<Engine<SqlStore>>,
}

impl World {
    async fn new() -> World {
        World::with_failpoints("").await
    }

    async fn with_failpoints(spec: &str) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = World::engine_in(dir.path(), spec).await;
        World { dir, engine }
    }

    /// Another engine (as another process would have) on the same record and targets.
    async fn engine_in(dir: &Path, spec: &str) -> Arc<Engine<SqlStore>> {
        let store = SqlStore::open(dir.join("record.db").to_str().expect("utf-8"))
            .await
            .expect("store");
        let data = dir.join("data");
        let mut config = EngineConfig::new(&data);
        config.retry_backoff = Duration::from_millis(10);
        config.poll = Duration::from_millis(20);
        config.lease = Duration::from_secs(5);
        let engine = Engine::new(Arc::new(store), config, Arc::new(LocalHosts::new(&data)))
            .with_failpoints(Failpoints::parse(spec));
        Arc::new(engine)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn request(&self, plan: &str, env: &str, version: Option<&str>) -> DeployRequest {
        let file = self.write("plan.yaml", plan);
        let loaded = slipway_core::load("plan.yaml", plan.as_bytes()).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.diagnostics
                    .iter()
                    .map(|d| d.render(&e.source, false))
                    .collect::<String>()
            )
        });
        DeployRequest {
            plan: loaded,
            plan_file: file,
            environment: env.into(),
            version: version.map(str::to_string),
            requester: "tester".into(),
            origin: "cli".into(),
        }
    }

    async fn deploy(&self, plan: &str, version: &str) -> slipway_store::Deployment {
        self.deploy_with(plan, version, Secrets::default()).await
    }

    async fn deploy_with(
        &self,
        plan: &str,
        version: &str,
        secrets: Secrets,
    ) -> slipway_store::Deployment {
        self.engine
            .deploy(
                &self.request(plan, "staging", Some(version)),
                secrets,
                &Silent,
            )
            .await
            .expect("deploy runs")
    }

    fn target_root(&self, target: &str) -> PathBuf {
        self.path().join("data/targets/staging").join(target)
    }

    fn current(&self, target: &str) -> Option<String> {
        std::fs::read_link(self.target_root(target).join("app/current"))
            .ok()
            .map(|p| {
                p.to_string_lossy()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
    }
}

/// Three local targets; `install` writes the version into its release and rolls in batches of one;
/// its health check is a command that reads a per-target "healthy" flag file.
fn release_plan(extra_step: &str) -> String {
    format!(
        r#"slipway: 1
release: {{ name: app, version: 1.0.0 }}
environments:
  staging:
    targets:
      web-1: {{ host: local, labels: [web] }}
      web-2: {{ host: local, labels: [web] }}
      web-3: {{ host: local, labels: [web] }}
steps:
  - id: install
    on: [web]
    release_dir: app
    run: echo "$SLIPWAY_VERSION" > VERSION
    strategy: {{ rolling: {{ batch: 1 }} }}
    validate:
      - command: test ! -e "$HOME_FLAGS/unhealthy-$SLIPWAY_TARGET-$SLIPWAY_VERSION"
        interval: 50ms
        deadline: 300ms
{extra_step}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_switches_every_target_and_records_the_inventory() {
    let w = World::new().await;
    unsafe_env_flags(&w);
    let plan = release_plan("");
    let d = w.deploy(&plan, "1.0.0").await;
    assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
    let d = w.deploy(&plan, "2.0.0").await;
    assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
    for t in ["web-1", "web-2", "web-3"] {
        assert_eq!(w.current(t).as_deref(), Some("2.0.0"));
        let version =
            std::fs::read_to_string(w.target_root(t).join("app/current/VERSION")).expect("VERSION");
        assert_eq!(version.trim(), "2.0.0");
    }
    let inventory = w
        .engine
        .store()
        .inventory(Some("staging"))
        .await
        .expect("inventory");
    assert_eq!(inventory.len(), 3);
    for r in &inventory {
        assert_eq!(r.current.as_deref(), Some("2.0.0"));
        assert_eq!(r.previous.as_deref(), Some("1.0.0"));
        assert_eq!(r.kept, ["1.0.0", "2.0.0"]);
    }
    // Batches of one: three run intents, recorded before each batch ran.
    let runs = w.engine.store().step_runs(d.id).await.expect("runs");
    assert_eq!(runs.iter().filter(|r| r.phase == "run").count(), 3);
    assert_eq!(
        runs.iter()
            .filter(|r| r.phase == "validate" && r.state == "succeeded")
            .count(),
        3
    );
    assert_eq!(
        w.engine
            .store()
            .verify_chain()
            .await
            .expect("verify")
            .first_bad,
        None
    );
}

/// The flag directory the health check looks at: `$HOME_FLAGS` is a plan-independent env var.
fn unsafe_env_flags(w: &World) -> PathBuf {
    let flags = w.path().join("flags");
    std::fs::create_dir_all(&flags).expect("flags dir");
    flags
}

fn flags_plan(w: &World, extra: &str) -> String {
    let flags = unsafe_env_flags(w);
    release_plan(extra).replace("$HOME_FLAGS", &flags.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_on_one_target_returns_every_target_to_its_exact_release() {
    let w = World::new().await;
    let plan = flags_plan(&w, "");
    assert_eq!(
        w.deploy(&plan, "1.0.0").await.state,
        DeploymentState::Succeeded
    );
    // 2.0.0 is unhealthy on web-2 only: web-1 is switched and validated, web-2 fails.
    std::fs::write(w.path().join("flags/unhealthy-web-2-2.0.0"), "").expect("flag");
    let d = w.deploy(&plan, "2.0.0").await;
    assert_eq!(d.state, DeploymentState::RolledBack, "{:?}", d.summary);
    for t in ["web-1", "web-2", "web-3"] {
        assert_eq!(w.current(t).as_deref(), Some("1.0.0"), "{t}");
        assert!(
            !w.target_root(t).join("app/releases/2.0.0").exists(),
            "{t} keeps the failed release"
        );
    }
    let summary = d.summary.expect("summary");
    assert_eq!(summary["failure"]["target"], "web-2");
    assert_eq!(summary["targets"]["web-1"]["install"], "1.0.0");
    // web-3 was never touched, so it needed no compensation.
    let runs = w.engine.store().step_runs(d.id).await.expect("runs");
    let rolled: Vec<&str> = runs
        .iter()
        .filter(|r| r.phase == "rollback")
        .map(|r| r.target.as_str())
        .collect();
    assert_eq!(rolled, ["web-2", "web-1"], "reverse batch order");
    assert!(
        runs.iter()
            .any(|r| r.phase == "verify" && r.state == "succeeded")
    );
    let inventory = w
        .engine
        .store()
        .inventory(Some("staging"))
        .await
        .expect("inventory");
    assert!(
        inventory
            .iter()
            .all(|r| r.current.as_deref() == Some("1.0.0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_runs_compensations_in_reverse_order() {
    let w = World::new().await;
    let log = w.path().join("order.log");
    let plan = format!(
        r#"slipway: 1
release: {{ name: app, version: 1.0.0 }}
environments:
  staging:
    targets:
      db-1: {{ host: local, labels: [db] }}
      web-1: {{ host: local, labels: [web] }}
steps:
  - id: migrate
    on: [db]
    run: echo "migrate up" >> {log}
    rollback: echo "migrate down" >> {log}
  - id: config
    needs: [migrate]
    on: [web]
    run: echo "config write" >> {log}
    rollback: echo "config restore" >> {log}
  - id: broken
    needs: [config]
    on: [web]
    run: echo "broken start" >> {log}; exit 3
    rollback: echo "broken cleanup" >> {log}
"#,
        log = log.display()
    );
    let d = w.deploy(&plan, "1.0.0").await;
    assert_eq!(d.state, DeploymentState::RolledBack, "{:?}", d.summary);
    let order = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "migrate up",
            "config write",
            "broken start",
            "broken cleanup",
            "config restore",
            "migrate down"
        ]
    );
    let runs = w.engine.store().step_runs(d.id).await.expect("runs");
    let broken = runs
        .iter()
        .find(|r| r.step_id == "broken" && r.phase == "run")
        .expect("broken run");
    assert_eq!(
        (broken.state.as_str(), broken.exit_code),
        ("failed", Some(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_whole_process_tree() {
    let w = World::new().await;
    let pids = w.path().join("pids");
    let plan = format!(
        r#"slipway: 1
release: {{ name: app, version: 1.0.0 }}
environments:
  staging:
    targets:
      web-1: {{ host: local }}
steps:
  - id: hang
    run: sleep 300 & echo $! > {pids}; sh -c 'sleep 301 & echo $! >> {pids}; wait' & wait
    timeout: 500ms
"#,
        pids = pids.display()
    );
    let started = std::time::Instant::now();
    let d = w.deploy(&plan, "1.0.0").await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(d.state, DeploymentState::RolledBack);
    let runs = w.engine.store().step_runs(d.id).await.expect("runs");
    assert_eq!(runs[0].state, "timed_out");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&pids).expect("pids");
    let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 2, "{text}");
    for pid in pids {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "process {pid} survived the timeout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_run_again_after_a_failure() {
    let w = World::new().await;
    let counter = w.path().join("count");
    let plan = format!(
        r#"slipway: 1
release: {{ name: app, version: 1.0.0 }}
environments:
  staging:
    targets:
      web-1: {{ host: local }}
steps:
  - id: flaky
    run: echo x >> {c}; test $(wc -l < {c}) -ge 3
    retries: 2
"#,
        c = counter.display()
    );
    let d = w.deploy(&plan, "1.0.0").await;
    assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
    let runs = w.engine.store().step_runs(d.id).await.expect("runs");
    let attempts: Vec<(i32, &str)> = runs.iter().map(|r| (r.attempt, r.state.as_str())).collect();
    assert_eq!(attempts, [(1, "failed"), (2, "failed"), (3, "succeeded")]);
}

struct Collect(Mutex<Vec<Progress>>);

impl Observer for Collect {
    fn notify(&self, event: &Progress) {
        eprintln!("progress: {event:?}");
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deployment_per_environment_and_manual_steps_wait_for_confirmation() {
    let w = World::new().await;
    let plan = r#"slipway: 1
release: { name: app, version: 1.0.0 }
environments:
  staging:
    targets:
      web-1: { host: local }
steps:
  - id: prepare
    run: "true"
  - id: sign-off
    needs: [prepare]
    manual: Check the dashboard
    owner: ops
  - id: finish
    needs: [sign-off]
    run: "true"
"#;
    let first = w
        .engine
        .create(&w.request(plan, "staging", None))
        .await
        .expect("create");
    let engine = w.engine.clone();
    let observer = Arc::new(Collect(Mutex::new(Vec::new())));
    let obs = observer.clone();
    let running =
        tokio::spawn(async move { engine.run(first.id, Secrets::default(), obs.as_ref()).await });
    // Wait until it waits for the sign-off.
    eprintln!("spawned");
    for _ in 0..200 {
        if observer
            .0
            .lock()
            .expect("lock")
            .iter()
            .any(|p| matches!(p, Progress::Waiting { .. }))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("second: create");
    let created = w.engine.create(&w.request(plan, "staging", None)).await;
    eprintln!("second: created {created:?}");
    let second = w
        .engine
        .run(created.expect("create").id, Secrets::default(), &Silent)
        .await;
    eprintln!("second: ran");
    match second {
        Err(EngineError::Busy { deployment, .. }) => assert_eq!(deployment, first.id.to_string()),
        other => panic!("second deploy should be refused, got {other:?}"),
    }
    assert!(
        w.engine
            .confirm(first.id, "sign-off", "olga")
            .await
            .expect("confirm")
    );
    let done = running.await.expect("task").expect("run");
    assert_eq!(done.state, DeploymentState::Succeeded);
    let confirmations = w
        .engine
        .store()
        .confirmations(first.id)
        .await
        .expect("confirmations");
    assert_eq!(confirmations[0].actor, "olga");
    // The refused attempt is recorded as a queued deployment that never ran; the lock is free now.
    assert!(w.engine.store().locks().await.expect("locks").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_rollout_and_rolls_back() {
    let w = World::new().await;
    assert_eq!(
        w.deploy(&flags_plan(&w, ""), "1.0.0").await.state,
        DeploymentState::Succeeded
    );
    let plan = flags_plan(
        &w,
        "  - id: wait\n    needs: [install]\n    manual: hold here\n    owner: ops\n",
    );
    let d = w
        .engine
        .create(&w.request(&plan, "staging", Some("2.0.0")))
        .await
        .expect("create");
    let engine = w.engine.clone();
    let id = d.id;
    let running = tokio::spawn(async move { engine.run(id, Secrets::default(), &Silent).await });
    for _ in 0..200 {
        let events = w
            .engine
            .store()
            .events(slipway_store::EventFilter {
                deployment_id: Some(id),
                ..Default::default()
            })
            .await
            .expect("events");
        if events.iter().any(|e| e.kind == "waiting_for_confirmation") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.engine.cancel(id, "carol").await.expect("cancel");
    let done = running.await.expect("task").expect("run");
    assert_eq!(done.state, DeploymentState::Cancelled, "{:?}", done.summary);
    for t in ["web-1", "web-2", "web-3"] {
        assert_eq!(w.current(t).as_deref(), Some("1.0.0"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_refuses_when_the_release_to_return_to_is_gone_and_changes_nothing() {
    let w = World::new().await;
    let plan = flags_plan(&w, "");
    assert_eq!(
        w.deploy(&plan, "1.0.0").await.state,
        DeploymentState::Succeeded
    );
    std::fs::remove_dir_all(w.target_root("web-3").join("app/releases/1.0.0")).expect("remove");
    let d = w.deploy(&plan, "2.0.0").await;
    assert_eq!(d.state, DeploymentState::Failed);
    let summary = d.summary.expect("summary");
    assert!(
        summary["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("web-3") && p.contains("no longer kept")),
        "{summary}"
    );
    assert_eq!(w.current("web-1").as_deref(), Some("1.0.0"));
    assert!(!w.target_root("web-1").join("app/releases/2.0.0").exists());
    assert!(
        w.engine
            .store()
            .step_runs(d.id)
            .await
            .expect("runs")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_rollback_returns_to_a_kept_release_or_refuses() {
    let w = World::new().await;
    let plan = flags_plan(&w, "");
    for v in ["1.0.0", "2.0.0", "3.0.0"] {
        assert_eq!(w.deploy(&plan, v).await.state, DeploymentState::Succeeded);
    }
    let d = w
        .engine
        .rollback("staging", None, "rita", &Silent)
        .await
        .expect("rollback");
    assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
    assert_eq!(d.kind, slipway_core::lifecycle::DeploymentKind::Rollback);
    for t in ["web-1", "web-2", "web-3"] {
        assert_eq!(w.current(t).as_deref(), Some("2.0.0"));
    }
    // 1.0.0 is gone from one target: refused, and nothing moves.
    std::fs::remove_dir_all(w.target_root("web-2").join("app/releases/1.0.0")).expect("remove");
    let refused = w
        .engine
        .rollback("staging", Some("1.0.0"), "rita", &Silent)
        .await;
    assert!(
        matches!(&refused, Err(EngineError::Refused(m)) if m.contains("web-2")),
        "{refused:?}"
    );
    assert_eq!(w.current("web-1").as_deref(), Some("2.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_switch_is_undone() {
    let mut w = World::new().await;
    let plan = flags_plan(&w, "");
    assert_eq!(
        w.deploy(&plan, "1.0.0").await.state,
        DeploymentState::Succeeded
    );
    w.engine = World::engine_in(w.path(), "after_switch@web-2=error").await;
    let d = w.deploy(&plan, "2.0.0").await;
    assert_eq!(d.state, DeploymentState::RolledBack);
    assert_eq!(w.current("web-2").as_deref(), Some("1.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_step_but_never_the_record() {
    let w = World::new().await;
    let plan = r#"slipway: 1
release: { name: app, version: 1.0.0 }
secrets:
  API_TOKEN: { env: TEST_API_TOKEN }
environments:
  staging:
    targets:
      web-1: { host: local }
steps:
  - id: show
    run: echo "token is $API_TOKEN"; test "${#API_TOKEN}" -eq 15
"#;
    let secrets = Secrets::from_pairs(vec![("API_TOKEN".into(), "s3cr3t-value-42".into())]);
    let d = w.deploy_with(plan, "1.0.0", secrets).await;
    assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
    let runs = w.engine.store().step_runs(d.id).await.expect("runs");
    assert_eq!(runs[0].output.trim(), "token is ********");
    // Read the database, its WAL and shared memory while the store is open (closing folds the WAL in).
    for entry in std::fs::read_dir(w.path()).expect("dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("record.db") {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Some(pos) = bytes.windows(15).position(|win| win == b"s3cr3t-value-42") {
                let from = pos.saturating_sub(200);
                panic!(
                    "secret found in {name} at {pos}: {:?}",
                    String::from_utf8_lossy(&bytes[from..(pos + 100).min(bytes.len())])
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_never_parsed_as_shell_text() {
    let w = World::new().await;
    let plan = r#"slipway: 1
release: { name: app, version: 1.0.0 }
variables:
  evil: "$(touch pwned) `touch pwned2`; touch pwned3"
environments:
  staging:
    targets:
      web-1: { host: local }
steps:
  - id: shell
    run: echo "{{ vars.evil }}" > shell.txt; echo {{ vars.evil }} >> shell.txt
  - id: argv
    run: [sh, -c, 'printf "%s" "$1" > argv.txt', x, "{{ vars.evil }}"]
"#;
    let d = w.deploy(plan, "1.0.0").await;
    assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
    let root = w.target_root("web-1");
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !root.join(f).exists() && !w.path().join(f).exists(),
            "{f} was created"
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join("argv.txt")).expect("argv"),
        "$(touch pwned) `touch pwned2`; touch pwned3"
    );
    let shell = std::fs::read_to_string(root.join("shell.txt")).expect("shell");
    assert!(
        shell.lines().all(|l| l.contains("$(touch pwned)")),
        "{shell}"
    );
}

fn strategy_plan(w: &World, strategy: &str) -> String {
    let log = w.path().join("order.log");
    flags_plan(w, "")
        .replace("    strategy: { rolling: { batch: 1 } }\n", &format!("    strategy: {strategy}\n"))
        .replace(
            "    run: echo \"$SLIPWAY_VERSION\" > VERSION\n",
            &format!(
                "    run: echo \"$SLIPWAY_VERSION\" > VERSION; echo \"prepare $SLIPWAY_TARGET\" >> {log}\n    activate: echo \"activate $SLIPWAY_TARGET\" >> {log}\n",
                log = log.display()
            ),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_prepares_every_target_before_switching_all_at_once() {
    let w = World::new().await;
    let plan = strategy_plan(&w, "{ blue_green: {} }");
    assert_eq!(
        w.deploy(&plan, "1.0.0").await.state,
        DeploymentState::Succeeded
    );
    let log = std::fs::read_to_string(w.path().join("order.log")).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    let last_prepare = lines
        .iter()
        .rposition(|l| l.starts_with("prepare"))
        .expect("prepares");
    let first_activate = lines
        .iter()
        .position(|l| l.starts_with("activate"))
        .expect("activates");
    assert!(last_prepare < first_activate, "{log}");
    assert_eq!(lines.len(), 6);
    // A failing check after the switch puts every target back on the old slot.
    std::fs::write(w.path().join("flags/unhealthy-web-3-2.0.0"), "").expect("flag");
    let d = w.deploy(&plan, "2.0.0").await;
    assert_eq!(d.state, DeploymentState::RolledBack, "{:?}", d.summary);
    for t in ["web-1", "web-2", "web-3"] {
        assert_eq!(w.current(t).as_deref(), Some("1.0.0"), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_stages_wait_for_confirmation_between_them() {
    let w = World::new().await;
    let plan = strategy_plan(
        &w,
        "{ canary: { stages: [33%, 66%, 100%], pause: confirm } }",
    );
    let d = w
        .engine
        .create(&w.request(&plan, "staging", Some("1.0.0")))
        .await
        .expect("create");
    let engine = w.engine.clone();
    let id = d.id;
    let running = tokio::spawn(async move { engine.run(id, Secrets::default(), &Silent).await });
    for stage in ["install#stage1", "install#stage2"] {
        let start = std::time::Instant::now();
        loop {
            let events = w
                .engine
                .store()
                .events(slipway_store::EventFilter {
                    deployment_id: Some(id),
                    ..Default::default()
                })
                .await
                .expect("events");
            if events
                .iter()
                .any(|e| e.kind == "waiting_for_confirmation" && e.data["step"] == stage)
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "never waited for {stage}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let switched = ["web-1", "web-2", "web-3"]
            .iter()
            .filter(|t| w.current(t).is_some())
            .count();
        assert_eq!(
            switched,
            if stage.ends_with('1') { 1 } else { 2 },
            "only the canary share is live at {stage}"
        );
        assert!(w.engine.confirm(id, stage, "carol").await.expect("confirm"));
    }
    let done = running.await.expect("task").expect("run");
    assert_eq!(done.state, DeploymentState::Succeeded);
    assert!(
        ["web-1", "web-2", "web-3"]
            .iter()
            .all(|t| w.current(t).as_deref() == Some("1.0.0"))
    );
}
