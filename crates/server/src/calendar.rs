//! The calendar: window openings, freezes and scheduled deployments ahead, per environment.

use serde_json::{Value, json};
use slipway_core::lifecycle::DeploymentState;
use slipway_store::{Deployment, DeploymentFilter, Store};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn entries(state: &AppState, days: u32) -> Result<Value, ApiError> {
    let now = jiff::Timestamp::now();
    let until = now
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .map_err(ApiError::internal)?;
    let recent = state
        .store
        .deployments(DeploymentFilter {
            limit: Some(500),
            ..Default::default()
        })
        .await?;
    let mut environments: Vec<&str> = recent.iter().map(|d| d.environment.as_str()).collect();
    environments.sort_unstable();
    environments.dedup();
    let mut windows = Vec::new();
    let mut freezes = Vec::new();
    for env in environments {
        let Some(latest) = recent.iter().find(|d| d.environment == env) else {
            continue;
        };
        let Some(plan) = state.plans.get(latest) else {
            continue;
        };
        let Some(e) = plan.plan.environments.get(env) else {
            continue;
        };
        for w in &e.windows {
            let mut t = now;
            for _ in 0..400 {
                let Some(open) = w.value.next_opening(t) else {
                    break;
                };
                if open > until {
                    break;
                }
                let close = w.value.closes_at(open).unwrap_or(open);
                windows.push(json!({"environment": env, "window": w.value.text, "opens": open, "closes": close}));
                match close.checked_add(jiff::SignedDuration::from_mins(1)) {
                    Ok(next) if next > t => t = next,
                    _ => break,
                }
            }
        }
        for f in &e.freezes {
            if f.value.to > now && f.value.from < until {
                freezes.push(json!({"environment": env, "from": f.value.from, "to": f.value.to, "reason": f.value.reason}));
            }
        }
    }
    let scheduled: Vec<Value> = recent
        .iter()
        .filter(|d: &&Deployment| {
            matches!(
                d.state,
                DeploymentState::Scheduled
                    | DeploymentState::AwaitingApproval
                    | DeploymentState::Queued
            )
        })
        .map(|d| {
            json!({
                "id": d.id,
                "environment": d.environment,
                "release": d.plan_name,
                "version": d.version,
                "state": d.state.as_str(),
                "start": d.scheduled_for.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
            })
        })
        .collect();
    Ok(
        json!({"from": now, "until": until, "windows": windows, "freezes": freezes, "deployments": scheduled}),
    )
}
