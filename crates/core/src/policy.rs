//! What an environment demands before a deployment may start: approvals, raised or blocked by risk.

use serde::Serialize;

use crate::plan::model::{Environment, PolicyAction};
use crate::risk::RiskLevel;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequirement {
    /// Distinct people who must approve.
    pub required: u32,
    /// Roles whose members may approve; empty means anyone with an approver role.
    pub from: Vec<String>,
    /// The environment's own requirement, before risk policy.
    pub base: u32,
    /// The risk policy rule that raised the requirement, if one did.
    pub raised_by: Option<RiskLevel>,
    /// Set when risk policy forbids the deployment outright.
    pub blocked_by: Option<RiskLevel>,
}

pub fn approvals_for(env: &Environment, level: RiskLevel) -> ApprovalRequirement {
    let base = env
        .approvals
        .as_ref()
        .map_or(0, |a| u32::try_from(a.required.value.max(0)).unwrap_or(0));
    let from = env
        .approvals
        .as_ref()
        .map(|a| a.from.iter().map(|r| r.value.clone()).collect())
        .unwrap_or_default();
    let mut out = ApprovalRequirement {
        required: base,
        from,
        base,
        raised_by: None,
        blocked_by: None,
    };
    // The rule for the highest level at or below the assessed one applies.
    let rule = env
        .policy
        .iter()
        .filter(|r| r.level <= level)
        .max_by_key(|r| r.level);
    if let Some(rule) = rule {
        match rule.action {
            PolicyAction::Block => out.blocked_by = Some(rule.level),
            PolicyAction::RequireApprovals(n) if n > out.required => {
                out.required = n;
                out.raised_by = Some(rule.level);
            }
            PolicyAction::RequireApprovals(_) => {}
        }
    }
    out
}
