//! `slipway deploy` and `slipway rollback`.

use std::path::Path;

use serde_json::json;
use slipway_engine::{DeployRequest, Secrets};

use super::read_plan;
use crate::context::{Context, Global, engine_error};
use crate::exit::{INVALID, fail, for_state};
use crate::output::{Format, print_json, took};
use crate::progress::Printer;

pub async fn deploy(
    global: &Global,
    plan: &Path,
    env: &str,
    version: Option<String>,
) -> anyhow::Result<u8> {
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
    let created = ctx.engine.create(&request).await.map_err(engine_error)?;
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
    let d = match ctx.engine.run(created.id, secrets, &printer).await {
        Ok(d) => d,
        Err(e) => {
            // A run refused before it started (a busy environment) ends the record it created.
            let _ = ctx
                .engine
                .abandon(created.id, &format!("refused: {e}"))
                .await;
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
