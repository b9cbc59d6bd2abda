//! Secrets: read from the environment or files at deploy time, handed to step processes, and
//! masked out of everything Slipway writes or shows.

use std::path::Path;

use aho_corasick::AhoCorasick;
use slipway_core::plan::{Plan, SecretSource};

pub const MASK: &str = "********";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{name}`: environment variable `{var}` is not set")]
    MissingEnv { name: String, var: String },
    #[error("secret `{name}`: cannot read {path}: {reason}")]
    Unreadable {
        name: String,
        path: String,
        reason: String,
    },
}

/// Resolved secret values, by name. Debug output never shows the values.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Vec<(String, String)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.values.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Secrets {
    /// Reads every secret the plan declares; `base` is where relative secret files are found.
    pub fn resolve(
        plan: &Plan,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secrets, SecretError> {
        let mut values = Vec::new();
        for (name, secret) in &plan.secrets {
            let value = match &secret.source {
                SecretSource::Env(var) => env(var).ok_or_else(|| SecretError::MissingEnv {
                    name: name.clone(),
                    var: var.clone(),
                })?,
                SecretSource::File(path) => {
                    let full = if Path::new(path).is_absolute() {
                        Path::new(path).to_path_buf()
                    } else {
                        base.join(path)
                    };
                    let text =
                        std::fs::read_to_string(&full).map_err(|e| SecretError::Unreadable {
                            name: name.clone(),
                            path: full.display().to_string(),
                            reason: e.to_string(),
                        })?;
                    text.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            values.push((name.clone(), value));
        }
        Ok(Secrets { values })
    }

    pub fn from_pairs(values: Vec<(String, String)>) -> Secrets {
        Secrets { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn masker(&self) -> Masker {
        Masker::new(self.values.iter().map(|(_, v)| v.as_str()))
    }
}

/// Replaces every known secret value in a text with `********`, in one pass.
#[derive(Clone)]
pub struct Masker {
    matcher: Option<AhoCorasick>,
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut patterns: Vec<&str> = values.into_iter().filter(|v| !v.is_empty()).collect();
        // Longest first, so a secret containing another is masked whole.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let matcher = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&patterns)
                .ok()
        };
        Masker { matcher }
    }

    pub fn none() -> Masker {
        Masker { matcher: None }
    }

    pub fn mask(&self, text: &str) -> String {
        match &self.matcher {
            Some(m) => m.replace_all(text, &vec![MASK; m.patterns_len()]),
            None => text.to_string(),
        }
    }

    pub fn mask_bytes(&self, bytes: &[u8]) -> String {
        self.mask(&String::from_utf8_lossy(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_the_longest_secret_whole() {
        let m = Masker::new(["hunter2", "hunter2-extended"]);
        assert_eq!(
            m.mask("a hunter2 b hunter2-extended c"),
            "a ******** b ******** c"
        );
        assert_eq!(Masker::none().mask("hunter2"), "hunter2");
    }
}
