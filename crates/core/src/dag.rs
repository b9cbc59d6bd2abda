//! The step dependency graph: waves of steps that may run together, and every cycle named in full.

/// Orders nodes `0..deps.len()` so that each comes after what it needs (`deps[i]` lists what node
/// `i` needs). Returns the waves: nodes in one wave need only nodes of earlier waves. On failure,
/// returns every cycle found, each as the list of nodes where each needs the next and the last
/// needs the first.
pub fn waves(deps: &[Vec<usize>]) -> Result<Vec<Vec<usize>>, Vec<Vec<usize>>> {
    let n = deps.len();
    let mut pending = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, needs) in deps.iter().enumerate() {
        let mut seen: Vec<usize> = needs.iter().copied().filter(|&d| d < n).collect();
        seen.sort_unstable();
        seen.dedup();
        pending[node] = seen.len();
        for d in seen {
            dependents[d].push(node);
        }
    }
    let mut waves = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut placed = 0;
    while !current.is_empty() {
        placed += current.len();
        let mut next = Vec::new();
        for &node in &current {
            for &dep in &dependents[node] {
                pending[dep] -= 1;
                if pending[dep] == 0 {
                    next.push(dep);
                }
            }
        }
        next.sort_unstable();
        waves.push(current);
        current = next;
    }
    if placed == n {
        return Ok(waves);
    }
    Err(cycles(deps, &pending))
}

/// Finds the cycles among nodes that Kahn's algorithm could not place (`pending > 0`).
fn cycles(deps: &[Vec<usize>], pending: &[usize]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let stuck = |i: usize| pending[i] > 0;
    let mut explained = vec![false; n];
    let mut found = Vec::new();
    for start in 0..n {
        if !stuck(start) || explained[start] {
            continue;
        }
        let mut path: Vec<usize> = Vec::new();
        let mut position = vec![usize::MAX; n];
        let mut cur = start;
        loop {
            if position[cur] != usize::MAX {
                found.push(path[position[cur]..].to_vec());
                break;
            }
            if explained[cur] {
                break;
            }
            position[cur] = path.len();
            path.push(cur);
            // A stuck node always needs at least one other stuck node.
            match deps[cur].iter().copied().find(|&d| d < n && stuck(d)) {
                Some(next) => cur = next,
                None => break,
            }
        }
        for node in path {
            explained[node] = true;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_into_waves() {
        // 0 and 1 are free; 2 needs both; 3 needs 2.
        let deps = vec![vec![], vec![], vec![0, 1], vec![2]];
        assert_eq!(waves(&deps), Ok(vec![vec![0, 1], vec![2], vec![3]]));
    }

    #[test]
    fn names_every_node_of_a_cycle() {
        // 0 → 1 → 2 → 0 is a cycle; 3 needs 0 and is stuck behind it but not on it.
        let deps = vec![vec![1], vec![2], vec![0], vec![0]];
        let cycles = waves(&deps).expect_err("cycle");
        assert_eq!(cycles, vec![vec![0, 1, 2]]);
    }

    #[test]
    fn reports_separate_cycles_separately() {
        let deps = vec![vec![1], vec![0], vec![3], vec![2], vec![]];
        let cycles = waves(&deps).expect_err("cycles");
        assert_eq!(cycles, vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        assert_eq!(waves(&[vec![0]]), Err(vec![vec![0]]));
    }
}
