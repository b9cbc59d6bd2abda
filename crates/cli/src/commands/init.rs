use std::path::Path;

use crate::exit::{OK, UNREADABLE, fail};

/// The starter plan; a test keeps it valid.
pub const STARTER: &str = include_str!("../starter.slipway.yaml");

pub fn run(path: &Path, force: bool) -> anyhow::Result<u8> {
    if path.exists() && !force {
        return Err(fail(
            UNREADABLE,
            format!(
                "{} already exists; use --force to overwrite it",
                path.display()
            ),
        ));
    }
    std::fs::write(path, STARTER)
        .map_err(|e| fail(UNREADABLE, format!("cannot write {}: {e}", path.display())))?;
    println!("wrote {}; next: slipway check {0}", path.display());
    Ok(OK)
}
