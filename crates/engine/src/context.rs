//! What a step's process sees on one target: its environment variables and its resolved command.

use std::borrow::Cow;

use slipway_core::plan::{Command, CommandKind, Plan, Target};
use slipway_core::template::{Lookup, RefKind, Template};

use crate::host::Program;
use crate::secrets::Secrets;

/// The values templates and step processes receive for one target.
pub struct TargetContext<'a> {
    pub plan: &'a Plan,
    pub environment: &'a str,
    pub target: &'a Target,
    pub version: &'a str,
    pub secrets: &'a Secrets,
    /// Where the artifact was copied on this target.
    pub artifact: Option<&'a str>,
    pub deployment_id: i64,
}

impl Lookup for TargetContext<'_> {
    fn lookup(&self, r: &RefKind) -> Option<Cow<'_, str>> {
        let release = &self.plan.release;
        Some(match r {
            RefKind::ReleaseName => Cow::Borrowed(release.name.value.as_str()),
            RefKind::ReleaseVersion => Cow::Borrowed(self.version),
            RefKind::ReleaseChange => Cow::Borrowed(release.change.as_ref()?.value.as_str()),
            RefKind::ReleaseOwner => Cow::Borrowed(release.owner.as_ref()?.value.as_str()),
            RefKind::Environment => Cow::Borrowed(self.environment),
            RefKind::TargetName => Cow::Borrowed(self.target.name.value.as_str()),
            RefKind::TargetAddress => Cow::Borrowed(self.target.address()),
            RefKind::ArtifactPath => Cow::Borrowed(self.artifact?),
            RefKind::Var(name) => Cow::Borrowed(
                self.target
                    .vars
                    .get(name)
                    .or_else(|| self.plan.variables.get(name))
                    .map(|v| v.value.as_str())?,
            ),
            RefKind::Secret(name) => Cow::Borrowed(self.secrets.get(name)?),
        })
    }
}

impl TargetContext<'_> {
    /// The environment of a step process: the plan's variables, overridden by the target's, the
    /// secrets under their own names, and Slipway's own `SLIPWAY_*` values.
    pub fn process_env(&self, release_path: Option<&str>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.plan.variables {
            if !self.target.vars.contains_key(k) {
                env.push((k.clone(), v.value.clone()));
            }
        }
        for (k, v) in &self.target.vars {
            env.push((k.clone(), v.value.clone()));
        }
        for (k, v) in self.secrets.iter() {
            env.push((k.to_string(), v.to_string()));
        }
        let release = &self.plan.release;
        env.push(("SLIPWAY_VERSION".into(), self.version.to_string()));
        env.push(("SLIPWAY_RELEASE".into(), release.name.value.clone()));
        env.push(("SLIPWAY_ENVIRONMENT".into(), self.environment.to_string()));
        env.push(("SLIPWAY_TARGET".into(), self.target.name.value.clone()));
        env.push((
            "SLIPWAY_TARGET_ADDRESS".into(),
            self.target.address().to_string(),
        ));
        env.push(("SLIPWAY_DEPLOYMENT".into(), self.deployment_id.to_string()));
        if let Some(c) = &release.change {
            env.push(("SLIPWAY_CHANGE".into(), c.value.clone()));
        }
        if let Some(o) = &release.owner {
            env.push(("SLIPWAY_OWNER".into(), o.value.clone()));
        }
        if let Some(a) = self.artifact {
            env.push(("SLIPWAY_ARTIFACT".into(), a.to_string()));
        }
        if let Some(p) = release_path {
            env.push(("SLIPWAY_RELEASE_PATH".into(), p.to_string()));
        }
        env
    }

    /// The command to execute: argv elements get values substituted, each staying one argument;
    /// shell text gets `${NAME}` references only.
    pub fn program(&self, command: &Command) -> Result<Program, String> {
        match &command.kind {
            CommandKind::Argv(parts) => parts
                .iter()
                .map(|t| {
                    t.render(self)
                        .map_err(|name| format!("no value for `{name}`"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Program::Argv),
            CommandKind::Shell(t) => Ok(Program::Shell(t.render_shell())),
        }
    }

    pub fn render(&self, template: &Template) -> Result<String, String> {
        template
            .render(self)
            .map_err(|name| format!("no value for `{name}`"))
    }
}
