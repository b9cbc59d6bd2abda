//! The `slipway` binary: parses the command line, runs a command, maps the outcome to an exit code.

mod commands;
mod context;
mod exit;
mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::Global;
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

    /// The record: an SQLite file (default: slipway.db in the data directory).
    #[arg(long, global = true, env = "SLIPWAY_DATABASE")]
    database: Option<String>,

    /// Slipway's data directory: the default database and local targets live here.
    #[arg(long, global = true, env = "SLIPWAY_HOME")]
    home: Option<PathBuf>,

    /// Who is acting (recorded with every decision); defaults to $SLIPWAY_USER, then $USER.
    #[arg(long = "as", global = true, env = "SLIPWAY_USER")]
    actor: Option<String>,

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
    /// Deploy a plan to an environment: approvals, windows, preflight, batches, validation,
    /// automatic rollback.
    Deploy {
        plan: PathBuf,
        #[arg(long, short = 'e')]
        env: String,
        /// Deploy this version instead of `release.version`.
        #[arg(long)]
        version: Option<String>,
        /// Start no earlier than this time (same forms as `plan --at`); a server starts it then.
        #[arg(long)]
        at: Option<String>,
        /// As an admin, let it through a freeze (and outside windows), with this written reason.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
    /// Approve a deployment awaiting approval (as the acting user, who needs an approving role).
    Approve {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a deployment awaiting approval; a reason is required.
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Run a queued deployment now, in this process (a `slipway serve` worker does it otherwise).
    Start { id: i64 },
    /// Replace the plan of a deployment that has not started; approvals given so far are void.
    Amend { id: i64, plan: PathBuf },
    /// As an admin, let a deployment through a freeze and outside windows, with a written reason.
    BreakGlass {
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Run the server: HTTP API, web UI, scheduler and workers, on this record.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Deployments run at once (in different environments).
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// Manage users and their roles.
    User {
        #[command(subcommand)]
        command: commands::admin::UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: commands::admin::TokenCommand,
    },
    /// Return an environment to an earlier release still kept on its targets.
    Rollback {
        #[arg(long, short = 'e')]
        env: String,
        /// The release to return to (default: the one each target ran before).
        #[arg(long)]
        to: Option<String>,
    },
    /// What is running, waiting or locked now; or one deployment in detail.
    Status {
        /// A deployment id.
        id: Option<i64>,
    },
    /// Follow a deployment until it ends.
    Watch { id: i64 },
    /// Output of a deployment's step runs.
    Logs {
        id: i64,
        #[arg(long)]
        step: Option<String>,
        #[arg(long)]
        target: Option<String>,
    },
    /// Past deployments, newest first.
    History {
        #[arg(long, short = 'e')]
        env: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Which release every target runs, and which it keeps.
    Inventory {
        #[arg(long, short = 'e')]
        env: Option<String>,
    },
    /// Stop a deployment; a running one rolls back.
    Cancel { id: i64 },
    /// Confirm a manual step (or a canary pause) of a running deployment.
    Confirm { id: i64, step: String },
    /// Finish deployments whose process died (every command does this first).
    Resume,
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Deploy a small versioned service to three local targets: v1, v2, then a failing v3 that
    /// rolls back by itself.
    Demo {
        /// Leave the demo services running when it ends.
        #[arg(long)]
        keep: bool,
        /// Work in this directory instead of a new temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The small HTTP service the demo deploys.
    #[command(hide = true, name = "demo-service")]
    DemoService {
        #[command(subcommand)]
        command: commands::demo::ServiceCommand,
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and name the first event that does not match.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = Global {
        format: cli.output,
        database: cli.database,
        home: cli.home,
        actor: cli.actor,
    };
    let result = match cli.command {
        Command::Check { plan } => commands::check::run(&plan, global.format),
        Command::Plan {
            plan,
            env,
            at,
            version,
        } => commands::plan::run(&plan, &env, &at, version, global.format),
        Command::Schema => commands::schema::run(),
        Command::Init { path, force } => commands::init::run(&path, force),
        Command::DemoService { command } => commands::demo::service(command),
        other => context::block_on(async move {
            match other {
                Command::Deploy {
                    plan,
                    env,
                    version,
                    at,
                    break_glass,
                } => {
                    commands::deploy::deploy(
                        &global,
                        &plan,
                        &env,
                        version,
                        at.as_deref(),
                        break_glass.as_deref(),
                    )
                    .await
                }
                Command::Approve { id, reason } => {
                    commands::control::decide(&global, id, true, reason.as_deref()).await
                }
                Command::Reject { id, reason } => {
                    commands::control::decide(&global, id, false, Some(&reason)).await
                }
                Command::Start { id } => commands::deploy::start(&global, id).await,
                Command::Amend { id, plan } => commands::control::amend(&global, id, &plan).await,
                Command::BreakGlass { id, reason } => {
                    commands::control::break_glass(&global, id, &reason).await
                }
                Command::User { command } => commands::admin::user(&global, command).await,
                Command::Serve { listen, workers } => {
                    commands::serve::run(&global, listen, workers).await
                }
                Command::Token { command } => commands::admin::token(&global, command).await,
                Command::Rollback { env, to } => {
                    commands::deploy::rollback(&global, &env, to.as_deref()).await
                }
                Command::Status { id } => commands::record::status(&global, id).await,
                Command::Watch { id } => commands::record::watch(&global, id).await,
                Command::Logs { id, step, target } => {
                    commands::record::logs(&global, id, step.as_deref(), target.as_deref()).await
                }
                Command::History { env, limit } => {
                    commands::record::history(&global, env.as_deref(), limit).await
                }
                Command::Inventory { env } => {
                    commands::record::inventory(&global, env.as_deref()).await
                }
                Command::Cancel { id } => commands::control::cancel(&global, id).await,
                Command::Confirm { id, step } => {
                    commands::control::confirm(&global, id, &step).await
                }
                Command::Resume => commands::control::resume(&global).await,
                Command::Audit {
                    command: AuditCommand::Verify,
                } => commands::record::audit_verify(&global).await,
                Command::Demo { keep, dir } => commands::demo::run(&global, keep, dir).await,
                Command::Check { .. }
                | Command::Plan { .. }
                | Command::Schema
                | Command::Init { .. }
                | Command::DemoService { .. } => Ok(exit::OK),
            }
        }),
    };
    exit::finish(result)
}
