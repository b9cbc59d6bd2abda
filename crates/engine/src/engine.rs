//! The engine's front door: create deployments, run them under the environment lock, roll back on
//! demand, cancel, confirm, and recover deployments whose process died.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use slipway_core::LoadedPlan;
use slipway_core::lifecycle::{DeploymentKind, DeploymentState};
use slipway_core::plan::{Connection, Target};
use slipway_store::{
    Confirmation, Deployment, DeploymentFilter, DeploymentId, Lock, LockOutcome, NewDeployment,
    NewEvent, Store, StoreError,
};

use crate::failpoint::Failpoints;
use crate::host::Host;
use crate::host::local::LocalHost;
use crate::progress::Observer;
use crate::secrets::Secrets;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Slipway's data directory; local targets without an absolute `root` live under it.
    pub data_dir: PathBuf,
    /// How long the environment lock holds without a heartbeat.
    pub lease: Duration,
    /// Independent steps run at once.
    pub step_concurrency: usize,
    /// Targets of one batch run at once.
    pub target_concurrency: usize,
    /// First retry delay; doubles per attempt up to 30 s.
    pub retry_backoff: Duration,
    /// How often waits (manual steps, confirmations, cancels) look at the record.
    pub poll: Duration,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            lease: Duration::from_secs(30),
            step_concurrency: 4,
            target_concurrency: 100,
            retry_backoff: Duration::from_secs(1),
            poll: Duration::from_millis(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "environment `{environment}` is busy: deployment #{deployment} holds its lock ({holder}); one deployment per environment at a time"
    )]
    Busy {
        environment: String,
        deployment: String,
        holder: String,
    },
    #[error("deployment #{0} does not exist")]
    NotFound(DeploymentId),
    #[error("{0}")]
    Refused(String),
    #[error("the plan recorded for deployment #{0} no longer loads: {1}")]
    BadSnapshot(DeploymentId, String),
}

pub type EngineResult<T> = Result<T, EngineError>;

/// Identifies this process as a lock holder.
#[derive(Debug, Clone)]
pub struct Holder {
    pub id: String,
    pub pid: i64,
    pub host: String,
}

impl Holder {
    pub fn this_process() -> Holder {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        let pid = i64::from(std::process::id());
        let nonce = now_millis();
        Holder {
            id: format!("{host}:{pid}:{nonce}"),
            pid,
            host,
        }
    }

    /// Is the process that holds `lock` known to be gone? Only answerable on the same host.
    pub fn is_dead(&self, lock: &Lock) -> bool {
        if lock.host != self.host {
            return false;
        }
        let Ok(pid) = i32::try_from(lock.pid) else {
            return true;
        };
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            Ok(()) => false,
            Err(nix::errno::Errno::EPERM) => false,
            Err(_) => true,
        }
    }
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A deployment to create from a checked plan.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub plan: LoadedPlan,
    /// The plan file; relative artifact and secret paths are found next to it.
    pub plan_file: PathBuf,
    pub environment: String,
    pub version: Option<String>,
    pub requester: String,
    /// Who runs it: `cli` (this process, now) or `server` (a worker, when its time comes).
    pub origin: String,
}

/// Opens targets: local directories here, SSH hosts over shared connections.
pub trait HostFactory: Send + Sync {
    fn open(&self, environment: &str, target: &Target) -> Result<Arc<dyn Host>, String>;
}

/// Local targets only; the default, and what the demo uses.
pub struct LocalHosts {
    data_dir: PathBuf,
}

impl LocalHosts {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        LocalHosts {
            data_dir: data_dir.into(),
        }
    }

    /// A local target's directory: its `root` (relative roots under the data directory), or
    /// `targets/<environment>/<target>` under the data directory.
    pub fn root_of(data_dir: &Path, environment: &str, target: &Target) -> PathBuf {
        match &target.root {
            Some(r) if Path::new(&r.value).is_absolute() => PathBuf::from(&r.value),
            Some(r) => data_dir.join(&r.value),
            None => data_dir
                .join("targets")
                .join(environment)
                .join(&target.name.value),
        }
    }
}

