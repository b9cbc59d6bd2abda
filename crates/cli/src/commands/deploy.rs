//! `slipway deploy` and `slipway rollback`.

use std::path::Path;

use serde_json::json;
use slipway_engine::{DeployRequest, Secrets};
use slipway_store::Store;

use super::{parse_time, read_plan};
use crate::context::{Context, Global, coordination_error, engine_error};
use crate::exit::{INVALID, PENDING, fail, for_state};
use crate::output::{Format, print_json, took};
use crate::progress::Printer;

pub async fn deploy(
    global: &Global,
    plan: &Path,
    env: &str,
    version: Option<String>,
    at: Option<&str>,
    break_glass: Option<&str>,
) -> anyhow::Result<u8> {
    let at = at.map(parse_time).transpose()?;
    let loaded = match read_plan(plan)? {
        Ok(l) => l,
        Err(errors) => {
            for d in &errors.diagnostics {
                eprint!("{}", d.render(&errors.source, false));
            }
            return Err(fail(INVALID, format!("{errors}; nothing was deployed")));
        }
    };
    slipway_core::rollout::environment(&loaded.plan, env)
        .map_err(|e| fail(INVALID, e.to_string()))?;
    let base = plan.parent().map(Path::to_path_buf).unwrap_or_default();
    let secrets = Secrets::resolve(&loaded.plan, &base, &|v| std::env::var(v).ok())
        .map_err(|e| fail(INVALID, format!("{e}; nothing was deployed")))?;
    let ctx = Context::open(global).await?;
    let request = DeployRequest {
        plan: loaded,
        plan_file: plan.to_path_buf(),
        environment: env.to_string(),
        version,
        requester: global.actor(),
        origin: "cli".into(),
    };
    let printer = Printer::new(global.format == Format::Human, true);
    let user = ctx.user(global).await?;
    let created = ctx
        .engine
        .request(&request, at, break_glass.map(|r| (&user, r)))
        .await
        .map_err(coordination_error)?;
    if created.state != slipway_store::DeploymentState::Queued {
        return pending(global, &ctx, created).await;
    }
    if global.format == Format::Human {
        eprintln!(
            "deployment #{} of {} {} to {} (plan {})",
            created.id,
            created.plan_name,
            created.version.as_deref().unwrap_or("-"),
            env,
            &created.plan_hash[..12]
        );
    }
    finish(global, &ctx, created.id, secrets, &printer).await
}

/// Says why a deployment did not start: it waits for approvals or for its time.
async fn pending(
    global: &Global,
    ctx: &Context,
    d: slipway_store::Deployment,
) -> anyhow::Result<u8> {
    let standing = ctx
        .engine
        .standing(d.id)
        .await
        .map_err(coordination_error)?;
    match global.format {
        Format::Json => print_json(
            &json!({"deployment": standing.deployment, "approvals": standing.approvals}),
        )?,
        Format::Human => {
            let a = &standing.approvals;
            match d.state {
                slipway_store::DeploymentState::AwaitingApproval => println!(
                    "deployment #{} awaits {} approval(s) from {} (the requester cannot approve): slipway approve {}",
                    d.id,
                    a.required,
                    a.from.join(" or "),
                    d.id
                ),
                _ => println!(
                    "deployment #{} is scheduled for {}; `slipway serve` starts it then",
                    d.id,
                    d.scheduled_for
                        .map_or_else(|| "its window".into(), crate::output::time)
                ),
            }
        }
    }
    Ok(PENDING)
}

/// Runs a queued deployment in this process.
pub async fn start(global: &Global, id: i64) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let d = ctx
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| fail(INVALID, format!("deployment #{id} does not exist")))?;
    if d.state != slipway_store::DeploymentState::Queued {
        return pending_or_done(global, &ctx, d).await;
    }
    let loaded = slipway_core::load(&d.plan_file, d.plan_source.as_bytes())
        .map_err(|e| fail(INVALID, e.to_string()))?;
    let base = Path::new(&d.plan_file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let secrets = Secrets::resolve(&loaded.plan, &base, &|v| std::env::var(v).ok())
        .map_err(|e| fail(INVALID, e.to_string()))?;
    let printer = Printer::new(global.format == Format::Human, true);
    finish(global, &ctx, id, secrets, &printer).await
}

async fn pending_or_done(
    global: &Global,
    ctx: &Context,
    d: slipway_store::Deployment,
) -> anyhow::Result<u8> {
    if d.state.is_final() || d.state.is_active() {
        return Err(fail(
            crate::exit::REFUSED,
            format!("deployment #{} is {}, not queued", d.id, d.state),
        ));
    }
    pending(global, ctx, d).await
}

async fn finish(
    global: &Global,
    ctx: &Context,
    id: i64,
    secrets: Secrets,
    printer: &Printer,
) -> anyhow::Result<u8> {
    let before = ctx.store.deployment(id).await?;
    let env = before
        .as_ref()
        .map(|d| d.environment.clone())
        .unwrap_or_default();
    let ours = before
        .as_ref()
        .is_some_and(|d| d.params.get("origin").and_then(|o| o.as_str()) == Some("cli"));
    let d = match ctx.engine.run(id, secrets, printer).await {
        Ok(d) => d,
        Err(e) => {
            // A command line's own deployment refused before it started ends; a worker's stays
            // queued for a worker to start later.
            if ours {
                let _ = ctx.engine.abandon(id, &format!("refused: {e}")).await;
            }
            return Err(engine_error(e));
        }
    };
    match global.format {
        Format::Json => print_json(&json!({"deployment": d}))?,
        Format::Human => {
            println!(
                "deployment #{} {} in {}",
                d.id,
                d.state,
                took(d.started_at, d.finished_at)
            );
            if let Some(s) = &d.summary
                && let Some(targets) = s.get("targets").and_then(|t| t.as_object())
            {
                for (target, steps) in targets {
                    let releases: Vec<String> = steps
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(step, r)| format!("{step}: {}", r.as_str().unwrap_or("none")))
                        .collect();
                    if !releases.is_empty() {
                        println!("  {target}: {}", releases.join(", "));
                    }
                }
            }
            println!(
                "record: slipway logs {} · slipway history --env {env}",
                d.id
            );
        }
    }
    Ok(for_state(d.state))
}

pub async fn rollback(global: &Global, env: &str, to: Option<&str>) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let printer = Printer::new(global.format == Format::Human, true);
    let d = ctx
        .engine
        .rollback(env, to, &global.actor(), &printer)
        .await
        .map_err(engine_error)?;
    match global.format {
        Format::Json => print_json(&json!({"deployment": d}))?,
        Format::Human => println!(
            "rollback #{} of {} to {}: {} in {}",
            d.id,
            env,
            d.version.as_deref().unwrap_or("-"),
            d.state,
            took(d.started_at, d.finished_at)
        ),
    }
    Ok(for_state(d.state))
}
