//! From a YAML node tree to the typed [`Plan`], collecting every structural problem on the way.
//!
//! The decoder never stops at the first problem: a bad value is reported and replaced by a neutral
//! default so that the rest of the plan is still read and checked.

use std::time::Duration;

use indexmap::IndexMap;

use super::keys;
use super::model::*;
use crate::calendar::{self, CalendarError, Freeze, Window};
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::duration::parse_duration;
use crate::risk::RiskLevel;
use crate::source::{Source, Span, Spanned};
use crate::template::{Template, is_env_name};
use crate::yaml::{Node, NodeKind, ScalarValue};

pub(crate) struct Decoder<'s> {
    src: &'s Source,
    pub diags: Vec<Diagnostic>,
}

/// A mapping whose keys were checked against the known ones.
struct Map<'n> {
    node: &'n Node,
    entries: &'n [(Node, Node)],
    what: String,
}

impl<'n> Map<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
            .map(|(_, v)| v)
    }

    fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
            .map(|(k, _)| k.span)
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

const EMPTY: &[(Node, Node)] = &[];

impl<'s> Decoder<'s> {
    pub fn new(src: &'s Source) -> Self {
        Decoder {
            src,
            diags: Vec::new(),
        }
    }

    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The first line of a node: where "missing key" errors point.
    fn head(&self, node: &Node) -> Span {
        let start = node.span.start as usize;
        let text = self.src.text();
        let end = text[start.min(text.len())..]
            .find('\n')
            .map_or(text.len(), |i| start + i);
        let end = start + text[start..end].trim_end().len();
        Span::new(start, end.max(start + 1).min(text.len().max(start)))
    }

    fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(
            Diagnostic::error(
                Code::WrongType,
                node.span,
                format!("{what} must be {expected}, found {}", node.describe()),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    fn mapping<'n>(&mut self, node: &'n Node, what: &str, known: &[&str]) -> Option<Map<'n>> {
        let entries: &'n [(Node, Node)] = match &node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Scalar(_) if node.is_null() => EMPTY,
            _ => {
                self.wrong_type(node, what, "a mapping");
                return None;
            }
        };
        for (key, _) in entries {
            let Some(name) = key.as_scalar().map(|s| s.text.as_str()) else {
                continue;
            };
            if !known.contains(&name) {
                let mut d = Diagnostic::error(
                    Code::UnknownKey,
                    key.span,
                    format!("unknown key `{name}` in {what}"),
                )
                .with_label("not a key of this section");
                d.hint = Some(match did_you_mean(name, known.iter().copied()) {
                    Some(h) => h,
                    None => format!("{what} accepts: {}", known.join(", ")),
                });
                if name == "<<" {
                    d.hint = Some("YAML merge keys are not supported; write the keys out".into());
                }
                self.error(d);
            }
        }
        Some(Map {
            node,
            entries,
            what: what.to_string(),
        })
    }

    fn required<'n>(&mut self, map: &Map<'n>, key: &str) -> Option<&'n Node> {
        let found = map.get(key);
        if found.is_none() {
            let span = self.head(map.node);
            self.error(
                Diagnostic::error(
                    Code::MissingField,
                    span,
                    format!("{} is missing the required key `{key}`", map.what),
                )
                .with_label(format!("`{key}` is missing here")),
            );
        }
        found
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match &node.kind {
            NodeKind::Scalar(s) if !node.is_null() => Some(Spanned::new(s.text.clone(), node.span)),
            _ => {
                self.wrong_type(node, what, "a string");
                None
            }
        }
    }

    fn nonempty_string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        let s = self.string(node, what)?;
        if s.value.trim().is_empty() {
            self.error(Diagnostic::error(
                Code::InvalidValue,
                node.span,
                format!("{what} must not be empty"),
            ));
            return None;
        }
        Some(s)
    }

    fn opt_string(&mut self, map: &Map<'_>, key: &str) -> Option<Spanned<String>> {
        let what = format!("`{key}` in {}", map.what);
        map.get(key).and_then(|n| self.string(n, &what))
    }

    /// Where a scalar's text starts in the file, when the file holds it verbatim.
    fn text_start(&self, node: &Node) -> Option<usize> {
        let NodeKind::Scalar(s) = &node.kind else {
            return None;
        };
        let written = self.src.slice(node.span);
        if written == s.text {
            Some(node.span.start as usize)
        } else if s.quoted && written.len() >= 2 && written[1..written.len() - 1] == s.text {
            Some(node.span.start as usize + 1)
        } else {
            None
        }
    }

    fn template(&mut self, node: &Node, what: &str) -> Option<Template> {
        let s = self.string(node, what)?;
        match Template::parse(&s.value, node.span, self.text_start(node)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(
                    Diagnostic::error(Code::BadTemplate, e.span, format!("{what}: {}", e.message))
                        .with_hint(
                            "templates look like `{{ vars.port }}` or `{{ release.version }}`",
                        ),
                );
                None
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str) -> Option<Spanned<i64>> {
        match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Int(i)) => Some(Spanned::new(i, node.span)),
            _ => {
                self.wrong_type(node, what, "a whole number");
                None
            }
        }
    }

    fn uint(&mut self, node: &Node, what: &str, max: i64) -> Option<u32> {
        let v = self.int(node, what)?;
        if v.value < 0 || v.value > max {
            self.error(
                Diagnostic::error(
                    Code::OutOfRange,
                    node.span,
                    format!("{what} must be between 0 and {max}, found {}", v.value),
                )
                .with_label("out of range"),
            );
            return None;
        }
        u32::try_from(v.value).ok()
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Bool(b)) => Some(b),
            _ => {
                self.wrong_type(node, what, "`true` or `false`");
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Spanned<Duration>> {
        match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Str(text)) => {
                match parse_duration(text) {
                    Ok(d) => Some(Spanned::new(d, node.span)),
                    Err(e) => {
                        self.error(
                        Diagnostic::error(Code::BadDuration, node.span, format!("{what}: {e}"))
                            .with_label("not a duration")
                            .with_hint("durations look like `300ms`, `30s`, `5m`, `2h`, `2d` or `1h30m`"),
                    );
                        None
                    }
                }
            }
            Some(ScalarValue::Int(i)) => {
                self.error(
                    Diagnostic::error(
                        Code::BadDuration,
                        node.span,
                        format!("{what}: `{i}` has no unit"),
                    )
                    .with_label("add a unit")
                    .with_hint(format!("write `{i}s` for seconds or `{i}m` for minutes")),
                );
                None
            }
            _ => {
                self.wrong_type(node, what, "a duration such as `30s`");
                None
            }
        }
    }

    /// A duration that must be longer than zero (timeouts, intervals, deadlines).
    fn positive_duration(&mut self, node: &Node, what: &str) -> Option<Spanned<Duration>> {
        let d = self.duration(node, what)?;
        if d.value.is_zero() {
            self.error(
                Diagnostic::error(
                    Code::OutOfRange,
                    node.span,
                    format!("{what} must be longer than zero"),
                )
                .with_label("zero"),
            );
            return None;
        }
        Some(d)
    }

    fn seq<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Seq(items) => items,
            NodeKind::Scalar(_) if node.is_null() => &[],
            _ => {
                self.wrong_type(node, what, "a list");
                &[]
            }
        }
    }

    /// A list of strings; a single string is accepted as a list of one.
    fn string_list(&mut self, node: &Node, what: &str) -> Vec<Spanned<String>> {
        match &node.kind {
            NodeKind::Seq(items) => items.iter().filter_map(|n| self.string(n, what)).collect(),
            NodeKind::Scalar(_) if node.is_null() => Vec::new(),
            NodeKind::Scalar(s) => vec![Spanned::new(s.text.clone(), node.span)],
            NodeKind::Map(_) => {
                self.wrong_type(node, what, "a list of strings");
                Vec::new()
            }
        }
    }

    fn command(&mut self, node: &Node, what: &str) -> Option<Command> {
        let kind = match &node.kind {
            NodeKind::Seq(items) => {
                if items.is_empty() {
                    self.error(
                        Diagnostic::error(
                            Code::InvalidValue,
                            node.span,
                            format!("{what} is an empty command"),
                        )
                        .with_hint(
                            "give the program and its arguments, e.g. `[./bin/migrate, up]`",
                        ),
                    );
                    return None;
                }
                let parts: Vec<Template> = items
                    .iter()
                    .filter_map(|n| self.template(n, what))
                    .collect();
                if parts.len() != items.len() {
                    return None;
                }
                CommandKind::Argv(parts)
            }
            NodeKind::Scalar(_) if !node.is_null() => {
                let t = self.template(node, what)?;
                if t.raw.trim().is_empty() {
                    self.error(Diagnostic::error(
                        Code::InvalidValue,
                        node.span,
                        format!("{what} is an empty command"),
                    ));
                    return None;
                }
                CommandKind::Shell(t)
            }
            _ => {
                self.wrong_type(
                    node,
                    what,
                    "a command (a string, or a list of program and arguments)",
                );
                return None;
            }
        };
        Some(Command {
            kind,
            span: node.span,
        })
    }

    fn count(&mut self, node: &Node, what: &str) -> Option<Count> {
        match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Int(i)) if i >= 1 && i <= i64::from(u32::MAX) => {
                u32::try_from(i).ok().map(Count::Absolute)
            }
            Some(ScalarValue::Str(t)) if t.ends_with('%') => match self.percent_text(t) {
                Some(p) => Some(Count::Percent(p)),
                None => {
                    self.error(
                        Diagnostic::error(
                            Code::OutOfRange,
                            node.span,
                            format!("{what}: `{t}` is not a percentage from 1% to 100%"),
                        )
                        .with_label("out of range"),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    Diagnostic::error(
                        Code::InvalidValue,
                        node.span,
                        format!("{what} must be a number of targets (at least 1) or a percentage such as `25%`"),
                    )
                    .with_label("not a count"),
                );
                None
            }
        }
    }

    fn percent_text(&self, t: &str) -> Option<u32> {
        let p: u32 = t.strip_suffix('%')?.trim().parse().ok()?;
        (1..=100).contains(&p).then_some(p)
    }

    fn time_zone_or_window_error(&mut self, e: CalendarError, span: Span, what: &str) {
        let d = match e {
            CalendarError::TimeZone(name) => Diagnostic::error(
                Code::BadTimeZone,
                span,
                format!("{what}: unknown time zone `{name}`"),
            )
            .with_label("not an IANA time zone")
            .with_hint("use an IANA name such as `Europe/London`, `America/New_York` or `UTC`"),
            CalendarError::Window(m) => Diagnostic::error(Code::BadWindow, span, format!("{what}: {m}"))
                .with_label("not a window")
                .with_hint("windows look like `Sat 22:00-Sun 04:00 Europe/London` or `Mon-Fri 09:00-17:00 UTC`"),
            CalendarError::Date(m) => Diagnostic::error(Code::BadWindow, span, format!("{what}: {m}")).with_label("not a date"),
        };
        self.error(d);
    }

    // ----- sections -----------------------------------------------------------------------------

    pub fn plan(&mut self, root: &Node) -> Plan {
        let top = match self.mapping(root, "the plan", keys::TOP) {
            Some(top) if !root.is_null() => top,
            _ => {
                if root.is_null() {
                    self.error(
                        Diagnostic::error(Code::MissingField, None, "the plan is empty")
                            .with_hint("run `slipway init` to write a starter plan"),
                    );
                }
                return empty_plan();
            }
        };
        let format = match self.required(&top, "slipway") {
            Some(n) => self
                .int(n, "`slipway` (the plan format version)")
                .unwrap_or(Spanned::new(FORMAT_VERSION, n.span)),
            None => Spanned::new(FORMAT_VERSION, Span::default()),
        };
        if format.value != FORMAT_VERSION {
            self.error(
                Diagnostic::error(
                    Code::UnsupportedVersion,
                    format.span,
                    format!("plan format version {} is not supported; this Slipway reads version {FORMAT_VERSION}", format.value),
                )
                .with_label("unsupported version"),
            );
        }
        let release = match self.required(&top, "release") {
            Some(n) => self.release(n),
            None => empty_plan().release,
        };
        let artifact = top.get("artifact").and_then(|n| self.artifact(n));
        let variables = top
            .get("variables")
            .map(|n| self.vars(n, "`variables`"))
            .unwrap_or_default();
        let secrets = top
            .get("secrets")
            .map(|n| self.secrets(n))
            .unwrap_or_default();
        let roles = top.get("roles").map(|n| self.roles(n)).unwrap_or_default();
        let environments = match self.required(&top, "environments") {
            Some(n) => self.environments(n),
            None => IndexMap::new(),
        };
        let steps = match self.required(&top, "steps") {
            Some(n) => {
                let items = self.seq(n, "`steps`");
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| self.step(n, i))
                    .collect()
            }
            None => Vec::new(),
        };
        let tests = top
            .get("tests")
            .map(|n| {
                let items = self.seq(n, "`tests`");
                items.iter().filter_map(|n| self.test(n)).collect()
            })
            .unwrap_or_default();
        let risks = top
            .get("risks")
            .map(|n| {
                let items = self.seq(n, "`risks`");
                items.iter().filter_map(|n| self.risk(n)).collect()
            })
            .unwrap_or_default();
        let notify = top
            .get("notify")
            .map(|n| {
                let items = self.seq(n, "`notify`");
                items.iter().filter_map(|n| self.notification(n)).collect()
            })
            .unwrap_or_default();
        let review = top.get("review").and_then(|n| self.review(n));
        Plan {
            format,
            release,
            artifact,
            variables,
            secrets,
            roles,
            environments,
            steps,
            tests,
            risks,
            notify,
            review,
        }
    }

    fn release(&mut self, node: &Node) -> Release {
        let Some(m) = self.mapping(node, "`release`", keys::RELEASE) else {
            return Release {
                name: Spanned::new(String::new(), node.span),
                version: None,
                change: None,
                summary: None,
                owner: None,
                objectives: Vec::new(),
                span: node.span,
            };
        };
        let name = self
            .required(&m, "name")
            .and_then(|n| self.nonempty_string(n, "`release.name`"))
            .unwrap_or(Spanned::new(String::new(), node.span));
        let version = m
            .get("version")
            .and_then(|n| self.nonempty_string(n, "`release.version`"));
        let change = self.opt_string(&m, "change");
        let summary = self.opt_string(&m, "summary").map(|s| s.value);
        let owner = self.opt_string(&m, "owner");
        let mut objectives = Vec::new();
        if let Some(list) = m.get("objectives") {
            for item in self.seq(list, "`release.objectives`") {
                match &item.kind {
                    NodeKind::Scalar(s) if !item.is_null() => objectives.push(Objective {
                        text: s.text.clone(),
                        test: None,
                    }),
                    _ => {
                        let Some(om) = self.mapping(item, "an objective", keys::OBJECTIVE) else {
                            continue;
                        };
                        let text = self
                            .required(&om, "text")
                            .and_then(|n| self.string(n, "`text` of an objective"))
                            .map(|s| s.value)
                            .unwrap_or_default();
                        let test = self.opt_string(&om, "test");
                        objectives.push(Objective { text, test });
                    }
                }
            }
        }
        Release {
            name,
            version,
            change,
            summary,
            owner,
            objectives,
            span: node.span,
        }
    }

    fn artifact(&mut self, node: &Node) -> Option<Artifact> {
        let m = self.mapping(node, "`artifact`", keys::ARTIFACT)?;
        let path = self
            .required(&m, "path")
            .and_then(|n| self.template(n, "`artifact.path`"))?;
        let sha256 = self.opt_string(&m, "sha256").and_then(|s| {
            let lower = s.value.to_ascii_lowercase();
            if lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some(Spanned::new(lower, s.span))
            } else {
                self.error(
                    Diagnostic::error(
                        Code::InvalidValue,
                        s.span,
                        "`artifact.sha256` must be 64 hexadecimal digits",
                    )
                    .with_label("not a SHA-256 digest")
                    .with_hint("compute it with `sha256sum FILE`"),
                );
                None
            }
        });
        Some(Artifact { path, sha256 })
    }

    fn var_name(&mut self, key: &Node, what: &str) -> Option<String> {
        let name = key.as_scalar()?.text.clone();
        if !is_env_name(&name) {
            self.error(
                Diagnostic::error(Code::InvalidValue, key.span, format!("{what}: `{name}` is not a valid name"))
                    .with_label("invalid name")
                    .with_hint("names are letters, digits and `_`, not starting with a digit, so that steps receive them as environment variables"),
            );
            return None;
        }
        if name.starts_with("SLIPWAY_") {
            self.error(
                Diagnostic::error(
                    Code::InvalidValue,
                    key.span,
                    format!("{what}: names starting with `SLIPWAY_` are reserved"),
                )
                .with_label("reserved name"),
            );
            return None;
        }
        Some(name)
    }

    fn vars(&mut self, node: &Node, what: &str) -> IndexMap<String, Spanned<String>> {
        let mut out = IndexMap::new();
        for (key, value) in self.free_map(node, what) {
            let Some(name) = self.var_name(key, what) else {
                continue;
            };
            match &value.kind {
                NodeKind::Scalar(s) if !value.is_null() => {
                    out.insert(name, Spanned::new(s.text.clone(), value.span));
                }
                _ => self.wrong_type(
                    value,
                    &format!("variable `{name}`"),
                    "a string, number or boolean",
                ),
            }
        }
        out
    }

    fn free_map<'n>(&mut self, node: &'n Node, what: &str) -> &'n [(Node, Node)] {
        match &node.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Scalar(_) if node.is_null() => EMPTY,
            _ => {
                self.wrong_type(node, what, "a mapping");
                EMPTY
            }
        }
    }

    fn secrets(&mut self, node: &Node) -> IndexMap<String, Secret> {
        let mut out = IndexMap::new();
        for (key, value) in self.free_map(node, "`secrets`") {
            let Some(name) = self.var_name(key, "`secrets`") else {
                continue;
            };
            let Some(m) = self.mapping(value, &format!("secret `{name}`"), keys::SECRET) else {
                continue;
            };
            let env = self.opt_string(&m, "env");
            let file = self.opt_string(&m, "file");
            let source = match (env, file) {
                (Some(e), None) => SecretSource::Env(e.value),
                (None, Some(f)) => SecretSource::File(f.value),
                (Some(_), Some(_)) => {
                    self.error(
                        Diagnostic::error(
                            Code::ConflictingFields,
                            value.span,
                            format!("secret `{name}` names both `env` and `file`"),
                        )
                        .with_hint("a secret comes from one place"),
                    );
                    continue;
                }
                (None, None) => {
                    self.error(
                        Diagnostic::error(
                            Code::MissingField,
                            value.span,
                            format!("secret `{name}` needs `env: VARIABLE` or `file: PATH`"),
                        )
                        .with_hint("secret values never live in the plan itself"),
                    );
                    continue;
                }
            };
            out.insert(
                name.clone(),
                Secret {
                    name: Spanned::new(name, key.span),
                    source,
                },
            );
        }
        out
    }

    fn roles(&mut self, node: &Node) -> IndexMap<String, Role> {
        let mut out = IndexMap::new();
        for (key, value) in self.free_map(node, "`roles`") {
            let Some(name) = key.as_scalar().map(|s| s.text.clone()) else {
                continue;
            };
            let members = self.string_list(value, &format!("members of role `{name}`"));
            out.insert(
                name.clone(),
                Role {
                    name: Spanned::new(name, key.span),
                    members,
                },
            );
        }
        out
    }

    fn environments(&mut self, node: &Node) -> IndexMap<String, Environment> {
        let mut out = IndexMap::new();
        for (key, value) in self.free_map(node, "`environments`") {
            let Some(name) = key.as_scalar().map(|s| s.text.clone()) else {
                continue;
            };
            let env = self.environment(Spanned::new(name.clone(), key.span), value);
            out.insert(name, env);
        }
        out
    }

    fn environment(&mut self, name: Spanned<String>, node: &Node) -> Environment {
        let what = format!("environment `{}`", name.value);
        let mut env = Environment {
            name: name.clone(),
            protected: false,
            approvals: None,
            windows: Vec::new(),
            freezes: Vec::new(),
            targets: Vec::new(),
            policy: Vec::new(),
            span: name.span,
        };
        let Some(m) = self.mapping(node, &what, keys::ENVIRONMENT) else {
            return env;
        };
        env.protected = m
            .get("protected")
            .and_then(|n| self.boolean(n, &format!("`protected` in {what}")))
            .unwrap_or(false);
        if let Some(n) = m.get("approvals") {
            env.approvals = self.approvals(n, &what);
        }
        if let Some(n) = m.get("windows") {
            for item in self.seq(n, &format!("`windows` in {what}")) {
                let Some(text) = self.string(item, "a window") else {
                    continue;
                };
                match Window::parse(&text.value) {
                    Ok(w) => env.windows.push(Spanned::new(w, item.span)),
                    Err(e) => {
                        self.time_zone_or_window_error(e, item.span, &format!("window in {what}"))
                    }
                }
            }
        }
        if let Some(n) = m.get("freezes") {
            for item in self.seq(n, &format!("`freezes` in {what}")) {
                if let Some(f) = self.freeze(item, &what) {
                    env.freezes.push(Spanned::new(f, item.span));
                }
            }
        }
        if let Some(n) = m.get("policy") {
            env.policy = self.policy(n, &what);
        }
        if let Some(n) = self.required(&m, "targets") {
            let entries = self.free_map(n, &format!("`targets` in {what}"));
            for (key, value) in entries {
                let Some(tname) = key.as_scalar().map(|s| s.text.clone()) else {
                    continue;
                };
                if let Some(t) = self.target(Spanned::new(tname, key.span), value) {
                    env.targets.push(t);
                }
            }
        }
        env
    }

    fn approvals(&mut self, node: &Node, env: &str) -> Option<Approvals> {
        let m = self.mapping(node, &format!("`approvals` in {env}"), keys::APPROVALS)?;
        let required = self
            .required(&m, "required")
            .and_then(|n| self.int(n, "`approvals.required`"))?;
        if required.value < 0 || required.value > 100 {
            self.error(
                Diagnostic::error(
                    Code::OutOfRange,
                    required.span,
                    format!(
                        "`approvals.required` must be between 0 and 100, found {}",
                        required.value
                    ),
                )
                .with_label("out of range"),
            );
        }
        let from = m
            .get("from")
            .map(|n| self.string_list(n, "`approvals.from`"))
            .unwrap_or_default();
        Some(Approvals {
            required,
            from,
            span: node.span,
        })
    }

    fn policy(&mut self, node: &Node, env: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        for (key, value) in self.free_map(node, &format!("`policy` in {env}")) {
            let Some(level_text) = key.as_scalar().map(|s| s.text.as_str()) else {
                continue;
            };
            let Some(level) = RiskLevel::parse(level_text) else {
                self.error(
                    Diagnostic::error(
                        Code::UnknownKey,
                        key.span,
                        format!("`{level_text}` is not a risk level"),
                    )
                    .with_label("unknown risk level")
                    .with_hint(
                        did_you_mean(level_text, RiskLevel::NAMES.iter().copied()).unwrap_or_else(
                            || "risk levels are low, medium, high and critical".into(),
                        ),
                    ),
                );
                continue;
            };
            let action = match &value.kind {
                NodeKind::Scalar(s) if s.text == "block" => PolicyAction::Block,
                NodeKind::Map(_) => {
                    let Some(pm) = self.mapping(
                        value,
                        &format!("policy for `{level_text}` risk"),
                        keys::POLICY_RULE,
                    ) else {
                        continue;
                    };
                    let Some(n) = self.required(&pm, "approvals") else {
                        continue;
                    };
                    match self.uint(n, "`approvals` in a policy", 100) {
                        Some(v) => PolicyAction::RequireApprovals(v),
                        None => continue,
                    }
                }
                _ => {
                    self.error(
                        Diagnostic::error(Code::InvalidValue, value.span, format!("policy for `{level_text}` risk must be `block` or `{{ approvals: N }}`"))
                            .with_label("not a policy"),
                    );
                    continue;
                }
            };
            rules.push(PolicyRule {
                level,
                action,
                span: key.span,
            });
        }
        rules
    }

    fn freeze(&mut self, node: &Node, env: &str) -> Option<Freeze> {
        let m = self.mapping(node, &format!("a freeze in {env}"), keys::FREEZE)?;
        let tz = match m.get("tz").and_then(|n| self.string(n, "`tz` of a freeze")) {
            Some(name) => match calendar::time_zone(&name.value) {
                Ok(tz) => tz,
                Err(e) => {
                    self.time_zone_or_window_error(e, name.span, "freeze");
                    return None;
                }
            },
            None => jiff::tz::TimeZone::UTC,
        };
        let from_node = self.required(&m, "from");
        let to_node = self.required(&m, "to");
        let reason = self
            .opt_string(&m, "reason")
            .map(|s| s.value)
            .unwrap_or_default();
        let (from_node, to_node) = (from_node?, to_node?);
        let from_text = self.string(from_node, "`from` of a freeze")?;
        let to_text = self.string(to_node, "`to` of a freeze")?;
        let from = calendar::parse_instant(&from_text.value, &tz, false);
        let to = calendar::parse_instant(&to_text.value, &tz, true);
        let (from, to) = match (from, to) {
            (Ok(f), Ok(t)) => (f, t),
            (f, t) => {
                if let Err(e) = f {
                    self.time_zone_or_window_error(e, from_node.span, "freeze `from`");
                }
                if let Err(e) = t {
                    self.time_zone_or_window_error(e, to_node.span, "freeze `to`");
                }
                return None;
            }
        };
        if to <= from {
            self.error(
                Diagnostic::error(
                    Code::InvalidValue,
                    to_node.span,
                    "a freeze must end after it starts",
                )
                .with_label("ends before `from`"),
            );
            return None;
        }
        Some(Freeze {
            from,
            to,
            reason,
            from_text: from_text.value,
            to_text: to_text.value,
        })
    }

    fn target(&mut self, name: Spanned<String>, node: &Node) -> Option<Target> {
        let what = format!("target `{}`", name.value);
        let m = self.mapping(node, &what, keys::TARGET)?;
        let chosen: Vec<&str> = ["host", "ssh", "agent"]
            .into_iter()
            .filter(|k| m.has(k))
            .collect();
        let connection = match chosen.as_slice() {
            [] => {
                self.error(
                    Diagnostic::error(
                        Code::MissingField,
                        self.head(node),
                        format!("{what} does not say how to reach it"),
                    )
                    .with_label("no connection")
                    .with_hint("add `host: local`, `ssh: user@host` or `agent: name`"),
                );
                None
            }
            [one] => self.connection(&m, one, &what),
            [first, second, ..] => {
                let span = m.key_span(second).unwrap_or(node.span);
                self.error(
                    Diagnostic::error(Code::ConflictingFields, span, format!("{what} has both `{first}` and `{second}`"))
                        .with_hint("a target is reached one way: `host: local`, `ssh: user@host` or `agent: name`"),
                );
                None
            }
        };
        let labels = m
            .get("labels")
            .map(|n| self.string_list(n, &format!("`labels` of {what}")))
            .unwrap_or_default();
        let vars = m
            .get("vars")
            .map(|n| self.vars(n, &format!("`vars` of {what}")))
            .unwrap_or_default();
        let root = self.opt_string(&m, "root");
        if let (Some(r), Some(c)) = (&root, &connection)
            && !matches!(c, Connection::Local)
        {
            self.error(
                Diagnostic::error(Code::ConflictingFields, r.span, format!("`root` applies to local targets only, and {what} is reached by {}", c.kind()))
                    .with_hint("for ssh targets, a relative `release_dir` resolves under the login's home directory"),
            );
        }
        let address = self.opt_string(&m, "address").map(|s| s.value);
        Some(Target {
            span: name.span,
            name,
            connection: connection.unwrap_or(Connection::Local),
            labels,
            vars,
            root,
            address,
        })
    }

    fn connection(&mut self, m: &Map<'_>, key: &str, what: &str) -> Option<Connection> {
        let node = m.get(key)?;
        let value = self.nonempty_string(node, &format!("`{key}` of {what}"))?;
        match key {
            "host" => {
                if value.value == "local" || value.value == "localhost" {
                    Some(Connection::Local)
                } else {
                    self.error(
                        Diagnostic::error(
                            Code::InvalidValue,
                            node.span,
                            format!("`host` of {what} must be `local`"),
                        )
                        .with_label("unsupported host")
                        .with_hint(format!(
                            "to reach a remote host over SSH, write `ssh: deploy@{}`",
                            value.value
                        )),
                    );
                    None
                }
            }
            "ssh" => match parse_ssh(&value.value) {
                Ok(addr) => Some(Connection::Ssh(addr)),
                Err(msg) => {
                    self.error(
                        Diagnostic::error(
                            Code::InvalidValue,
                            node.span,
                            format!("`ssh` of {what}: {msg}"),
                        )
                        .with_label("not an SSH address")
                        .with_hint("write `user@host` or `user@host:port`"),
                    );
                    None
                }
            },
            _ => Some(Connection::Agent { name: value.value }),
        }
    }

    fn step(&mut self, node: &Node, index: usize) -> Option<Step> {
        let provisional = format!("step {}", index + 1);
        let id_text = match &node.kind {
            NodeKind::Map(_) => {
                let probe = Map {
                    node,
                    entries: match &node.kind {
                        NodeKind::Map(e) => e,
                        _ => EMPTY,
                    },
                    what: String::new(),
                };
                probe
                    .get("id")
                    .and_then(|n| n.as_scalar())
                    .map(|s| s.text.clone())
            }
            _ => None,
        };
        let what = id_text
            .as_ref()
            .map_or(provisional, |id| format!("step `{id}`"));
        let m = self.mapping(node, &what, keys::STEP)?;
        let id = self
            .required(&m, "id")
            .and_then(|n| self.nonempty_string(n, "`id` of a step"))
            .unwrap_or(Spanned::new(String::new(), node.span));
        if !id.value.is_empty()
            && !id
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.error(
                Diagnostic::error(
                    Code::InvalidValue,
                    id.span,
                    format!(
                        "step id `{}` may only hold letters, digits, `-`, `_` and `.`",
                        id.value
                    ),
                )
                .with_label("invalid id"),
            );
        }
        let description = self.opt_string(&m, "description").map(|s| s.value);
        let owner = self.opt_string(&m, "owner");
        let on = m
            .get("on")
            .map(|n| self.string_list(n, &format!("`on` of {what}")));
        let needs = m
            .get("needs")
            .map(|n| self.string_list(n, &format!("`needs` of {what}")))
            .unwrap_or_default();
        let run = m
            .get("run")
            .and_then(|n| self.command(n, &format!("`run` of {what}")));
        let rollback = m
            .get("rollback")
            .and_then(|n| self.command(n, &format!("`rollback` of {what}")));
        let activate = m
            .get("activate")
            .and_then(|n| self.command(n, &format!("`activate` of {what}")));
        let timeout = m
            .get("timeout")
            .and_then(|n| self.positive_duration(n, &format!("`timeout` of {what}")));
        let retries = m
            .get("retries")
            .and_then(|n| self.uint(n, &format!("`retries` of {what}"), 100))
            .unwrap_or(0);
        let release_dir = m
            .get("release_dir")
            .and_then(|n| self.release_dir(n, &what));
        if let (Some(a), None) = (&activate, &release_dir) {
            self.error(
                Diagnostic::error(Code::ConflictingFields, a.span, format!("`activate` of {what} runs after a release-directory switch, but the step has no `release_dir`"))
                    .with_hint("add `release_dir: NAME`, or fold the command into `run`"),
            );
        }
        let strategy = match m.get("strategy") {
            Some(n) => Spanned::new(
                self.strategy(n, &what).unwrap_or(Strategy::AllAtOnce),
                n.span,
            ),
            None => Spanned::new(Strategy::AllAtOnce, Span::default()),
        };
        let validate = m
            .get("validate")
            .map(|n| {
                let items = self.seq(n, &format!("`validate` of {what}"));
                items.iter().filter_map(|c| self.check(c, &what)).collect()
            })
            .unwrap_or_default();
        let manual = m
            .get("manual")
            .and_then(|n| self.nonempty_string(n, &format!("`manual` of {what}")));
        if let Some(man) = &manual {
            for key in [
                "run",
                "rollback",
                "release_dir",
                "activate",
                "strategy",
                "validate",
            ] {
                if let Some(span) = m.key_span(key) {
                    self.error(
                        Diagnostic::error(
                            Code::ConflictingFields,
                            span,
                            format!("{what} is manual and cannot also have `{key}`"),
                        )
                        .with_label("not allowed on a manual step")
                        .with_related(man.span, "manual because of this"),
                    );
                }
            }
            if owner.is_none() {
                self.error(
                    Diagnostic::error(
                        Code::MissingField,
                        man.span,
                        format!("manual {what} needs an `owner`: the role that confirms it"),
                    )
                    .with_hint("add `owner: ROLE`; only members of that role can confirm the step"),
                );
            }
        } else if !m.has("run") && !m.has("release_dir") {
            self.error(
                Diagnostic::error(
                    Code::MissingField,
                    self.head(node),
                    format!("{what} has nothing to do"),
                )
                .with_label("no `run`, `release_dir` or `manual`")
                .with_hint(
                    "give it a `run` command, a `release_dir`, or make it `manual: INSTRUCTION`",
                ),
            );
        }
        Some(Step {
            id,
            description,
            owner,
            on,
            needs,
            run,
            rollback,
            activate,
            timeout,
            retries,
            release_dir,
            strategy,
            validate,
            manual,
            span: node.span,
        })
    }

    fn release_dir(&mut self, node: &Node, what: &str) -> Option<ReleaseDir> {
        match &node.kind {
            NodeKind::Map(_) => {
                let m =
                    self.mapping(node, &format!("`release_dir` of {what}"), keys::RELEASE_DIR)?;
                let path = self
                    .required(&m, "path")
                    .and_then(|n| self.nonempty_string(n, "`release_dir.path`"))?;
                let keep = m
                    .get("keep")
                    .and_then(|n| self.uint(n, "`release_dir.keep`", 1000))
                    .unwrap_or(DEFAULT_KEEP_RELEASES);
                if keep < 2 {
                    self.error(
                        Diagnostic::error(Code::OutOfRange, m.get("keep").map_or(node.span, |n| n.span), "`release_dir.keep` must be at least 2, or rollback has nothing to return to")
                            .with_label("too few"),
                    );
                }
                Some(ReleaseDir { path, keep })
            }
            _ => {
                let path = self.nonempty_string(node, &format!("`release_dir` of {what}"))?;
                Some(ReleaseDir {
                    path,
                    keep: DEFAULT_KEEP_RELEASES,
                })
            }
        }
    }

    fn strategy(&mut self, node: &Node, what: &str) -> Option<Strategy> {
        if let NodeKind::Scalar(s) = &node.kind {
            return match s.text.as_str() {
                "all_at_once" => Some(Strategy::AllAtOnce),
                "blue_green" => Some(Strategy::BlueGreen),
                "rolling" => Some(Strategy::Rolling {
                    batch: Count::Absolute(1),
                    max_unavailable: None,
                }),
                other => {
                    self.error(
                        Diagnostic::error(
                            Code::InvalidValue,
                            node.span,
                            format!("`{other}` is not a strategy"),
                        )
                        .with_label("unknown strategy")
                        .with_hint(
                            did_you_mean(other, keys::STRATEGY.iter().copied()).unwrap_or_else(
                                || {
                                    "strategies are all_at_once, rolling, canary and blue_green"
                                        .into()
                                },
                            ),
                        ),
                    );
                    None
                }
            };
        }
        let m = self.mapping(node, &format!("`strategy` of {what}"), keys::STRATEGY)?;
        let chosen: Vec<&str> = keys::STRATEGY
            .iter()
            .copied()
            .filter(|k| m.has(k))
            .collect();
        if chosen.len() > 1 {
            let span = m.key_span(chosen[1]).unwrap_or(node.span);
            self.error(
                Diagnostic::error(
                    Code::ConflictingFields,
                    span,
                    format!("{what} has more than one strategy"),
                )
                .with_hint("choose one of all_at_once, rolling, canary and blue_green"),
            );
            return None;
        }
        match chosen.first().copied() {
            None => {
                self.error(
                    Diagnostic::error(
                        Code::MissingField,
                        node.span,
                        format!("`strategy` of {what} is empty"),
                    )
                    .with_hint("choose one of all_at_once, rolling, canary and blue_green"),
                );
                None
            }
            Some("all_at_once") => {
                let n = m.get("all_at_once")?;
                self.mapping(n, "`all_at_once`", &[])?;
                Some(Strategy::AllAtOnce)
            }
            Some("blue_green") => {
                let n = m.get("blue_green")?;
                self.mapping(n, "`blue_green`", &[])?;
                Some(Strategy::BlueGreen)
            }
            Some("rolling") => {
                let n = m.get("rolling")?;
                let rm = self.mapping(n, "`rolling`", keys::ROLLING)?;
                let batch = match rm.get("batch") {
                    Some(b) => self.count(b, "`rolling.batch`")?,
                    None => Count::Absolute(1),
                };
                let max_unavailable = match rm.get("max_unavailable") {
                    Some(b) => Some(self.count(b, "`rolling.max_unavailable`")?),
                    None => None,
                };
                Some(Strategy::Rolling {
                    batch,
                    max_unavailable,
                })
            }
            Some(_) => {
                let n = m.get("canary")?;
                let cm = self.mapping(n, "`canary`", keys::CANARY)?;
                let stages_node = self.required(&cm, "stages")?;
                let mut stages = Vec::new();
                for s in self.seq(stages_node, "`canary.stages`") {
                    let p = match s.as_scalar().map(|x| x.value()) {
                        Some(ScalarValue::Str(t)) => self.percent_text(t),
                        Some(ScalarValue::Int(i)) if (1..=100).contains(&i) => {
                            u32::try_from(i).ok()
                        }
                        _ => None,
                    };
                    match p {
                        Some(p) => {
                            if stages.last().is_some_and(|&prev| p <= prev) {
                                self.error(
                                    Diagnostic::error(Code::InvalidValue, s.span, "canary stages must grow: each stage is the share of targets on the new release after it")
                                        .with_label("not larger than the stage before"),
                                );
                            }
                            stages.push(p);
                        }
                        None => self.error(
                            Diagnostic::error(
                                Code::OutOfRange,
                                s.span,
                                "a canary stage is a percentage from 1% to 100%",
                            )
                            .with_label("not a percentage"),
                        ),
                    }
                }
                if stages.last().is_some_and(|&p| p != 100) {
                    self.error(
                        Diagnostic::error(
                            Code::InvalidValue,
                            stages_node.span,
                            "the last canary stage must be 100%",
                        )
                        .with_label("rollout would stop short of every target")
                        .with_hint("add `100%` as the last stage"),
                    );
                }
                if stages.is_empty() {
                    self.error(
                        Diagnostic::error(
                            Code::MissingField,
                            stages_node.span,
                            "`canary.stages` is empty",
                        )
                        .with_hint("for example `[10%, 50%, 100%]`"),
                    );
                }
                let pause = match cm.get("pause") {
                    Some(p) if p.as_scalar().is_some_and(|s| s.text == "confirm") => {
                        Some(Pause::Confirm)
                    }
                    Some(p) => self
                        .duration(p, "`canary.pause`")
                        .map(|d| Pause::For(d.value)),
                    None => None,
                };
                Some(Strategy::Canary { stages, pause })
            }
        }
    }

    fn check(&mut self, node: &Node, step: &str) -> Option<Check> {
        let what = format!("a check of {step}");
        let m = self.mapping(node, &what, keys::CHECK)?;
        let chosen: Vec<&str> = ["http", "tcp", "command"]
            .into_iter()
            .filter(|k| m.has(k))
            .collect();
        let interval = m
            .get("interval")
            .and_then(|n| self.positive_duration(n, "`interval`"))
            .map_or(DEFAULT_CHECK_INTERVAL, |d| d.value);
        let deadline = m
            .get("deadline")
            .and_then(|n| self.positive_duration(n, "`deadline`"))
            .map_or(DEFAULT_CHECK_DEADLINE, |d| d.value);
        let kind = match chosen.as_slice() {
            ["http"] => {
                let url = self.template(m.get("http")?, "`http` check URL")?;
                if !url.raw.starts_with("http://")
                    && !url.raw.starts_with("https://")
                    && !url.raw.starts_with("{{")
                {
                    self.error(
                        Diagnostic::error(
                            Code::InvalidValue,
                            url.span,
                            "an `http` check needs an http:// or https:// URL",
                        )
                        .with_label("not an HTTP URL"),
                    );
                }
                let (mut status, mut body_contains, mut latency_below) = (200u16, None, None);
                if let Some(e) = m.get("expect")
                    && let Some(em) = self.mapping(e, "`expect`", keys::EXPECT)
                {
                    if let Some(s) = em.get("status") {
                        match self.uint(s, "`expect.status`", 599) {
                            Some(v) if v >= 100 => status = u16::try_from(v).unwrap_or(200),
                            Some(_) => self.error(Diagnostic::error(
                                Code::OutOfRange,
                                s.span,
                                "`expect.status` must be an HTTP status from 100 to 599",
                            )),
                            None => {}
                        }
                    }
                    body_contains = self.opt_string(&em, "body_contains").map(|s| s.value);
                    latency_below = em
                        .get("latency_below")
                        .and_then(|n| self.duration(n, "`expect.latency_below`"))
                        .map(|d| d.value);
                }
                CheckKind::Http {
                    url,
                    status,
                    body_contains,
                    latency_below,
                }
            }
            ["tcp"] => {
                if let Some(span) = m.key_span("expect") {
                    self.error(Diagnostic::error(
                        Code::ConflictingFields,
                        span,
                        "`expect` applies to `http` checks only",
                    ));
                }
                CheckKind::Tcp {
                    address: self.template(m.get("tcp")?, "`tcp` check address")?,
                }
            }
            ["command"] => {
                if let Some(span) = m.key_span("expect") {
                    self.error(Diagnostic::error(Code::ConflictingFields, span, "`expect` applies to `http` checks only; a command check passes when it exits 0"));
                }
                CheckKind::Command {
                    command: self.command(m.get("command")?, "`command` check")?,
                }
            }
            [_] => return None,
            [] => {
                self.error(
                    Diagnostic::error(
                        Code::MissingField,
                        self.head(node),
                        format!("{what} needs `http`, `tcp` or `command`"),
                    )
                    .with_label("what should be checked?"),
                );
                return None;
            }
            [first, second, ..] => {
                self.error(
                    Diagnostic::error(
                        Code::ConflictingFields,
                        m.key_span(second).unwrap_or(node.span),
                        format!("a check has both `{first}` and `{second}`"),
                    )
                    .with_hint("write one check per list item"),
                );
                return None;
            }
        };
        Some(Check {
            kind,
            interval,
            deadline,
            span: node.span,
        })
    }

    fn test(&mut self, node: &Node) -> Option<TestSpec> {
        let m = self.mapping(node, "a test", keys::TEST)?;
        let id = self
            .required(&m, "id")
            .and_then(|n| self.nonempty_string(n, "`id` of a test"));
        let what = id
            .as_ref()
            .map_or("a test".to_string(), |i| format!("test `{}`", i.value));
        let kind = self.required(&m, "kind").and_then(|n| {
            let s = self.string(n, &format!("`kind` of {what}"))?;
            match s.value.as_str() {
                "functional" => Some(TestKind::Functional),
                "performance" => Some(TestKind::Performance),
                "security" => Some(TestKind::Security),
                other => {
                    self.error(
                        Diagnostic::error(
                            Code::InvalidValue,
                            n.span,
                            format!("`{other}` is not a test kind"),
                        )
                        .with_label("unknown kind")
                        .with_hint(
                            did_you_mean(other, ["functional", "performance", "security"])
                                .unwrap_or_else(|| {
                                    "test kinds are functional, performance and security".into()
                                }),
                        ),
                    );
                    None
                }
            }
        });
        let run = m
            .get("run")
            .and_then(|n| self.command(n, &format!("`run` of {what}")));
        let junit = self.opt_string(&m, "junit").map(|s| s.value);
        let timeout = m
            .get("timeout")
            .and_then(|n| self.positive_duration(n, "`timeout`"))
            .map(|d| d.value);
        let http_load = m.get("http_load").and_then(|n| self.http_load(n));
        let security = m.get("security").and_then(|n| self.security(n));
        let actions = ["run", "http_load", "security"]
            .into_iter()
            .filter(|k| m.has(k))
            .count();
        if actions == 0 {
            self.error(
                Diagnostic::error(
                    Code::MissingField,
                    self.head(node),
                    format!("{what} has nothing to run"),
                )
                .with_hint("give it `run`, `http_load` or `security`"),
            );
        } else if actions > 1 {
            self.error(
                Diagnostic::error(
                    Code::ConflictingFields,
                    self.head(node),
                    format!("{what} has more than one of `run`, `http_load` and `security`"),
                )
                .with_hint("write one test per list item"),
            );
        }
        if let (Some(span), false) = (m.key_span("junit"), m.has("run")) {
            self.error(Diagnostic::error(
                Code::ConflictingFields,
                span,
                "`junit` names the report of a `run` command",
            ));
        }
        Some(TestSpec {
            id: id?,
            kind: kind?,
            run,
            junit,
            http_load,
            security,
            timeout,
            span: node.span,
        })
    }

    fn http_load(&mut self, node: &Node) -> Option<HttpLoad> {
        let m = self.mapping(node, "`http_load`", keys::HTTP_LOAD)?;
        let url = self
            .required(&m, "url")
            .and_then(|n| self.template(n, "`http_load.url`"));
        let duration = m
            .get("duration")
            .and_then(|n| self.positive_duration(n, "`http_load.duration`"))
            .map_or(Duration::from_secs(10), |d| d.value);
        let concurrency = match m.get("concurrency") {
            Some(n) => match self.uint(n, "`http_load.concurrency`", 1000) {
                Some(0) => {
                    self.error(
                        Diagnostic::error(
                            Code::OutOfRange,
                            n.span,
                            "`http_load.concurrency` must be at least 1",
                        )
                        .with_label("zero"),
                    );
                    1
                }
                Some(c) => c,
                None => 1,
            },
            None => 4,
        };
        let p95_below = m
            .get("p95_below")
            .and_then(|n| self.duration(n, "`http_load.p95_below`"))
            .map(|d| d.value);
        let max_error_rate = match m.get("max_error_rate") {
            Some(n) => match n.as_scalar().map(|s| s.value()) {
                Some(ScalarValue::Float(f)) if (0.0..=1.0).contains(&f) => Some(f),
                Some(ScalarValue::Int(i)) if i == 0 || i == 1 => Some(i as f64),
                _ => {
                    self.error(
                        Diagnostic::error(
                            Code::OutOfRange,
                            n.span,
                            "`max_error_rate` is a fraction from 0 to 1, such as 0.01",
                        )
                        .with_label("not a fraction"),
                    );
                    None
                }
            },
            None => None,
        };
        Some(HttpLoad {
            url: url?,
            duration,
            concurrency,
            p95_below,
            max_error_rate,
        })
    }

    fn security(&mut self, node: &Node) -> Option<SecurityCheck> {
        let m = self.mapping(node, "`security`", keys::SECURITY)?;
        let url = self
            .required(&m, "url")
            .and_then(|n| self.template(n, "`security.url`"));
        let require_headers = m
            .get("require_headers")
            .map(|n| self.string_list(n, "`require_headers`"))
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect();
        let cert_valid_for = m
            .get("cert_valid_for")
            .and_then(|n| self.duration(n, "`cert_valid_for`"))
            .map(|d| d.value);
        let ports = |key: &str, this: &mut Self| -> Option<Vec<u16>> {
            let n = m.get(key)?;
            let items = this.seq(n, &format!("`{key}`"));
            Some(
                items
                    .iter()
                    .filter_map(|p| {
                        this.uint(p, "a port", 65535)
                            .and_then(|v| u16::try_from(v).ok())
                    })
                    .collect(),
            )
        };
        let allowed_ports = ports("allowed_ports", self);
        let scan_ports = ports("scan_ports", self).unwrap_or_default();
        Some(SecurityCheck {
            url: url?,
            require_headers,
            cert_valid_for,
            allowed_ports,
            scan_ports,
        })
    }

    fn risk(&mut self, node: &Node) -> Option<Risk> {
        let m = self.mapping(node, "a risk", keys::RISK)?;
        let id = self
            .required(&m, "id")
            .and_then(|n| self.nonempty_string(n, "`id` of a risk"));
        let title = self
            .required(&m, "title")
            .and_then(|n| self.string(n, "`title` of a risk"))
            .map(|s| s.value);
        let likelihood = self
            .required(&m, "likelihood")
            .and_then(|n| self.int(n, "`likelihood` of a risk"));
        let impact = self
            .required(&m, "impact")
            .and_then(|n| self.int(n, "`impact` of a risk"));
        let mitigation = self.opt_string(&m, "mitigation").map(|s| s.value);
        let contingency = self.opt_string(&m, "contingency").map(|s| s.value);
        let owner = self.opt_string(&m, "owner").map(|s| s.value);
        Some(Risk {
            id: id?,
            title: title?,
            likelihood: likelihood?,
            impact: impact?,
            mitigation,
            contingency,
            owner,
        })
    }

    fn notification(&mut self, node: &Node) -> Option<Notification> {
        let m = self.mapping(node, "a notification", keys::NOTIFY)?;
        let on_node = self.required(&m, "on");
        let on = on_node
            .map(|n| self.string_list(n, "`on` of a notification"))
            .unwrap_or_default();
        if let Some(n) = on_node
            && on.is_empty()
        {
            self.error(
                Diagnostic::error(
                    Code::InvalidValue,
                    n.span,
                    "a notification with no events never sends",
                )
                .with_hint(format!("events are: {}", NOTIFY_EVENTS.join(", "))),
            );
        }
        for ev in &on {
            if !NOTIFY_EVENTS.contains(&ev.value.as_str()) {
                self.error(
                    Diagnostic::error(
                        Code::InvalidValue,
                        ev.span,
                        format!("`{}` is not a deployment event", ev.value),
                    )
                    .with_label("unknown event")
                    .with_hint(
                        did_you_mean(&ev.value, NOTIFY_EVENTS.iter().copied())
                            .unwrap_or_else(|| format!("events are: {}", NOTIFY_EVENTS.join(", "))),
                    ),
                );
            }
        }
        let channel = match (m.get("webhook"), m.get("email")) {
            (Some(w), None) => {
                let url = self.template(w, "`webhook`")?;
                let format = match self.opt_string(&m, "format") {
                    None => WebhookFormat::Json,
                    Some(f) => match f.value.as_str() {
                        "slack" => WebhookFormat::Slack,
                        "json" => WebhookFormat::Json,
                        other => {
                            self.error(
                                Diagnostic::error(
                                    Code::InvalidValue,
                                    f.span,
                                    format!("`{other}` is not a webhook format"),
                                )
                                .with_hint("formats are `slack` and `json`"),
                            );
                            WebhookFormat::Json
                        }
                    },
                };
                let secret = self.opt_string(&m, "secret");
                Channel::Webhook {
                    url,
                    format,
                    secret,
                }
            }
            (None, Some(e)) => {
                for key in ["format", "secret"] {
                    if let Some(span) = m.key_span(key) {
                        self.error(Diagnostic::error(
                            Code::ConflictingFields,
                            span,
                            format!("`{key}` applies to webhooks, not e-mail"),
                        ));
                    }
                }
                let to: Vec<String> = self
                    .string_list(e, "`email`")
                    .into_iter()
                    .map(|s| s.value)
                    .collect();
                for addr in &to {
                    if !addr.contains('@') {
                        self.error(Diagnostic::error(
                            Code::InvalidValue,
                            e.span,
                            format!("`{addr}` is not an e-mail address"),
                        ));
                    }
                }
                Channel::Email { to }
            }
            (Some(_), Some(_)) => {
                self.error(
                    Diagnostic::error(
                        Code::ConflictingFields,
                        m.key_span("email").unwrap_or(node.span),
                        "a notification has both `webhook` and `email`",
                    )
                    .with_hint("write one notification per channel"),
                );
                return None;
            }
            (None, None) => {
                self.error(
                    Diagnostic::error(
                        Code::MissingField,
                        self.head(node),
                        "a notification needs `webhook: URL` or `email: [ADDRESS]`",
                    )
                    .with_label("no channel"),
                );
                return None;
            }
        };
        Some(Notification {
            on,
            channel,
            span: node.span,
        })
    }

    fn review(&mut self, node: &Node) -> Option<Review> {
        let m = self.mapping(node, "`review`", keys::REVIEW)?;
        let due = m
            .get("due")
            .and_then(|n| self.duration(n, "`review.due`"))
            .map(|d| d.value);
        let attendees = m
            .get("attendees")
            .map(|n| self.string_list(n, "`review.attendees`"))
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect();
        Some(Review { due, attendees })
    }
}

