//! The plan language: loading, decoding and validating a plan file.

pub mod decode;
pub mod keys;
pub mod model;
pub mod schema;
pub mod select;
mod validate;

pub use model::*;

use sha2::{Digest, Sha256};

use crate::diag::Diagnostic;
use crate::source::Source;
use crate::yaml;

/// A plan that passed every check, with its source and content hash.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub source: Source,
    pub plan: Plan,
    /// SHA-256 of the plan's canonical form: formatting, comments and key order do not change it.
    pub hash: String,
    pub warnings: Vec<Diagnostic>,
}

/// Everything wrong with a plan, errors and warnings, in file order.
#[derive(Debug, Clone)]
pub struct PlanErrors {
    pub source: Source,
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} has {} error(s)",
            self.source.name(),
            self.error_count()
        )
    }
}

impl std::error::Error for PlanErrors {}

impl PlanErrors {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Reads, decodes and validates a plan. Every problem found is reported at once.
pub fn load(name: &str, bytes: &[u8]) -> Result<LoadedPlan, PlanErrors> {
    let source = match yaml::source_from_bytes(name, bytes) {
        Ok(s) => s,
        Err((source, d)) => {
            return Err(PlanErrors {
                source,
                diagnostics: vec![d],
            });
        }
    };
    let root = match yaml::load(&source) {
        Ok(root) => root,
        Err(d) => {
            return Err(PlanErrors {
                source,
                diagnostics: vec![d],
            });
        }
    };
    let mut decoder = decode::Decoder::new(&source);
    let plan = decoder.plan(&root);
    let mut diagnostics = decoder.diags;
    diagnostics.extend(validate::validate(&plan));
    diagnostics.sort_by_key(|d| (d.span.map(|s| s.start), d.code.as_str()));
    diagnostics.dedup();
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(PlanErrors {
            source,
            diagnostics,
        });
    }
    let hash = content_hash(&root);
    Ok(LoadedPlan {
        source,
        plan,
        hash,
        warnings: diagnostics,
    })
}

fn content_hash(root: &yaml::Node) -> String {
    struct HashWriter(Sha256);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
    // Writing into a hasher cannot fail.
    let _ = root.write_canonical(&mut w);
    match w.into_inner() {
        Ok(h) => hex::encode(h.0.finalize()),
        Err(_) => String::new(),
    }
}
