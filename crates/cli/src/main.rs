//! The `slipway` binary: parses the command line, runs a command, maps the outcome to an exit code.

mod commands;
mod exit;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Format;

#[derive(Parser)]
#[command(
    name = "slipway",
    version,
    about = "Deployment management: plan, approve, deploy, validate, roll back, record, review."
)]
struct Cli {
    /// Output format: human-readable text, or JSON for machines.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Human)]
    output: Format,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a plan and report every problem with its line and column.
    Check {
        /// The plan file.
        plan: PathBuf,
    },
    /// Show what deploying a plan to an environment would do.
    Plan {
        /// The plan file.
        plan: PathBuf,
        /// The environment to plan for.
        #[arg(long, short = 'e')]
        env: String,
        /// When the deployment would start: RFC 3339 (`2026-11-28T22:30:00Z`), a zoned time
        /// (`2026-11-28T22:30[Europe/London]`), a UTC civil time (`2026-11-28T22:30`) or `now`.
        #[arg(long, default_value = "now")]
        at: String,
        /// Deploy this version instead of `release.version`.
        #[arg(long)]
        version: Option<String>,
    },
    /// Print the JSON Schema of the plan format, for editors.
    Schema,
    /// Write a commented starter plan that passes `slipway check`.
    Init {
        /// Where to write it.
        #[arg(default_value = "slipway.yaml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { plan } => commands::check::run(&plan, cli.output),
        Command::Plan {
            plan,
            env,
            at,
            version,
        } => commands::plan::run(&plan, &env, &at, version, cli.output),
        Command::Schema => commands::schema::run(),
        Command::Init { path, force } => commands::init::run(&path, force),
    };
    exit::finish(result)
}
