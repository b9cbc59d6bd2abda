pub mod admin;
pub mod check;
pub mod control;
pub mod demo;
pub mod deploy;
pub mod init;
pub mod plan;
pub mod record;
pub mod schema;
pub mod serve;

use std::path::Path;

use slipway_core::{LoadedPlan, PlanErrors};

use crate::exit::{UNREADABLE, fail};

/// Reads a plan file; an unreadable file is exit code 2, an invalid plan comes back as `Err(Ok(..))`.
pub fn read_plan(path: &Path) -> anyhow::Result<Result<LoadedPlan, PlanErrors>> {
    let bytes = std::fs::read(path)
        .map_err(|e| fail(UNREADABLE, format!("cannot read {}: {e}", path.display())))?;
    Ok(slipway_core::load(&path.display().to_string(), &bytes))
}

/// Reads a moment given on the command line; civil times without a zone are UTC.
pub fn parse_time(text: &str) -> anyhow::Result<jiff::Timestamp> {
    if text == "now" {
        return Ok(jiff::Timestamp::now());
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(z) = text.parse::<jiff::Zoned>() {
        return Ok(z.timestamp());
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>()
        && let Ok(z) = dt.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp());
    }
    Err(fail(
        UNREADABLE,
        format!(
            "`{text}` is not a time; use `now`, `2026-11-28T22:30:00Z`, `2026-11-28T22:30[Europe/London]` or `2026-11-28T22:30` (UTC)"
        ),
    ))
}
