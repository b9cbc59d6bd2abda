//! What the store keeps. Times are Unix milliseconds; ids are database-assigned integers.

use serde::Serialize;
use slipway_core::lifecycle::{DeploymentKind, DeploymentState};

pub type DeploymentId = i64;

/// A deployment as recorded: the plan snapshot it runs and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub kind: DeploymentKind,
    pub environment: String,
    pub plan_name: String,
    pub plan_file: String,
    pub plan_hash: String,
    /// The plan text exactly as checked; secrets are references, never values.
    #[serde(skip)]
    pub plan_source: String,
    pub version: Option<String>,
    pub requester: String,
    pub state: DeploymentState,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub scheduled_for: Option<i64>,
    /// For a rollback, the deployment whose release it undoes.
    pub rollback_of: Option<DeploymentId>,
    /// Outcome report as JSON (per-target releases, failure reason), written when it ends.
    pub summary: Option<serde_json::Value>,
    pub cancel_requested: bool,
    /// Free-form parameters (for example the release a rollback returns to).
    pub params: serde_json::Value,
    /// Set when an admin let it through a freeze: who, when and why.
    pub break_glass: Option<serde_json::Value>,
    /// The risk assessment made when it was requested.
    pub risk: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub kind: DeploymentKind,
    pub environment: String,
    pub plan_name: String,
    pub plan_file: String,
    pub plan_hash: String,
    pub plan_source: String,
    pub version: Option<String>,
    pub requester: String,
    pub state: DeploymentState,
    pub created_at: i64,
    pub scheduled_for: Option<i64>,
    pub rollback_of: Option<DeploymentId>,
    pub params: serde_json::Value,
    pub risk: Option<serde_json::Value>,
}

/// Which deployments to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeploymentFilter {
    pub environment: Option<String>,
    pub states: Vec<DeploymentState>,
    pub limit: Option<u32>,
    /// Leave out the plan text (`plan_source` comes back empty): for lists that never run it.
    pub without_plan: bool,
}

/// Fields set together with a state change.
#[derive(Debug, Clone, Default)]
pub struct StatePatch {
    pub scheduled_for: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub summary: Option<serde_json::Value>,
}

/// One attempt of one phase of one step on one target. Recorded as an intent before it starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRun {
    pub id: i64,
    pub deployment_id: DeploymentId,
    pub step_id: String,
    pub target: String,
    /// `preflight`, `run`, `switch`, `activate`, `validate`, `rollback`, `restore`, `manual`.
    pub phase: String,
    pub attempt: i32,
    /// `started`, `succeeded`, `failed`, `timed_out`, `skipped`, `unknown` (interrupted).
    pub state: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    /// Output with secrets masked, kept to its last part when long.
    pub output: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewStepRun {
    pub deployment_id: DeploymentId,
    pub step_id: String,
    pub target: String,
    pub phase: String,
    pub attempt: i32,
    pub started_at: i64,
}

#[derive(Debug, Clone)]
pub struct StepRunResult {
    pub id: i64,
    pub state: String,
    pub finished_at: i64,
    pub exit_code: Option<i32>,
    pub output: String,
    pub message: Option<String>,
}

/// An entry of the append-only, hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: i64,
    pub deployment_id: Option<DeploymentId>,
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub deployment_id: Option<DeploymentId>,
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(
        deployment_id: impl Into<Option<DeploymentId>>,
        at: i64,
        kind: impl Into<String>,
        actor: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        NewEvent {
            deployment_id: deployment_id.into(),
            at,
            kind: kind.into(),
            actor: actor.into(),
            data,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub deployment_id: Option<DeploymentId>,
    pub after_seq: Option<i64>,
    pub limit: Option<u32>,
}

/// Result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    pub events: i64,
    /// The first event whose hash or link does not match, with what was wrong.
    pub first_bad: Option<(i64, String)>,
}

/// Which release a target runs, and which earlier ones it still keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRelease {
    pub environment: String,
    pub target: String,
    pub current: Option<String>,
    pub previous: Option<String>,
    /// Releases kept on the target, oldest first (the current one included).
    pub kept: Vec<String>,
    pub deployment_id: Option<DeploymentId>,
    pub updated_at: i64,
}

/// The environment lock: one deployment per environment, held under a lease.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lock {
    pub environment: String,
    pub holder: String,
    pub deployment_id: Option<DeploymentId>,
    pub pid: i64,
    pub host: String,
    pub acquired_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LockOutcome {
    Acquired,
    /// Someone else holds it; here is who.
    Held(Lock),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confirmation {
    pub deployment_id: DeploymentId,
    pub step_id: String,
    pub actor: String,
    pub at: i64,
}

/// A person who uses Slipway, with the roles that say what they may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub disabled: bool,
}

/// An API token as recorded; the token itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub user: String,
    pub name: String,
    pub hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

pub use slipway_core::coordination::Decision;
