//! Semantic checks: what a well-formed plan must also satisfy to be runnable.

use std::collections::{HashMap, HashSet};

use super::model::*;
use super::select::Selector;
use crate::dag;
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::source::Spanned;
use crate::template::{FIXED_NAMES, RefKind, Template};

/// The targets a step runs on in one environment, resolved only when a check needs them.
#[derive(Clone, Copy)]
struct Targets<'a> {
    env: Option<&'a Environment>,
    selected: &'a [u32],
}

impl<'a> Targets<'a> {
    const NONE: Targets<'static> = Targets {
        env: None,
        selected: &[],
    };

    fn iter(self) -> impl Iterator<Item = &'a Target> {
        let env = self.env;
        self.selected
            .iter()
            .filter_map(move |&i| env.and_then(|e| e.targets.get(i as usize)))
    }

    fn is_empty(self) -> bool {
        self.env.is_none() || self.selected.is_empty()
    }

    fn len(self) -> usize {
        if self.env.is_none() {
            0
        } else {
            self.selected.len()
        }
    }
}

/// Where a template is used decides which names it may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Step commands and checks: per target.
    Target,
    /// Artifact path: known before any target is chosen.
    Plan,
    /// Tests and notifications: per environment, not per target.
    Environment,
}

pub(crate) fn validate(plan: &Plan) -> Vec<Diagnostic> {
    let mut v = Validator {
        plan,
        out: Vec::new(),
    };
    v.release();
    v.unique_ids();
    v.dependencies();
    v.environments();
    v.selections_and_templates();
    v.objectives();
    v.risks();
    v.notifications();
    v.names();
    v.out
}

struct Validator<'p> {
    plan: &'p Plan,
    out: Vec<Diagnostic>,
}

impl<'p> Validator<'p> {
    fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    fn release(&mut self) {
        if self.plan.release.version.is_some() {
            return;
        }
        for step in &self.plan.steps {
            if let Some(rd) = &step.release_dir {
                self.push(
                    Diagnostic::error(
                        Code::ReleaseDirWithoutVersion,
                        rd.path.span,
                        format!(
                            "step `{}` uses a release directory, but `release.version` is not set",
                            step.id.value
                        ),
                    )
                    .with_label("releases/<version> needs a version")
                    .with_hint("add `version:` under `release`"),
                );
            }
        }
    }

    fn unique_ids(&mut self) {
        let mut seen: HashMap<&str, &Spanned<String>> = HashMap::new();
        for step in &self.plan.steps {
            if step.id.value.is_empty() {
                continue;
            }
            if let Some(first) = seen.get(step.id.value.as_str()) {
                let d = Diagnostic::error(
                    Code::DuplicateId,
                    step.id.span,
                    format!("two steps have the id `{}`", step.id.value),
                )
                .with_label("second use")
                .with_related(first.span, "first use")
                .with_hint("step ids must be unique; `needs` and the record refer to steps by id");
                self.push(d);
            } else {
                seen.insert(&step.id.value, &step.id);
            }
        }
        let mut tests: HashMap<&str, &Spanned<String>> = HashMap::new();
        for t in &self.plan.tests {
            if let Some(first) = tests.get(t.id.value.as_str()) {
                let d = Diagnostic::error(
                    Code::DuplicateId,
                    t.id.span,
                    format!("two tests have the id `{}`", t.id.value),
                )
                .with_label("second use")
                .with_related(first.span, "first use");
                self.push(d);
            } else {
                tests.insert(&t.id.value, &t.id);
            }
        }
        let mut risks: HashMap<&str, &Spanned<String>> = HashMap::new();
        for r in &self.plan.risks {
            if let Some(first) = risks.get(r.id.value.as_str()) {
                let d = Diagnostic::error(
                    Code::DuplicateId,
                    r.id.span,
                    format!("two risks have the id `{}`", r.id.value),
                )
                .with_label("second use")
                .with_related(first.span, "first use");
                self.push(d);
            } else {
                risks.insert(&r.id.value, &r.id);
            }
        }
    }

