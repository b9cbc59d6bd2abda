//! Coordination around the engine: requests go through risk policy, approvals and the calendar
//! before anything runs; decisions, amendments, break-glass and the scheduler move them on. The CLI
//! and the server call these same functions, so the rules hold on every path.

use jiff::Timestamp;
use serde_json::{Value, json};
use slipway_core::calendar::{Freeze, Window};
use slipway_core::coordination::{
    ADMIN_ROLE, ApprovalCase, ApprovalStatus, Decision, Gate, Refusal, gate, next_start,
};
use slipway_core::lifecycle::DeploymentState;
use slipway_core::policy::ApprovalRequirement;
use slipway_core::rollout::plan_rollout;
use slipway_core::{LoadedPlan, Plan};
use slipway_store::{
    Deployment, DeploymentFilter, DeploymentId, NewEvent, StatePatch, Store, User,
};

use crate::engine::{DeployRequest, Engine, EngineError, now_millis};

#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "inside the freeze `{reason}` (until {until}); only an admin's break-glass with a reason can deploy now"
    )]
    Frozen { reason: String, until: Timestamp },
    #[error(
        "the risk policy of `{environment}` blocks deployments at {level} risk (score {score})"
    )]
    Blocked {
        environment: String,
        level: String,
        score: u32,
    },
    #[error("`{0}` has windows, but none opens outside its freezes within a year")]
    NoWindow(String),
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("only an admin may do this")]
    NotAdmin,
    #[error("{0}")]
    Forbidden(String),
    #[error("only the step's owner role `{0}` may confirm it")]
    NotOwner(String),
    #[error("deployment #{id} is {state}; {what}")]
    WrongState {
        id: DeploymentId,
        state: DeploymentState,
        what: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl CoordinationError {
    /// A stable code for the API and for tests.
    pub fn code(&self) -> &'static str {
        match self {
            CoordinationError::Engine(EngineError::Busy { .. }) => "environment_busy",
            CoordinationError::Engine(EngineError::NotFound(_)) => "not_found",
            CoordinationError::Engine(EngineError::Refused(_)) => "refused",
            CoordinationError::Engine(_) => "internal",
            CoordinationError::Frozen { .. } => "frozen",
            CoordinationError::Blocked { .. } => "blocked_by_policy",
            CoordinationError::NoWindow(_) => "no_window",
            CoordinationError::Refused(r) => r.code(),
            CoordinationError::NotAdmin => "admin_only",
            CoordinationError::Forbidden(_) => "forbidden",
            CoordinationError::NotOwner(_) => "not_step_owner",
            CoordinationError::WrongState { .. } => "wrong_state",
            CoordinationError::Invalid(_) => "invalid",
        }
    }
}

pub type CoordinationResult<T> = Result<T, CoordinationError>;

/// Why a deployment is where it is, for people.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Standing {
    pub deployment: Deployment,
    pub approvals: ApprovalStatus,
}

fn calendar_of<'p>(plan: &'p Plan, environment: &str) -> (Vec<&'p Window>, Vec<&'p Freeze>) {
    plan.environments
        .get(environment)
        .map(|e| {
            (
                e.windows.iter().map(|w| &w.value).collect(),
                e.freezes.iter().map(|f| &f.value).collect(),
            )
        })
        .unwrap_or_default()
}

fn ts_millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn is_admin(user: &User) -> bool {
    user.roles.iter().any(|r| r == ADMIN_ROLE)
}

