//! The keys each section of a plan accepts. The decoder, the JSON Schema and the docs share these
//! lists, and a test keeps the schema equal to them.

pub const TOP: &[&str] = &[
    "slipway",
    "release",
    "artifact",
    "variables",
    "secrets",
    "roles",
    "environments",
    "steps",
    "tests",
    "risks",
    "notify",
    "review",
];
pub const RELEASE: &[&str] = &[
    "name",
    "version",
    "change",
    "summary",
    "owner",
    "objectives",
];
pub const OBJECTIVE: &[&str] = &["text", "test"];
pub const ARTIFACT: &[&str] = &["path", "sha256"];
pub const SECRET: &[&str] = &["env", "file"];
pub const ENVIRONMENT: &[&str] = &[
    "protected",
    "approvals",
    "windows",
    "freezes",
    "policy",
    "targets",
];
pub const APPROVALS: &[&str] = &["required", "from"];
pub const FREEZE: &[&str] = &["from", "to", "reason", "tz"];
pub const POLICY_RULE: &[&str] = &["approvals"];
pub const TARGET: &[&str] = &["host", "ssh", "agent", "labels", "vars", "root", "address"];
pub const STEP: &[&str] = &[
    "id",
    "description",
    "owner",
    "on",
    "needs",
    "run",
    "rollback",
    "activate",
    "timeout",
    "retries",
    "release_dir",
    "strategy",
    "validate",
    "manual",
];
pub const RELEASE_DIR: &[&str] = &["path", "keep"];
pub const STRATEGY: &[&str] = &["all_at_once", "rolling", "canary", "blue_green"];
pub const ROLLING: &[&str] = &["batch", "max_unavailable"];
pub const CANARY: &[&str] = &["stages", "pause"];
pub const CHECK: &[&str] = &["http", "tcp", "command", "expect", "interval", "deadline"];
pub const EXPECT: &[&str] = &["status", "body_contains", "latency_below"];
pub const TEST: &[&str] = &[
    "id",
    "kind",
    "run",
    "junit",
    "http_load",
    "security",
    "timeout",
];
pub const HTTP_LOAD: &[&str] = &[
    "url",
    "duration",
    "concurrency",
    "p95_below",
    "max_error_rate",
];
pub const SECURITY: &[&str] = &[
    "url",
    "require_headers",
    "cert_valid_for",
    "allowed_ports",
    "scan_ports",
];
pub const RISK: &[&str] = &[
    "id",
    "title",
    "likelihood",
    "impact",
    "mitigation",
    "contingency",
    "owner",
];
pub const NOTIFY: &[&str] = &["on", "webhook", "format", "secret", "email"];
pub const REVIEW: &[&str] = &["due", "attendees"];
