//! What the API returns and the pages show, built from the record: one shape for both.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use slipway_core::lifecycle::DeploymentState;
use slipway_core::rollout::plan_rollout;
use slipway_store::{Deployment, DeploymentFilter, EventFilter, StepRun, Store};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// A deployment as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeploymentSummary {
    pub id: i64,
    /// `deploy` or `rollback`.
    pub kind: String,
    pub environment: String,
    pub release: String,
    pub version: Option<String>,
    /// awaiting_approval, scheduled, queued, running, rolling_back, succeeded, rolled_back,
    /// failed, cancelled or rejected.
    pub state: String,
    pub requester: String,
    pub plan_hash: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub scheduled_for: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Who broke glass, and why, if anyone did.
    #[schema(value_type = Option<Object>)]
    pub break_glass: Option<Value>,
    pub cancel_requested: bool,
}

impl From<&Deployment> for DeploymentSummary {
    fn from(d: &Deployment) -> Self {
        DeploymentSummary {
            id: d.id,
            kind: d.kind.as_str().into(),
            environment: d.environment.clone(),
            release: d.plan_name.clone(),
            version: d.version.clone(),
            state: d.state.as_str().into(),
            requester: d.requester.clone(),
            plan_hash: d.plan_hash.clone(),
            created_at: d.created_at,
            scheduled_for: d.scheduled_for,
            started_at: d.started_at,
            finished_at: d.finished_at,
            break_glass: d.break_glass.clone(),
            cancel_requested: d.cancel_requested,
        }
    }
}

/// One environment on the dashboard.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnvironmentView {
    pub name: String,
    /// Releases the targets run now, with how many targets run each.
    pub releases: BTreeMap<String, usize>,
    pub targets: usize,
    /// The deployment running now, if any.
    pub running: Option<DeploymentSummary>,
    /// Deployments waiting for approval, their window or a worker.
    pub waiting: Vec<DeploymentSummary>,
    pub last: Option<DeploymentSummary>,
    /// Unix milliseconds of the next window opening (per the latest plan), if it has windows.
    pub next_window: Option<i64>,
    pub in_window: bool,
    /// The freeze in force now, if any.
    pub freeze: Option<String>,
    /// The deployment holding the environment's lock.
    pub locked_by: Option<i64>,
}

