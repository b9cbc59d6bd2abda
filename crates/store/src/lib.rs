//! Slipway's record: deployments, step runs, the hash-chained audit log, the inventory of releases
//! on targets, environment locks and confirmations.
//!
//! [`Store`] is the seam between the engine and the database. [`SqlStore`] implements it through
//! sqlx's `Any` driver on SQLite (embedded, the default) and on PostgreSQL (`postgres://` URLs):
//! one code path, migrations per backend, and the same conformance suite (`tests/store.rs`).

mod chain;
mod records;
mod sql;

use std::future::Future;

pub use chain::{GENESIS_HASH, event_hash};
pub use records::*;
pub use slipway_core::lifecycle::{DeploymentKind, DeploymentState};
pub use sql::SqlStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the record is inconsistent: {0}")]
    Corrupt(String),
    #[error("deployment #{0} does not exist")]
    NoSuchDeployment(DeploymentId),
    #[error("unsupported database URL `{0}`; use a file path, sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the engine and the server need from the record. Every method that changes state also
/// appends its audit events in the same transaction, so the log never disagrees with the record.
pub trait Store: Send + Sync + 'static {
    fn create_deployment(
        &self,
        new: NewDeployment,
        event: NewEvent,
    ) -> impl Future<Output = Result<Deployment>> + Send;

    fn deployment(
        &self,
        id: DeploymentId,
    ) -> impl Future<Output = Result<Option<Deployment>>> + Send;

    fn deployments(
        &self,
        filter: DeploymentFilter,
    ) -> impl Future<Output = Result<Vec<Deployment>>> + Send;

    /// Moves a deployment from one of `from` to `to`; returns false (and changes nothing) when it is
    /// in another state, so two processes can never both make the same move.
    fn transition(
        &self,
        id: DeploymentId,
        from: &[DeploymentState],
        to: DeploymentState,
        patch: StatePatch,
        event: NewEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn request_cancel(
        &self,
        id: DeploymentId,
        event: NewEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Records intents: the runs are committed before any of them is started.
    fn start_step_runs(
        &self,
        runs: Vec<NewStepRun>,
        event: Option<NewEvent>,
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;

    fn finish_step_runs(
        &self,
        results: Vec<StepRunResult>,
        event: Option<NewEvent>,
    ) -> impl Future<Output = Result<()>> + Send;

    fn step_runs(
        &self,
        deployment: DeploymentId,
    ) -> impl Future<Output = Result<Vec<StepRun>>> + Send;

    fn append_events(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<()>> + Send;

    fn events(&self, filter: EventFilter) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// Walks the whole chain and names the first event that does not match.
    fn verify_chain(&self) -> impl Future<Output = Result<ChainReport>> + Send;

    fn inventory(
        &self,
        environment: Option<&str>,
    ) -> impl Future<Output = Result<Vec<TargetRelease>>> + Send;

    fn set_inventory(
        &self,
        entries: Vec<TargetRelease>,
        event: Option<NewEvent>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Takes the environment lock if it is free, expired, or already ours.
    fn try_lock(&self, lock: Lock, now: i64) -> impl Future<Output = Result<LockOutcome>> + Send;

    /// Replaces a holder known to be dead; false if `old_holder` no longer holds the lock.
    fn take_over_lock(
        &self,
        old_holder: &str,
        lock: Lock,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn renew_lock(
        &self,
        environment: &str,
        holder: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn release_lock(
        &self,
        environment: &str,
        holder: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    fn locks(&self) -> impl Future<Output = Result<Vec<Lock>>> + Send;

    /// Records that `actor` confirmed a manual step; false if it was already confirmed.
    fn confirm_step(
        &self,
        confirmation: Confirmation,
        event: NewEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn confirmations(
        &self,
        deployment: DeploymentId,
    ) -> impl Future<Output = Result<Vec<Confirmation>>> + Send;

    fn upsert_user(&self, user: User, event: NewEvent) -> impl Future<Output = Result<()>> + Send;

    fn user(&self, name: &str) -> impl Future<Output = Result<Option<User>>> + Send;

    fn users(&self) -> impl Future<Output = Result<Vec<User>>> + Send;

    fn create_token(
        &self,
        token: NewToken,
        event: NewEvent,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The live (not revoked, not expired at `now`) token with this hash, and its user.
    fn token_by_hash(
        &self,
        hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<(Token, User)>>> + Send;

    fn tokens(&self, user: Option<&str>) -> impl Future<Output = Result<Vec<Token>>> + Send;

    fn revoke_token(
        &self,
        id: &str,
        at: i64,
        event: NewEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn touch_token(&self, id: &str, at: i64) -> impl Future<Output = Result<()>> + Send;

    fn record_decision(
        &self,
        deployment: DeploymentId,
        decision: Decision,
        event: NewEvent,
    ) -> impl Future<Output = Result<()>> + Send;

    fn decisions(
        &self,
        deployment: DeploymentId,
    ) -> impl Future<Output = Result<Vec<Decision>>> + Send;

    /// Replaces the plan of a deployment that has not started (it must be in one of `from`).
    fn amend_plan(
        &self,
        deployment: DeploymentId,
        from: &[DeploymentState],
        plan_source: String,
        plan_hash: String,
        risk: Option<serde_json::Value>,
        event: NewEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn set_break_glass(
        &self,
        deployment: DeploymentId,
        record: serde_json::Value,
        event: NewEvent,
    ) -> impl Future<Output = Result<bool>> + Send;
}
