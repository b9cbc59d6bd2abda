//! The life of a deployment: its states and which moves between them are allowed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Waiting for the approvals its environment requires.
    AwaitingApproval,
    /// Approved (or needing none) and waiting for its start time or window.
    Scheduled,
    /// Ready to start as soon as the environment is free.
    Queued,
    Running,
    /// Undoing what it did, after a failure, a cancel or an interruption.
    RollingBack,
    Succeeded,
    /// Failed, then returned every target to the release it had.
    RolledBack,
    /// Failed and could not be rolled back completely; the summary says where each target is.
    Failed,
    /// Stopped by a person before it finished; targets were returned to their releases.
    Cancelled,
    /// An approver rejected it; nothing ran.
    Rejected,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 10] = [
        DeploymentState::AwaitingApproval,
        DeploymentState::Scheduled,
        DeploymentState::Queued,
        DeploymentState::Running,
        DeploymentState::RollingBack,
        DeploymentState::Succeeded,
        DeploymentState::RolledBack,
        DeploymentState::Failed,
        DeploymentState::Cancelled,
        DeploymentState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::AwaitingApproval => "awaiting_approval",
            DeploymentState::Scheduled => "scheduled",
            DeploymentState::Queued => "queued",
            DeploymentState::Running => "running",
            DeploymentState::RollingBack => "rolling_back",
            DeploymentState::Succeeded => "succeeded",
            DeploymentState::RolledBack => "rolled_back",
            DeploymentState::Failed => "failed",
            DeploymentState::Cancelled => "cancelled",
            DeploymentState::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<DeploymentState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// A final state never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentState::Succeeded
                | DeploymentState::RolledBack
                | DeploymentState::Failed
                | DeploymentState::Cancelled
                | DeploymentState::Rejected
        )
    }

    /// Has the deployment (possibly) touched targets?
    pub fn is_active(self) -> bool {
        matches!(
            self,
            DeploymentState::Running | DeploymentState::RollingBack
        )
    }

    pub fn can_move_to(self, to: DeploymentState) -> bool {
        use DeploymentState::*;
        matches!(
            (self, to),
            (AwaitingApproval, Scheduled | Queued | Rejected | Cancelled)
                | (Scheduled, Queued | Cancelled | AwaitingApproval)
                | (Queued, Running | Cancelled | Failed | AwaitingApproval)
                | (Running, Succeeded | RollingBack | Failed)
                | (RollingBack, RolledBack | Failed | Cancelled)
        )
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a deployment installs a plan or returns an environment to an earlier release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    Deploy,
    Rollback,
}

impl DeploymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Deploy => "deploy",
            DeploymentKind::Rollback => "rollback",
        }
    }

    pub fn parse(text: &str) -> Option<DeploymentKind> {
        match text {
            "deploy" => Some(DeploymentKind::Deploy),
            "rollback" => Some(DeploymentKind::Rollback),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_final_states_are_terminal() {
        for s in DeploymentState::ALL {
            assert_eq!(DeploymentState::parse(s.as_str()), Some(s));
            if s.is_final() {
                assert!(
                    DeploymentState::ALL.iter().all(|&to| !s.can_move_to(to)),
                    "{s} moves on"
                );
            }
        }
    }

    #[test]
    fn a_rollback_ends_and_is_never_rolled_back_twice() {
        use DeploymentState::*;
        assert!(Running.can_move_to(RollingBack));
        assert!(!RollingBack.can_move_to(RollingBack));
        assert!(!RolledBack.can_move_to(RollingBack));
        assert!(!Succeeded.can_move_to(RollingBack));
    }
}