/// The approval requirement recorded with a deployment when it was requested (or amended).
pub fn requirement_of(d: &Deployment) -> ApprovalRequirement {
    let approvals = d.risk.as_ref().and_then(|r| r.get("approvals"));
    let get = |k: &str| {
        approvals
            .and_then(|a| a.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    ApprovalRequirement {
        required: u32::try_from(get("required")).unwrap_or(u32::MAX),
        base: u32::try_from(get("base")).unwrap_or(0),
        from: approvals
            .and_then(|a| a.get("from"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        raised_by: None,
        blocked_by: None,
    }
}

impl<S: Store> Engine<S> {
    /// This plan's finished deployments in the environment, and how many failed or rolled back.
    pub async fn history_of(
        &self,
        environment: &str,
        plan_name: &str,
    ) -> CoordinationResult<(u32, u32)> {
        let past = self
            .store
            .deployments(DeploymentFilter {
                environment: Some(environment.to_string()),
                limit: Some(50),
                without_plan: true,
                ..Default::default()
            })
            .await
            .map_err(EngineError::from)?;
        let finished: Vec<&Deployment> = past
            .iter()
            .filter(|d| d.plan_name == plan_name && d.kind == slipway_store::DeploymentKind::Deploy)
            .filter(|d| {
                matches!(
                    d.state,
                    DeploymentState::Succeeded
                        | DeploymentState::RolledBack
                        | DeploymentState::Failed
                )
            })
            .take(20)
            .collect();
        let failed = finished
            .iter()
            .filter(|d| d.state != DeploymentState::Succeeded)
            .count();
        Ok((
            u32::try_from(finished.len()).unwrap_or(u32::MAX),
            u32::try_from(failed).unwrap_or(u32::MAX),
        ))
    }

    /// The risk assessment and approval requirement of a plan in an environment at `at`.
    async fn assess(
        &self,
        plan: &Plan,
        environment: &str,
        at: Timestamp,
    ) -> CoordinationResult<Value> {
        let history = self
            .history_of(environment, &plan.release.name.value)
            .await?;
        let rollout = plan_rollout(plan, environment, at, Some(history))
            .map_err(|e| CoordinationError::Invalid(e.to_string()))?;
        Ok(json!({"risk": rollout.risk, "approvals": rollout.approvals}))
    }

    /// Requests a deployment. Risk policy may block it; a freeze blocks it unless `break_glass`
    /// (an admin and a reason) is given; it then waits for approvals, for its window or its `at`,
    /// or is queued to start at once.
    pub async fn request(
        &self,
        request: &DeployRequest,
        at: Option<Timestamp>,
        break_glass: Option<(&User, &str)>,
    ) -> CoordinationResult<Deployment> {
        let plan = &request.plan.plan;
        let env = slipway_core::rollout::environment(plan, &request.environment)
            .map_err(|e| CoordinationError::Invalid(e.to_string()))?;
        if let Some((user, reason)) = break_glass {
            if !is_admin(user) {
                return Err(CoordinationError::NotAdmin);
            }
            if reason.trim().is_empty() {
                return Err(CoordinationError::Invalid(
                    "break-glass needs a written reason".into(),
                ));
            }
        }
        let now = Timestamp::now();
        let start = at.map_or(now, |a| a.max(now));
        let assessment = self.assess(plan, &request.environment, start).await?;
        let rollout = plan_rollout(plan, &request.environment, start, None)
            .map_err(|e| CoordinationError::Invalid(e.to_string()))?;
        if let Some(level) = rollout.approvals.blocked_by {
            return Err(CoordinationError::Blocked {
                environment: env.name.value.clone(),
                level: level.as_str().into(),
                score: assessment["risk"]["score"]
                    .as_u64()
                    .and_then(|s| u32::try_from(s).ok())
                    .unwrap_or(0),
            });
        }
        let (windows, freezes) = calendar_of(plan, &request.environment);
        let when = match gate(&windows, &freezes, start, break_glass.is_some()) {
            Gate::Frozen { reason, until } => {
                return Err(CoordinationError::Frozen { reason, until });
            }
            Gate::Never => return Err(CoordinationError::NoWindow(request.environment.clone())),
            Gate::Open => start,
            Gate::Wait { until } => until,
        };
        let required = assessment["approvals"]["required"].as_u64().unwrap_or(0);
        let (state, scheduled_for) = if required > 0 {
            (
                DeploymentState::AwaitingApproval,
                (when > now).then(|| ts_millis(when)),
            )
        } else if when > now {
            (DeploymentState::Scheduled, Some(ts_millis(when)))
        } else {
            (DeploymentState::Queued, None)
        };
        let d = self
            .create_with(
                request,
                state,
                scheduled_for,
                at.filter(|a| *a > now).map(ts_millis),
                Some(assessment.clone()),
            )
            .await?;
        let mut events = Vec::new();
        if let Some((user, reason)) = break_glass {
            let record = json!({"by": user.name, "reason": reason, "at": now_millis()});
            self.store
                .set_break_glass(
                    d.id,
                    record.clone(),
                    NewEvent::new(d.id, now_millis(), "break_glass", &user.name, record),
                )
                .await
                .map_err(EngineError::from)?;
        }
        match state {
            DeploymentState::AwaitingApproval => events.push(NewEvent::new(
                d.id,
                now_millis(),
                "approval_requested",
                &request.requester,
                json!({"required": required, "from": assessment["approvals"]["from"], "risk": assessment["risk"]["level"]}),
            )),
            DeploymentState::Scheduled => events.push(NewEvent::new(d.id, now_millis(), "scheduled", &request.requester, json!({"start": when}))),
            _ => {}
        }
        if !events.is_empty() {
            self.store
                .append_events(events)
                .await
                .map_err(EngineError::from)?;
        }
        Ok(self
            .store
            .deployment(d.id)
            .await
            .map_err(EngineError::from)?
            .ok_or(EngineError::NotFound(d.id))?)
    }

    async fn deployment_or(&self, id: DeploymentId) -> CoordinationResult<Deployment> {
        Ok(self
            .store
            .deployment(id)
            .await
            .map_err(EngineError::from)?
            .ok_or(EngineError::NotFound(id))?)
    }

    fn plan_of(&self, d: &Deployment) -> CoordinationResult<LoadedPlan> {
        slipway_core::load(&d.plan_file, d.plan_source.as_bytes())
            .map_err(|e| CoordinationError::Engine(EngineError::BadSnapshot(d.id, e.to_string())))
    }

    /// Where a deployment's approvals stand.
    pub async fn standing(&self, id: DeploymentId) -> CoordinationResult<Standing> {
        let d = self.deployment_or(id).await?;
        let plan = self.plan_of(&d)?;
        let requirement = requirement_of(&d);
        let decisions = self.store.decisions(id).await.map_err(EngineError::from)?;
        let owner = plan.plan.release.owner.as_ref().map(|o| o.value.clone());
        let case = ApprovalCase {
            requester: &d.requester,
            plan_owner: owner.as_deref(),
            plan_hash: &d.plan_hash,
            requirement: &requirement,
        };
        let approvals = case.status(&decisions);
        Ok(Standing {
            deployment: d,
            approvals,
        })
    }

    /// Approves or rejects, as `user`. A rejection needs a reason. When the quorum is met the
    /// deployment moves on to its window (or starts); a rejection ends it.
    pub async fn decide(
        &self,
        id: DeploymentId,
        user: &User,
        approve: bool,
        reason: Option<&str>,
    ) -> CoordinationResult<Standing> {
        let d = self.deployment_or(id).await?;
        if d.state != DeploymentState::AwaitingApproval {
            return Err(CoordinationError::WrongState {
                id,
                state: d.state,
                what: "only a deployment awaiting approval can be approved or rejected".into(),
            });
        }
        let plan = self.plan_of(&d)?;
        let requirement = requirement_of(&d);
        let decisions = self.store.decisions(id).await.map_err(EngineError::from)?;
        let owner = plan.plan.release.owner.as_ref().map(|o| o.value.clone());
        let case = ApprovalCase {
            requester: &d.requester,
            plan_owner: owner.as_deref(),
            plan_hash: &d.plan_hash,
            requirement: &requirement,
        };
        case.may_decide(&user.name, &user.roles, approve, reason, &decisions)?;
        let decision = Decision {
            approver: user.name.clone(),
            approve,
            reason: reason.map(str::to_string).filter(|r| !r.trim().is_empty()),
            plan_hash: d.plan_hash.clone(),
            at: now_millis(),
        };
        let kind = if approve { "approved" } else { "rejected" };
        self.store
            .record_decision(
                id,
                decision.clone(),
                NewEvent::new(
                    id,
                    decision.at,
                    kind,
                    &user.name,
                    json!({"reason": decision.reason, "plan_hash": d.plan_hash}),
                ),
            )
            .await
            .map_err(EngineError::from)?;
        let mut all = decisions;
        all.push(decision);
        let status = case.status(&all);
        if let Some((who, why)) = &status.rejected {
            let summary = json!({"outcome": "rejected", "by": who, "reason": why});
            self.store
                .transition(
                    id,
                    &[DeploymentState::AwaitingApproval],
                    DeploymentState::Rejected,
                    StatePatch {
                        finished_at: Some(now_millis()),
                        summary: Some(summary.clone()),
                        ..Default::default()
                    },
                    NewEvent::new(id, now_millis(), "deployment_rejected", who, summary),
                )
                .await
                .map_err(EngineError::from)?;
        } else if status.satisfied {
            self.release(id, &user.name).await?;
        }
        self.standing(id).await
    }

    /// Moves an approved (or ungated) deployment to `queued` or `scheduled` by its calendar.
    async fn release(&self, id: DeploymentId, actor: &str) -> CoordinationResult<()> {
        let d = self.deployment_or(id).await?;
        let plan = self.plan_of(&d)?;
        let (windows, freezes) = calendar_of(&plan.plan, &d.environment);
        let now = Timestamp::now();
        // Only an explicit `at` holds it back; a window-derived start is recomputed here.
        let not_before = d
            .params
            .get("not_before")
            .and_then(Value::as_i64)
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .filter(|t| *t > now);
        let from = not_before.unwrap_or(now);
        let glass = d.break_glass.is_some();
        let start = match gate(&windows, &freezes, from, glass) {
            Gate::Open => from,
            Gate::Wait { until } => until,
            // Approved during a freeze: it waits for the first window after it.
            Gate::Frozen { until, .. } => next_start(&windows, &freezes, until).unwrap_or(until),
            Gate::Never => return Err(CoordinationError::NoWindow(d.environment.clone())),
        };
        let (to, kind, data) = if start > now {
            (
                DeploymentState::Scheduled,
                "scheduled",
                json!({"start": start}),
            )
        } else {
            (DeploymentState::Queued, "queued", json!({}))
        };
        self.store
            .transition(
                id,
                &[d.state],
                to,
                StatePatch {
                    scheduled_for: (start > now).then(|| ts_millis(start)),
                    ..Default::default()
                },
                NewEvent::new(id, now_millis(), kind, actor, data),
            )
            .await
            .map_err(EngineError::from)?;
        Ok(())
    }

    /// Replaces the plan of a deployment that has not started. Approvals given on the old plan
    /// no longer count: it goes back to awaiting approval if the environment requires any.
    pub async fn amend(
        &self,
        id: DeploymentId,
        plan: &LoadedPlan,
        user: &User,
    ) -> CoordinationResult<Standing> {
        let d = self.deployment_or(id).await?;
        let open = [
            DeploymentState::AwaitingApproval,
            DeploymentState::Scheduled,
            DeploymentState::Queued,
        ];
        if !open.contains(&d.state) {
            return Err(CoordinationError::WrongState {
                id,
                state: d.state,
                what: "only a deployment that has not started can be amended".into(),
            });
        }
        if user.name != d.requester && !is_admin(user) {
            return Err(CoordinationError::Forbidden(format!(
                "only the requester ({}) or an admin may amend deployment #{id}",
                d.requester
            )));
        }
        slipway_core::rollout::environment(&plan.plan, &d.environment)
            .map_err(|e| CoordinationError::Invalid(e.to_string()))?;
        let assessment = self
            .assess(&plan.plan, &d.environment, Timestamp::now())
            .await?;
        let voided = self
            .store
            .decisions(id)
            .await
            .map_err(EngineError::from)?
            .iter()
            .filter(|x| x.plan_hash == d.plan_hash)
            .count();
        self.store
            .amend_plan(
                id,
                &open,
                plan.source.text().to_string(),
                plan.hash.clone(),
                Some(assessment.clone()),
                NewEvent::new(id, now_millis(), "plan_amended", &user.name, json!({"old_hash": d.plan_hash, "new_hash": plan.hash, "approvals_voided": voided})),
            )
            .await
            .map_err(EngineError::from)?;
        let required = assessment["approvals"]["required"].as_u64().unwrap_or(0);
        if required > 0 && d.state != DeploymentState::AwaitingApproval {
            self.store
                .transition(
                    id,
                    &[d.state],
                    DeploymentState::AwaitingApproval,
                    StatePatch::default(),
                    NewEvent::new(
                        id,
                        now_millis(),
                        "approval_requested",
                        &user.name,
                        json!({"required": required, "reason": "the plan changed"}),
                    ),
                )
                .await
                .map_err(EngineError::from)?;
        }
        self.standing(id).await
    }

    /// An admin lets a deployment through freezes and windows, with a written reason. Approvals
    /// are still required.
    pub async fn break_glass(
        &self,
        id: DeploymentId,
        user: &User,
        reason: &str,
    ) -> CoordinationResult<Deployment> {
        if !is_admin(user) {
            return Err(CoordinationError::NotAdmin);
        }
        if reason.trim().is_empty() {
            return Err(CoordinationError::Invalid(
                "break-glass needs a written reason".into(),
            ));
        }
        let d = self.deployment_or(id).await?;
        if d.state.is_final() || d.state.is_active() {
            return Err(CoordinationError::WrongState {
                id,
                state: d.state,
                what: "break-glass applies to a deployment that has not started".into(),
            });
        }
        let record = json!({"by": user.name, "reason": reason, "at": now_millis()});
        self.store
            .set_break_glass(
                id,
                record.clone(),
                NewEvent::new(id, now_millis(), "break_glass", &user.name, record),
            )
            .await
            .map_err(EngineError::from)?;
        if d.state == DeploymentState::Scheduled {
            self.release(id, &user.name).await?;
        }
        self.deployment_or(id).await
    }

    /// Confirms a manual step as `user`, who must hold the step's owner role.
    pub async fn confirm_as(
        &self,
        id: DeploymentId,
        step: &str,
        user: &User,
    ) -> CoordinationResult<bool> {
        let d = self.deployment_or(id).await?;
        let plan = self.plan_of(&d)?;
        let step_id = step.split('#').next().unwrap_or(step);
        let Some(s) = plan.plan.steps.iter().find(|s| s.id.value == step_id) else {
            return Err(CoordinationError::Invalid(format!(
                "deployment #{id} has no step `{step_id}`"
            )));
        };
        if let Some(owner) = &s.owner
            && !user.roles.iter().any(|r| r == &owner.value)
        {
            return Err(CoordinationError::NotOwner(owner.value.clone()));
        }
        Ok(self.confirm(id, step, &user.name).await?)
    }

    /// The scheduler's turn: scheduled deployments whose time has come are queued (or moved to
    /// their next window if a freeze or a closed window holds them). Returns those queued.
    pub async fn tick(&self) -> CoordinationResult<Vec<DeploymentId>> {
        let due = self
            .store
            .deployments(DeploymentFilter {
                states: vec![DeploymentState::Scheduled],
                ..Default::default()
            })
            .await
            .map_err(EngineError::from)?;
        let now = now_millis();
        let mut queued = Vec::new();
        for d in due
            .into_iter()
            .filter(|d| d.scheduled_for.is_none_or(|t| t <= now))
        {
            self.release(d.id, "scheduler").await?;
            if self.deployment_or(d.id).await?.state == DeploymentState::Queued {
                queued.push(d.id);
            }
        }
        Ok(queued)
    }

    /// Queued deployments a worker should run (those a command line is not running itself).
    pub async fn runnable(&self) -> CoordinationResult<Vec<Deployment>> {
        let mut queued = self
            .store
            .deployments(DeploymentFilter {
                states: vec![DeploymentState::Queued],
                ..Default::default()
            })
            .await
            .map_err(EngineError::from)?;
        queued.retain(|d| d.params.get("origin").and_then(Value::as_str) != Some("cli"));
        queued.reverse();
        Ok(queued)
    }
}
