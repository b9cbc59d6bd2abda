//! Reading the record: status, watch, logs, history, inventory, audit verification.

use std::time::Duration;

use serde_json::json;
use slipway_store::{Deployment, DeploymentFilter, DeploymentState, EventFilter, Store};

use crate::context::{Context, Global};
use crate::exit::{FAILED, INVALID, OK, fail, for_state};
use crate::output::{Format, print_json, table, time, took};

fn describe(d: &Deployment) -> String {
    let what = match d.kind {
        slipway_store::DeploymentKind::Deploy => "deploy",
        slipway_store::DeploymentKind::Rollback => "rollback to",
    };
    format!(
        "#{} {what} {} {} → {}",
        d.id,
        d.plan_name,
        d.version.as_deref().unwrap_or("-"),
        d.environment
    )
}

async fn get(ctx: &Context, id: i64) -> anyhow::Result<Deployment> {
    ctx.store
        .deployment(id)
        .await?
        .ok_or_else(|| fail(INVALID, format!("deployment #{id} does not exist")))
}

pub async fn status(global: &Global, id: Option<i64>) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    if let Some(id) = id {
        let d = get(&ctx, id).await?;
        let runs = ctx.store.step_runs(id).await?;
        if global.format == Format::Json {
            let events = ctx
                .store
                .events(EventFilter {
                    deployment_id: Some(id),
                    ..Default::default()
                })
                .await?;
            let approvals = ctx.engine.standing(id).await.ok().map(|s| s.approvals);
            print_json(
                &json!({"deployment": d, "step_runs": runs, "events": events, "approvals": approvals}),
            )?;
            return Ok(OK);
        }
        println!("{}", describe(&d));
        println!(
            "  state:     {}{}",
            d.state,
            if d.cancel_requested && !d.state.is_final() {
                " (cancel requested)"
            } else {
                ""
            }
        );
        println!("  requested: {} by {}", time(d.created_at), d.requester);
        if let Some(s) = d.started_at {
            println!("  started:   {}", time(s));
        }
        if let Some(f) = d.finished_at {
            println!(
                "  finished:  {} (took {})",
                time(f),
                took(d.started_at, Some(f))
            );
        }
        println!(
            "  plan:      {} (hash {})",
            d.plan_file,
            &d.plan_hash[..12.min(d.plan_hash.len())]
        );
        let mut t = table(&[
            "step", "target", "phase", "attempt", "state", "took", "message",
        ]);
        for r in &runs {
            t.add_row(vec![
                r.step_id.clone(),
                r.target.clone(),
                r.phase.clone(),
                r.attempt.to_string(),
                r.state.clone(),
                took(Some(r.started_at), r.finished_at),
                r.message.clone().unwrap_or_default(),
            ]);
        }
        if !runs.is_empty() {
            println!("{t}");
        }
        if let Some(summary) = &d.summary {
            println!("  summary:   {summary}");
        }
        return Ok(OK);
    }
    let active = ctx
        .store
        .deployments(DeploymentFilter {
            states: vec![
                DeploymentState::Queued,
                DeploymentState::Running,
                DeploymentState::RollingBack,
                DeploymentState::Scheduled,
                DeploymentState::AwaitingApproval,
            ],
            ..Default::default()
        })
        .await?;
    let locks = ctx.store.locks().await?;
    let recent = ctx
        .store
        .deployments(DeploymentFilter {
            limit: Some(5),
            ..Default::default()
        })
        .await?;
    if global.format == Format::Json {
        print_json(&json!({"active": active, "locks": locks, "recent": recent}))?;
        return Ok(OK);
    }
    if active.is_empty() {
        println!("nothing running or waiting");
    }
    for d in &active {
        println!(
            "{}: {} since {}",
            describe(d),
            d.state,
            time(d.started_at.unwrap_or(d.created_at))
        );
    }
    for l in &locks {
        println!(
            "lock on {}: deployment #{} (process {} on {}, lease until {})",
            l.environment,
            l.deployment_id.unwrap_or_default(),
            l.pid,
            l.host,
            time(l.expires_at)
        );
    }
    if !recent.is_empty() {
        println!("recent:");
        for d in &recent {
            println!("  {}: {}", describe(d), d.state);
        }
    }
    Ok(OK)
}

