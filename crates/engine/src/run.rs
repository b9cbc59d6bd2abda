//! One deployment, driven from start to a final state: preflight, staging, the step DAG in batches
//! with validation gates, and the rollback that undoes it when anything fails.
//!
//! Every action is recorded as an intent before it is taken, and what a rollback must undo is
//! rebuilt from that record, so a run interrupted at any point can be finished by another process.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use slipway_core::LoadedPlan;
use slipway_core::lifecycle::{DeploymentKind, DeploymentState};
use slipway_core::plan::{CheckKind, Environment, Pause, Plan, Step, Target};
use slipway_core::rollout::{Rollout, plan_rollout};
use slipway_store::{
    Deployment, NewEvent, NewStepRun, StatePatch, StepRunResult, Store, TargetRelease,
};

use crate::artifact::{self, Artifact};
use crate::checks::{self, Probe};
use crate::context::TargetContext;
use crate::engine::{Engine, EngineError, EngineResult, now_millis};
use crate::host::{Exec, ExecOutcome, ExitStatus, Host, OUTPUT_LIMIT, keep_tail};
use crate::progress::{Observer, Progress};
use crate::secrets::{Masker, Secrets};

/// Where artifacts are copied on every target, relative to its base directory.
const ARTIFACT_DIR: &str = ".slipway/artifacts";

/// How far one step got on one target; what a rollback must undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub step: usize,
    pub target: u32,
    /// The `current` link was (or may have been) switched to the new release.
    pub switched: bool,
    /// The new release directory was created.
    pub release_created: bool,
}

/// Why a rollout stopped.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub step: Option<String>,
    pub target: Option<String>,
    pub reason: String,
    pub cancelled: bool,
}

impl Failure {
    fn at(step: &Step, target: Option<&Target>, reason: impl Into<String>) -> Failure {
        Failure {
            step: Some(step.id.value.clone()),
            target: target.map(|t| t.name.value.clone()),
            reason: reason.into(),
            cancelled: false,
        }
    }

    fn to_json(&self) -> Value {
        json!({"step": self.step, "target": self.target, "reason": self.reason, "cancelled": self.cancelled})
    }
}

pub(crate) struct Run<'e, S: Store> {
    engine: &'e Engine<S>,
    pub(crate) d: Deployment,
    loaded: LoadedPlan,
    rollout: Rollout,
    version: String,
    secrets: Secrets,
    masker: Masker,
    observer: &'e dyn Observer,
    lease_lost: Arc<AtomicBool>,
    hosts: HashMap<u32, Arc<dyn Host>>,
    artifact: Option<Artifact>,
    /// Release each (step, target) ran before this deployment, per the preflight record.
    previous: HashMap<(usize, u32), Option<String>>,
    units: Mutex<Vec<Unit>>,
}

fn exit_state(status: ExitStatus) -> &'static str {
    match status {
        ExitStatus::Exited(0) => "succeeded",
        ExitStatus::TimedOut => "timed_out",
        _ => "failed",
    }
}

impl<'e, S: Store> Run<'e, S> {
    /// Loads the deployment's own plan snapshot (never the file as it is now) and plans it.
    pub(crate) async fn prepare(
        engine: &'e Engine<S>,
        d: Deployment,
        secrets: Secrets,
        observer: &'e dyn Observer,
        lease_lost: Arc<AtomicBool>,
    ) -> EngineResult<Run<'e, S>> {
        let loaded = slipway_core::load(&d.plan_file, d.plan_source.as_bytes())
            .map_err(|e| EngineError::BadSnapshot(d.id, e.to_string()))?;
        let rollout = plan_rollout(&loaded.plan, &d.environment, jiff::Timestamp::now(), None)
            .map_err(|e| EngineError::BadSnapshot(d.id, e.to_string()))?;
        let version = d
            .version
            .clone()
            .or_else(|| {
                loaded
                    .plan
                    .release
                    .version
                    .as_ref()
                    .map(|v| v.value.clone())
            })
            .unwrap_or_default();
        let masker = secrets.masker();
        let env = &loaded.plan.environments[&d.environment];
        let mut hosts = HashMap::new();
        let mut touched: Vec<u32> = rollout
            .steps
            .iter()
            .flat_map(|s| s.targets.iter().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        for t in touched {
            if let Ok(host) = engine.hosts.open(&d.environment, &env.targets[t as usize]) {
                hosts.insert(t, host);
            }
        }
        Ok(Run {
            engine,
            d,
            loaded,
            rollout,
            version,
            secrets,
            masker,
            observer,
            lease_lost,
            hosts,
            artifact: None,
            previous: HashMap::new(),
            units: Mutex::new(Vec::new()),
        })
    }

    fn plan(&self) -> &Plan {
        &self.loaded.plan
    }

    fn env(&self) -> &Environment {
        &self.loaded.plan.environments[&self.d.environment]
    }

    fn target(&self, t: u32) -> &Target {
        &self.env().targets[t as usize]
    }

    fn host(&self, t: u32) -> Result<&Arc<dyn Host>, String> {
        self.hosts.get(&t).ok_or_else(|| {
            let target = self.target(t);
            match self.engine.hosts.open(&self.d.environment, target) {
                Err(e) => e,
                Ok(_) => format!("target {} is not open", target.name.value),
            }
        })
    }

    fn touched(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.hosts.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn ctx(&self, t: u32) -> TargetContext<'_> {
        self.ctx_at(t, &self.version)
    }

    /// The context of target `t` as it runs `version` (a restored release is checked as itself).
    fn ctx_at<'a>(&'a self, t: u32, version: &'a str) -> TargetContext<'a> {
        TargetContext {
            plan: self.plan(),
            environment: &self.d.environment,
            target: self.target(t),
            version,
            secrets: &self.secrets,
            artifact: None,
            deployment_id: self.d.id,
        }
    }

    fn artifact_path(&self, host: &dyn Host) -> Option<String> {
        self.artifact
            .as_ref()
            .map(|a| host.resolve(&format!("{ARTIFACT_DIR}/{}", a.file_name)))
    }

    fn emit(&self, p: Progress) {
        self.observer.notify(&p);
    }

    fn stage(&self, message: impl Into<String>) {
        self.emit(Progress::Stage {
            deployment: self.d.id,
            message: message.into(),
        });
    }

    fn event(&self, kind: &str, data: Value) -> NewEvent {
        NewEvent::new(self.d.id, now_millis(), kind, "slipway", data)
    }

    async fn record(&self, kind: &str, data: Value) -> EngineResult<()> {
        self.engine
            .store
            .append_events(vec![self.event(kind, data)])
            .await?;
        Ok(())
    }

    async fn fail_point(&self, name: &str, target: Option<&str>) -> Result<(), String> {
        self.engine.failpoints.hit(name, target).await
    }

    /// Stops when the deployment was cancelled or this process lost the environment lock.
    async fn check_stop(&self) -> Result<(), Failure> {
        if self.lease_lost.load(Ordering::SeqCst) {
            return Err(Failure {
                step: None,
                target: None,
                reason: "this process lost the environment lock".into(),
                cancelled: false,
            });
        }
        let cancelled = self
            .engine
            .store
            .deployment(self.d.id)
            .await
            .ok()
            .flatten()
            .is_some_and(|d| d.cancel_requested);
        if cancelled {
            return Err(Failure {
                step: None,
                target: None,
                reason: "cancelled on request".into(),
                cancelled: true,
            });
        }
        Ok(())
    }

