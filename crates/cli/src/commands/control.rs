//! Acting on running deployments: cancel, confirm, resume.

use serde_json::json;

use crate::context::{Context, Global, engine_error};
use crate::exit::{OK, REFUSED, fail};
use crate::output::{Format, print_json};

pub async fn cancel(global: &Global, id: i64) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let d = ctx
        .engine
        .cancel(id, &global.actor())
        .await
        .map_err(engine_error)?;
    match global.format {
        Format::Json => print_json(&json!({"deployment": d}))?,
        Format::Human if d.state.is_final() => println!("deployment #{id} {}", d.state),
        Format::Human => println!(
            "deployment #{id}: cancel requested; it stops at the next batch and rolls back"
        ),
    }
    Ok(OK)
}

pub async fn confirm(global: &Global, id: i64, step: &str) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let user = ctx.user(global).await?;
    let first = ctx
        .engine
        .confirm_as(id, step, &user)
        .await
        .map_err(crate::context::coordination_error)?;
    if !first {
        return Err(fail(
            REFUSED,
            format!("step `{step}` of deployment #{id} was already confirmed"),
        ));
    }
    match global.format {
        Format::Json => {
            print_json(&json!({"deployment": id, "step": step, "confirmed_by": user.name}))?
        }
        Format::Human => println!("confirmed `{step}` of deployment #{id} as {}", user.name),
    }
    Ok(OK)
}

/// Opening the context already recovers; this says what was found.
pub async fn resume(global: &Global) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let left = ctx.engine.unfinished().await.map_err(engine_error)?;
    match global.format {
        Format::Json => print_json(&json!({"unfinished": left}))?,
        Format::Human if left.is_empty() => println!("no deployment left unfinished"),
        Format::Human => {
            for d in left {
                println!(
                    "deployment #{} is {} and held by a live process",
                    d.id, d.state
                );
            }
        }
    }
    Ok(OK)
}

pub async fn decide(
    global: &Global,
    id: i64,
    approve: bool,
    reason: Option<&str>,
) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let user = ctx.user(global).await?;
    let standing = ctx
        .engine
        .decide(id, &user, approve, reason)
        .await
        .map_err(crate::context::coordination_error)?;
    match global.format {
        Format::Json => print_json(&standing)?,
        Format::Human => {
            let a = &standing.approvals;
            let verb = if approve { "approved" } else { "rejected" };
            println!(
                "{verb} deployment #{id} as {}: {} of {} approval(s); it is now {}",
                user.name,
                a.approvers.len(),
                a.required,
                standing.deployment.state
            );
            if standing.deployment.state == slipway_store::DeploymentState::Queued {
                println!("start it with `slipway start {id}`, or let `slipway serve` start it");
            }
        }
    }
    Ok(OK)
}

pub async fn amend(global: &Global, id: i64, plan: &std::path::Path) -> anyhow::Result<u8> {
    let loaded = match super::read_plan(plan)? {
        Ok(l) => l,
        Err(errors) => {
            return Err(fail(
                crate::exit::INVALID,
                format!("{errors}; the deployment was not changed"),
            ));
        }
    };
    let ctx = Context::open(global).await?;
    let user = ctx.user(global).await?;
    let standing = ctx
        .engine
        .amend(id, &loaded, &user)
        .await
        .map_err(crate::context::coordination_error)?;
    match global.format {
        Format::Json => print_json(&standing)?,
        Format::Human => println!(
            "deployment #{id} now runs plan {}; it is {} ({} approval(s) still count)",
            &loaded.hash[..12],
            standing.deployment.state,
            standing.approvals.approvers.len()
        ),
    }
    Ok(OK)
}

pub async fn break_glass(global: &Global, id: i64, reason: &str) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    let user = ctx.user(global).await?;
    let d = ctx
        .engine
        .break_glass(id, &user, reason)
        .await
        .map_err(crate::context::coordination_error)?;
    match global.format {
        Format::Json => print_json(&json!({"deployment": d}))?,
        Format::Human => println!(
            "break-glass recorded on deployment #{id} by {}: {reason}; it is {}",
            user.name, d.state
        ),
    }
    Ok(OK)
}
