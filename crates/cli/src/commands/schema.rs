use crate::exit::OK;

pub fn run() -> anyhow::Result<u8> {
    println!(
        "{}",
        serde_json::to_string_pretty(&slipway_core::plan::schema::json_schema())?
    );
    Ok(OK)
}
