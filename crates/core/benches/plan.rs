//! Benchmark: parse, validate and plan a generated plan of 1,000 steps over 10,000 targets.
//!
//! Run with `cargo bench -p slipway-core --bench plan`. Prints the plan size and the time of each
//! phase (best and median of several runs). The floor: under 250 ms in a release build.

use std::time::{Duration, Instant};

use slipway_core::rollout::plan_rollout;

const STEPS: usize = 1_000;
const TARGETS: usize = 10_000;
const RUNS: usize = 7;

fn generate() -> String {
    let mut s = String::with_capacity(2 << 20);
    s.push_str("slipway: 1\nrelease: { name: big, version: 1.0.0, owner: alice }\n");
    s.push_str("variables: { port: 8080 }\n");
    s.push_str("risks:\n  - { id: R1, title: Big change, likelihood: 3, impact: 4 }\n");
    s.push_str("environments:\n  production:\n    protected: true\n    approvals: { required: 2, from: [cab] }\n");
    s.push_str("    windows: [\"Sat 22:00-Sun 04:00 Europe/London\"]\n    targets:\n");
    for t in 0..TARGETS {
        let group = t % 10;
        s.push_str(&format!(
            "      t{t}: {{ host: local, labels: [web, g{group}], vars: {{ port: {} }} }}\n",
            20_000 + t
        ));
    }
    s.push_str("steps:\n");
    for i in 0..STEPS {
        s.push_str(&format!("  - id: s{i}\n"));
        if i > 0 {
            s.push_str(&format!("    needs: [s{}]\n", i - 1));
            if i > 10 {
                s.push_str(&format!(
                    "    # and a longer-range dependency\n    # s{}\n",
                    i - 10
                ));
            }
        }
        let on = if i % 3 == 0 {
            "web".to_string()
        } else {
            format!("g{}", i % 10)
        };
        s.push_str(&format!("    on: [{on}]\n"));
        s.push_str(
            "    run: \"./deploy.sh --port {{ vars.port }} --version {{ release.version }}\"\n",
        );
        s.push_str("    rollback: [./undo.sh, \"{{ target.name }}\"]\n");
        s.push_str("    timeout: 5m\n");
        match i % 3 {
            0 => s.push_str("    strategy: { rolling: { batch: 10%, max_unavailable: 5% } }\n"),
            1 => s.push_str(
                "    strategy: { canary: { stages: [1%, 10%, 50%, 100%], pause: 1m } }\n",
            ),
            _ => {}
        }
        s.push_str("    validate:\n      - http: \"http://{{ target.address }}:{{ vars.port }}/health\"\n        expect: { status: 200 }\n");
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let text = generate();
    let at: jiff::Timestamp = "2026-11-28T23:00:00Z".parse().expect("timestamp");
    let (mut load_t, mut plan_t, mut total_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut step_targets = 0usize;
    let mut batches = 0usize;
    let mut yaml_t = Vec::new();
    for _ in 0..RUNS {
        let source = slipway_core::Source::new("big.yaml", text.clone());
        let start = Instant::now();
        std::hint::black_box(slipway_core::yaml::load(&source).expect("loads"));
        yaml_t.push(start.elapsed());
    }
    for _ in 0..RUNS {
        let start = Instant::now();
        let loaded =
            slipway_core::load("big.yaml", text.as_bytes()).expect("generated plan is valid");
        let loaded_at = Instant::now();
        let rollout = plan_rollout(&loaded.plan, "production", at, None).expect("plans");
        let done = Instant::now();
        step_targets = rollout.steps.iter().map(|s| s.targets.len()).sum();
        batches = rollout.steps.iter().map(|s| s.batches.sizes.len()).sum();
        load_t.push(loaded_at - start);
        plan_t.push(done - loaded_at);
        total_t.push(done - start);
        std::hint::black_box(rollout);
    }
    println!(
        "plan: {} bytes, {STEPS} steps, {TARGETS} targets, {step_targets} step×target pairs, {batches} batches",
        text.len()
    );
    println!(
        "  of which YAML loading: best {:?}, median {:?}",
        yaml_t.iter().min().copied().unwrap_or_default(),
        median(yaml_t.clone())
    );
    println!(
        "parse+validate: best {:?}, median {:?}",
        load_t.iter().min().copied().unwrap_or_default(),
        median(load_t.clone())
    );
    println!(
        "plan (waves, selection, batches, calendar, risk): best {:?}, median {:?}",
        plan_t.iter().min().copied().unwrap_or_default(),
        median(plan_t.clone())
    );
    let best = total_t.iter().min().copied().unwrap_or_default();
    println!(
        "total: best {:?}, median {:?} (floor: 250ms)",
        best,
        median(total_t.clone())
    );
    if best > Duration::from_millis(250) {
        println!("ABOVE THE 250 ms FLOOR");
    }
}