pub async fn watch(global: &Global, id: i64) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let mut after = 0;
    loop {
        let events = ctx
            .store
            .events(EventFilter {
                deployment_id: Some(id),
                after_seq: Some(after),
                limit: Some(500),
            })
            .await?;
        for e in &events {
            after = e.seq;
            match global.format {
                Format::Json => println!("{}", serde_json::to_string(e)?),
                Format::Human => println!("{} {:<26} {}", time(e.at), e.kind, e.data),
            }
        }
        let d = get(&ctx, id).await?;
        if d.state.is_final() && events.is_empty() {
            if global.format == Format::Human {
                println!("{}: {}", describe(&d), d.state);
            }
            return Ok(for_state(d.state));
        }
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

pub async fn logs(
    global: &Global,
    id: i64,
    step: Option<&str>,
    target: Option<&str>,
) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    get(&ctx, id).await?;
    let runs: Vec<_> = ctx
        .store
        .step_runs(id)
        .await?
        .into_iter()
        .filter(|r| step.is_none_or(|s| r.step_id == s) && target.is_none_or(|t| r.target == t))
        .collect();
    if global.format == Format::Json {
        print_json(&runs)?;
        return Ok(OK);
    }
    for r in &runs {
        println!(
            "== {} on {} · {} attempt {} · {}{} · {}",
            r.step_id,
            r.target,
            r.phase,
            r.attempt,
            r.state,
            r.exit_code
                .map(|c| format!(" (exit {c})"))
                .unwrap_or_default(),
            took(Some(r.started_at), r.finished_at)
        );
        if !r.output.is_empty() {
            print!("{}", r.output);
            if !r.output.ends_with('\n') {
                println!();
            }
        }
        if let Some(m) = &r.message {
            println!("-- {m}");
        }
    }
    Ok(OK)
}

pub async fn history(global: &Global, env: Option<&str>, limit: u32) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let list = ctx
        .store
        .deployments(DeploymentFilter {
            environment: env.map(str::to_string),
            limit: Some(limit),
            ..Default::default()
        })
        .await?;
    if global.format == Format::Json {
        print_json(&list)?;
        return Ok(OK);
    }
    let mut t = table(&[
        "id",
        "kind",
        "environment",
        "release",
        "version",
        "state",
        "requested by",
        "at",
        "took",
    ]);
    for d in &list {
        t.add_row(vec![
            d.id.to_string(),
            d.kind.as_str().to_string(),
            d.environment.clone(),
            d.plan_name.clone(),
            d.version.clone().unwrap_or_default(),
            d.state.to_string(),
            d.requester.clone(),
            time(d.created_at),
            took(d.started_at, d.finished_at),
        ]);
    }
    println!("{t}");
    Ok(OK)
}

pub async fn inventory(global: &Global, env: Option<&str>) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let inv = ctx.store.inventory(env).await?;
    if global.format == Format::Json {
        print_json(&inv)?;
        return Ok(OK);
    }
    let mut t = table(&[
        "environment",
        "target",
        "current",
        "previous",
        "kept",
        "by",
        "updated",
    ]);
    for r in &inv {
        t.add_row(vec![
            r.environment.clone(),
            r.target.clone(),
            r.current.clone().unwrap_or_default(),
            r.previous.clone().unwrap_or_default(),
            r.kept.join(", "),
            r.deployment_id.map(|d| format!("#{d}")).unwrap_or_default(),
            time(r.updated_at),
        ]);
    }
    println!("{t}");
    Ok(OK)
}

pub async fn audit_verify(global: &Global) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let report = ctx.store.verify_chain().await?;
    if global.format == Format::Json {
        print_json(
            &json!({"events": report.events, "intact": report.first_bad.is_none(), "first_bad": report.first_bad.as_ref().map(|(seq, why)| json!({"seq": seq, "reason": why}))}),
        )?;
    } else {
        match &report.first_bad {
            None => println!(
                "audit log intact: {} events, every hash and link matches",
                report.events
            ),
            Some((seq, why)) => println!(
                "audit log BROKEN at event {seq}: {why} ({} events verified before it)",
                report.events
            ),
        }
    }
    Ok(if report.first_bad.is_none() {
        OK
    } else {
        FAILED
    })
}
