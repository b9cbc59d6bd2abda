//! Coordination rules, the same for the CLI, the API and the UI: who may approve, when a quorum is
//! met, and when a deployment may start given its environment's windows and freezes.

use jiff::Timestamp;
use serde::Serialize;

use crate::calendar::{Freeze, Window};
use crate::policy::ApprovalRequirement;

/// The role that may approve when an environment names no approving roles.
pub const DEFAULT_APPROVER_ROLE: &str = "approver";
/// Administrators manage users and tokens and may break glass; they approve only through a role.
pub const ADMIN_ROLE: &str = "admin";

/// One recorded approval or rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub approver: String,
    pub approve: bool,
    pub reason: Option<String>,
    /// The plan hash the decision was made on; a different plan voids it.
    pub plan_hash: String,
    pub at: i64,
}

/// Who asked, who wrote the plan, and which plan: what every decision is checked against.
#[derive(Debug, Clone)]
pub struct ApprovalCase<'a> {
    pub requester: &'a str,
    pub plan_owner: Option<&'a str>,
    pub plan_hash: &'a str,
    pub requirement: &'a ApprovalRequirement,
}

/// Why someone may not decide. Each has a stable code for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the requester can never approve or reject their own deployment")]
    OwnDeployment,
    #[error("the plan's owner ({0}) can never approve or reject a deployment of their own plan")]
    OwnPlan(String),
    #[error("approving this deployment needs one of the roles {0:?}")]
    MissingRole(Vec<String>),
    #[error("{0} already decided on this plan; one person counts once")]
    AlreadyDecided(String),
    #[error("this deployment needs no approval")]
    NotRequired,
    #[error("a rejection needs a reason")]
    ReasonRequired,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OwnDeployment => "self_approval",
            Refusal::OwnPlan(_) => "plan_owner_approval",
            Refusal::MissingRole(_) => "missing_role",
            Refusal::AlreadyDecided(_) => "already_decided",
            Refusal::NotRequired => "approval_not_required",
            Refusal::ReasonRequired => "reason_required",
        }
    }
}

