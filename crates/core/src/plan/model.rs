//! The typed plan: what a plan file means once decoded. Values that later checks may blame keep their span.

use std::time::Duration;

use indexmap::IndexMap;

use crate::calendar::{Freeze, Window};
use crate::source::{Span, Spanned};
use crate::template::Template;

pub const FORMAT_VERSION: i64 = 1;

#[derive(Debug, Clone)]
pub struct Plan {
    pub format: Spanned<i64>,
    pub release: Release,
    pub artifact: Option<Artifact>,
    pub variables: IndexMap<String, Spanned<String>>,
    pub secrets: IndexMap<String, Secret>,
    /// Members of roles, where the plan declares them (used to check that approvals can be met).
    pub roles: IndexMap<String, Role>,
    pub environments: IndexMap<String, Environment>,
    pub steps: Vec<Step>,
    pub tests: Vec<TestSpec>,
    pub risks: Vec<Risk>,
    pub notify: Vec<Notification>,
    pub review: Option<Review>,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub name: Spanned<String>,
    pub version: Option<Spanned<String>>,
    pub change: Option<Spanned<String>>,
    pub summary: Option<String>,
    pub owner: Option<Spanned<String>>,
    pub objectives: Vec<Objective>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Objective {
    pub text: String,
    pub test: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: Template,
    /// Lower-case hex digest, checked before any target is touched.
    pub sha256: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub name: Spanned<String>,
    pub source: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Read from this environment variable of the process that runs the deployment.
    Env(String),
    /// Read from this file (trailing newline trimmed).
    File(String),
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: Spanned<String>,
    pub members: Vec<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub name: Spanned<String>,
    pub protected: bool,
    pub approvals: Option<Approvals>,
    pub windows: Vec<Spanned<Window>>,
    pub freezes: Vec<Spanned<Freeze>>,
    pub targets: Vec<Target>,
    pub policy: Vec<PolicyRule>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Approvals {
    pub required: Spanned<i64>,
    /// Roles whose members may approve.
    pub from: Vec<Spanned<String>>,
    pub span: Span,
}

/// What a risk level demands in an environment: more approvals, or no deployment at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    pub level: crate::risk::RiskLevel,
    pub action: PolicyAction,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "approvals")]
pub enum PolicyAction {
    RequireApprovals(u32),
    Block,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: Spanned<String>,
    pub connection: Connection,
    pub labels: Vec<Spanned<String>>,
    pub vars: IndexMap<String, Spanned<String>>,
    /// A local target's directory; relative paths resolve under Slipway's data directory.
    pub root: Option<Spanned<String>>,
    /// Address used in checks (`{{ target.address }}`); defaults from the connection.
    pub address: Option<String>,
    pub span: Span,
}

impl Target {
    pub fn address(&self) -> &str {
        if let Some(a) = &self.address {
            return a;
        }
        match &self.connection {
            Connection::Local => "127.0.0.1",
            Connection::Ssh(ssh) => &ssh.host,
            Connection::Agent { name } => name,
        }
    }

    pub fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l.value == label)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Local,
    Ssh(SshAddress),
    Agent { name: String },
}

