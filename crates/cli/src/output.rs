//! How results are shown: human text or JSON.

use std::io::IsTerminal;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Colour only for a terminal, and never when `NO_COLOR` is set.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A short form of a content hash for humans.
pub fn short_hash(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
