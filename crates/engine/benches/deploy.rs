//! Benchmark: the execution engine on 1,000 local targets, with a real SQLite record.
//!
//! Run with `cargo bench -p slipway-engine --bench deploy`. Prints figures (best and median of
//! several runs); it checks only that the deployments did what they should.
//!
//! 1. Orchestration overhead: 3 chained no-op steps (`run: [/bin/true]`) on 1,000 targets in
//!    rolling batches of 100, against spawning `/bin/true` 3,000 times directly (30 batches of
//!    100 concurrent spawns, and one at a time). The floor: a step run costs within 3× of
//!    a bare spawn.
//! 2. Rollback: one `release_dir` step on 1,000 targets, 1.0.0 then 2.0.0 deployed, then the time
//!    of an on-demand rollback to 1.0.0. Floor: under 2 s.
//! 3. Memory: the peak RSS (`VmHWM`) of a fresh process that runs the 1,000-target deployment
//!    (the bench runs itself again with `--only rss`). Floor: under 100 MiB.
//!
//! `--only deploy` and `--only rollback` run one scenario once, to profile it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_core::lifecycle::{DeploymentKind, DeploymentState};
use slipway_engine::{
    DeployRequest, Engine, EngineConfig, LocalHosts, Secrets, Silent, now_millis,
};
use slipway_store::{DeploymentId, EventFilter, SqlStore, StepRun, Store};
use tokio::io::{AsyncRead, AsyncReadExt};

const TARGETS: usize = 1_000;
const STEPS: usize = 3;
const BATCH: usize = 100;
const STEP_RUNS: usize = TARGETS * STEPS;
const RUNS: usize = 3;
const ENV: &str = "staging";

const FLOOR_RATIO: f64 = 3.0;
const FLOOR_ROLLBACK: Duration = Duration::from_secs(2);
const FLOOR_RSS_MIB: f64 = 100.0;

// ----- plans -------------------------------------------------------------------------------------

fn plan_with(steps: &str) -> String {
    let mut s = String::with_capacity(64 * 1024);
    s.push_str("slipway: 1\nrelease: { name: bench, version: 1.0.0 }\n");
    s.push_str("environments:\n  staging:\n    targets:\n");
    for t in 0..TARGETS {
        s.push_str(&format!(
            "      t{t:04}: {{ host: local, labels: [web] }}\n"
        ));
    }
    s.push_str("steps:\n");
    s.push_str(steps);
    s
}

/// Three no-op steps, each needing the one before, in rolling batches of 100.
fn noop_plan() -> String {
    let mut steps = String::new();
    for i in 1..=STEPS {
        steps.push_str(&format!("  - id: s{i}\n    on: [web]\n"));
        if i > 1 {
            steps.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
        steps.push_str(&format!(
            "    run: [/bin/true]\n    strategy: {{ rolling: {{ batch: {BATCH} }} }}\n"
        ));
    }
    plan_with(&steps)
}

/// One release-directory step, in rolling batches of 100.
fn release_plan() -> String {
    plan_with(&format!(
        "  - id: install\n    on: [web]\n    release_dir: app\n    run: [/bin/true]\n    strategy: {{ rolling: {{ batch: {BATCH} }} }}\n"
    ))
}

// ----- the engine --------------------------------------------------------------------------------

/// An engine on a fresh SQLite file and fresh target directories under `dir`.
async fn engine_in(dir: &Path) -> Engine<SqlStore> {
    let db = dir.join("record.db");
    let store = SqlStore::open(db.to_str().expect("utf-8 temp path"))
        .await
        .expect("open the store");
    let data = dir.join("data");
    Engine::new(
        Arc::new(store),
        EngineConfig::new(&data),
        Arc::new(LocalHosts::new(&data)),
    )
}

fn request(dir: &Path, text: &str, version: &str) -> DeployRequest {
    let file = dir.join("plan.yaml");
    std::fs::write(&file, text).expect("write the plan");
    let plan = slipway_core::load("plan.yaml", text.as_bytes()).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.diagnostics
                .iter()
                .map(|d| d.render(&e.source, false))
                .collect::<String>()
        )
    });
    DeployRequest {
        plan,
        plan_file: file,
        environment: ENV.into(),
        version: Some(version.into()),
        requester: "bench".into(),
        origin: "cli".into(),
    }
}