    fn release_base(&self, step: &Step, host: &dyn Host) -> Option<String> {
        step.release_dir
            .as_ref()
            .map(|rd| host.resolve(&rd.path.value))
    }

    // ----- the rollout ------------------------------------------------------------------------

    pub(crate) async fn forward(mut self) -> EngineResult<()> {
        let now = now_millis();
        let targets: Vec<String> = self
            .touched()
            .iter()
            .map(|&t| self.target(t).name.value.clone())
            .collect();
        let moved = self
            .engine
            .store
            .transition(
                self.d.id,
                &[DeploymentState::Queued],
                DeploymentState::Running,
                StatePatch {
                    started_at: Some(now),
                    ..Default::default()
                },
                self.event("deployment_started", json!({"environment": self.d.environment, "version": self.version, "targets": targets})),
            )
            .await?;
        if !moved {
            return Err(EngineError::Refused(format!(
                "deployment #{} was started by someone else",
                self.d.id
            )));
        }
        if let Err(e) = self.fail_point("after_create", None).await {
            return self.fail_untouched(vec![e]).await;
        }
        self.stage(format!("preflight on {} target(s)", targets.len()));
        if let Err(problems) = self.preflight().await {
            return self.fail_untouched(problems).await;
        }
        if let Err(e) = self.fail_point("after_preflight", None).await {
            return self.fail_untouched(vec![e]).await;
        }
        let failure = match self.stage_artifact().await {
            Err(f) => Some(f),
            Ok(()) => self.run_waves().await.err(),
        };
        match failure {
            None => self.succeed().await,
            Some(f) => self.roll_back(f).await,
        }
    }

    /// Ends a deployment that changed nothing.
    async fn fail_untouched(&self, problems: Vec<String>) -> EngineResult<()> {
        let now = now_millis();
        let summary = json!({"outcome": "failed", "reason": "preflight failed; no target was changed", "problems": problems});
        self.engine
            .store
            .transition(
                self.d.id,
                &[DeploymentState::Running],
                DeploymentState::Failed,
                StatePatch {
                    finished_at: Some(now),
                    summary: Some(summary.clone()),
                    ..Default::default()
                },
                self.event("deployment_failed", summary),
            )
            .await?;
        self.emit(Progress::Finished {
            deployment: self.d.id,
            state: "failed".into(),
            message: format!("preflight failed, nothing changed: {}", problems.join("; ")),
        });
        Ok(())
    }