impl ApprovalCase<'_> {
    fn approving_roles(&self) -> Vec<String> {
        if self.requirement.from.is_empty() {
            vec![DEFAULT_APPROVER_ROLE.to_string()]
        } else {
            self.requirement.from.clone()
        }
    }

    /// May `actor`, holding `roles`, approve (or reject) now? Identity is the person, never the
    /// token: a second token of the requester is still the requester.
    pub fn may_decide(
        &self,
        actor: &str,
        roles: &[String],
        approve: bool,
        reason: Option<&str>,
        decisions: &[Decision],
    ) -> Result<(), Refusal> {
        if actor == self.requester {
            return Err(Refusal::OwnDeployment);
        }
        if let Some(owner) = self.plan_owner
            && owner == actor
        {
            return Err(Refusal::OwnPlan(owner.to_string()));
        }
        if self.requirement.required == 0 {
            return Err(Refusal::NotRequired);
        }
        let allowed = self.approving_roles();
        if !roles.iter().any(|r| allowed.contains(r)) {
            return Err(Refusal::MissingRole(allowed));
        }
        if !approve && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(Refusal::ReasonRequired);
        }
        if decisions
            .iter()
            .any(|d| d.approver == actor && d.plan_hash == self.plan_hash)
        {
            return Err(Refusal::AlreadyDecided(actor.to_string()));
        }
        Ok(())
    }

    /// Where the quorum stands. Only decisions on this plan hash count, each person once, and
    /// never the requester's or the plan owner's.
    pub fn status(&self, decisions: &[Decision]) -> ApprovalStatus {
        let valid = |d: &&Decision| {
            d.plan_hash == self.plan_hash
                && d.approver != self.requester
                && Some(d.approver.as_str()) != self.plan_owner
        };
        let mut approvers: Vec<String> = Vec::new();
        let mut rejected = None;
        for d in decisions.iter().filter(valid) {
            if d.approve {
                if !approvers.contains(&d.approver) {
                    approvers.push(d.approver.clone());
                }
            } else if rejected.is_none() {
                rejected = Some((d.approver.clone(), d.reason.clone().unwrap_or_default()));
            }
        }
        let voided = decisions
            .iter()
            .filter(|d| d.plan_hash != self.plan_hash)
            .count();
        let required = self.requirement.required;
        let approved = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
        ApprovalStatus {
            required,
            from: self.approving_roles(),
            satisfied: rejected.is_none() && approved >= required,
            approvers,
            rejected,
            voided,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalStatus {
    pub required: u32,
    pub from: Vec<String>,
    pub approvers: Vec<String>,
    /// The first rejection, by whom and why.
    pub rejected: Option<(String, String)>,
    /// Decisions given on an earlier version of the plan, which no longer count.
    pub voided: usize,
    pub satisfied: bool,
}

/// Whether a deployment may start at a moment, given its environment's calendar.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum Gate {
    Open,
    /// Outside every window: it starts when the next one opens.
    Wait {
        until: Timestamp,
    },
    /// Inside a freeze: only break-glass lets it through.
    Frozen {
        reason: String,
        until: Timestamp,
    },
    /// Windows are declared but none ever opens outside the freezes (within a year).
    Never,
}

/// Decides at `at`. `break_glass` lets a deployment through freezes and outside windows.
pub fn gate(windows: &[&Window], freezes: &[&Freeze], at: Timestamp, break_glass: bool) -> Gate {
    if break_glass {
        return Gate::Open;
    }
    if let Some(f) = freezes.iter().find(|f| f.contains(at)) {
        return Gate::Frozen {
            reason: f.reason.clone(),
            until: f.to,
        };
    }
    match next_start(windows, freezes, at) {
        Some(t) if t <= at => Gate::Open,
        Some(t) => Gate::Wait { until: t },
        None => Gate::Never,
    }
}

/// The first moment at or after `at` inside a window (if any are declared) and outside every freeze.
pub fn next_start(windows: &[&Window], freezes: &[&Freeze], at: Timestamp) -> Option<Timestamp> {
    let horizon = at
        .checked_add(jiff::SignedDuration::from_hours(24 * 366))
        .ok()?;
    let mut t = at;
    // Each turn moves past a freeze or to a window opening; a year of weekly windows is bounded.
    for _ in 0..1000 {
        if t > horizon {
            return None;
        }
        if let Some(f) = freezes.iter().find(|f| f.contains(t)) {
            t = f.to;
            continue;
        }
        if windows.is_empty() || windows.iter().any(|w| w.contains(t)) {
            return Some(t);
        }
        t = windows.iter().filter_map(|w| w.next_opening(t)).min()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement(required: u32, from: &[&str]) -> ApprovalRequirement {
        ApprovalRequirement {
            required,
            from: from.iter().map(|s| s.to_string()).collect(),
            base: required,
            raised_by: None,
            blocked_by: None,
        }
    }

    fn decision(who: &str, approve: bool, hash: &str) -> Decision {
        Decision {
            approver: who.into(),
            approve,
            reason: (!approve).then(|| "no".into()),
            plan_hash: hash.into(),
            at: 0,
        }
    }

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn separation_of_duties() {
        let req = requirement(2, &["cab"]);
        let case = ApprovalCase {
            requester: "dan",
            plan_owner: Some("alice"),
            plan_hash: "h1",
            requirement: &req,
        };
        assert_eq!(
            case.may_decide("dan", &roles(&["cab"]), true, None, &[]),
            Err(Refusal::OwnDeployment)
        );
        assert_eq!(
            case.may_decide("alice", &roles(&["cab"]), true, None, &[]),
            Err(Refusal::OwnPlan("alice".into()))
        );
        assert_eq!(
            case.may_decide("bob", &roles(&["deployer"]), true, None, &[]),
            Err(Refusal::MissingRole(roles(&["cab"])))
        );
        assert_eq!(
            case.may_decide("bob", &roles(&["cab"]), false, Some("  "), &[]),
            Err(Refusal::ReasonRequired)
        );
        assert_eq!(
            case.may_decide("bob", &roles(&["cab"]), true, None, &[]),
            Ok(())
        );
        let once = [decision("bob", true, "h1")];
        assert_eq!(
            case.may_decide("bob", &roles(&["cab"]), true, None, &once),
            Err(Refusal::AlreadyDecided("bob".into()))
        );
    }

    #[test]
    fn quorum_counts_each_person_once_on_the_current_hash_only() {
        let req = requirement(2, &["cab"]);
        let case = ApprovalCase {
            requester: "dan",
            plan_owner: Some("alice"),
            plan_hash: "h2",
            requirement: &req,
        };
        let decisions = [
            decision("bob", true, "h1"), // voided: an older plan
            decision("bob", true, "h2"),
            decision("bob", true, "h2"),   // the same person again
            decision("dan", true, "h2"),   // the requester, never counted
            decision("alice", true, "h2"), // the plan owner, never counted
        ];
        let s = case.status(&decisions);
        assert_eq!((s.approvers.len(), s.voided, s.satisfied), (1, 1, false));
        let mut more = decisions.to_vec();
        more.push(decision("carol", true, "h2"));
        assert!(case.status(&more).satisfied);
        more.push(decision("erin", false, "h2"));
        let s = case.status(&more);
        assert!(!s.satisfied);
        assert_eq!(s.rejected.map(|r| r.0), Some("erin".to_string()));
    }

    #[test]
    fn gates_follow_windows_and_freezes() {
        let w = Window::parse("Sat 22:00-Sun 04:00 UTC").expect("window");
        let tz = jiff::tz::TimeZone::UTC;
        let f = Freeze {
            from: crate::calendar::parse_instant("2026-12-20", &tz, false).expect("from"),
            to: crate::calendar::parse_instant("2027-01-03", &tz, true).expect("to"),
            reason: "Holiday".into(),
            from_text: String::new(),
            to_text: String::new(),
        };
        let ts = |s: &str| s.parse::<Timestamp>().expect("ts");
        assert_eq!(
            gate(&[&w], &[&f], ts("2026-11-28T23:00:00Z"), false),
            Gate::Open
        );
        assert_eq!(
            gate(&[&w], &[&f], ts("2026-11-26T10:00:00Z"), false),
            Gate::Wait {
                until: ts("2026-11-28T22:00:00Z")
            }
        );
        assert!(matches!(
            gate(&[&w], &[&f], ts("2026-12-24T10:00:00Z"), false),
            Gate::Frozen { .. }
        ));
        assert_eq!(
            gate(&[&w], &[&f], ts("2026-12-24T10:00:00Z"), true),
            Gate::Open
        );
        // A window that falls inside the freeze is skipped: the next one after it is used.
        assert_eq!(
            next_start(&[&w], &[&f], ts("2026-12-18T10:00:00Z")),
            Some(ts("2026-12-19T22:00:00Z"))
        );
        assert_eq!(
            next_start(&[&w], &[&f], ts("2026-12-21T10:00:00Z")),
            Some(ts("2027-01-09T22:00:00Z"))
        );
        assert_eq!(
            gate(&[], &[], ts("2026-12-18T10:00:00Z"), false),
            Gate::Open
        );
    }
}