fn empty_plan() -> Plan {
    Plan {
        format: Spanned::new(FORMAT_VERSION, Span::default()),
        release: Release {
            name: Spanned::new(String::new(), Span::default()),
            version: None,
            change: None,
            summary: None,
            owner: None,
            objectives: Vec::new(),
            span: Span::default(),
        },
        artifact: None,
        variables: IndexMap::new(),
        secrets: IndexMap::new(),
        roles: IndexMap::new(),
        environments: IndexMap::new(),
        steps: Vec::new(),
        tests: Vec::new(),
        risks: Vec::new(),
        notify: Vec::new(),
        review: None,
    }
}

/// `user@host`, `user@host:port` or `user@[v6addr]:port`.
pub fn parse_ssh(text: &str) -> Result<SshAddress, String> {
    let (user, rest) = text.split_once('@').ok_or("missing `user@`")?;
    if user.is_empty() || user.contains(char::is_whitespace) {
        return Err("missing user name before `@`".into());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed `[`")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port"))?,
            None if after.is_empty() => 22,
            None => return Err(format!("unexpected `{after}`")),
        };
        (host.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("`{p}` is not a port"))?,
            ),
            None => (rest.to_string(), 22),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("missing host name".into());
    }
    if port == 0 {
        return Err("port 0 is not a port".into());
    }
    Ok(SshAddress {
        user: user.to_string(),
        host,
        port,
    })
}
