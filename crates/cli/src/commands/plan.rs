//! `slipway plan PLAN --env NAME`: what a deployment would do, like `terraform plan`.

use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;
use slipway_core::calendar::CalendarStatus;
use slipway_core::duration::format_duration;
use slipway_core::plan::{Command, Environment, Pause, Plan, Strategy};
use slipway_core::policy::ApprovalRequirement;
use slipway_core::risk::RiskAssessment;
use slipway_core::rollout::{Rollout, plan_rollout};

use super::{parse_time, read_plan};
use crate::exit::{INVALID, OK, fail};
use crate::output::{Format, color_stdout, print_json, short_hash};

#[derive(Serialize)]
struct PlanReport {
    file: String,
    release: ReleaseView,
    environment: String,
    hash: String,
    at: Timestamp,
    waves: Vec<Vec<String>>,
    steps: Vec<StepView>,
    manual_steps: Vec<ManualView>,
    irreversible_steps: Vec<String>,
    approvals: ApprovalRequirement,
    calendar: CalendarView,
    risk: RiskAssessment,
    /// Why the deployment could not start at `at` as things stand (approvals aside).
    blockers: Vec<String>,
}

#[derive(Serialize)]
struct ReleaseView {
    name: String,
    version: Option<String>,
    change: Option<String>,
    owner: Option<String>,
}

#[derive(Serialize)]
struct StepView {
    id: String,
    description: Option<String>,
    owner: Option<String>,
    needs: Vec<String>,
    manual: Option<String>,
    irreversible: bool,
    run: Option<String>,
    rollback: Option<String>,
    release_dir: Option<String>,
    timeout_seconds: Option<f64>,
    retries: u32,
    strategy: Strategy,
    targets: Vec<String>,
    batches: Vec<Vec<String>>,
    pause_between_batches: Option<Pause>,
    checks: usize,
}

#[derive(Serialize)]
struct ManualView {
    id: String,
    instruction: String,
    confirmed_by: Option<String>,
}

#[derive(Serialize)]
struct CalendarView {
    #[serde(flatten)]
    status: CalendarStatus,
    windows: Vec<String>,
}

