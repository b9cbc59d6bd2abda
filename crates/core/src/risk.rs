//! The risk score: declared risks combined with what the plan's shape and timing say.
//!
//! The formula is documented in `docs/risk.md`; keep the two in step.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    pub const NAMES: [&'static str; 4] = ["low", "medium", "high", "critical"];

    pub fn parse(text: &str) -> Option<RiskLevel> {
        Some(match text {
            "low" => RiskLevel::Low,
            "medium" => RiskLevel::Medium,
            "high" => RiskLevel::High,
            "critical" => RiskLevel::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn from_score(score: u32) -> RiskLevel {
        match score {
            0..=24 => RiskLevel::Low,
            25..=49 => RiskLevel::Medium,
            50..=74 => RiskLevel::High,
            _ => RiskLevel::Critical,
        }
    }
}

/// What the score is computed from.
#[derive(Debug, Clone, Default)]
pub struct RiskInputs {
    /// Declared risks: (id, likelihood, impact), each 1..=5.
    pub declared: Vec<(String, u32, u32)>,
    pub targets: usize,
    pub irreversible_steps: Vec<String>,
    pub protected: bool,
    pub outside_window: bool,
    pub in_freeze: bool,
    /// This plan's earlier outcomes in this environment: (finished deployments, failed or rolled back).
    pub history: Option<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskFactor {
    pub factor: &'static str,
    pub points: u32,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskAssessment {
    pub score: u32,
    pub level: RiskLevel,
    pub factors: Vec<RiskFactor>,
}

pub fn assess(inputs: &RiskInputs) -> RiskAssessment {
    let mut factors = Vec::new();

    if let Some((id, l, i)) = inputs.declared.iter().max_by_key(|(_, l, i)| l * i) {
        let exposure = l * i;
        let others = inputs
            .declared
            .iter()
            .filter(|(other, l2, i2)| other != id && l2 * i2 >= 10)
            .count() as u32;
        let points = ((exposure * 8).div_ceil(5) + 2 * others).min(50);
        let mut explanation =
            format!("highest declared risk {id}: likelihood {l} × impact {i} = {exposure} of 25");
        if others > 0 {
            explanation.push_str(&format!(
                "; {others} more risk(s) with exposure of 10 or more"
            ));
        }
        factors.push(RiskFactor {
            factor: "declared_risks",
            points,
            explanation,
        });
    }

    if inputs.targets > 0 {
        let points = ((15.0 * ((inputs.targets + 1) as f64).log10() / 3.0).round() as u32).min(15);
        factors.push(RiskFactor {
            factor: "size_of_change",
            points,
            explanation: format!("{} target(s) change", inputs.targets),
        });
    }

    if !inputs.irreversible_steps.is_empty() {
        let n = inputs.irreversible_steps.len() as u32;
        factors.push(RiskFactor {
            factor: "irreversible_steps",
            points: (8 * n).min(20),
            explanation: format!("no rollback for: {}", inputs.irreversible_steps.join(", ")),
        });
    }

    if inputs.protected {
        factors.push(RiskFactor {
            factor: "protected_environment",
            points: 10,
            explanation: "the environment is protected".into(),
        });
    }

    if inputs.in_freeze {
        factors.push(RiskFactor {
            factor: "in_freeze",
            points: 25,
            explanation: "the deployment falls inside a freeze period".into(),
        });
    } else if inputs.outside_window {
        factors.push(RiskFactor {
            factor: "outside_window",
            points: 15,
            explanation: "the deployment falls outside every maintenance window".into(),
        });
    }

    if let Some((runs, failures)) = inputs.history
        && runs > 0
    {
        let rate = f64::from(failures) / f64::from(runs);
        let points = (rate * 20.0).round() as u32;
        factors.push(RiskFactor {
            factor: "failure_history",
            points,
            explanation: format!("{failures} of the last {runs} deployment(s) of this plan here failed or rolled back"),
        });
    }

    let score = factors.iter().map(|f| f.points).sum::<u32>().min(100);
    RiskAssessment {
        score,
        level: RiskLevel::from_score(score),
        factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_plan_is_low_risk() {
        let a = assess(&RiskInputs::default());
        assert_eq!((a.score, a.level), (0, RiskLevel::Low));
    }

    #[test]
    fn every_factor_is_explained_and_adds_up() {
        let a = assess(&RiskInputs {
            declared: vec![
                ("R1".into(), 3, 4),
                ("R2".into(), 2, 5),
                ("R3".into(), 1, 1),
            ],
            targets: 4,
            irreversible_steps: vec!["migrate".into()],
            protected: true,
            outside_window: true,
            in_freeze: false,
            history: Some((10, 2)),
        });
        let names: Vec<_> = a.factors.iter().map(|f| f.factor).collect();
        assert_eq!(
            names,
            [
                "declared_risks",
                "size_of_change",
                "irreversible_steps",
                "protected_environment",
                "outside_window",
                "failure_history"
            ]
        );
        // 12 × 8 / 5 = 19.2 → 20, +2 for R2; log scale for 4 targets → 3; 8; 10; 15; 20% of 20 → 4.
        assert_eq!(
            a.factors.iter().map(|f| f.points).collect::<Vec<_>>(),
            [22, 3, 8, 10, 15, 4]
        );
        assert_eq!(a.score, 62);
        assert_eq!(a.level, RiskLevel::High);
    }

    #[test]
    fn freeze_replaces_outside_window_and_score_is_capped() {
        let a = assess(&RiskInputs {
            declared: vec![("R".into(), 5, 5)],
            targets: 100_000,
            irreversible_steps: vec!["a".into(), "b".into(), "c".into()],
            protected: true,
            outside_window: true,
            in_freeze: true,
            history: Some((1, 1)),
        });
        assert!(a.factors.iter().all(|f| f.factor != "outside_window"));
        assert_eq!(a.score, 100);
        assert_eq!(a.level, RiskLevel::Critical);
    }
}
