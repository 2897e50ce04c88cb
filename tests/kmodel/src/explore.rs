//! Systematic exploration of orders: run a scenario again and again, each time taking a
//! different path through its choice points, until every path was taken.
//!
//! A scenario asks [`Chooser::choose`] whenever several things could happen next (which held
//! completion arrives, or whether a racing request comes first); the explorer replays each
//! path from a fresh start (stateless model checking, as CHESS and loom do) and enumerates
//! them depth-first. With completions held ([`crate::CompletionMode::Held`]) and released one
//! at a time ([`crate::release_held_nth`]), the model's completion order is entirely the
//! scenario's choice, so every order of completions and racing requests is covered.

/// The choices one run makes: replays a prefix, then takes the first alternative each time.
#[derive(Debug, Default)]
pub struct Chooser {
    prefix: Vec<usize>,
    /// `(chosen, alternatives)` at each choice point of this run.
    path: Vec<(usize, usize)>,
}

impl Chooser {
    /// Picks one of `alternatives` (at least 1) things that could happen next; returns its
    /// index. Across runs, every index is returned at every point of every path.
    ///
    /// # Panics
    /// If the scenario is not deterministic: a replayed point offers fewer alternatives than
    /// when it was first reached.
    pub fn choose(&mut self, alternatives: usize) -> usize {
        assert!(alternatives > 0, "a choice point needs an alternative");
        let depth = self.path.len();
        let chosen = self.prefix.get(depth).copied().unwrap_or(0);
        assert!(
            chosen < alternatives,
            "the scenario is not deterministic: choice point {depth} offered {alternatives} alternatives, fewer than before"
        );
        self.path.push((chosen, alternatives));
        chosen
    }

    /// The choices this run made so far.
    #[must_use]
    pub fn path(&self) -> Vec<usize> {
        self.path.iter().map(|(chosen, _)| *chosen).collect()
    }
}

/// Runs `scenario` once per path through its choice points; returns how many there were.
///
/// Paths are taken depth-first. `scenario` must be deterministic given its choices and should check
/// its own invariants (panicking names the failing path: print [`Chooser::path`]).
pub fn every_path(mut scenario: impl FnMut(&mut Chooser)) -> usize {
    let mut prefix = Vec::new();
    let mut runs = 0;
    loop {
        let mut chooser = Chooser {
            prefix,
            path: Vec::new(),
        };
        scenario(&mut chooser);
        runs += 1;
        let Some(last) = chooser
            .path
            .iter()
            .rposition(|(chosen, of)| chosen + 1 < *of)
        else {
            return runs;
        };
        prefix = chooser.path[..last]
            .iter()
            .map(|(chosen, _)| *chosen)
            .collect();
        prefix.push(chooser.path[last].0 + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_of_three_is_visited_once() {
        let mut seen = Vec::new();
        let runs = every_path(|chooser| {
            let mut left = vec!['a', 'b', 'c'];
            let mut order = String::new();
            while !left.is_empty() {
                order.push(left.remove(chooser.choose(left.len())));
            }
            seen.push(order);
        });
        assert_eq!(runs, 6);
        seen.sort();
        seen.dedup();
        assert_eq!(seen, ["abc", "acb", "bac", "bca", "cab", "cba"]);
    }

    #[test]
    fn a_scenario_without_choices_runs_once() {
        assert_eq!(every_path(|_| {}), 1);
    }
}
