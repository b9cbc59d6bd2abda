//! How a step's targets are split into batches by its strategy.

use crate::plan::model::{Pause, Strategy};

/// The batches of one step: sizes in order, covering every selected target exactly once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Batches {
    pub sizes: Vec<usize>,
    /// What happens between batches (canary only).
    pub pause: Option<Pause>,
    /// Blue/green deploys every target to its idle slot, validates, then switches all at once.
    pub blue_green: bool,
}

impl Batches {
    /// Target index ranges of each batch, into the step's selected targets.
    pub fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.sizes.iter().scan(0usize, |start, &size| {
            let r = *start..*start + size;
            *start += size;
            Some(r)
        })
    }
}

pub fn batches(strategy: &Strategy, targets: usize) -> Batches {
    let mut out = Batches {
        sizes: Vec::new(),
        pause: None,
        blue_green: false,
    };
    if targets == 0 {
        return out;
    }
    match strategy {
        Strategy::AllAtOnce => out.sizes.push(targets),
        Strategy::BlueGreen => {
            out.sizes.push(targets);
            out.blue_green = true;
        }
        Strategy::Rolling {
            batch,
            max_unavailable,
        } => {
            let mut size = batch.of(targets);
            if let Some(mu) = max_unavailable {
                size = size.min(mu.of(targets));
            }
            let size = size.clamp(1, targets);
            let full = targets / size;
            out.sizes = vec![size; full];
            if !targets.is_multiple_of(size) {
                out.sizes.push(targets % size);
            }
        }
        Strategy::Canary { stages, pause } => {
            out.pause = *pause;
            let mut done = 0;
            for &percent in stages {
                let upto = (targets * percent as usize).div_ceil(100).clamp(1, targets);
                if upto > done {
                    out.sizes.push(upto - done);
                    done = upto;
                }
            }
            if done < targets {
                out.sizes.push(targets - done);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::Count;

    #[test]
    fn rolling_batches_are_capped_by_max_unavailable() {
        let s = Strategy::Rolling {
            batch: Count::Absolute(4),
            max_unavailable: Some(Count::Absolute(3)),
        };
        assert_eq!(batches(&s, 10).sizes, vec![3, 3, 3, 1]);
        let s = Strategy::Rolling {
            batch: Count::Percent(25),
            max_unavailable: None,
        };
        assert_eq!(batches(&s, 10).sizes, vec![3, 3, 3, 1]);
    }

    #[test]
    fn canary_stages_are_cumulative_and_never_empty() {
        let s = Strategy::Canary {
            stages: vec![10, 50, 100],
            pause: None,
        };
        assert_eq!(batches(&s, 20).sizes, vec![2, 8, 10]);
        // With three targets, 10% rounds up to one target.
        assert_eq!(batches(&s, 3).sizes, vec![1, 1, 1]);
        assert_eq!(batches(&s, 1).sizes, vec![1]);
    }

    #[test]
    fn every_target_is_covered_once() {
        for n in 0..50 {
            for s in [
                Strategy::AllAtOnce,
                Strategy::BlueGreen,
                Strategy::Rolling {
                    batch: Count::Absolute(7),
                    max_unavailable: None,
                },
                Strategy::Canary {
                    stages: vec![1, 33, 100],
                    pause: None,
                },
            ] {
                assert_eq!(batches(&s, n).sizes.iter().sum::<usize>(), n);
            }
        }
    }
}