fn target_root(dir: &Path, t: usize) -> PathBuf {
    dir.join("data/targets").join(ENV).join(format!("t{t:04}"))
}

/// One timed deployment, and where its time went.
struct Timed {
    took: Duration,
    timeline: String,
}

/// Deploys the no-op plan on a fresh record and fresh targets; with `again`, deploys it a
/// second time on the same record and targets (whose directories then exist) and returns both.
async fn deploy_noop(text: &str, again: bool) -> Vec<Timed> {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = engine_in(dir.path()).await;
    let mut timed = Vec::new();
    for version in ["1.0.0", "1.0.1"]
        .into_iter()
        .take(if again { 2 } else { 1 })
    {
        let req = request(dir.path(), text, version);
        let t0 = now_millis();
        let start = Instant::now();
        let d = engine
            .deploy(&req, Secrets::default(), &Silent)
            .await
            .expect("deploy runs");
        let took = start.elapsed();
        let t1 = now_millis();
        assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
        let runs = engine.store().step_runs(d.id).await.expect("step runs");
        let ok = runs
            .iter()
            .filter(|r| r.phase == "run" && r.state == "succeeded")
            .count();
        assert_eq!(ok, STEP_RUNS, "every step ran on every target");
        let timeline = deploy_timeline(&engine, d.id, &runs, t0, t1).await;
        timed.push(Timed { took, timeline });
    }
    timed
}

/// Milliseconds at which the deployment's first event of `kind` was recorded.
async fn event_at(engine: &Engine<SqlStore>, id: DeploymentId, kind: &str) -> i64 {
    let events = engine
        .store()
        .events(EventFilter {
            deployment_id: Some(id),
            ..Default::default()
        })
        .await
        .expect("events");
    events.iter().find(|e| e.kind == kind).map_or(0, |e| e.at)
}

/// Where a rollout's time went, from the millisecond timestamps of its record: `t0` and `t1`
/// are the wall clock around `deploy`.
async fn deploy_timeline(
    engine: &Engine<SqlStore>,
    id: DeploymentId,
    runs: &[StepRun],
    t0: i64,
    t1: i64,
) -> String {
    let created = event_at(engine, id, "deployment_created").await;
    let started = event_at(engine, id, "deployment_started").await;
    let preflight = event_at(engine, id, "preflight_passed").await;
    let ended = event_at(engine, id, "deployment_succeeded").await;
    let mut runs: Vec<&StepRun> = runs.iter().filter(|r| r.phase == "run").collect();
    runs.sort_by_key(|r| r.id);
    // Intents are written a batch at a time, so consecutive ids are one batch.
    let spans: Vec<(i64, i64)> = runs
        .chunks(BATCH)
        .map(|b| {
            let first = b.iter().map(|r| r.started_at).min().unwrap_or(0);
            let last = b.iter().filter_map(|r| r.finished_at).max().unwrap_or(0);
            (first, last)
        })
        .collect();
    let in_units: i64 = spans.iter().map(|(a, b)| b - a).sum();
    let between: i64 = spans.windows(2).map(|w| w[1].0 - w[0].1).sum();
    let latency = runs
        .iter()
        .filter_map(|r| Some(r.finished_at? - r.started_at))
        .sum::<i64>() as f64
        / runs.len().max(1) as f64;
    let first = spans.first().map_or(preflight, |s| s.0);
    let last = spans.last().map_or(ended, |s| s.1);
    format!(
        "create {} ms, lock+prepare {} ms, preflight {} ms, to first batch {} ms, {} batches {} ms \
         (mean step run {latency:.1} ms), between batches {} ms, finish {} ms, after {} ms",
        created - t0,
        started - created,
        preflight - started,
        first - preflight,
        spans.len(),
        in_units,
        between,
        ended - last,
        t1 - ended,
    )
}

struct RollbackRun {
    deploy_1: Duration,
    deploy_2: Duration,
    rollback: Duration,
    timeline: String,
    /// Where the time of the 2.0.0 deployment went.
    deploy_timeline_2: String,
}

