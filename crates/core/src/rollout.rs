//! What a deployment of a plan to one environment would do: the input of `slipway plan` and of
//! the engine.

use std::sync::Arc;

use jiff::Timestamp;

use crate::calendar::{self, CalendarStatus};
use crate::dag;
use crate::diag::did_you_mean;
use crate::plan::select::Selector;
use crate::plan::{Environment, Plan};
use crate::policy::{self, ApprovalRequirement};
use crate::risk::{self, RiskAssessment, RiskInputs};
use crate::strategy::{self, Batches};

#[derive(Debug, Clone)]
pub struct StepRollout {
    /// Index into `plan.steps`.
    pub step: usize,
    /// Indices into the environment's targets, in order; empty for a manual step without `on`.
    pub targets: Arc<[u32]>,
    pub batches: Batches,
}

#[derive(Debug, Clone)]
pub struct Rollout {
    pub environment: String,
    /// Steps in dependency order; each wave may run in parallel.
    pub waves: Vec<Vec<usize>>,
    /// One per plan step, in plan order.
    pub steps: Vec<StepRollout>,
    /// Distinct targets touched by any step.
    pub targets_touched: usize,
    pub irreversible: Vec<usize>,
    pub manual: Vec<usize>,
    pub approvals: ApprovalRequirement,
    pub calendar: CalendarStatus,
    pub risk: RiskAssessment,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    #[error("no environment `{name}` in the plan{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    UnknownEnvironment { name: String, hint: Option<String> },
}

pub fn environment<'p>(plan: &'p Plan, name: &str) -> Result<&'p Environment, RolloutError> {
    plan.environments
        .get(name)
        .ok_or_else(|| RolloutError::UnknownEnvironment {
            name: name.to_string(),
            hint: did_you_mean(name, plan.environments.keys().map(String::as_str)).or_else(|| {
                Some(format!(
                    "environments are: {}",
                    plan.environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
        })
}

/// Plans a deployment of a validated plan to `env_name` at `at`. `history` is this plan's
/// (finished, failed) deployments in the environment, when the record is available.
pub fn plan_rollout(
    plan: &Plan,
    env_name: &str,
    at: Timestamp,
    history: Option<(u32, u32)>,
) -> Result<Rollout, RolloutError> {
    let env = environment(plan, env_name)?;
    let mut selector = Selector::new(env);
    let mut touched = vec![false; env.targets.len()];
    let mut steps = Vec::with_capacity(plan.steps.len());
    for (i, step) in plan.steps.iter().enumerate() {
        let targets: Arc<[u32]> = if step.manual.is_some() && step.on.is_none() {
            Arc::from(Vec::new())
        } else {
            selector.select(step.on.as_deref())
        };
        if step.manual.is_none() {
            for &t in targets.iter() {
                touched[t as usize] = true;
            }
        }
        let batches = strategy::batches(&step.strategy.value, targets.len());
        steps.push(StepRollout {
            step: i,
            targets,
            batches,
        });
    }
    let index: std::collections::HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.value.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = plan
        .steps
        .iter()
        .map(|s| {
            s.needs
                .iter()
                .filter_map(|n| index.get(n.value.as_str()).copied())
                .collect()
        })
        .collect();
    // A validated plan has no cycles; fall back to plan order rather than fail.
    let waves =
        dag::waves(&deps).unwrap_or_else(|_| (0..plan.steps.len()).map(|i| vec![i]).collect());
    let irreversible: Vec<usize> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_irreversible())
        .map(|(i, _)| i)
        .collect();
    let manual: Vec<usize> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.manual.is_some())
        .map(|(i, _)| i)
        .collect();
    let windows: Vec<&calendar::Window> = env.windows.iter().map(|w| &w.value).collect();
    let freezes: Vec<&calendar::Freeze> = env.freezes.iter().map(|f| &f.value).collect();
    let calendar = calendar::status(&windows, &freezes, at);
    let targets_touched = touched.iter().filter(|t| **t).count();
    let risk = risk::assess(&RiskInputs {
        declared: plan
            .risks
            .iter()
            .map(|r| {
                (
                    r.id.value.clone(),
                    u32::try_from(r.likelihood.value.clamp(1, 5)).unwrap_or(1),
                    u32::try_from(r.impact.value.clamp(1, 5)).unwrap_or(1),
                )
            })
            .collect(),
        targets: targets_touched,
        irreversible_steps: irreversible
            .iter()
            .map(|&i| plan.steps[i].id.value.clone())
            .collect(),
        protected: env.protected,
        outside_window: !calendar.in_window,
        in_freeze: calendar.freeze.is_some(),
        history,
    });
    let approvals = policy::approvals_for(env, risk.level);
    Ok(Rollout {
        environment: env_name.to_string(),
        waves,
        steps,
        targets_touched,
        irreversible,
        manual,
        approvals,
        calendar,
        risk,
    })
}