fn build(
    plan: &Plan,
    env: &Environment,
    rollout: &Rollout,
    file: &str,
    hash: &str,
    version: Option<String>,
) -> PlanReport {
    let name_of = |i: u32| env.targets[i as usize].name.value.clone();
    let steps = rollout
        .steps
        .iter()
        .map(|sr| {
            let step = &plan.steps[sr.step];
            let targets: Vec<String> = sr.targets.iter().map(|&i| name_of(i)).collect();
            let batches = sr.batches.ranges().map(|r| targets[r].to_vec()).collect();
            StepView {
                id: step.id.value.clone(),
                description: step.description.clone(),
                owner: step.owner.as_ref().map(|o| o.value.clone()),
                needs: step.needs.iter().map(|n| n.value.clone()).collect(),
                manual: step.manual.as_ref().map(|m| m.value.clone()),
                irreversible: step.is_irreversible(),
                run: step.run.as_ref().map(Command::describe),
                rollback: step.rollback.as_ref().map(Command::describe),
                release_dir: step.release_dir.as_ref().map(|r| r.path.value.clone()),
                timeout_seconds: step.timeout.as_ref().map(|t| t.value.as_secs_f64()),
                retries: step.retries,
                strategy: step.strategy.value.clone(),
                targets,
                batches,
                pause_between_batches: sr.batches.pause,
                checks: step.validate.len(),
            }
        })
        .collect();
    let mut blockers = Vec::new();
    if let Some(f) = &rollout.calendar.freeze {
        blockers.push(format!(
            "inside freeze `{}` ({} to {}); only an admin's break-glass can deploy",
            f.reason, f.from, f.to
        ));
    }
    if !rollout.calendar.in_window {
        match rollout.calendar.next_window {
            Some(next) => blockers.push(format!(
                "outside every window; would be scheduled for {next}"
            )),
            None => blockers.push("outside every window".into()),
        }
    }
    if let Some(level) = rollout.approvals.blocked_by {
        blockers.push(format!(
            "risk policy blocks deployments at {} risk",
            level.as_str()
        ));
    }
    PlanReport {
        file: file.to_string(),
        release: ReleaseView {
            name: plan.release.name.value.clone(),
            version: version.or_else(|| plan.release.version.as_ref().map(|v| v.value.clone())),
            change: plan.release.change.as_ref().map(|c| c.value.clone()),
            owner: plan.release.owner.as_ref().map(|o| o.value.clone()),
        },
        environment: rollout.environment.clone(),
        hash: hash.to_string(),
        at: rollout.calendar.at,
        waves: rollout
            .waves
            .iter()
            .map(|w| w.iter().map(|&i| plan.steps[i].id.value.clone()).collect())
            .collect(),
        steps,
        manual_steps: rollout
            .manual
            .iter()
            .map(|&i| {
                let s = &plan.steps[i];
                ManualView {
                    id: s.id.value.clone(),
                    instruction: s
                        .manual
                        .as_ref()
                        .map(|m| m.value.clone())
                        .unwrap_or_default(),
                    confirmed_by: s.owner.as_ref().map(|o| o.value.clone()),
                }
            })
            .collect(),
        irreversible_steps: rollout
            .irreversible
            .iter()
            .map(|&i| plan.steps[i].id.value.clone())
            .collect(),
        approvals: rollout.approvals.clone(),
        calendar: CalendarView {
            status: rollout.calendar.clone(),
            windows: env.windows.iter().map(|w| w.value.text.clone()).collect(),
        },
        risk: rollout.risk.clone(),
        blockers,
    }
}

pub fn run(
    path: &Path,
    env_name: &str,
    at: &str,
    version: Option<String>,
    format: Format,
) -> anyhow::Result<u8> {
    let at = parse_time(at)?;
    let loaded = match read_plan(path)? {
        Ok(l) => l,
        Err(errors) => {
            let color = color_stdout();
            for d in &errors.diagnostics {
                eprint!("{}", d.render(&errors.source, color));
            }
            return Err(fail(
                INVALID,
                format!(
                    "{errors}; run `slipway check {}` for details",
                    path.display()
                ),
            ));
        }
    };
    let plan = &loaded.plan;
    let rollout =
        plan_rollout(plan, env_name, at, None).map_err(|e| fail(INVALID, e.to_string()))?;
    let env = &plan.environments[env_name];
    let report = build(
        plan,
        env,
        &rollout,
        loaded.source.name(),
        &loaded.hash,
        version,
    );
    match format {
        Format::Json => print_json(&report)?,
        Format::Human => print_human(&report),
    }
    Ok(OK)
}

fn list(names: &[String], max: usize) -> String {
    if names.len() <= max {
        names.join(", ")
    } else {
        format!(
            "{}, … ({} more)",
            names[..max].join(", "),
            names.len() - max
        )
    }
}

