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
    let first = ctx
        .engine
        .confirm(id, step, &global.actor())
        .await
        .map_err(engine_error)?;
    if !first {
        return Err(fail(
            REFUSED,
            format!("step `{step}` of deployment #{id} was already confirmed"),
        ));
    }
    match global.format {
        Format::Json => {
            print_json(&json!({"deployment": id, "step": step, "confirmed_by": global.actor()}))?
        }
        Format::Human => println!(
            "confirmed `{step}` of deployment #{id} as {}",
            global.actor()
        ),
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
