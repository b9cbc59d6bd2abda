//! Finishing what dead processes left, and rolling an environment back on request.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;
use slipway_core::lifecycle::{DeploymentKind, DeploymentState};
use slipway_store::{Deployment, NewDeployment, NewEvent, StatePatch, Store};

use crate::engine::{Engine, EngineError, EngineResult, lease_millis, now_millis};
use crate::host::Host;
use crate::progress::Observer;
use crate::run::Run;
use crate::secrets::Secrets;

impl<S: Store> Engine<S> {
    /// Secrets as this process can read them; a recovery must not fail for want of one, so an
    /// unreadable secret becomes empty and the compensation that needs it may fail visibly.
    pub fn secrets_for(&self, d: &Deployment) -> Secrets {
        let Ok(loaded) = slipway_core::load(&d.plan_file, d.plan_source.as_bytes()) else {
            return Secrets::default();
        };
        let base = Path::new(&d.plan_file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Secrets::resolve(&loaded.plan, &base, &|v| std::env::var(v).ok()).unwrap_or_else(|_| {
            let pairs = loaded
                .plan
                .secrets
                .keys()
                .map(|k| (k.clone(), std::env::var(k).unwrap_or_default()))
                .collect();
            Secrets::from_pairs(pairs)
        })
    }

    /// Drives every deployment whose process died to a final state. Deployments that a live
    /// process still holds are left alone. Returns the deployments it finished.
    pub async fn recover(&self, observer: &dyn Observer) -> EngineResult<Vec<Deployment>> {
        let mut finished = Vec::new();
        for d in self.unfinished().await? {
            match d.state {
                DeploymentState::Running | DeploymentState::RollingBack => {
                    let Some(lease) = self.lock_for_recovery(&d.environment, d.id).await? else {
                        continue;
                    };
                    let secrets = self.secrets_for(&d);
                    let id = d.id;
                    let result =
                        match Run::prepare(self, d, secrets, observer, lease.lost.clone()).await {
                            Ok(run) => run.recover().await,
                            Err(e) => Err(e),
                        };
                    lease.release().await;
                    result?;
                    if let Some(d) = self.store.deployment(id).await? {
                        finished.push(d);
                    }
                }
                DeploymentState::Queued
                    if d.params.get("origin").and_then(|o| o.as_str()) == Some("cli") =>
                {
                    // Created by a command line that died before it took the lock.
                    let stale = d.created_at + lease_millis(self.config.lease) < now_millis();
                    let locked = self
                        .store
                        .locks()
                        .await?
                        .iter()
                        .any(|l| l.deployment_id == Some(d.id));
                    if stale && !locked {
                        let summary = json!({"outcome": "cancelled", "reason": "interrupted before it started; nothing changed"});
                        self.store
                            .transition(
                                d.id,
                                &[DeploymentState::Queued],
                                DeploymentState::Cancelled,
                                StatePatch {
                                    finished_at: Some(now_millis()),
                                    summary: Some(summary.clone()),
                                    ..Default::default()
                                },
                                NewEvent::new(
                                    d.id,
                                    now_millis(),
                                    "deployment_cancelled",
                                    "slipway",
                                    summary,
                                ),
                            )
                            .await?;
                        if let Some(d) = self.store.deployment(d.id).await? {
                            finished.push(d);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(finished)
    }

    /// Records a rollback of `environment` to an earlier release still kept on its targets: `to`,
    /// or the release each target ran before the current one. Refused before any target is
    /// touched when that release is gone from any target. It is queued; `origin` says who runs it.
    pub async fn request_rollback(
        &self,
        environment: &str,
        to: Option<&str>,
        requester: &str,
        origin: &str,
    ) -> EngineResult<Deployment> {
        let inventory = self.store.inventory(Some(environment)).await?;
        let refuse = |msg: String| async move {
            let _ = self
                .store
                .append_events(vec![NewEvent::new(
                    None,
                    now_millis(),
                    "rollback_refused",
                    requester,
                    json!({"environment": environment, "reason": msg}),
                )])
                .await;
            EngineError::Refused(msg)
        };
        let Some(source_id) = inventory.iter().filter_map(|r| r.deployment_id).max() else {
            return Err(refuse(format!("nothing has been deployed to `{environment}` yet")).await);
        };
        let source = self
            .store
            .deployment(source_id)
            .await?
            .ok_or(EngineError::NotFound(source_id))?;
        let current: BTreeSet<String> =
            inventory.iter().filter_map(|r| r.current.clone()).collect();
        let to = match to {
            Some(v) => v.to_string(),
            None => {
                let previous: BTreeSet<String> = inventory
                    .iter()
                    .filter_map(|r| r.previous.clone())
                    .collect();
                match previous.len() {
                    1 => previous.into_iter().next().unwrap_or_default(),
                    0 => return Err(refuse(format!("`{environment}` has no earlier release to return to")).await),
                    _ => return Err(refuse(format!("targets of `{environment}` ran different releases before ({}); choose one with --to", previous.into_iter().collect::<Vec<_>>().join(", "))).await),
                }
            }
        };
        if current.len() == 1 && current.contains(&to) {
            return Err(refuse(format!("`{environment}` already runs {to}")).await);
        }
        let loaded = slipway_core::load(&source.plan_file, source.plan_source.as_bytes())
            .map_err(|e| EngineError::BadSnapshot(source.id, e.to_string()))?;
        let env = slipway_core::rollout::environment(&loaded.plan, environment)
            .map_err(|e| EngineError::Refused(e.to_string()))?;
        // Preflight: the release to return to must still be kept on every target that has it.
        let mut missing = Vec::new();
        for record in &inventory {
            let Some(target) = env.targets.iter().find(|t| t.name.value == record.target) else {
                continue;
            };
            let host: std::sync::Arc<dyn Host> = match self.hosts.open(environment, target) {
                Ok(h) => h,
                Err(e) => {
                    missing.push(e);
                    continue;
                }
            };
            for step in loaded.plan.steps.iter().filter(|s| s.release_dir.is_some()) {
                let Some(rd) = &step.release_dir else {
                    continue;
                };
                let dir = format!("{}/releases/{to}", host.resolve(&rd.path.value));
                if host.connect().await.is_err() || !host.exists(&dir).await.unwrap_or(false) {
                    missing.push(format!("{}: {dir} is not kept", record.target));
                }
            }
        }
        if !missing.is_empty() {
            return Err(refuse(format!(
                "cannot return `{environment}` to {to}, nothing was changed: {}",
                missing.join("; ")
            ))
            .await);
        }
        let now = now_millis();
        let from = current.into_iter().collect::<Vec<_>>().join(",");
        let d = self
            .store
            .create_deployment(
                NewDeployment {
                    kind: DeploymentKind::Rollback,
                    environment: environment.to_string(),
                    plan_name: source.plan_name.clone(),
                    plan_file: source.plan_file.clone(),
                    plan_hash: source.plan_hash.clone(),
                    plan_source: source.plan_source.clone(),
                    version: Some(to.clone()),
                    requester: requester.to_string(),
                    state: DeploymentState::Queued,
                    created_at: now,
                    scheduled_for: None,
                    rollback_of: Some(source.id),
                    params: json!({"from": from, "to": to, "origin": origin}),
                    risk: None,
                },
                NewEvent::new(None, now, "rollback_requested", requester, json!({"environment": environment, "from": from, "to": to, "undoes": source.id})),
            )
            .await?;
        Ok(d)
    }

    /// Returns `environment` to an earlier release, in this process: see [`Engine::request_rollback`].
    pub async fn rollback(
        &self,
        environment: &str,
        to: Option<&str>,
        requester: &str,
        observer: &dyn Observer,
    ) -> EngineResult<Deployment> {
        let d = self
            .request_rollback(environment, to, requester, "cli")
            .await?;
        let secrets = self.secrets_for(&d);
        self.run(d.id, secrets, observer).await
    }
}