/// One cell of the live grid: a step on a target.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cell {
    /// pending, running, done, healthy, unhealthy, failed, skipped, rolled_back, unknown,
    /// waiting, confirmed or none (the step does not run there).
    pub state: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Grid {
    pub steps: Vec<String>,
    pub targets: Vec<String>,
    /// `cells[step][target]`.
    pub cells: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeploymentView {
    pub deployment: DeploymentSummary,
    #[schema(value_type = Object)]
    pub approvals: Value,
    /// The risk assessment made when it was requested: score, level and explained factors.
    #[schema(value_type = Option<Object>)]
    pub risk: Option<Value>,
    /// How it ended: outcome, failure, the release each target is on.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    pub grid: Grid,
    /// Manual steps (and canary pauses) waiting for a confirmation now.
    pub waiting_for: Vec<String>,
    pub plan_source: String,
    /// Irreversible steps (no rollback), shown before approval.
    pub irreversible: Vec<String>,
}

fn summaries(list: &[Deployment]) -> Vec<DeploymentSummary> {
    list.iter().map(DeploymentSummary::from).collect()
}

pub async fn deployments(
    state: &AppState,
    filter: DeploymentFilter,
) -> Result<Vec<DeploymentSummary>, ApiError> {
    Ok(summaries(&state.store.deployments(filter).await?))
}

pub async fn environments(state: &AppState) -> Result<Vec<EnvironmentView>, ApiError> {
    if let Some(cached) = state.views.get::<Vec<EnvironmentView>>("environments") {
        return Ok(cached.as_ref().clone());
    }
    let built = build_environments(state).await?;
    state
        .views
        .put("environments".into(), std::sync::Arc::new(built.clone()));
    Ok(built)
}

async fn build_environments(state: &AppState) -> Result<Vec<EnvironmentView>, ApiError> {
    let recent = state
        .store
        .deployments(DeploymentFilter {
            limit: Some(200),
            without_plan: true,
            ..Default::default()
        })
        .await?;
    let inventory = state.store.inventory(None).await?;
    let locks = state.store.locks().await?;
    let mut names: Vec<String> = recent.iter().map(|d| d.environment.clone()).collect();
    names.extend(inventory.iter().map(|r| r.environment.clone()));
    names.sort();
    names.dedup();
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for name in names {
        let mine: Vec<&Deployment> = recent.iter().filter(|d| d.environment == name).collect();
        let mut releases = BTreeMap::new();
        let mut targets = 0;
        for r in inventory.iter().filter(|r| r.environment == name) {
            targets += 1;
            *releases
                .entry(r.current.clone().unwrap_or_else(|| "none".into()))
                .or_insert(0) += 1;
        }
        let running = mine
            .iter()
            .find(|d| d.state.is_active())
            .map(|d| DeploymentSummary::from(*d));
        let waiting = mine
            .iter()
            .filter(|d| {
                matches!(
                    d.state,
                    DeploymentState::AwaitingApproval
                        | DeploymentState::Scheduled
                        | DeploymentState::Queued
                )
            })
            .map(|d| DeploymentSummary::from(*d))
            .collect();
        let last = mine
            .iter()
            .find(|d| d.state.is_final())
            .map(|d| DeploymentSummary::from(*d));
        let (mut next_window, mut in_window, mut freeze) = (None, true, None);
        if let Some(latest) = mine.first()
            && let Some(plan) = plan_of(state, latest).await
            && let Some(env) = plan.plan.environments.get(&name)
        {
            let windows: Vec<_> = env.windows.iter().map(|w| &w.value).collect();
            let freezes: Vec<_> = env.freezes.iter().map(|f| &f.value).collect();
            let calendar = slipway_core::calendar::status(&windows, &freezes, now);
            in_window = calendar.in_window;
            next_window = calendar.next_window.map(|t| t.as_millisecond());
            freeze = calendar.freeze.map(|f| f.reason);
        }
        out.push(EnvironmentView {
            locked_by: locks
                .iter()
                .find(|l| l.environment == name)
                .and_then(|l| l.deployment_id),
            name,
            releases,
            targets,
            running,
            waiting,
            last,
            next_window,
            in_window,
            freeze,
        });
    }
    Ok(out)
}

/// A deployment's plan, parsed once per content hash; listed deployments carry no plan text, so
/// a miss reads the full record.
async fn plan_of(
    state: &AppState,
    d: &Deployment,
) -> Option<std::sync::Arc<slipway_core::LoadedPlan>> {
    if let Some(p) = state.plans.get(d) {
        return Some(p);
    }
    let full = state.store.deployment(d.id).await.ok().flatten()?;
    state.plans.get(&full)
}

/// The cell of `step` on `target` from its step runs (in record order).
fn cell_of(runs: &[&StepRun]) -> Cell {
    let Some(last) = runs.last() else {
        return Cell {
            state: "pending".into(),
            detail: String::new(),
        };
    };
    let detail = last.message.clone().unwrap_or_default();
    let state = if let Some(rb) = runs.iter().rev().find(|r| r.phase == "rollback") {
        if rb.state == "started" {
            "rolling_back"
        } else if rb.state == "succeeded" {
            "rolled_back"
        } else {
            "failed"
        }
    } else {
        match (last.phase.as_str(), last.state.as_str()) {
            (_, "started") => "running",
            ("validate" | "verify", "succeeded") => "healthy",
            ("validate" | "verify", _) => "unhealthy",
            (_, "succeeded") => "done",
            (_, "skipped") => "skipped",
            (_, "unknown") => "unknown",
            _ => "failed",
        }
    };
    Cell {
        state: state.into(),
        detail,
    }
}

pub async fn deployment(state: &AppState, id: i64) -> Result<DeploymentView, ApiError> {
    let key = format!("deployment:{id}");
    if let Some(cached) = state.views.get::<DeploymentView>(&key) {
        return Ok(cached.as_ref().clone());
    }
    let built = build_deployment(state, id).await?;
    state.views.put(key, std::sync::Arc::new(built.clone()));
    Ok(built)
}

async fn build_deployment(state: &AppState, id: i64) -> Result<DeploymentView, ApiError> {
    let d = state
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("deployment #{id} does not exist")))?;
    let plan = state.plans.get(&d);
    let requirement = slipway_engine::coordinator::requirement_of(&d);
    let decisions = state.store.decisions(id).await?;
    let owner = plan
        .as_ref()
        .and_then(|p| p.plan.release.owner.as_ref().map(|o| o.value.clone()));
    let case = slipway_core::coordination::ApprovalCase {
        requester: &d.requester,
        plan_owner: owner.as_deref(),
        plan_hash: &d.plan_hash,
        requirement: &requirement,
    };
    let approvals = case.status(&decisions);
    let runs = state.store.step_runs(id).await?;
    let confirmations = state.store.confirmations(id).await?;
    let events = state
        .store
        .events(EventFilter {
            deployment_id: Some(id),
            ..Default::default()
        })
        .await?;
    let mut grid = Grid {
        steps: Vec::new(),
        targets: Vec::new(),
        cells: Vec::new(),
    };
    let mut irreversible = Vec::new();
    if let Some(plan) = &plan
        && let Some(env) = plan.plan.environments.get(&d.environment)
        && let Ok(rollout) = plan_rollout(&plan.plan, &d.environment, jiff::Timestamp::now(), None)
    {
        let mut touched: Vec<u32> = rollout
            .steps
            .iter()
            .flat_map(|s| s.targets.iter().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        grid.targets = touched
            .iter()
            .map(|&t| env.targets[t as usize].name.value.clone())
            .collect();
        for sr in &rollout.steps {
            let step = &plan.plan.steps[sr.step];
            if step.is_irreversible() {
                irreversible.push(step.id.value.clone());
            }
            grid.steps.push(step.id.value.clone());
            let row = touched
                .iter()
                .map(|t| {
                    let target = &env.targets[*t as usize].name.value;
                    if let Some(manual) = &step.manual {
                        let confirmed = confirmations.iter().find(|c| c.step_id == step.id.value);
                        let waiting = events.iter().any(|e| {
                            e.kind == "waiting_for_confirmation"
                                && e.data["step"] == step.id.value.as_str()
                        });
                        return match (confirmed, waiting) {
                            (Some(c), _) => Cell {
                                state: "confirmed".into(),
                                detail: format!("confirmed by {}", c.actor),
                            },
                            (None, true) if !d.state.is_final() => Cell {
                                state: "waiting".into(),
                                detail: manual.value.clone(),
                            },
                            _ => Cell {
                                state: "pending".into(),
                                detail: manual.value.clone(),
                            },
                        };
                    }
                    if !sr.targets.contains(t) {
                        return Cell {
                            state: "none".into(),
                            detail: String::new(),
                        };
                    }
                    let mine: Vec<&StepRun> = runs
                        .iter()
                        .filter(|r| r.step_id == step.id.value && &r.target == target)
                        .collect();
                    cell_of(&mine)
                })
                .collect();
            grid.cells.push(row);
        }
    }
    let confirmed: Vec<&str> = confirmations.iter().map(|c| c.step_id.as_str()).collect();
    let waiting_for = if d.state.is_active() {
        events
            .iter()
            .filter(|e| e.kind == "waiting_for_confirmation")
            .filter_map(|e| e.data["step"].as_str())
            .filter(|s| !confirmed.contains(s))
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    Ok(DeploymentView {
        deployment: DeploymentSummary::from(&d),
        approvals: serde_json::to_value(&approvals).unwrap_or(Value::Null),
        risk: d.risk.as_ref().and_then(|r| r.get("risk").cloned()),
        summary: d.summary.clone(),
        grid,
        waiting_for,
        plan_source: d.plan_source.clone(),
        irreversible,
    })
}