/// Deploys 1.0.0 and 2.0.0 of the release plan, then rolls back to 1.0.0.
async fn rollback_once(text: &str) -> RollbackRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = engine_in(dir.path()).await;
    let mut times = Vec::new();
    let mut deploy_timeline_2 = String::new();
    for v in ["1.0.0", "2.0.0"] {
        let req = request(dir.path(), text, v);
        let t0 = now_millis();
        let start = Instant::now();
        let d = engine
            .deploy(&req, Secrets::default(), &Silent)
            .await
            .expect("deploy runs");
        times.push(start.elapsed());
        let t1 = now_millis();
        assert_eq!(d.state, DeploymentState::Succeeded, "{v}: {:?}", d.summary);
        let runs = engine.store().step_runs(d.id).await.expect("step runs");
        deploy_timeline_2 = deploy_timeline(&engine, d.id, &runs, t0, t1).await;
    }
    let t0 = now_millis();
    let start = Instant::now();
    let d = engine
        .rollback(ENV, Some("1.0.0"), "bench", &Silent)
        .await
        .expect("rollback runs");
    let rollback = start.elapsed();
    let t1 = now_millis();
    assert_eq!(d.state, DeploymentState::Succeeded, "{:?}", d.summary);
    assert_eq!(d.kind, DeploymentKind::Rollback);
    for t in [0, 1, TARGETS / 2, TARGETS - 1] {
        let link = std::fs::read_link(target_root(dir.path(), t).join("app/current"))
            .expect("app/current");
        assert_eq!(link, Path::new("releases/1.0.0"), "t{t:04}");
    }
    // Where the time went.
    let requested = event_at(&engine, d.id, "rollback_requested").await;
    let started = event_at(&engine, d.id, "deployment_started").await;
    let ended = event_at(&engine, d.id, "deployment_succeeded").await;
    let runs = engine.store().step_runs(d.id).await.expect("step runs");
    let undone = runs
        .iter()
        .filter(|r| r.phase == "rollback" && r.state == "succeeded")
        .count();
    assert_eq!(undone, TARGETS, "every target was switched back");
    let last = runs
        .iter()
        .filter_map(|r| r.finished_at)
        .max()
        .unwrap_or(ended);
    let timeline = format!(
        "inventory+checks+create {} ms, lock+prepare {} ms, switching back {} ms, finish {} ms, after {} ms",
        requested - t0,
        started - requested,
        last - started,
        ended - last,
        t1 - ended,
    );
    RollbackRun {
        deploy_1: times[0],
        deploy_2: times[1],
        rollback,
        timeline,
        deploy_timeline_2,
    }
}

// ----- bare spawns -------------------------------------------------------------------------------

/// 30 sequential batches of 100 concurrent `/bin/true` spawns and waits, on the runtime.
async fn bare_parallel() -> Duration {
    let start = Instant::now();
    for _ in 0..STEP_RUNS / BATCH {
        let batch = (0..BATCH).map(|_| async {
            tokio::process::Command::new("/bin/true")
                .status()
                .await
                .expect("spawn /bin/true")
        });
        let statuses = futures::future::join_all(batch).await;
        assert!(statuses.iter().all(std::process::ExitStatus::success));
    }
    start.elapsed()
}

/// The same 30 batches of 100, each spawn made the way a local target runs a step: a working
/// directory, the step's environment, its own process group, stdout and stderr piped and read by
/// tasks of their own. Not a floor: it tells the process's cost from the orchestration's.
async fn bare_parallel_engine_like(cwd: &Path) -> Duration {
    let start = Instant::now();
    for _ in 0..STEP_RUNS / BATCH {
        let batch = (0..BATCH).map(|i| async move {
            let mut child = tokio::process::Command::new("/bin/true")
                .current_dir(cwd)
                .envs([
                    ("SLIPWAY_VERSION", "1.0.0"),
                    ("SLIPWAY_RELEASE", "bench"),
                    ("SLIPWAY_ENVIRONMENT", ENV),
                    ("SLIPWAY_TARGET", &format!("t{i:04}")),
                    ("SLIPWAY_TARGET_ADDRESS", "localhost"),
                    ("SLIPWAY_DEPLOYMENT", "1"),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .expect("spawn /bin/true");
            let readers: Vec<_> = [
                child
                    .stdout
                    .take()
                    .map(|o| Box::new(o) as Box<dyn AsyncRead + Send + Unpin>),
                child
                    .stderr
                    .take()
                    .map(|e| Box::new(e) as Box<dyn AsyncRead + Send + Unpin>),
            ]
            .into_iter()
            .flatten()
            .map(|mut r| {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let _ = r.read_to_end(&mut buf).await;
                    buf
                })
            })
            .collect();
            let status = child.wait().await.expect("wait for /bin/true");
            for r in readers {
                let _ = r.await;
            }
            status
        });
        let statuses = futures::future::join_all(batch).await;
        assert!(statuses.iter().all(std::process::ExitStatus::success));
    }
    start.elapsed()
}