impl HostFactory for LocalHosts {
    fn open(&self, environment: &str, target: &Target) -> Result<Arc<dyn Host>, String> {
        match &target.connection {
            Connection::Local => Ok(Arc::new(LocalHost::new(
                target.name.value.clone(),
                Self::root_of(&self.data_dir, environment, target),
            ))),
            Connection::Ssh(a) => Err(format!(
                "target {} is reached over SSH ({}@{}), which this engine was not set up for",
                target.name.value, a.user, a.host
            )),
            Connection::Agent { name } => Err(format!(
                "target {} is reached by the agent `{name}`, which needs `slipway serve`",
                target.name.value
            )),
        }
    }
}

pub struct Engine<S: Store> {
    pub(crate) store: Arc<S>,
    pub(crate) config: EngineConfig,
    pub(crate) hosts: Arc<dyn HostFactory>,
    pub(crate) failpoints: Failpoints,
    pub(crate) holder: Holder,
    pub(crate) http: reqwest::Client,
}

impl<S: Store> Engine<S> {
    pub fn new(store: Arc<S>, config: EngineConfig, hosts: Arc<dyn HostFactory>) -> Self {
        Engine {
            store,
            config,
            hosts,
            failpoints: Failpoints::from_env(),
            holder: Holder::this_process(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::limited(5))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn with_failpoints(mut self, failpoints: Failpoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Records a new deployment through the coordination rules (risk policy, freezes, approvals,
    /// windows); it starts queued only if nothing holds it back.
    pub async fn create(&self, request: &DeployRequest) -> EngineResult<Deployment> {
        self.request(request, None, None)
            .await
            .map_err(|e| match e {
                crate::coordinator::CoordinationError::Engine(e) => e,
                other => EngineError::Refused(other.to_string()),
            })
    }

    /// Writes the deployment record in `state`.
    pub(crate) async fn create_with(
        &self,
        request: &DeployRequest,
        state: DeploymentState,
        scheduled_for: Option<i64>,
        not_before: Option<i64>,
        risk: Option<serde_json::Value>,
    ) -> EngineResult<Deployment> {
        let plan = &request.plan;
        let version = request
            .version
            .clone()
            .or_else(|| plan.plan.release.version.as_ref().map(|v| v.value.clone()));
        let now = now_millis();
        let plan_file =
            std::fs::canonicalize(&request.plan_file).unwrap_or_else(|_| request.plan_file.clone());
        // Only a deployment that can start at once is run by the process that asked for it;
        // the others are started by a worker (or `slipway start`) when their time comes.
        let origin = if state == DeploymentState::Queued {
            request.origin.as_str()
        } else {
            "worker"
        };
        let d = self
            .store
            .create_deployment(
                NewDeployment {
                    kind: DeploymentKind::Deploy,
                    environment: request.environment.clone(),
                    plan_name: plan.plan.release.name.value.clone(),
                    plan_file: plan_file.display().to_string(),
                    plan_hash: plan.hash.clone(),
                    plan_source: plan.source.text().to_string(),
                    version: version.clone(),
                    requester: request.requester.clone(),
                    state,
                    created_at: now,
                    scheduled_for,
                    rollback_of: None,
                    params: json!({"origin": origin, "not_before": not_before}),
                    risk,
                },
                NewEvent::new(
                    None,
                    now,
                    "deployment_created",
                    &request.requester,
                    json!({"environment": request.environment, "version": version, "plan_hash": plan.hash, "plan": plan.plan.release.name.value, "state": state.as_str()}),
                ),
            )
            .await?;
        Ok(d)
    }

    /// A lock request with a holder id of its own: two runs in one process are two holders.
    fn lock_request(&self, environment: &str, deployment: DeploymentId) -> Lock {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = now_millis();
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        Lock {
            environment: environment.to_string(),
            holder: format!("{}:{run}", self.holder.id),
            deployment_id: Some(deployment),
            pid: self.holder.pid,
            host: self.holder.host.clone(),
            acquired_at: now,
            expires_at: now + lease_millis(self.config.lease),
        }
    }

    fn busy(&self, held: &Lock, interrupted: bool) -> EngineError {
        let mut holder = format!("process {} on {}", held.pid, held.host);
        if interrupted {
            holder.push_str(", which died; `slipway resume` finishes its deployment");
        }
        EngineError::Busy {
            environment: held.environment.clone(),
            deployment: held.deployment_id.map_or("?".into(), |d| d.to_string()),
            holder,
        }
    }

    /// Takes the environment lock for a new run of `deployment`, or says who holds it. A lock left
    /// by a finished deployment is free; one whose deployment is unfinished is not, even if its
    /// holder died, until that deployment has been recovered.
    pub(crate) async fn lock(
        &self,
        environment: &str,
        deployment: DeploymentId,
    ) -> EngineResult<Lease> {
        let lock = self.lock_request(environment, deployment);
        let holder = lock.holder.clone();
        let held = self
            .store
            .locks()
            .await?
            .into_iter()
            .find(|l| l.environment == environment);
        if let Some(held) = held {
            let owner = match held.deployment_id {
                Some(id) => self.store.deployment(id).await?,
                None => None,
            };
            if owner
                .as_ref()
                .is_some_and(|d| !d.state.is_final() && d.id != deployment)
            {
                let interrupted = self.holder.is_dead(&held) || held.expires_at < now_millis();
                return Err(self.busy(&held, interrupted));
            }
            if !self.store.take_over_lock(&held.holder, lock).await? {
                return Err(self.busy(&held, false));
            }
        } else if let LockOutcome::Held(held) = self.store.try_lock(lock, now_millis()).await? {
            return Err(self.busy(&held, false));
        }
        Ok(Lease::start(
            self.store.clone(),
            environment.to_string(),
            holder,
            self.config.lease,
        ))
    }

    /// Takes the lock of an interrupted deployment whose holder is dead or whose lease ran out.
    pub(crate) async fn lock_for_recovery(
        &self,
        environment: &str,
        deployment: DeploymentId,
    ) -> EngineResult<Option<Lease>> {
        let lock = self.lock_request(environment, deployment);
        let holder = lock.holder.clone();
        let held = self
            .store
            .locks()
            .await?
            .into_iter()
            .find(|l| l.environment == environment);
        let taken = match held {
            None => matches!(
                self.store.try_lock(lock, now_millis()).await?,
                LockOutcome::Acquired
            ),
            Some(h)
                if self.holder.is_dead(&h)
                    || h.expires_at < now_millis()
                    || h.deployment_id != Some(deployment) =>
            {
                // A lock held for another deployment while this one is unfinished can only be a
                // leftover; the live holder of this deployment would hold it itself.
                let other_live = h.deployment_id != Some(deployment)
                    && !self.holder.is_dead(&h)
                    && h.expires_at >= now_millis();
                if other_live {
                    false
                } else {
                    self.store.take_over_lock(&h.holder, lock).await?
                }
            }
            Some(_) => false,
        };
        Ok(taken.then(|| {
            Lease::start(
                self.store.clone(),
                environment.to_string(),
                holder,
                self.config.lease,
            )
        }))
    }

    /// Runs a queued deployment to its end, holding the environment lock throughout.
    pub async fn run(
        &self,
        id: DeploymentId,
        secrets: Secrets,
        observer: &dyn Observer,
    ) -> EngineResult<Deployment> {
        let d = self
            .store
            .deployment(id)
            .await?
            .ok_or(EngineError::NotFound(id))?;
        if d.state != DeploymentState::Queued {
            return Err(EngineError::Refused(format!(
                "deployment #{id} is {}, not queued",
                d.state
            )));
        }
        // Defence in depth: the approvals must hold for the plan as it is now.
        if crate::coordinator::requirement_of(&d).required > 0 {
            let standing = self
                .standing(id)
                .await
                .map_err(|e| EngineError::Refused(e.to_string()))?;
            if !standing.approvals.satisfied {
                return Err(EngineError::Refused(format!(
                    "deployment #{id} lacks approvals for its current plan ({} of {})",
                    standing.approvals.approvers.len(),
                    standing.approvals.required
                )));
            }
        }
        let lease = self.lock(&d.environment, id).await?;
        let rollback_to = d
            .params
            .get("to")
            .and_then(|t| t.as_str())
            .map(str::to_string);
        let kind = d.kind;
        let result =
            match crate::run::Run::prepare(self, d, secrets, observer, lease.lost.clone()).await {
                Ok(run) => match (kind, rollback_to) {
                    (DeploymentKind::Rollback, Some(to)) => run.roll_back_to(&to).await,
                    _ => run.forward().await,
                },
                Err(e) => Err(e),
            };
        lease.release().await;
        result?;
        self.store
            .deployment(id)
            .await?
            .ok_or(EngineError::NotFound(id))
    }

    /// Creates and runs a deployment.
    pub async fn deploy(
        &self,
        request: &DeployRequest,
        secrets: Secrets,
        observer: &dyn Observer,
    ) -> EngineResult<Deployment> {
        let d = self.create(request).await?;
        self.run(d.id, secrets, observer).await
    }

    /// Asks a running deployment to stop and roll back; a queued one is cancelled at once.
    pub async fn cancel(&self, id: DeploymentId, actor: &str) -> EngineResult<Deployment> {
        let d = self
            .store
            .deployment(id)
            .await?
            .ok_or(EngineError::NotFound(id))?;
        if d.state.is_final() {
            return Err(EngineError::Refused(format!(
                "deployment #{id} already ended ({})",
                d.state
            )));
        }
        let now = now_millis();
        if matches!(
            d.state,
            DeploymentState::Queued
                | DeploymentState::Scheduled
                | DeploymentState::AwaitingApproval
        ) {
            self.store
                .transition(
                    id,
                    &[d.state],
                    DeploymentState::Cancelled,
                    slipway_store::StatePatch {
                        finished_at: Some(now),
                        summary: Some(
                            json!({"reason": format!("cancelled by {actor} before it started")}),
                        ),
                        ..Default::default()
                    },
                    NewEvent::new(id, now, "cancelled", actor, json!({"before_start": true})),
                )
                .await?;
        } else {
            self.store
                .request_cancel(
                    id,
                    NewEvent::new(id, now, "cancel_requested", actor, json!({})),
                )
                .await?;
        }
        self.store
            .deployment(id)
            .await?
            .ok_or(EngineError::NotFound(id))
    }

    /// Ends a deployment that never started (its run was refused), with the reason.
    pub async fn abandon(&self, id: DeploymentId, reason: &str) -> EngineResult<()> {
        let now = now_millis();
        let summary = json!({"outcome": "cancelled", "reason": reason});
        self.store
            .transition(
                id,
                &[DeploymentState::Queued],
                DeploymentState::Cancelled,
                slipway_store::StatePatch {
                    finished_at: Some(now),
                    summary: Some(summary.clone()),
                    ..Default::default()
                },
                NewEvent::new(id, now, "deployment_refused", "slipway", summary),
            )
            .await?;
        Ok(())
    }

    /// Confirms a manual step (or a canary pause) of a running deployment.
    pub async fn confirm(&self, id: DeploymentId, step: &str, actor: &str) -> EngineResult<bool> {
        let d = self
            .store
            .deployment(id)
            .await?
            .ok_or(EngineError::NotFound(id))?;
        if d.state.is_final() {
            return Err(EngineError::Refused(format!(
                "deployment #{id} already ended ({})",
                d.state
            )));
        }
        let now = now_millis();
        Ok(self
            .store
            .confirm_step(
                Confirmation {
                    deployment_id: id,
                    step_id: step.to_string(),
                    actor: actor.to_string(),
                    at: now,
                },
                NewEvent::new(id, now, "step_confirmed", actor, json!({"step": step})),
            )
            .await?)
    }

    /// Deployments that are not finished, newest first.
    pub async fn unfinished(&self) -> EngineResult<Vec<Deployment>> {
        Ok(self
            .store
            .deployments(DeploymentFilter {
                states: vec![
                    DeploymentState::Queued,
                    DeploymentState::Running,
                    DeploymentState::RollingBack,
                ],
                ..Default::default()
            })
            .await?)
    }
}

pub(crate) fn lease_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The held environment lock, renewed in the background until released.
pub(crate) struct Lease {
    store_release: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>,
    heartbeat: tokio::task::JoinHandle<()>,
    pub lost: Arc<AtomicBool>,
}

impl Lease {
    fn start<S: Store>(
        store: Arc<S>,
        environment: String,
        holder: String,
        lease: Duration,
    ) -> Lease {
        let lost = Arc::new(AtomicBool::new(false));
        let (s, env, h, flag) = (
            store.clone(),
            environment.clone(),
            holder.clone(),
            lost.clone(),
        );
        let heartbeat = tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                let expires = now_millis() + lease_millis(lease);
                match s.renew_lock(&env, &h, expires).await {
                    Ok(true) => {}
                    Ok(false) => {
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A busy database is not a lost lease; try again next beat.
                    Err(_) => {}
                }
            }
        });
        Lease {
            store_release: Box::new(move || {
                Box::pin(async move {
                    let _ = store.release_lock(&environment, &holder).await;
                })
            }),
            heartbeat,
            lost,
        }
    }

    pub async fn release(self) {
        self.heartbeat.abort();
        (self.store_release)().await;
    }
}