    fn dependencies(&mut self) {
        let steps = &self.plan.steps;
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (s.id.value.as_str(), i))
            .collect();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.value.as_str()).collect();
        let mut deps = vec![Vec::new(); steps.len()];
        for (i, step) in steps.iter().enumerate() {
            let mut seen = HashSet::new();
            for need in &step.needs {
                if !seen.insert(need.value.as_str()) {
                    self.push(
                        Diagnostic::warning(
                            Code::DuplicateId,
                            need.span,
                            format!("step `{}` needs `{}` twice", step.id.value, need.value),
                        )
                        .with_label("repeated"),
                    );
                    continue;
                }
                match index.get(need.value.as_str()) {
                    Some(&j) => deps[i].push(j),
                    None => {
                        let mut d = Diagnostic::error(
                            Code::UnknownStep,
                            need.span,
                            format!(
                                "step `{}` needs `{}`, which is not a step of this plan",
                                step.id.value, need.value
                            ),
                        )
                        .with_label("no step with this id");
                        d.hint = did_you_mean(&need.value, ids.iter().copied())
                            .or_else(|| Some(format!("steps are: {}", ids.join(", "))));
                        self.push(d);
                    }
                }
            }
        }
        if let Err(cycles) = dag::waves(&deps) {
            for cycle in cycles {
                let names: Vec<&str> = cycle.iter().map(|&i| steps[i].id.value.as_str()).collect();
                let mut chain = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
                chain.push(format!("`{}`", names[0]));
                let first = &steps[cycle[0]];
                let mut d = Diagnostic::error(
                    Code::DependencyCycle,
                    first.id.span,
                    format!("dependency cycle: {}", chain.join(" needs ")),
                )
                .with_label("the cycle starts here")
                .with_hint("remove one of these `needs` so that the steps can be ordered");
                for &i in &cycle[1..] {
                    d = d.with_related(
                        steps[i].id.span,
                        format!("`{}` is on the cycle", steps[i].id.value),
                    );
                }
                self.push(d);
            }
        }
    }

    fn environments(&mut self) {
        if self.plan.environments.is_empty() {
            return;
        }
        let owner = self.plan.release.owner.as_ref().map(|o| o.value.as_str());
        for env in self.plan.environments.values() {
            if env.targets.is_empty() {
                self.push(
                    Diagnostic::error(
                        Code::NoTargets,
                        env.name.span,
                        format!("environment `{}` has no targets", env.name.value),
                    )
                    .with_label("nothing to deploy to")
                    .with_hint("add targets such as `web-1: { host: local, labels: [web] }`"),
                );
            }
            let required = env.approvals.as_ref().map_or(0, |a| a.required.value);
            if env.protected && required <= 0 {
                let span = env
                    .approvals
                    .as_ref()
                    .map_or(env.name.span, |a| a.required.span);
                self.push(
                    Diagnostic::error(
                        Code::ProtectedWithoutApprovals,
                        span,
                        format!(
                            "environment `{}` is protected but requires no approvals",
                            env.name.value
                        ),
                    )
                    .with_label("protected environments need approval")
                    .with_hint(
                        "add `approvals: { required: 1, from: [ROLE] }`, or drop `protected: true`",
                    ),
                );
            }
            let Some(approvals) = &env.approvals else {
                continue;
            };
            if required <= 0 || self.plan.roles.is_empty() {
                continue;
            }
            let mut people: HashSet<&str> = HashSet::new();
            let mut all_known = true;
            for role in &approvals.from {
                match self.plan.roles.get(&role.value) {
                    Some(r) => people.extend(r.members.iter().map(|m| m.value.as_str())),
                    None => {
                        all_known = false;
                        let mut d = Diagnostic::error(
                            Code::UnknownRole,
                            role.span,
                            format!("role `{}` is not declared under `roles`", role.value),
                        )
                        .with_label("unknown role");
                        d.hint =
                            did_you_mean(&role.value, self.plan.roles.keys().map(String::as_str))
                                .or_else(|| Some("declare its members under `roles:`".into()));
                        self.push(d);
                    }
                }
            }
            if !all_known || approvals.from.is_empty() {
                continue;
            }
            let excluded = owner.filter(|o| people.contains(o));
            let eligible = people.len() - usize::from(excluded.is_some());
            let eligible_i = i64::try_from(eligible).unwrap_or(i64::MAX);
            let who = if eligible == 1 { "person" } else { "people" };
            let owner_note = excluded
                .map(|o| format!(" (`{o}` owns the plan and cannot approve it)"))
                .unwrap_or_default();
            if eligible_i < required {
                self.push(
                    Diagnostic::error(
                        Code::ImpossibleApprovals,
                        approvals.required.span,
                        format!(
                            "environment `{}` requires {required} approvals, but only {eligible} {who} can give them{owner_note}",
                            env.name.value
                        ),
                    )
                    .with_label("more approvers than can exist")
                    .with_hint("lower `required`, or add people or roles to `from`"),
                );
            }
            for rule in &env.policy {
                if let PolicyAction::RequireApprovals(n) = rule.action
                    && i64::from(n) > eligible_i
                {
                    self.push(
                        Diagnostic::error(
                            Code::ImpossibleApprovals,
                            rule.span,
                            format!(
                                "at {} risk, environment `{}` requires {n} approvals, but only {eligible} {who} can give them{owner_note}",
                                rule.level.as_str(),
                                env.name.value
                            ),
                        )
                        .with_label("more approvers than can exist")
                        .with_hint("lower the policy's `approvals`, or add people to the approving roles"),
                    );
                }
            }
        }
    }

    fn selections_and_templates(&mut self) {
        let plan = self.plan;
        if let Some(a) = &plan.artifact {
            self.templates(&[&a.path], Scope::Plan, Targets::NONE, "`artifact.path`");
        }
        for env in plan.environments.values() {
            let mut selector = Selector::new(env);
            for step in &plan.steps {
                if step.manual.is_some() && step.on.is_none() {
                    continue;
                }
                let selected = selector.select(step.on.as_deref());
                if selected.is_empty() && !env.targets.is_empty() {
                    let Some(on) = &step.on else { continue };
                    // Labels unknown everywhere are reported once, by `unknown_labels`.
                    if on.iter().all(|l| self.label_known_somewhere(&l.value)) {
                        let span = on.first().map_or(step.id.span, |l| l.span);
                        let labels: Vec<&str> = on.iter().map(|l| l.value.as_str()).collect();
                        self.push(
                            Diagnostic::error(
                                Code::NoTargets,
                                span,
                                format!(
                                    "step `{}` runs `on: [{}]`, which selects no target in environment `{}`",
                                    step.id.value,
                                    labels.join(", "),
                                    env.name.value
                                ),
                            )
                            .with_label("selects nothing here")
                            .with_hint(format!("label a target of `{}` with one of these, or change `on`", env.name.value)),
                        );
                    }
                }
                let targets = Targets {
                    env: Some(env),
                    selected: &selected,
                };
                let mut step_templates: Vec<&Template> = Vec::new();
                for c in [&step.run, &step.rollback, &step.activate]
                    .into_iter()
                    .flatten()
                {
                    step_templates.extend(c.templates());
                }
                for check in &step.validate {
                    match &check.kind {
                        CheckKind::Http { url, .. } => step_templates.push(url),
                        CheckKind::Tcp { address } => step_templates.push(address),
                        CheckKind::Command { command } => {
                            step_templates.extend(command.templates())
                        }
                    }
                }
                self.templates(
                    &step_templates,
                    Scope::Target,
                    targets,
                    &format!("step `{}`", step.id.value),
                );
            }
        }
        self.unknown_labels();
        for test in &plan.tests {
            let mut ts: Vec<&Template> = Vec::new();
            if let Some(r) = &test.run {
                ts.extend(r.templates());
            }
            if let Some(h) = &test.http_load {
                ts.push(&h.url);
            }
            if let Some(s) = &test.security {
                ts.push(&s.url);
            }
            self.templates(
                &ts,
                Scope::Environment,
                Targets::NONE,
                &format!("test `{}`", test.id.value),
            );
        }
        for n in &plan.notify {
            if let Channel::Webhook { url, .. } = &n.channel {
                self.templates(&[url], Scope::Environment, Targets::NONE, "a webhook URL");
            }
        }
    }

    fn label_known_somewhere(&self, label: &str) -> bool {
        self.plan
            .environments
            .values()
            .flat_map(|e| &e.targets)
            .any(|t| t.name.value == label || t.has_label(label))
    }

    fn unknown_labels(&mut self) {
        let mut all: Vec<&str> = Vec::new();
        for t in self.plan.environments.values().flat_map(|e| &e.targets) {
            all.push(&t.name.value);
            all.extend(t.labels.iter().map(|l| l.value.as_str()));
        }
        all.sort_unstable();
        all.dedup();
        if all.is_empty() {
            return;
        }
        for step in &self.plan.steps {
            for label in step.on.iter().flatten() {
                if all.binary_search(&label.value.as_str()).is_err() {
                    let mut d = Diagnostic::error(
                        Code::NoTargets,
                        label.span,
                        format!("step `{}` runs on `{}`, which is no target's label or name in any environment", step.id.value, label.value),
                    )
                    .with_label("matches no target");
                    d.hint = did_you_mean(&label.value, all.iter().copied())
                        .or_else(|| Some(format!("labels in this plan: {}", all.join(", "))));
                    self.push(d);
                }
            }
        }
    }

    /// Checks every name used in `templates`; `targets` are where a target-scoped template runs.
    fn templates(
        &mut self,
        templates: &[&Template],
        scope: Scope,
        targets: Targets<'_>,
        place: &str,
    ) {
        let plan = self.plan;
        for t in templates {
            for r in t.refs() {
                let Some(kind) = RefKind::parse(&r.path) else {
                    let mut candidates: Vec<String> =
                        FIXED_NAMES.iter().map(|s| s.to_string()).collect();
                    candidates.extend(plan.variables.keys().map(|k| format!("vars.{k}")));
                    candidates.extend(plan.secrets.keys().map(|k| format!("secrets.{k}")));
                    let mut d = Diagnostic::error(
                        Code::UnknownTemplate,
                        r.span,
                        format!("{place}: unknown template name `{}`", r.path),
                    )
                    .with_label("unknown name");
                    d.hint = did_you_mean(&r.path, candidates.iter().map(String::as_str))
                        .or_else(|| Some("names are release.*, vars.*, secrets.*, target.name, target.address, environment.name".into()));
                    self.push(d);
                    continue;
                };
                let problem = match (&kind, scope) {
                    (
                        RefKind::TargetName | RefKind::TargetAddress,
                        Scope::Plan | Scope::Environment,
                    ) => Some(format!(
                        "{place}: `{}` is only known per target, and this value is not per target",
                        r.path
                    )),
                    (RefKind::Secret(_), Scope::Plan) | (RefKind::Environment, Scope::Plan) => {
                        Some(format!("{place}: `{}` cannot be used here", r.path))
                    }
                    (RefKind::ArtifactPath, _) if plan.artifact.is_none() => Some(format!(
                        "{place}: `artifact.path` is used but the plan has no `artifact`"
                    )),
                    (RefKind::ReleaseChange, _) if plan.release.change.is_none() => Some(format!(
                        "{place}: `release.change` is used but `release.change` is not set"
                    )),
                    (RefKind::ReleaseOwner, _) if plan.release.owner.is_none() => Some(format!(
                        "{place}: `release.owner` is used but `release.owner` is not set"
                    )),
                    (RefKind::Secret(name), _) if !plan.secrets.contains_key(name) => {
                        let mut d = Diagnostic::error(
                            Code::UnknownTemplate,
                            r.span,
                            format!("{place}: unknown secret `{name}`"),
                        )
                        .with_label("not declared under `secrets`");
                        d.hint = did_you_mean(name, plan.secrets.keys().map(String::as_str));
                        self.push(d);
                        None
                    }
                    (RefKind::Var(name), _) if !plan.variables.contains_key(name) => {
                        let missing: Vec<&str> = targets
                            .iter()
                            .filter(|t| !t.vars.contains_key(name))
                            .map(|t| t.name.value.as_str())
                            .collect();
                        if scope != Scope::Target || !missing.is_empty() || targets.is_empty() {
                            let mut d = Diagnostic::error(
                                Code::UnknownTemplate,
                                r.span,
                                format!("{place}: unknown variable `{name}`"),
                            )
                            .with_label("not defined");
                            let mut names: Vec<&str> =
                                plan.variables.keys().map(String::as_str).collect();
                            names.extend(
                                targets
                                    .iter()
                                    .flat_map(|t| t.vars.keys().map(String::as_str)),
                            );
                            d.hint = did_you_mean(name, names).or_else(|| {
                                Some(if scope == Scope::Target && !targets.is_empty() && missing.len() < targets.len() {
                                    format!("targets without it: {}; define it under `variables` or in each target's `vars`", missing.join(", "))
                                } else {
                                    "define it under `variables`".into()
                                })
                            });
                            self.push(d);
                        }
                        None
                    }
                    (RefKind::ReleaseVersion, _) if plan.release.version.is_none() => {
                        self.push(
                            Diagnostic::warning(
                                Code::UnknownTemplate,
                                r.span,
                                format!("{place}: `release.version` is used but not set"),
                            )
                            .with_hint("set `release.version`, or pass `--version` when deploying"),
                        );
                        None
                    }
                    _ => None,
                };
                if let Some(message) = problem {
                    self.push(
                        Diagnostic::error(Code::UnknownTemplate, r.span, message)
                            .with_label("not available here"),
                    );
                }
            }
        }
    }

    fn objectives(&mut self) {
        let ids: Vec<&str> = self
            .plan
            .tests
            .iter()
            .map(|t| t.id.value.as_str())
            .collect();
        for o in &self.plan.release.objectives {
            let Some(test) = &o.test else { continue };
            if !ids.contains(&test.value.as_str()) {
                let mut d = Diagnostic::error(
                    Code::UnknownTest,
                    test.span,
                    format!(
                        "objective names test `{}`, which is not a test of this plan",
                        test.value
                    ),
                )
                .with_label("no test with this id");
                d.hint = did_you_mean(&test.value, ids.iter().copied()).or_else(|| {
                    Some(if ids.is_empty() {
                        "the plan has no `tests`".into()
                    } else {
                        format!("tests are: {}", ids.join(", "))
                    })
                });
                self.push(d);
            }
        }
    }

    fn risks(&mut self) {
        for r in &self.plan.risks {
            for (what, v) in [("likelihood", &r.likelihood), ("impact", &r.impact)] {
                if !(1..=5).contains(&v.value) {
                    self.push(
                        Diagnostic::error(
                            Code::OutOfRange,
                            v.span,
                            format!(
                                "risk `{}`: {what} must be from 1 to 5, found {}",
                                r.id.value, v.value
                            ),
                        )
                        .with_label("outside 1..5")
                        .with_hint("1 is rare/negligible, 5 is almost certain/severe"),
                    );
                }
            }
        }
    }

    fn names(&mut self) {
        for (name, secret) in &self.plan.secrets {
            if let Some(var) = self.plan.variables.get(name) {
                self.push(
                    Diagnostic::error(Code::DuplicateId, secret.name.span, format!("`{name}` is both a variable and a secret"))
                        .with_label("declared again as a secret")
                        .with_related(var.span, "variable declared here")
                        .with_hint("steps receive both under their own names, so one would hide the other; rename one"),
                );
            }
        }
    }

    fn notifications(&mut self) {
        for n in &self.plan.notify {
            if let Channel::Webhook {
                secret: Some(s), ..
            } = &n.channel
                && !self.plan.secrets.contains_key(&s.value)
            {
                let mut d = Diagnostic::error(
                    Code::UnknownTemplate,
                    s.span,
                    format!("webhook signing secret `{}` is not declared", s.value),
                )
                .with_label("unknown secret");
                d.hint = did_you_mean(&s.value, self.plan.secrets.keys().map(String::as_str))
                    .or_else(|| Some("declare it under `secrets`".into()));
                self.push(d);
            }
        }
    }
}