/// 3,000 `/bin/true` spawns and waits, one after the other.
fn bare_sequential() -> Duration {
    let start = Instant::now();
    for _ in 0..STEP_RUNS {
        let status = std::process::Command::new("/bin/true")
            .status()
            .expect("spawn /bin/true");
        assert!(status.success());
    }
    start.elapsed()
}

// ----- memory ------------------------------------------------------------------------------------

/// A `kB` field of /proc/self/status, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child process: one no-op deployment, then its peak RSS on stdout.
fn rss_child() {
    let rt = runtime();
    let before = proc_status_kib("VmHWM");
    let text = noop_plan();
    let took = rt.block_on(deploy_noop(&text, false))[0].took;
    let hwm = proc_status_kib("VmHWM");
    let rss = proc_status_kib("VmRSS");
    println!(
        "RSS hwm_kib={hwm} before_kib={before} rss_kib={rss} deploy_us={}",
        took.as_micros()
    );
}

struct RssRun {
    hwm_kib: u64,
    before_kib: u64,
    deploy: Duration,
}

fn rss_in_fresh_process() -> RssRun {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .args(["--only", "rss"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the memory child");
    assert!(
        out.status.success(),
        "the memory child failed: {}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RSS "))
        .expect("the child's RSS line");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .expect("a number")
    };
    RssRun {
        hwm_kib: field("hwm_kib"),
        before_kib: field("before_kib"),
        deploy: Duration::from_micros(field("deploy_us")),
    }
}