fn print_human(r: &PlanReport) {
    let version = r.release.version.as_deref().unwrap_or("(no version)");
    println!(
        "Plan {} {} → {}   (plan hash {})",
        r.release.name,
        version,
        r.environment,
        short_hash(&r.hash)
    );
    if let Some(c) = &r.release.change {
        println!("Change {c}");
    }
    println!();
    println!("Order (steps on one line may run in parallel):");
    for (i, wave) in r.waves.iter().enumerate() {
        println!("  {}. {}", i + 1, wave.join(", "));
    }
    println!();
    println!("Steps:");
    for s in &r.steps {
        let mut head = format!("  {}", s.id);
        if let Some(d) = &s.description {
            head.push_str(&format!(" — {d}"));
        }
        if let Some(o) = &s.owner {
            head.push_str(&format!("  [owner {o}]"));
        }
        println!("{head}");
        if let Some(m) = &s.manual {
            println!("      MANUAL: {m}");
            println!(
                "      waits for confirmation by {}",
                s.owner.as_deref().unwrap_or("(no owner)")
            );
            continue;
        }
        println!(
            "      targets ({}): {}",
            s.targets.len(),
            list(&s.targets, 8)
        );
        let batches: Vec<String> = s
            .batches
            .iter()
            .take(6)
            .map(|b| format!("[{}]", list(b, 4)))
            .collect();
        let more = if s.batches.len() > 6 {
            format!(" … {} batches in all", s.batches.len())
        } else {
            String::new()
        };
        println!(
            "      {} → {} batch(es): {}{more}",
            s.strategy.describe(),
            s.batches.len(),
            batches.join(" ")
        );
        if let Some(run) = &s.run {
            println!("      run: {run}");
        }
        if let Some(rd) = &s.release_dir {
            println!(
                "      release directory: {rd}/releases/<version>, switched atomically via `current`"
            );
        }
        match (&s.rollback, s.irreversible) {
            (Some(rb), _) => println!("      rollback: {rb}"),
            (None, true) => println!("      IRREVERSIBLE: no rollback command"),
            (None, false) => {}
        }
        let mut limits = Vec::new();
        if let Some(t) = s.timeout_seconds {
            limits.push(format!(
                "timeout {}",
                format_duration(std::time::Duration::from_secs_f64(t))
            ));
        }
        if s.retries > 0 {
            limits.push(format!("retries {}", s.retries));
        }
        if s.checks > 0 {
            limits.push(format!(
                "{} validation check(s) after every batch",
                s.checks
            ));
        }
        if !limits.is_empty() {
            println!("      {}", limits.join(", "));
        }
    }
    println!();
    if r.irreversible_steps.is_empty() {
        println!("Irreversible steps: none");
    } else {
        println!("Irreversible steps: {}", r.irreversible_steps.join(", "));
    }
    let a = &r.approvals;
    if a.required == 0 {
        println!("Approvals: none required");
    } else {
        let from = if a.from.is_empty() {
            "any approver".to_string()
        } else {
            a.from.join(" or ")
        };
        let mut line = format!("Approvals: {} from {from}; the requester", a.required);
        if let Some(o) = &r.release.owner {
            line.push_str(&format!(" and the plan owner ({o})"));
        }
        line.push_str(" cannot approve");
        if let Some(level) = a.raised_by {
            line.push_str(&format!(
                " — raised from {} by the {} risk policy",
                a.base,
                level.as_str()
            ));
        }
        println!("{line}");
    }
    let c = &r.calendar;
    println!("At {}:", c.status.at);
    if !c.status.has_windows {
        println!("  windows: none declared (always open)");
    } else if c.status.in_window {
        let closes = c
            .status
            .window_closes
            .map(|t| format!(", closes {t}"))
            .unwrap_or_default();
        println!("  inside a window ({}){closes}", c.windows.join("; "));
    } else {
        let next = c
            .status
            .next_window
            .map(|t| format!("; next opens {t}"))
            .unwrap_or_default();
        println!("  OUTSIDE every window ({}){next}", c.windows.join("; "));
    }
    match &c.status.freeze {
        Some(f) => println!("  IN FREEZE: {} ({} to {})", f.reason, f.from, f.to),
        None => println!("  no freeze"),
    }
    println!();
    println!("Risk: {}/100 ({})", r.risk.score, r.risk.level.as_str());
    for f in &r.risk.factors {
        println!("  +{:>2}  {:<22} {}", f.points, f.factor, f.explanation);
    }
    if !r.blockers.is_empty() {
        println!();
        println!("Would not start now:");
        for b in &r.blockers {
            println!("  - {b}");
        }
    }
    println!();
    println!("Plan hash: {}", r.hash);
}
