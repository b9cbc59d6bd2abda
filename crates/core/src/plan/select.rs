//! Which targets of an environment a step's `on` selects: targets carrying any listed label, or
//! named by it. No `on` selects every target.

use foldhash::HashMap;
use std::sync::Arc;

use super::model::Environment;
use crate::source::Spanned;

/// Answers selections for one environment, indexing labels once and sharing equal selections.
pub struct Selector<'e> {
    env: &'e Environment,
    by_label: HashMap<&'e str, Vec<u32>>,
    cache: HashMap<Vec<&'e str>, Arc<[u32]>>,
    all: Arc<[u32]>,
}

impl<'e> Selector<'e> {
    pub fn new(env: &'e Environment) -> Self {
        let mut by_label: HashMap<&str, Vec<u32>> = HashMap::default();
        by_label.reserve(env.targets.len());
        for (i, t) in env.targets.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            by_label.entry(t.name.value.as_str()).or_default().push(i);
            for l in &t.labels {
                let list = by_label.entry(l.value.as_str()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        let all: Arc<[u32]> = (0..env.targets.len())
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        Selector {
            env,
            by_label,
            cache: HashMap::default(),
            all,
        }
    }

    /// Does `name` (a label or target name) match any target here?
    pub fn knows(&self, name: &str) -> bool {
        self.by_label.contains_key(name)
    }

    /// Indices into `env.targets`, in the environment's order.
    pub fn select(&mut self, on: Option<&'e [Spanned<String>]>) -> Arc<[u32]> {
        let Some(on) = on else {
            return self.all.clone();
        };
        let key: Vec<&str> = on.iter().map(|s| s.value.as_str()).collect();
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let selected: Arc<[u32]> = if let [one] = key.as_slice() {
            self.by_label
                .get(one)
                .map_or_else(|| Arc::from(Vec::new()), |v| Arc::from(v.as_slice()))
        } else {
            let mut mark = vec![false; self.env.targets.len()];
            for label in &key {
                for &i in self.by_label.get(label).map_or(&[][..], Vec::as_slice) {
                    mark[i as usize] = true;
                }
            }
            mark.iter()
                .enumerate()
                .filter(|(_, m)| **m)
                .filter_map(|(i, _)| u32::try_from(i).ok())
                .collect()
        };
        self.cache.insert(key, selected.clone());
        selected
    }
}
