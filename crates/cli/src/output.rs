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

/// A record time (Unix milliseconds) for people, in UTC to the second.
pub fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.round(jiff::Unit::Second).map_or_else(
                |_| t.to_string(),
                |r| r.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            )
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// Elapsed time between two record times, for people.
pub fn took(from: Option<i64>, to: Option<i64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => {
            let ms = b - a;
            if ms < 10_000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else {
                slipway_core::duration::format_duration(std::time::Duration::from_millis(
                    ms.unsigned_abs() / 1000 * 1000,
                ))
            }
        }
        _ => "-".into(),
    }
}

pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    t
}
