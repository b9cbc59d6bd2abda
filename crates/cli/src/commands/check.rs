//! `slipway check PLAN`: every problem at once, or a clean bill with the plan hash.

use std::path::Path;

use serde::Serialize;
use slipway_core::diag::DiagnosticData;

use super::read_plan;
use crate::exit::{INVALID, OK};
use crate::output::{Format, color_stdout, print_json, short_hash};

#[derive(Serialize)]
struct CheckReport {
    file: String,
    valid: bool,
    errors: usize,
    warnings: usize,
    hash: Option<String>,
    diagnostics: Vec<DiagnosticData>,
}

pub fn run(path: &Path, format: Format) -> anyhow::Result<u8> {
    let (source, diagnostics, hash) = match read_plan(path)? {
        Ok(loaded) => (loaded.source, loaded.warnings, Some(loaded.hash)),
        Err(errors) => (errors.source, errors.diagnostics, None),
    };
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    match format {
        Format::Json => print_json(&CheckReport {
            file: source.name().to_string(),
            valid: errors == 0,
            errors,
            warnings,
            hash: hash.clone(),
            diagnostics: diagnostics.iter().map(|d| d.to_data(&source)).collect(),
        })?,
        Format::Human => {
            let color = color_stdout();
            for d in &diagnostics {
                print!("{}", d.render(&source, color));
                println!();
            }
            if errors == 0 {
                let hash = hash.as_deref().unwrap_or_default();
                let w = if warnings > 0 {
                    format!(" with {warnings} warning(s)")
                } else {
                    String::new()
                };
                println!(
                    "{} is valid{w} (plan hash {})",
                    source.name(),
                    short_hash(hash)
                );
            } else {
                println!(
                    "{}: {errors} error(s), {warnings} warning(s)",
                    source.name()
                );
            }
        }
    }
    Ok(if errors == 0 { OK } else { INVALID })
}