// ----- figures -----------------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Best and median.
fn stats(v: &[Duration]) -> (Duration, Duration) {
    let mut v = v.to_vec();
    v.sort();
    (v[0], v[v.len() / 2])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn per_run(d: Duration) -> Duration {
    d / u32::try_from(STEP_RUNS).expect("fits")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The one-minute load average, to tell a noisy run from a slow one.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--only rss` is the memory child; `--only deploy` and `--only rollback` run one of those
    // scenarios once (for profiling, e.g. under `perf record`).
    let only = args
        .windows(2)
        .find(|w| w[0] == "--only")
        .map(|w| w[1].as_str());
    match only {
        Some("rss") => return rss_child(),
        Some("deploy") => {
            for (i, d) in runtime()
                .block_on(deploy_noop(&noop_plan(), true))
                .iter()
                .enumerate()
            {
                println!("deploy {} of {STEP_RUNS} step runs: {}", i + 1, ms(d.took));
                println!("  {}", d.timeline);
            }
            return;
        }
        Some("rollback") => {
            let r = runtime().block_on(rollback_once(&release_plan()));
            println!(
                "rollback {} (deploy 1.0.0 {}, deploy 2.0.0 {})",
                ms(r.rollback),
                ms(r.deploy_1),
                ms(r.deploy_2)
            );
            println!("  deploy 2.0.0: {}", r.deploy_timeline_2);
            println!("  rollback: {}", r.timeline);
            return;
        }
        _ => {}
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "slipway-engine deploy benchmark: {TARGETS} local targets, batches of {BATCH}, {RUNS} runs each, {cores} core(s)"
    );
    println!("temp dir: {}", std::env::temp_dir().display());

    // 3. Memory first, in fresh processes, while nothing else runs.
    println!("\n[memory] peak RSS of a fresh process running the {TARGETS}-target deployment");
    let mut rss_runs = Vec::new();
    for i in 0..RUNS {
        let r = rss_in_fresh_process();
        println!(
            "  run {}: VmHWM {:.1} MiB (before the deployment {:.1} MiB), deploy {} | load {}",
            i + 1,
            mib(r.hwm_kib),
            mib(r.before_kib),
            ms(r.deploy),
            load()
        );
        rss_runs.push(r);
    }

    let rt = runtime();
    let noop = noop_plan();
    let release = release_plan();

    // 1. Orchestration overhead.
    println!(
        "\n[overhead] {STEPS} chained no-op steps x {TARGETS} targets = {STEP_RUNS} step runs"
    );
    let mut seq_t = Vec::new();
    let mut par_t = Vec::new();
    let mut deploy_t = Vec::new();
    let mut like_t = Vec::new();
    let mut repeat_t = Vec::new();
    let cwd = tempfile::tempdir().expect("temp dir");
    for i in 0..RUNS {
        let seq = bare_sequential();
        let par = rt.block_on(bare_parallel());
        let like = rt.block_on(bare_parallel_engine_like(cwd.path()));
        let mut deploys = rt.block_on(deploy_noop(&noop, true));
        let repeat = deploys.pop().expect("the second deployment");
        let deploy = deploys.pop().expect("the first deployment");
        println!(
            "  run {}: deploy {} | bare parallel-batched {} | bare sequential {} | engine-like spawns {} | load {}",
            i + 1,
            ms(deploy.took),
            ms(par),
            ms(seq),
            ms(like),
            load()
        );
        like_t.push(like);
        println!("         deploy record: {}", deploy.timeline);
        println!(
            "         again on the same targets: {}; record: {}",
            ms(repeat.took),
            repeat.timeline
        );
        repeat_t.push(repeat.took);
        seq_t.push(seq);
        par_t.push(par);
        deploy_t.push(deploy.took);
    }

    // 2. Rollback.
    println!(
        "\n[rollback] one release_dir step x {TARGETS} targets: 1.0.0, 2.0.0, then back to 1.0.0"
    );
    let mut rb_runs = Vec::new();
    for i in 0..RUNS {
        let r = rt.block_on(rollback_once(&release));
        println!(
            "  run {}: rollback {} (deploy 1.0.0 {}, deploy 2.0.0 {}); app/current -> releases/1.0.0 checked | load {}",
            i + 1,
            ms(r.rollback),
            ms(r.deploy_1),
            ms(r.deploy_2),
            load()
        );
        println!("         deploy 2.0.0 record: {}", r.deploy_timeline_2);
        println!("         rollback record: {}", r.timeline);
        rb_runs.push(r);
    }

    // ----- summary -----
    let (deploy_best, deploy_med) = stats(&deploy_t);
    let (par_best, par_med) = stats(&par_t);
    let (seq_best, seq_med) = stats(&seq_t);
    let (like_best, like_med) = stats(&like_t);
    let (repeat_best, repeat_med) = stats(&repeat_t);
    let rate = |d: Duration| STEP_RUNS as f64 / d.as_secs_f64();
    let overhead = |deploy: Duration, bare: Duration| {
        (deploy.as_secs_f64() - bare.as_secs_f64()) / STEP_RUNS as f64
    };
    let ratio = |deploy: Duration, bare: Duration| deploy.as_secs_f64() / bare.as_secs_f64();
    let (rb_best, rb_med) = stats(&rb_runs.iter().map(|r| r.rollback).collect::<Vec<_>>());
    let (d1_best, d1_med) = stats(&rb_runs.iter().map(|r| r.deploy_1).collect::<Vec<_>>());
    let (d2_best, d2_med) = stats(&rb_runs.iter().map(|r| r.deploy_2).collect::<Vec<_>>());
    let mut hwm: Vec<u64> = rss_runs.iter().map(|r| r.hwm_kib).collect();
    hwm.sort_unstable();
    let (hwm_best, hwm_med) = (hwm[0], hwm[hwm.len() / 2]);
    let (rss_deploy_best, rss_deploy_med) =
        stats(&rss_runs.iter().map(|r| r.deploy).collect::<Vec<_>>());

    let ratio_par_best = ratio(deploy_best, par_best);
    let ratio_par_med = ratio(deploy_med, par_med);
    let ratio_seq_best = ratio(deploy_best, seq_best);
    let ratio_seq_med = ratio(deploy_med, seq_med);
    // Each run's deploy against the spawns measured just before it: less exposed to load that
    // comes and goes than best against best or median against median.
    let paired = |bare: &[Duration]| {
        deploy_t
            .iter()
            .zip(bare)
            .map(|(d, b)| format!("{:.2}x", ratio(*d, *b)))
            .collect::<Vec<_>>()
            .join(" ")
    };

    println!("\n================ summary (best / median of {RUNS}) ================");
    println!(
        "orchestration ({STEP_RUNS} step runs: {STEPS} steps x {TARGETS} targets, batches of {BATCH})"
    );
    println!(
        "  deploy wall time                    {} / {}",
        ms(deploy_best),
        ms(deploy_med)
    );
    println!(
        "  step runs per second                {:.0} / {:.0}",
        rate(deploy_best),
        rate(deploy_med)
    );
    println!(
        "  deploy cost per step run            {} / {}",
        us(per_run(deploy_best)),
        us(per_run(deploy_med))
    );
    println!(
        "  bare spawn, 30 x 100 concurrent     {} / {}  ({} / {} per process)",
        ms(par_best),
        ms(par_med),
        us(per_run(par_best)),
        us(per_run(par_med))
    );
    println!(
        "  bare spawn, sequential              {} / {}  ({} / {} per process)",
        ms(seq_best),
        ms(seq_med),
        us(per_run(seq_best)),
        us(per_run(seq_med))
    );
    println!(
        "  (deploy again, targets exist        {} / {}  ({} / {} per step run))",
        ms(repeat_best),
        ms(repeat_med),
        us(per_run(repeat_best)),
        us(per_run(repeat_med))
    );
    println!(
        "  (spawns as the engine makes them    {} / {}  ({} / {} per process), 30 x 100)",
        ms(like_best),
        ms(like_med),
        us(per_run(like_best)),
        us(per_run(like_med))
    );
    println!(
        "  overhead per step run (vs batched)  {:.1} µs / {:.1} µs",
        overhead(deploy_best, par_best) * 1e6,
        overhead(deploy_med, par_med) * 1e6
    );
    println!(
        "  overhead per step run (vs seq.)     {:.1} µs / {:.1} µs",
        overhead(deploy_best, seq_best) * 1e6,
        overhead(deploy_med, seq_med) * 1e6
    );
    println!(
        "  ratio deploy / bare batched spawn   {ratio_par_best:.2}x / {ratio_par_med:.2}x   floor <= {FLOOR_RATIO}x: {} (best), {} (median)",
        verdict(ratio_par_best <= FLOOR_RATIO),
        verdict(ratio_par_med <= FLOOR_RATIO)
    );
    println!("    per run, paired                   {}", paired(&par_t));
    println!(
        "  ratio deploy / bare sequential      {ratio_seq_best:.2}x / {ratio_seq_med:.2}x   floor <= {FLOOR_RATIO}x: {} (best), {} (median)",
        verdict(ratio_seq_best <= FLOOR_RATIO),
        verdict(ratio_seq_med <= FLOOR_RATIO)
    );
    println!("    per run, paired                   {}", paired(&seq_t));
    println!("rollback ({TARGETS} targets back to 1.0.0, batches of {BATCH})");
    println!(
        "  rollback wall time                  {} / {}   floor < {} s: {} (best), {} (median)",
        ms(rb_best),
        ms(rb_med),
        FLOOR_ROLLBACK.as_secs(),
        verdict(rb_best < FLOOR_ROLLBACK),
        verdict(rb_med < FLOOR_ROLLBACK)
    );
    println!(
        "  (deploy 1.0.0                       {} / {})",
        ms(d1_best),
        ms(d1_med)
    );
    println!(
        "  (deploy 2.0.0                       {} / {})",
        ms(d2_best),
        ms(d2_med)
    );
    println!("memory (fresh process, {TARGETS}-target no-op deployment)");
    println!(
        "  peak RSS (VmHWM)                    {:.1} MiB / {:.1} MiB   floor < {FLOOR_RSS_MIB} MiB: {} (best), {} (median)",
        mib(hwm_best),
        mib(hwm_med),
        verdict(mib(hwm_best) < FLOOR_RSS_MIB),
        verdict(mib(hwm_med) < FLOOR_RSS_MIB)
    );
    println!(
        "  (its deploy wall time               {} / {})",
        ms(rss_deploy_best),
        ms(rss_deploy_med)
    );
    println!(
        "the machine is shared: the load printed with each run shows when other work ran beside it"
    );
}