impl Connection {
    pub fn kind(&self) -> &'static str {
        match self {
            Connection::Local => "local",
            Connection::Ssh(_) => "ssh",
            Connection::Agent { .. } => "agent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAddress {
    pub user: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: Spanned<String>,
    pub description: Option<String>,
    pub owner: Option<Spanned<String>>,
    /// Labels (or target names) selecting where the step runs; `None` means every target.
    pub on: Option<Vec<Spanned<String>>>,
    pub needs: Vec<Spanned<String>>,
    pub run: Option<Command>,
    pub rollback: Option<Command>,
    pub activate: Option<Command>,
    pub timeout: Option<Spanned<Duration>>,
    pub retries: u32,
    pub release_dir: Option<ReleaseDir>,
    pub strategy: Spanned<Strategy>,
    pub validate: Vec<Check>,
    /// Instruction for a person; the step waits for its owner to confirm.
    pub manual: Option<Spanned<String>>,
    pub span: Span,
}

impl Step {
    /// A step is irreversible when it changes something and declares no way back.
    pub fn is_irreversible(&self) -> bool {
        self.run.is_some() && self.rollback.is_none() && self.release_dir.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct ReleaseDir {
    pub path: Spanned<String>,
    pub keep: u32,
}

pub const DEFAULT_KEEP_RELEASES: u32 = 5;

#[derive(Debug, Clone)]
pub struct Command {
    pub kind: CommandKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum CommandKind {
    /// Executed directly; each element is one argument after template substitution.
    Argv(Vec<Template>),
    /// Run by `sh -c`; templates become references to environment variables, never pasted values.
    Shell(Template),
}

impl Command {
    /// The command as written, for people (templates unresolved).
    pub fn describe(&self) -> String {
        match &self.kind {
            CommandKind::Argv(parts) => parts
                .iter()
                .map(|p| p.raw.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            CommandKind::Shell(t) => t.raw.clone(),
        }
    }

    pub fn templates(&self) -> Vec<&Template> {
        match &self.kind {
            CommandKind::Argv(v) => v.iter().collect(),
            CommandKind::Shell(t) => vec![t],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Count {
    Absolute(u32),
    Percent(u32),
}

impl Count {
    /// Resolves against `total` targets, never below one.
    pub fn of(self, total: usize) -> usize {
        match self {
            Count::Absolute(n) => (n as usize).max(1),
            Count::Percent(p) => (total * p as usize).div_ceil(100).max(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Strategy {
    AllAtOnce,
    Rolling {
        batch: Count,
        max_unavailable: Option<Count>,
    },
    Canary {
        /// Cumulative share of targets after each stage, ascending, the last 100.
        stages: Vec<u32>,
        pause: Option<Pause>,
    },
    BlueGreen,
}

impl Count {
    fn describe(self) -> String {
        match self {
            Count::Absolute(n) => n.to_string(),
            Count::Percent(p) => format!("{p}%"),
        }
    }
}

impl Strategy {
    /// The strategy in a few words, for people.
    pub fn describe(&self) -> String {
        match self {
            Strategy::AllAtOnce => "all at once".into(),
            Strategy::BlueGreen => {
                "blue/green: deploy to every idle slot, then switch all at once".into()
            }
            Strategy::Rolling {
                batch,
                max_unavailable,
            } => match max_unavailable {
                Some(m) => format!(
                    "rolling, batch {}, max unavailable {}",
                    batch.describe(),
                    m.describe()
                ),
                None => format!("rolling, batch {}", batch.describe()),
            },
            Strategy::Canary { stages, pause } => {
                let stages: Vec<String> = stages.iter().map(|p| format!("{p}%")).collect();
                let pause = match pause {
                    Some(Pause::For(d)) => format!(
                        ", pause {} between stages",
                        crate::duration::format_duration(*d)
                    ),
                    Some(Pause::Confirm) => ", confirmation between stages".into(),
                    None => String::new(),
                };
                format!("canary {}{pause}", stages.join(" → "))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "seconds")]
pub enum Pause {
    /// Wait this long (validation keeps running) before the next stage.
    For(#[serde(serialize_with = "crate::duration::serialize_secs")] Duration),
    /// Wait for a person to confirm before the next stage.
    Confirm,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub kind: CheckKind,
    pub interval: Duration,
    pub deadline: Duration,
    pub span: Span,
}

pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_CHECK_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub enum CheckKind {
    Http {
        url: Template,
        status: u16,
        body_contains: Option<String>,
        latency_below: Option<Duration>,
    },
    Tcp {
        address: Template,
    },
    Command {
        command: Command,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    Functional,
    Performance,
    Security,
}

#[derive(Debug, Clone)]
pub struct TestSpec {
    pub id: Spanned<String>,
    pub kind: TestKind,
    pub run: Option<Command>,
    pub junit: Option<String>,
    pub http_load: Option<HttpLoad>,
    pub security: Option<SecurityCheck>,
    pub timeout: Option<Duration>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct HttpLoad {
    pub url: Template,
    pub duration: Duration,
    pub concurrency: u32,
    pub p95_below: Option<Duration>,
    pub max_error_rate: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct SecurityCheck {
    pub url: Template,
    pub require_headers: Vec<String>,
    pub cert_valid_for: Option<Duration>,
    /// Ports allowed to be open on the URL's host; any other open port among `scan_ports` fails.
    pub allowed_ports: Option<Vec<u16>>,
    pub scan_ports: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct Risk {
    pub id: Spanned<String>,
    pub title: String,
    pub likelihood: Spanned<i64>,
    pub impact: Spanned<i64>,
    pub mitigation: Option<String>,
    pub contingency: Option<String>,
    pub owner: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Notification {
    pub on: Vec<Spanned<String>>,
    pub channel: Channel,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Channel {
    Webhook {
        url: Template,
        format: WebhookFormat,
        /// Name of a plan secret used as the HMAC-SHA256 key for the signature header.
        secret: Option<Spanned<String>>,
    },
    Email {
        to: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    Slack,
    Json,
}

/// Lifecycle events that notifications may subscribe to.
pub const NOTIFY_EVENTS: &[&str] = &[
    "approval_requested",
    "approved",
    "rejected",
    "scheduled",
    "started",
    "waiting",
    "succeeded",
    "failed",
    "rolled_back",
    "cancelled",
];

#[derive(Debug, Clone)]
pub struct Review {
    pub due: Option<Duration>,
    pub attendees: Vec<String>,
}