    /// Checks every target before any is touched, and records what a rollback would return to.
    async fn preflight(&mut self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let plan = self.plan();
        if let Some(a) = &plan.artifact {
            let base = Path::new(&self.d.plan_file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let ctx = TargetContext {
                plan,
                environment: &self.d.environment,
                target: &self.env().targets[0],
                version: &self.version,
                secrets: &self.secrets,
                artifact: None,
                deployment_id: self.d.id,
            };
            match ctx.render(&a.path) {
                Err(e) => problems.push(format!("artifact path: {e}")),
                Ok(path) => match artifact::prepare(
                    &base,
                    &path,
                    a.sha256.as_ref().map(|s| s.value.as_str()),
                ) {
                    Ok(art) => self.artifact = Some(art),
                    Err(e) => problems.push(e.to_string()),
                },
            }
        }
        let needed = self.artifact.as_ref().map_or(0, |a| a.size) * 2 + 1024 * 1024;
        let touched = self.touched();
        let all: Vec<u32> = self
            .rollout
            .steps
            .iter()
            .flat_map(|s| s.targets.iter().copied())
            .collect();
        for t in &all {
            if !self.hosts.contains_key(t)
                && !problems
                    .iter()
                    .any(|p| p.contains(&self.target(*t).name.value))
            {
                problems.push(self.host(*t).err().unwrap_or_default());
            }
        }
        let checks = futures::stream::iter(touched.clone())
            .map(|t| self.preflight_target(t, needed))
            .buffer_unordered(self.engine.config.target_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut previous = HashMap::new();
        let mut record = BTreeMap::new();
        for result in checks {
            match result {
                Ok((t, prev)) => {
                    let mut per_step = serde_json::Map::new();
                    for (step, release) in prev {
                        per_step.insert(self.plan().steps[step].id.value.clone(), json!(release));
                        previous.insert((step, t), release);
                    }
                    record.insert(self.target(t).name.value.clone(), Value::Object(per_step));
                }
                Err(p) => problems.extend(p),
            }
        }
        problems.sort();
        problems.dedup();
        if !problems.is_empty() {
            return Err(problems);
        }
        self.previous = previous;
        let data = json!({"previous": record, "artifact": self.artifact.as_ref().map(|a| json!({"file": a.file_name, "sha256": a.sha256, "size": a.size}))});
        self.record("preflight_passed", data)
            .await
            .map_err(|e| vec![e.to_string()])?;
        Ok(())
    }

    /// One target's preflight: reachable, writable, room for the release, and the release a
    /// rollback would return to still kept. Returns the current release per release-dir step.
    async fn preflight_target(
        &self,
        t: u32,
        needed: u64,
    ) -> Result<(u32, Vec<(usize, Option<String>)>), Vec<String>> {
        let name = &self.target(t).name.value;
        let host = self.host(t).map_err(|e| vec![e])?;
        host.connect()
            .await
            .map_err(|e| vec![format!("{name}: {e}")])?;
        let mut problems = Vec::new();
        if let Err(e) = host.check_writable(".").await {
            problems.push(format!("{name}: its directory is not writable: {e}"));
        }
        match host.free_bytes(".").await {
            Ok(free) if free < needed => problems.push(format!(
                "{name}: only {} MiB free, the release needs {} MiB",
                free >> 20,
                needed.div_ceil(1 << 20)
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!("{name}: cannot read free disk space: {e}")),
        }
        let mut previous = Vec::new();
        for sr in &self.rollout.steps {
            let step = &self.plan().steps[sr.step];
            if !sr.targets.contains(&t) {
                continue;
            }
            let Some(base) = self.release_base(step, host.as_ref()) else {
                continue;
            };
            let current = match host.read_link(&format!("{base}/current")).await {
                Ok(link) => link.and_then(|l| l.rsplit('/').next().map(str::to_string)),
                Err(e) => {
                    problems.push(format!("{name}: cannot read {base}/current: {e}"));
                    continue;
                }
            };
            if let Some(cur) = &current {
                match host.exists(&format!("{base}/releases/{cur}")).await {
                    Ok(true) => {}
                    Ok(false) => problems.push(format!("{name}: the current release {cur} is no longer kept in {base}/releases, so a rollback could not return to it")),
                    Err(e) => problems.push(format!("{name}: {e}")),
                }
            }
            previous.push((sr.step, current));
        }
        if problems.is_empty() {
            Ok((t, previous))
        } else {
            Err(problems)
        }
    }

    /// Copies the verified artifact to every target.
    async fn stage_artifact(&self) -> Result<(), Failure> {
        let Some(art) = &self.artifact else {
            return Ok(());
        };
        self.stage(format!(
            "copying {} ({} bytes, sha256 {}) to {} target(s)",
            art.file_name,
            art.size,
            &art.sha256[..12],
            self.hosts.len()
        ));
        let results = futures::stream::iter(self.touched().into_iter().map(|t| async move {
            let host = self.host(t).map_err(|e| (t, e))?;
            let dest = self.artifact_path(host.as_ref()).unwrap_or_default();
            if host.sha256(&dest).await.ok().flatten().as_deref() == Some(art.sha256.as_str()) {
                return Ok(());
            }
            host.upload(&art.path, &dest)
                .await
                .map_err(|e| (t, e.to_string()))?;
            match host.sha256(&dest).await {
                Ok(Some(sum)) if sum == art.sha256 => Ok(()),
                Ok(other) => Err((
                    t,
                    format!("the copy has SHA-256 {other:?}, not {}", art.sha256),
                )),
                Err(e) => Err((t, e.to_string())),
            }
        }))
        .buffer_unordered(self.engine.config.target_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        for r in results {
            if let Err((t, reason)) = r {
                return Err(Failure {
                    step: None,
                    target: Some(self.target(t).name.value.clone()),
                    reason: format!("copying the artifact failed: {reason}"),
                    cancelled: false,
                });
            }
        }
        Ok(())
    }

    async fn run_waves(&self) -> Result<(), Failure> {
        for wave in &self.rollout.waves {
            let results = futures::stream::iter(wave.clone())
                .map(|s| self.run_step(s))
                .buffer_unordered(self.engine.config.step_concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
            if let Some(f) = results.into_iter().find_map(Result::err) {
                return Err(f);
            }
        }
        Ok(())
    }

    async fn run_step(&self, index: usize) -> Result<(), Failure> {
        let step = &self.plan().steps[index];
        let sr = &self.rollout.steps[index];
        if let Some(instruction) = &step.manual {
            return self
                .wait_for_confirmation(step, &step.id.value, &instruction.value)
                .await;
        }
        let batches: Vec<std::ops::Range<usize>> = sr.batches.ranges().collect();
        // Blue/green: every target gets the new release in its idle slot first; only when all are
        // ready does any `current` switch, and then all of them at once.
        let blue_green = sr.batches.blue_green && step.release_dir.is_some();
        self.emit(Progress::StepStarted {
            step: step.id.value.clone(),
            targets: sr.targets.len(),
            batches: batches.len(),
        });
        for (b, range) in batches.iter().enumerate() {
            self.check_stop().await?;
            let targets: Vec<u32> = sr.targets[range.clone()].to_vec();
            let names: Vec<String> = targets
                .iter()
                .map(|&t| self.target(t).name.value.clone())
                .collect();
            self.emit(Progress::BatchStarted {
                step: step.id.value.clone(),
                batch: b + 1,
                batches: batches.len(),
                targets: names.clone(),
            });
            let now = now_millis();
            let intents = targets
                .iter()
                .map(|&t| NewStepRun {
                    deployment_id: self.d.id,
                    step_id: step.id.value.clone(),
                    target: self.target(t).name.value.clone(),
                    phase: "run".into(),
                    attempt: 1,
                    started_at: now,
                })
                .collect();
            let ids = self
                .engine
                .store
                .start_step_runs(intents, Some(self.event("batch_started", json!({"step": step.id.value, "batch": b + 1, "of": batches.len(), "targets": names}))))
                .await
                .map_err(|e| Failure::at(step, None, e.to_string()))?;
            let pairs: Vec<(u32, i64)> = targets.iter().copied().zip(ids).collect();
            let results = futures::stream::iter(pairs)
                .map(|(t, id)| self.run_unit(index, t, id, !blue_green))
                .buffer_unordered(self.engine.config.target_concurrency.max(1))
                .collect::<Vec<_>>()
                .await;
            let mut finished = Vec::new();
            let mut failure = None;
            for (t, result, outcome) in results {
                let target = self.target(t);
                if let Some(r) = result {
                    finished.push(r);
                }
                let (ok, message) = match &outcome {
                    Ok(m) => (true, m.clone()),
                    Err(m) => (false, m.clone()),
                };
                self.emit(Progress::UnitFinished {
                    step: step.id.value.clone(),
                    target: target.name.value.clone(),
                    ok,
                    message: message.clone(),
                });
                if !ok && failure.is_none() {
                    failure = Some(Failure::at(step, Some(target), message));
                }
            }
            self.engine
                .store
                .finish_step_runs(finished, None)
                .await
                .map_err(|e| Failure::at(step, None, e.to_string()))?;
            if failure.is_none() && blue_green {
                failure = self.switch_all(index, &targets).await.err();
            }
            if let Some(f) = failure {
                self.emit(Progress::StepFinished {
                    step: step.id.value.clone(),
                    ok: false,
                });
                return Err(f);
            }
            if !step.validate.is_empty() {
                self.validate(index, &targets, "validate").await?;
            }
            self.fail_point("after_batch", None)
                .await
                .map_err(|e| Failure::at(step, None, e))?;
            if b + 1 < batches.len() {
                match sr.batches.pause {
                    Some(Pause::For(d)) => {
                        self.emit(Progress::Waiting {
                            step: step.id.value.clone(),
                            message: format!(
                                "canary stage {} of {} done; pausing {} s",
                                b + 1,
                                batches.len(),
                                d.as_secs()
                            ),
                        });
                        self.pause(d).await?;
                    }
                    Some(Pause::Confirm) => {
                        let key = format!("{}#stage{}", step.id.value, b + 1);
                        self.wait_for_confirmation(
                            step,
                            &key,
                            &format!(
                                "canary stage {} of {} is healthy; confirm to continue",
                                b + 1,
                                batches.len()
                            ),
                        )
                        .await?;
                    }
                    None => {}
                }
            }
        }
        self.emit(Progress::StepFinished {
            step: step.id.value.clone(),
            ok: true,
        });
        Ok(())
    }

    /// The blue/green switch: every prepared target goes live together.
    async fn switch_all(&self, index: usize, targets: &[u32]) -> Result<(), Failure> {
        let step = &self.plan().steps[index];
        self.stage(format!(
            "[{}] every target is ready; switching all {} at once",
            step.id.value,
            targets.len()
        ));
        let results = futures::stream::iter(targets.to_vec())
            .map(|t| async move { (t, self.switch_unit(index, t).await) })
            .buffer_unordered(self.engine.config.target_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut failure = None;
        for (t, outcome) in results {
            let target = self.target(t);
            let (ok, message) = match &outcome {
                Ok(m) => (true, m.clone()),
                Err(m) => (false, m.clone()),
            };
            self.emit(Progress::UnitFinished {
                step: format!("{} (switch)", step.id.value),
                target: target.name.value.clone(),
                ok,
                message: message.clone(),
            });
            if !ok && failure.is_none() {
                failure = Some(Failure::at(step, Some(target), message));
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Sleeps, still stopping promptly on a cancel.
    async fn pause(&self, total: Duration) -> Result<(), Failure> {
        let until = tokio::time::Instant::now() + total;
        while tokio::time::Instant::now() < until {
            self.check_stop().await?;
            tokio::time::sleep(
                self.engine
                    .config
                    .poll
                    .min(until - tokio::time::Instant::now()),
            )
            .await;
        }
        Ok(())
    }

    async fn wait_for_confirmation(
        &self,
        step: &Step,
        key: &str,
        instruction: &str,
    ) -> Result<(), Failure> {
        let owner = step.owner.as_ref().map(|o| o.value.clone());
        self.record(
            "waiting_for_confirmation",
            json!({"step": key, "instruction": instruction, "owner": owner}),
        )
        .await
        .map_err(|e| Failure::at(step, None, e.to_string()))?;
        self.emit(Progress::Waiting {
            step: key.to_string(),
            message: format!(
                "{instruction} — confirm with `slipway confirm {} {key}`{}",
                self.d.id,
                owner.map(|o| format!(" (role {o})")).unwrap_or_default()
            ),
        });
        loop {
            self.check_stop().await?;
            let confirmed = self
                .engine
                .store
                .confirmations(self.d.id)
                .await
                .map_err(|e| Failure::at(step, None, e.to_string()))?
                .into_iter()
                .any(|c| c.step_id == key);
            if confirmed {
                return Ok(());
            }
            tokio::time::sleep(self.engine.config.poll).await;
        }
    }

    /// Runs `command` with retries and backoff. The first attempt's intent is `first_id`; later
    /// attempts record their own. Returns the last attempt's record and outcome.
    async fn attempt(
        &self,
        step: &Step,
        t: u32,
        phase: &str,
        first_id: Option<i64>,
        exec: Exec,
        retries: u32,
    ) -> (Option<StepRunResult>, Result<ExecOutcome, String>) {
        let target = &self.target(t).name.value;
        let Ok(host) = self.host(t) else {
            return (None, Err(format!("{target}: not reachable")));
        };
        let mut attempt = 1u32;
        let mut id = first_id;
        loop {
            if id.is_none() {
                let intent = NewStepRun {
                    deployment_id: self.d.id,
                    step_id: step.id.value.clone(),
                    target: target.clone(),
                    phase: phase.to_string(),
                    attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
                    started_at: now_millis(),
                };
                id = match self.engine.store.start_step_runs(vec![intent], None).await {
                    Ok(ids) => ids.first().copied(),
                    Err(e) => return (None, Err(e.to_string())),
                };
            }
            if let Err(e) = self.fail_point("after_intent", Some(target)).await {
                return (id.map(|id| self.result(id, "failed", None, &e)), Err(e));
            }
            let outcome = host.exec(exec.clone()).await;
            let (record, result) = match outcome {
                Ok(o) => {
                    let mut out = self.masker.mask_bytes(&o.output);
                    if out.len() > OUTPUT_LIMIT {
                        let mut bytes = out.into_bytes();
                        keep_tail(&mut bytes, OUTPUT_LIMIT);
                        out = String::from_utf8_lossy(&bytes).into_owned();
                    }
                    let message = (!o.status.success()).then(|| o.status.describe());
                    let rec = StepRunResult {
                        id: id.unwrap_or_default(),
                        state: exit_state(o.status).into(),
                        finished_at: now_millis(),
                        exit_code: o.status.code(),
                        output: out,
                        message,
                    };
                    let res = if o.status.success() {
                        Ok(o)
                    } else {
                        Err(format!("{phase} {}", o.status.describe()))
                    };
                    (rec, res)
                }
                Err(e) => {
                    let msg = self.masker.mask(&e.to_string());
                    (
                        self.result(id.unwrap_or_default(), "failed", None, &msg),
                        Err(msg),
                    )
                }
            };
            if result.is_ok() || attempt > retries {
                return (Some(record), result);
            }
            // Record this attempt now; the next one gets its own intent.
            let _ = self.engine.store.finish_step_runs(vec![record], None).await;
            let backoff = self
                .engine
                .config
                .retry_backoff
                .saturating_mul(1 << (attempt - 1).min(5))
                .min(Duration::from_secs(30));
            tokio::time::sleep(backoff).await;
            attempt += 1;
            id = None;
        }
    }

    fn result(&self, id: i64, state: &str, exit_code: Option<i32>, message: &str) -> StepRunResult {
        StepRunResult {
            id,
            state: state.into(),
            finished_at: now_millis(),
            exit_code,
            output: String::new(),
            message: Some(self.masker.mask(message)),
        }
    }

    fn exec_for(
        &self,
        t: u32,
        command: &slipway_core::plan::Command,
        cwd: String,
        release_path: Option<&str>,
        host: &dyn Host,
        timeout: Option<Duration>,
    ) -> Result<Exec, String> {
        let mut ctx = self.ctx(t);
        let artifact = self.artifact_path(host);
        ctx.artifact = artifact.as_deref();
        Ok(Exec {
            program: ctx.program(command)?,
            env: ctx.process_env(release_path),
            cwd,
            timeout,
        })
    }

    /// One step on one target. Returns the record of the first phase (for the batch's single
    /// write) and the outcome.
    /// `switch_now` is false for blue/green, which prepares every target before switching any.
    async fn run_unit(
        &self,
        index: usize,
        t: u32,
        intent: i64,
        switch_now: bool,
    ) -> (u32, Option<StepRunResult>, Result<String, String>) {
        let step = &self.plan().steps[index];
        let name = self.target(t).name.value.clone();
        let host = match self.host(t) {
            Ok(h) => h.clone(),
            Err(e) => return (t, Some(self.result(intent, "failed", None, &e)), Err(e)),
        };
        if let Err(e) = self.fail_point("before_unit", Some(&name)).await {
            return (t, Some(self.result(intent, "failed", None, &e)), Err(e));
        }
        let timeout = step.timeout.as_ref().map(|d| d.value);
        let Some(base) = self.release_base(step, host.as_ref()) else {
            // A plain step runs in the target's base directory.
            self.units
                .lock()
                .map(|mut u| {
                    u.push(Unit {
                        step: index,
                        target: t,
                        switched: false,
                        release_created: false,
                    })
                })
                .ok();
            let Some(run) = &step.run else {
                return (
                    t,
                    Some(self.result(intent, "skipped", None, "nothing to run")),
                    Ok("nothing to run".into()),
                );
            };
            let exec = match self.exec_for(t, run, host.resolve("."), None, host.as_ref(), timeout)
            {
                Ok(e) => e,
                Err(e) => return (t, Some(self.result(intent, "failed", None, &e)), Err(e)),
            };
            let (record, outcome) = self
                .attempt(step, t, "run", Some(intent), exec, step.retries)
                .await;
            if let Err(e) = self.fail_point("after_run", Some(&name)).await {
                return (t, record, Err(e));
            }
            return (
                t,
                record,
                outcome.map(|o| format!("done in {} ms", o.elapsed.as_millis())),
            );
        };
        // A release-directory step: releases/<version>, then the atomic `current` switch.
        let previous = self.previous.get(&(index, t)).cloned().flatten();
        if previous.as_deref() == Some(self.version.as_str()) {
            let msg = format!("already runs {}", self.version);
            return (t, Some(self.result(intent, "skipped", None, &msg)), Ok(msg));
        }
        let release = format!("{base}/releases/{}", self.version);
        self.units
            .lock()
            .map(|mut u| {
                u.push(Unit {
                    step: index,
                    target: t,
                    switched: false,
                    release_created: true,
                })
            })
            .ok();
        let fresh = async {
            host.remove_dir_all(&release).await?;
            host.create_dir_all(&release).await
        };
        if let Err(e) = fresh.await {
            let e = format!("cannot create {release}: {e}");
            return (t, Some(self.result(intent, "failed", None, &e)), Err(e));
        }
        let first = match &step.run {
            Some(run) => {
                let exec = match self.exec_for(
                    t,
                    run,
                    release.clone(),
                    Some(&release),
                    host.as_ref(),
                    timeout,
                ) {
                    Ok(e) => e,
                    Err(e) => return (t, Some(self.result(intent, "failed", None, &e)), Err(e)),
                };
                let (record, outcome) = self
                    .attempt(step, t, "run", Some(intent), exec, step.retries)
                    .await;
                if let Err(e) = outcome {
                    return (t, record, Err(e));
                }
                record
            }
            None => Some(self.result(intent, "succeeded", Some(0), "release directory created")),
        };
        if let Err(e) = self.fail_point("after_run", Some(&name)).await {
            return (t, first, Err(e));
        }
        if !switch_now {
            return (
                t,
                first,
                Ok(format!("{} prepared in the idle slot", self.version)),
            );
        }
        (t, first, self.switch_unit(index, t).await)
    }

    /// Points a target's `current` at the new release and activates it.
    async fn switch_unit(&self, index: usize, t: u32) -> Result<String, String> {
        let step = &self.plan().steps[index];
        let name = self.target(t).name.value.clone();
        let host = self.host(t)?.clone();
        let timeout = step.timeout.as_ref().map(|d| d.value);
        let base = self
            .release_base(step, host.as_ref())
            .ok_or("not a release-directory step")?;
        let release = format!("{base}/releases/{}", self.version);
        // Intent for the switch and activation, committed before the link moves.
        let switch_intent = NewStepRun {
            deployment_id: self.d.id,
            step_id: step.id.value.clone(),
            target: name.clone(),
            phase: "activate".into(),
            attempt: 1,
            started_at: now_millis(),
        };
        let switch_id = self
            .engine
            .store
            .start_step_runs(vec![switch_intent], None)
            .await
            .map_err(|e| e.to_string())?
            .first()
            .copied();
        self.units
            .lock()
            .map(|mut u| {
                if let Some(unit) = u.iter_mut().find(|x| x.step == index && x.target == t) {
                    unit.switched = true;
                }
            })
            .ok();
        if let Err(e) = host
            .switch_link(
                &format!("{base}/current"),
                &format!("releases/{}", self.version),
            )
            .await
        {
            let e = format!("switching {base}/current failed: {e}");
            if let Some(id) = switch_id {
                let _ = self
                    .engine
                    .store
                    .finish_step_runs(vec![self.result(id, "failed", None, &e)], None)
                    .await;
            }
            return Err(e);
        }
        self.fail_point("after_switch", Some(&name)).await?;
        let outcome = match &step.activate {
            Some(activate) => {
                let exec = self.exec_for(
                    t,
                    activate,
                    format!("{base}/current"),
                    Some(&release),
                    host.as_ref(),
                    timeout,
                )?;
                let (record, outcome) = self
                    .attempt(step, t, "activate", switch_id, exec, step.retries)
                    .await;
                if let Some(r) = record {
                    let _ = self.engine.store.finish_step_runs(vec![r], None).await;
                }
                outcome.map(|_| ())
            }
            None => {
                if let Some(id) = switch_id {
                    let _ = self
                        .engine
                        .store
                        .finish_step_runs(
                            vec![self.result(id, "succeeded", Some(0), "current switched")],
                            None,
                        )
                        .await;
                }
                Ok(())
            }
        };
        outcome.map(|()| format!("now on {}", self.version))
    }

    /// Runs the step's checks on `targets`; the batch fails if any check fails on any target.
    /// `phase` is `validate` after a rollout batch, `verify` after a restore (checked against the
    /// release each target went back to).
    async fn validate(&self, index: usize, targets: &[u32], phase: &str) -> Result<(), Failure> {
        let step = &self.plan().steps[index];
        self.fail_point("before_validate", None)
            .await
            .map_err(|e| Failure::at(step, None, e))?;
        let now = now_millis();
        let intents = targets
            .iter()
            .map(|&t| NewStepRun {
                deployment_id: self.d.id,
                step_id: step.id.value.clone(),
                target: self.target(t).name.value.clone(),
                phase: phase.into(),
                attempt: 1,
                started_at: now,
            })
            .collect();
        let ids = self
            .engine
            .store
            .start_step_runs(intents, None)
            .await
            .map_err(|e| Failure::at(step, None, e.to_string()))?;
        let pairs: Vec<(u32, i64)> = targets.iter().copied().zip(ids).collect();
        let results = futures::stream::iter(pairs)
            .map(|(t, id)| async move {
                let version = match phase {
                    "verify" => self
                        .previous
                        .get(&(index, t))
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| self.version.clone()),
                    _ => self.version.clone(),
                };
                let outcome = self.check_target(step, t, &version).await;
                (t, id, outcome)
            })
            .buffer_unordered(self.engine.config.target_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut records = Vec::new();
        let mut failure = None;
        for (t, id, outcome) in results {
            let target = self.target(t);
            let (ok, detail) = match &outcome {
                Ok(d) => (true, d.clone()),
                Err(d) => (false, d.clone()),
            };
            self.emit(Progress::CheckFinished {
                step: step.id.value.clone(),
                target: target.name.value.clone(),
                ok,
                message: detail.clone(),
            });
            records.push(StepRunResult {
                id,
                state: if ok { "succeeded" } else { "failed" }.into(),
                finished_at: now_millis(),
                exit_code: None,
                output: self.masker.mask(&detail),
                message: (!ok).then(|| self.masker.mask(&detail)),
            });
            if !ok && failure.is_none() {
                failure = Some(Failure::at(
                    step,
                    Some(target),
                    format!("validation failed: {detail}"),
                ));
            }
        }
        self.engine
            .store
            .finish_step_runs(records, None)
            .await
            .map_err(|e| Failure::at(step, None, e.to_string()))?;
        failure.map_or(Ok(()), Err)
    }

    async fn check_target(&self, step: &Step, t: u32, version: &str) -> Result<String, String> {
        let host = self.host(t)?.clone();
        let mut details = Vec::new();
        for check in &step.validate {
            let ctx = self.ctx_at(t, version);
            let probe = match &check.kind {
                CheckKind::Http {
                    url,
                    status,
                    body_contains,
                    latency_below,
                } => Probe::Http {
                    url: ctx.render(url)?,
                    status: *status,
                    body_contains: body_contains.clone(),
                    latency_below: *latency_below,
                },
                CheckKind::Tcp { address } => Probe::Tcp {
                    address: ctx.render(address)?,
                },
                CheckKind::Command { command } => {
                    let cwd = match self.release_base(step, host.as_ref()) {
                        Some(base) => format!("{base}/current"),
                        None => host.resolve("."),
                    };
                    let mut ctx = ctx;
                    let artifact = self.artifact_path(host.as_ref());
                    ctx.artifact = artifact.as_deref();
                    Probe::Command {
                        exec: Exec {
                            program: ctx.program(command)?,
                            env: ctx.process_env(None),
                            cwd,
                            timeout: Some(check.deadline),
                        },
                    }
                }
            };
            let outcome = checks::run(
                &probe,
                check.interval,
                check.deadline,
                host.as_ref(),
                &self.engine.http,
            )
            .await;
            let line = match probe {
                Probe::Command { .. } => format!(
                    "{}: {} ({} attempt(s))",
                    probe.describe(),
                    outcome.detail,
                    outcome.attempts
                ),
                _ => format!("{} ({} attempt(s))", outcome.detail, outcome.attempts),
            };
            if !outcome.passed {
                return Err(line);
            }
            details.push(line);
        }
        Ok(details.join("; "))
    }

    // ----- endings ----------------------------------------------------------------------------

    /// Where each touched target stands now, read from the targets themselves.
    async fn target_report(&self) -> Value {
        let mut report = serde_json::Map::new();
        for t in self.touched() {
            let target = self.target(t);
            let mut entry = serde_json::Map::new();
            if let Ok(host) = self.host(t) {
                for sr in &self.rollout.steps {
                    let step = &self.plan().steps[sr.step];
                    if !sr.targets.contains(&t) {
                        continue;
                    }
                    if let Some(base) = self.release_base(step, host.as_ref()) {
                        let link = host
                            .read_link(&format!("{base}/current"))
                            .await
                            .ok()
                            .flatten();
                        entry.insert(
                            step.id.value.clone(),
                            json!(link.and_then(|l| l.rsplit('/').next().map(str::to_string))),
                        );
                    }
                }
            }
            report.insert(target.name.value.clone(), Value::Object(entry));
        }
        Value::Object(report)
    }

    async fn succeed(&self) -> EngineResult<()> {
        self.fail_point("before_finish", None)
            .await
            .map_err(EngineError::Refused)?;
        let inventory = self.update_inventory(true).await;
        let now = now_millis();
        let summary = json!({"outcome": "succeeded", "version": self.version, "targets": self.target_report().await});
        self.engine
            .store
            .transition(
                self.d.id,
                &[DeploymentState::Running],
                DeploymentState::Succeeded,
                StatePatch {
                    finished_at: Some(now),
                    summary: Some(summary.clone()),
                    ..Default::default()
                },
                self.event(
                    "deployment_succeeded",
                    json!({"version": self.version, "inventory": inventory}),
                ),
            )
            .await?;
        self.emit(Progress::Finished {
            deployment: self.d.id,
            state: "succeeded".into(),
            message: format!(
                "{} {} is live on {} target(s) of {}",
                self.plan().release.name.value,
                self.version,
                self.hosts.len(),
                self.d.environment
            ),
        });
        Ok(())
    }

    /// Records which release every touched target runs and keeps; prunes releases beyond `keep`.
    async fn update_inventory(&self, prune: bool) -> Value {
        let mut entries = Vec::new();
        let known: HashMap<String, TargetRelease> = self
            .engine
            .store
            .inventory(Some(&self.d.environment))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.target.clone(), r))
            .collect();
        for t in self.touched() {
            let name = self.target(t).name.value.clone();
            let Ok(host) = self.host(t) else { continue };
            let mut current = None;
            let mut kept: Vec<String> = Vec::new();
            for sr in &self.rollout.steps {
                let step = &self.plan().steps[sr.step];
                if !sr.targets.contains(&t) {
                    continue;
                }
                let (Some(base), Some(rd)) =
                    (self.release_base(step, host.as_ref()), &step.release_dir)
                else {
                    continue;
                };
                let link = host
                    .read_link(&format!("{base}/current"))
                    .await
                    .ok()
                    .flatten();
                let live = link.and_then(|l| l.rsplit('/').next().map(str::to_string));
                let mut dirs = host
                    .list_dir(&format!("{base}/releases"))
                    .await
                    .unwrap_or_default();
                // Oldest first: follow the recorded order, then anything else found.
                let order = known.get(&name).map(|k| k.kept.clone()).unwrap_or_default();
                dirs.sort_by_key(|d| {
                    (
                        order.iter().position(|o| o == d).unwrap_or(usize::MAX),
                        d == &self.version,
                        d.clone(),
                    )
                });
                if prune {
                    let previous = self.previous.get(&(sr.step, t)).cloned().flatten();
                    while dirs.len() > rd.keep as usize {
                        let Some(pos) = dirs
                            .iter()
                            .position(|d| Some(d) != live.as_ref() && Some(d) != previous.as_ref())
                        else {
                            break;
                        };
                        let old = dirs.remove(pos);
                        let _ = host.remove_dir_all(&format!("{base}/releases/{old}")).await;
                    }
                }
                current = current.or(live);
                for d in dirs {
                    if !kept.contains(&d) {
                        kept.push(d);
                    }
                }
            }
            let before = known.get(&name).and_then(|k| k.current.clone());
            let current = current.or_else(|| Some(self.version.clone()));
            let previous = if before != current {
                before
            } else {
                known.get(&name).and_then(|k| k.previous.clone())
            };
            entries.push(TargetRelease {
                environment: self.d.environment.clone(),
                target: name,
                current,
                previous,
                kept,
                deployment_id: Some(self.d.id),
                updated_at: now_millis(),
            });
        }
        let value = json!(
            entries
                .iter()
                .map(|e| json!({"target": e.target, "current": e.current, "kept": e.kept}))
                .collect::<Vec<_>>()
        );
        let _ = self.engine.store.set_inventory(entries, None).await;
        value
    }

    /// Undoes what the rollout did, in reverse, under the same batch limits, then ends the run.
    pub(crate) async fn roll_back(&self, failure: Failure) -> EngineResult<()> {
        let reason = failure.reason.clone();
        self.engine
            .store
            .transition(
                self.d.id,
                &[DeploymentState::Running],
                DeploymentState::RollingBack,
                StatePatch::default(),
                self.event("rollback_started", failure.to_json()),
            )
            .await?;
        self.stage(format!(
            "rolling back: {}{}{}",
            failure
                .step
                .as_deref()
                .map(|s| format!("step {s}: "))
                .unwrap_or_default(),
            failure
                .target
                .as_deref()
                .map(|t| format!("{t}: "))
                .unwrap_or_default(),
            reason
        ));
        self.finish_rollback(failure).await
    }

    /// The compensation pass and the final state; also where a recovered run continues.
    pub(crate) async fn finish_rollback(&self, failure: Failure) -> EngineResult<()> {
        let units = self.units.lock().map(|u| u.clone()).unwrap_or_default();
        let problems = if self.d.kind == DeploymentKind::Rollback {
            // A rollback is never itself rolled back.
            vec!["this deployment was itself a rollback, which is never rolled back".to_string()]
        } else {
            self.compensate(&units).await
        };
        let report = self.target_report().await;
        if problems.is_empty() {
            self.update_inventory(false).await;
        }
        let (state, kind) = if !problems.is_empty() {
            (DeploymentState::Failed, "deployment_failed")
        } else if failure.cancelled {
            (DeploymentState::Cancelled, "deployment_cancelled")
        } else {
            (DeploymentState::RolledBack, "deployment_rolled_back")
        };
        let summary = json!({
            "outcome": state.as_str(),
            "failure": failure.to_json(),
            "rollback_problems": problems,
            "targets": report,
        });
        self.engine
            .store
            .transition(
                self.d.id,
                &[DeploymentState::RollingBack],
                state,
                StatePatch {
                    finished_at: Some(now_millis()),
                    summary: Some(summary.clone()),
                    ..Default::default()
                },
                self.event(kind, summary),
            )
            .await?;
        let message = match state {
            DeploymentState::RolledBack => format!(
                "rolled back: every target is back on the release it had ({})",
                failure.reason
            ),
            DeploymentState::Cancelled => {
                "cancelled; every target is back on the release it had".to_string()
            }
            _ => format!(
                "failed, and the rollback did not complete: {}",
                problems.join("; ")
            ),
        };
        self.emit(Progress::Finished {
            deployment: self.d.id,
            state: state.as_str().into(),
            message,
        });
        Ok(())
    }

    /// Runs compensations for `units`: steps in reverse order of execution, each step's targets in
    /// its own batch sizes, last batch first. Returns what could not be undone.
    async fn compensate(&self, units: &[Unit]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut steps: Vec<usize> = Vec::new();
        for u in units {
            if !steps.contains(&u.step) {
                steps.push(u.step);
            }
        }
        for &index in steps.iter().rev() {
            let step = &self.plan().steps[index];
            let sr = &self.rollout.steps[index];
            let step_units: Vec<&Unit> = units.iter().filter(|u| u.step == index).collect();
            // The rollout's batches, in reverse, restricted to the targets this step reached.
            let mut batches: Vec<Vec<u32>> = sr
                .batches
                .ranges()
                .map(|r| {
                    sr.targets[r]
                        .iter()
                        .copied()
                        .filter(|t| step_units.iter().any(|u| u.target == *t))
                        .collect::<Vec<_>>()
                })
                .filter(|b| !b.is_empty())
                .collect();
            batches.reverse();
            for batch in batches {
                let now = now_millis();
                let intents = batch
                    .iter()
                    .map(|&t| NewStepRun {
                        deployment_id: self.d.id,
                        step_id: step.id.value.clone(),
                        target: self.target(t).name.value.clone(),
                        phase: "rollback".into(),
                        attempt: 1,
                        started_at: now,
                    })
                    .collect();
                let ids = match self.engine.store.start_step_runs(intents, None).await {
                    Ok(ids) => ids,
                    Err(e) => {
                        problems.push(e.to_string());
                        continue;
                    }
                };
                let work: Vec<(u32, i64, Option<Unit>)> = batch
                    .iter()
                    .copied()
                    .zip(ids)
                    .map(|(t, id)| {
                        (
                            t,
                            id,
                            step_units
                                .iter()
                                .find(|u| u.target == t)
                                .map(|u| (*u).clone()),
                        )
                    })
                    .collect();
                let results = futures::stream::iter(work)
                    .map(|(t, id, unit)| async move {
                        (t, id, self.compensate_unit(step, index, t, unit).await)
                    })
                    .buffer_unordered(self.engine.config.target_concurrency.max(1))
                    .collect::<Vec<_>>()
                    .await;
                let mut records = Vec::new();
                for (t, id, outcome) in results {
                    let name = self.target(t).name.value.clone();
                    let (state, message, output) = match &outcome {
                        Ok((m, out)) => ("succeeded", m.clone(), out.clone()),
                        Err(m) => ("failed", m.clone(), String::new()),
                    };
                    self.emit(Progress::UnitFinished {
                        step: format!("{} (rollback)", step.id.value),
                        target: name.clone(),
                        ok: outcome.is_ok(),
                        message: message.clone(),
                    });
                    if outcome.is_err() {
                        problems.push(format!("{}: {name}: {message}", step.id.value));
                    }
                    records.push(StepRunResult {
                        id,
                        state: state.into(),
                        finished_at: now_millis(),
                        exit_code: None,
                        output,
                        message: Some(message),
                    });
                }
                if let Err(e) = self.engine.store.finish_step_runs(records, None).await {
                    problems.push(e.to_string());
                }
                // A restored release is checked the way the rollout checked the new one.
                if step.release_dir.is_some() && !step.validate.is_empty() {
                    let restored: Vec<u32> = batch
                        .iter()
                        .copied()
                        .filter(|&t| self.previous.get(&(index, t)).cloned().flatten().is_some())
                        .collect();
                    if !restored.is_empty()
                        && let Err(f) = self.validate(index, &restored, "verify").await
                    {
                        problems.push(format!("after rollback, {}", f.reason));
                    }
                }
            }
        }
        problems
    }

    /// Undoes one step on one target: the `current` link back to the previous release (with its
    /// activation), the new release removed, then the step's own `rollback` command.
    async fn compensate_unit(
        &self,
        step: &Step,
        index: usize,
        t: u32,
        unit: Option<Unit>,
    ) -> Result<(String, String), String> {
        let name = self.target(t).name.value.clone();
        self.fail_point("before_rollback_unit", Some(&name)).await?;
        let host = self.host(t)?.clone();
        let timeout = step.timeout.as_ref().map(|d| d.value);
        let mut done = Vec::new();
        let mut output = String::new();
        let previous = self.previous.get(&(index, t)).cloned().flatten();
        let mut cwd = host.resolve(".");
        if let Some(base) = self.release_base(step, host.as_ref()) {
            let link = format!("{base}/current");
            let now_on = host.read_link(&link).await.map_err(|e| e.to_string())?;
            let on_new =
                now_on.as_deref().and_then(|l| l.rsplit('/').next()) == Some(self.version.as_str());
            if on_new || unit.as_ref().is_some_and(|u| u.switched) {
                match &previous {
                    Some(prev) => {
                        host.switch_link(&link, &format!("releases/{prev}"))
                            .await
                            .map_err(|e| e.to_string())?;
                        done.push(format!("current back to {prev}"));
                        if let Some(activate) = &step.activate {
                            let release = format!("{base}/releases/{prev}");
                            let exec = self.exec_for(
                                t,
                                activate,
                                link.clone(),
                                Some(&release),
                                host.as_ref(),
                                timeout,
                            )?;
                            let outcome = host.exec(exec).await.map_err(|e| e.to_string())?;
                            output.push_str(&self.masker.mask_bytes(&outcome.output));
                            if !outcome.status.success() {
                                return Err(format!(
                                    "re-activating {prev}: {}",
                                    outcome.status.describe()
                                ));
                            }
                            done.push(format!("{prev} re-activated"));
                        }
                    }
                    None => {
                        host.remove_link(&link).await.map_err(|e| e.to_string())?;
                        done.push("current removed (there was no earlier release)".into());
                    }
                }
            }
            if previous.as_deref() != Some(self.version.as_str())
                && unit.as_ref().is_none_or(|u| u.release_created)
            {
                host.remove_dir_all(&format!("{base}/releases/{}", self.version))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if let Some(prev) = &previous {
                cwd = format!("{base}/releases/{prev}");
            }
        }
        if let Some(rollback) = &step.rollback {
            let exec = self.exec_for(t, rollback, cwd, None, host.as_ref(), timeout)?;
            let (record, outcome) = self
                .attempt(step, t, "compensate", None, exec, step.retries)
                .await;
            if let Some(r) = record {
                let _ = self.engine.store.finish_step_runs(vec![r], None).await;
            }
            let o = outcome?;
            output.push_str(&self.masker.mask_bytes(&o.output));
            done.push("rollback command ran".into());
        } else if step.release_dir.is_none() && step.run.is_some() {
            done.push("irreversible: the step has no rollback command".into());
        }
        self.fail_point("after_rollback_unit", Some(&name)).await?;
        Ok((
            if done.is_empty() {
                "nothing to undo".into()
            } else {
                done.join(", ")
            },
            output,
        ))
    }

    // ----- recovery and on-demand rollback --------------------------------------------------------

    /// Rebuilds what an interrupted run did from its record.
    pub(crate) async fn restore_from_record(&mut self) -> EngineResult<bool> {
        let events = self
            .engine
            .store
            .events(slipway_store::EventFilter {
                deployment_id: Some(self.d.id),
                ..Default::default()
            })
            .await?;
        let Some(preflight) = events.iter().rev().find(|e| e.kind == "preflight_passed") else {
            return Ok(false);
        };
        let index: HashMap<String, usize> = self
            .plan()
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.value.clone(), i))
            .collect();
        let names: HashMap<String, u32> = self
            .env()
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| u32::try_from(i).ok().map(|i| (t.name.value.clone(), i)))
            .collect();
        let mut previous = HashMap::new();
        if let Some(map) = preflight.data.get("previous").and_then(Value::as_object) {
            for (target, steps) in map {
                let Some(&t) = names.get(target.as_str()) else {
                    continue;
                };
                for (step, release) in steps.as_object().into_iter().flatten() {
                    if let Some(&s) = index.get(step.as_str()) {
                        previous.insert((s, t), release.as_str().map(str::to_string));
                    }
                }
            }
        }
        self.previous = previous;
        if let Some(a) = preflight.data.get("artifact").filter(|a| !a.is_null()) {
            let file = a
                .get("file")
                .and_then(Value::as_str)
                .unwrap_or("artifact")
                .to_string();
            self.artifact = Some(Artifact {
                path: PathBuf::new(),
                file_name: file,
                size: a.get("size").and_then(Value::as_u64).unwrap_or(0),
                sha256: a
                    .get("sha256")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            });
        }
        let runs = self.engine.store.step_runs(self.d.id).await?;
        let mut units: Vec<Unit> = Vec::new();
        let mut undone: Vec<(usize, u32)> = Vec::new();
        let mut interrupted = Vec::new();
        for r in &runs {
            let (Some(&s), Some(&t)) =
                (index.get(r.step_id.as_str()), names.get(r.target.as_str()))
            else {
                continue;
            };
            if r.state == "started" {
                interrupted.push(StepRunResult {
                    id: r.id,
                    state: "unknown".into(),
                    finished_at: now_millis(),
                    exit_code: None,
                    output: r.output.clone(),
                    message: Some("interrupted: the process running it died".into()),
                });
            }
            match r.phase.as_str() {
                "run" | "activate" if r.state != "skipped" => {
                    let is_release = self.plan().steps[s].release_dir.is_some();
                    match units.iter_mut().find(|u| u.step == s && u.target == t) {
                        Some(u) => u.switched |= r.phase == "activate",
                        None => units.push(Unit {
                            step: s,
                            target: t,
                            switched: r.phase == "activate",
                            release_created: is_release,
                        }),
                    }
                }
                "rollback" if r.state == "succeeded" => undone.push((s, t)),
                _ => {}
            }
        }
        units.retain(|u| !undone.contains(&(u.step, u.target)));
        if !interrupted.is_empty() {
            self.engine
                .store
                .finish_step_runs(interrupted, None)
                .await?;
        }
        *self
            .units
            .lock()
            .map_err(|_| EngineError::Refused("unit list poisoned".into()))? = units;
        Ok(true)
    }

    /// Marks a recovered deployment that never touched a target as failed.
    pub(crate) async fn end_untouched(
        &self,
        from: DeploymentState,
        reason: &str,
    ) -> EngineResult<()> {
        let summary = json!({"outcome": "failed", "reason": reason});
        self.engine
            .store
            .transition(
                self.d.id,
                &[from],
                DeploymentState::Failed,
                StatePatch {
                    finished_at: Some(now_millis()),
                    summary: Some(summary.clone()),
                    ..Default::default()
                },
                self.event("deployment_failed", summary),
            )
            .await?;
        self.emit(Progress::Finished {
            deployment: self.d.id,
            state: "failed".into(),
            message: reason.to_string(),
        });
        Ok(())
    }

    /// Continues an interrupted deployment: whatever it was doing, it is rolled back.
    pub(crate) async fn recover(mut self) -> EngineResult<()> {
        let from = self.d.state;
        self.record(
            "recovery_started",
            json!({"state": from.as_str(), "by": self.engine.holder.id}),
        )
        .await?;
        if !self.restore_from_record().await? {
            return self
                .end_untouched(
                    from,
                    "interrupted before any target was touched; nothing changed",
                )
                .await;
        }
        let failure = Failure {
            step: None,
            target: None,
            reason: "interrupted: the process running it died".into(),
            cancelled: false,
        };
        if from == DeploymentState::Running {
            if self.d.kind == DeploymentKind::Rollback {
                // Never roll back a rollback: record where every target is and stop.
                self.engine
                    .store
                    .transition(
                        self.d.id,
                        &[DeploymentState::Running],
                        DeploymentState::RollingBack,
                        StatePatch::default(),
                        self.event("interrupted", failure.to_json()),
                    )
                    .await?;
            } else {
                return self.roll_back(failure).await;
            }
        }
        self.stage("continuing the interrupted rollback");
        self.finish_rollback(failure).await
    }

    /// An on-demand rollback: every target of the plan that installed the current release goes
    /// back to `to`, step by step in reverse, with the rollout's batch limits and checks.
    pub(crate) async fn roll_back_to(mut self, to: &str) -> EngineResult<()> {
        let now = now_millis();
        self.engine
            .store
            .transition(
                self.d.id,
                &[DeploymentState::Queued],
                DeploymentState::Running,
                StatePatch {
                    started_at: Some(now),
                    ..Default::default()
                },
                self.event(
                    "deployment_started",
                    json!({"environment": self.d.environment, "rollback_to": to}),
                ),
            )
            .await?;
        // The record of which release each target had is the preflight; here it is `to` itself.
        let mut previous = HashMap::new();
        for sr in &self.rollout.steps {
            for &t in sr.targets.iter() {
                previous.insert((sr.step, t), Some(to.to_string()));
            }
        }
        self.previous = previous;
        let from_version = self
            .loaded
            .plan
            .release
            .version
            .as_ref()
            .map(|v| v.value.clone());
        self.version = self
            .d
            .params
            .get("from")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(from_version)
            .unwrap_or_default();
        let units: Vec<Unit> = self
            .rollout
            .steps
            .iter()
            .filter(|sr| self.plan().steps[sr.step].manual.is_none())
            .flat_map(|sr| {
                sr.targets.iter().map(|&t| Unit {
                    step: sr.step,
                    target: t,
                    switched: true,
                    release_created: false,
                })
            })
            .collect();
        self.record("preflight_passed", json!({"rollback_to": to}))
            .await?;
        let problems = self.compensate(&units).await;
        self.version = to.to_string();
        let report = self.target_report().await;
        let state = if problems.is_empty() {
            self.update_inventory(false).await;
            DeploymentState::Succeeded
        } else {
            DeploymentState::Failed
        };
        let summary = json!({"outcome": state.as_str(), "rollback_to": to, "problems": problems, "targets": report});
        self.engine
            .store
            .transition(
                self.d.id,
                &[DeploymentState::Running],
                state,
                StatePatch {
                    finished_at: Some(now_millis()),
                    summary: Some(summary.clone()),
                    ..Default::default()
                },
                self.event(
                    if problems.is_empty() {
                        "deployment_succeeded"
                    } else {
                        "deployment_failed"
                    },
                    summary,
                ),
            )
            .await?;
        self.emit(Progress::Finished {
            deployment: self.d.id,
            state: state.as_str().into(),
            message: if problems.is_empty() {
                format!("every target is back on {to}")
            } else {
                problems.join("; ")
            },
        });
        Ok(())
    }
}
