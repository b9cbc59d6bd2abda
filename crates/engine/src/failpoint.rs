//! Named failure-injection points, so crash and rollback paths are tested rather than hoped for.
//!
//! `SLIPWAY_FAILPOINTS="after_switch@web-2=abort;before_validate=sleep(5000)"` arms points. Actions:
//! `abort` (the process dies at once, like kill -9), `sleep(MS)`, `error` (the unit fails).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Abort,
    Sleep(u64),
    Error,
}

#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    armed: Vec<(String, Option<String>, Action)>,
}

/// Names of the points the engine passes, for the docs and for validation of the variable.
pub const POINTS: &[&str] = &[
    "after_create",
    "after_preflight",
    "before_unit",
    "after_intent",
    "after_run",
    "after_switch",
    "before_validate",
    "after_batch",
    "before_rollback_unit",
    "after_rollback_unit",
    "before_finish",
];

impl Failpoints {
    pub fn from_env() -> Failpoints {
        std::env::var("SLIPWAY_FAILPOINTS")
            .map(|s| Failpoints::parse(&s))
            .unwrap_or_default()
    }

    pub fn parse(spec: &str) -> Failpoints {
        let mut armed = Vec::new();
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((point, action)) = item.split_once('=') else {
                continue;
            };
            let (name, target) = match point.split_once('@') {
                Some((n, t)) => (n.to_string(), Some(t.to_string())),
                None => (point.to_string(), None),
            };
            let action = match action.trim() {
                "abort" => Action::Abort,
                "error" => Action::Error,
                other => match other
                    .strip_prefix("sleep(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|ms| ms.parse().ok())
                {
                    Some(ms) => Action::Sleep(ms),
                    None => continue,
                },
            };
            armed.push((name, target, action));
        }
        Failpoints { armed }
    }

    /// Passes point `name` for `target`; returns an error message when the point says to fail.
    pub async fn hit(&self, name: &str, target: Option<&str>) -> Result<(), String> {
        for (point, only, action) in &self.armed {
            if point != name || (only.is_some() && only.as_deref() != target) {
                continue;
            }
            match action {
                Action::Abort => std::process::abort(),
                Action::Sleep(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
                Action::Error => return Err(format!("failpoint `{name}` injected a failure")),
            }
        }
        Ok(())
    }
}
