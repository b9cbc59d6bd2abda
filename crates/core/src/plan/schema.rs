//! The JSON Schema (draft 2020-12) of a plan file, for editors.
//!
//! `slipway schema` prints it; point an editor at the saved file with
//! `# yaml-language-server: $schema=PATH` on the plan's first line. The
//! schema mirrors the decoder: the property names of every section come from [`super::keys`] (a test
//! keeps them equal), and shapes, ranges and defaults follow `decode.rs`. The decoder stays the
//! authority: `slipway check` also does what a schema cannot, such as checking `needs`, template
//! names, label selections and approver counts.

use serde_json::{Map, Value, json};

use super::keys;
use super::model::{DEFAULT_KEEP_RELEASES, FORMAT_VERSION, NOTIFY_EVENTS};
use crate::risk::RiskLevel;

/// The JSON Schema dialect of [`json_schema`].
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// `300ms`, `30s`, `5m`, `2h`, `2d`, `1w`, or combinations such as `1h30m`.
const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*(ms|s|m|h|d|w)\s*)+$";
/// `25%`: a whole percentage from 1 to 100.
const PERCENT_PATTERN: &str = r"^\s*\+?0*([1-9][0-9]?|100)\s*%$";
/// `Sat 22:00-Sun 04:00 Europe/London` or `Mon-Fri 09:00-17:00 UTC`.
const WINDOW_PATTERN: &str = r"^\s*([A-Za-z]+\s+[0-9]+:[0-9]+-[A-Za-z]+\s+[0-9]+:[0-9]+|[A-Za-z*,-]+\s+[0-9]+:[0-9]+-[0-9]+:[0-9]+)\s+\S+\s*$";
/// `user@host`, `user@host:port` or `user@[v6addr]:port`.
const SSH_PATTERN: &str = r"^[^@\s]+@(\[[^\]\s]+\]|[^\s:\[\]@]+)(:[0-9]{1,5})?$";
/// Names that can be environment variables, as variables and secrets must be.
const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
const STEP_ID_PATTERN: &str = "^[A-Za-z0-9._-]+$";
const SHA256_PATTERN: &str = "^[0-9a-fA-F]{64}$";
/// A freeze boundary: a date, a civil date-time, or an RFC 3339 timestamp.
const INSTANT_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ].*)?$";
/// An `http` check's URL, unless it starts with a template.
const HTTP_URL_PATTERN: &str = r"^(https?://|\{\{)";

/// The JSON Schema of a plan file.
pub fn json_schema() -> Value {
    let mut defs = Map::new();
    for (name, schema) in definitions() {
        defs.insert(name.to_string(), schema);
    }
    let mut root = object(
        "A Slipway deployment plan: what is released, where, in which order, how it is checked and \
         rolled back, what may go wrong and who is told. `slipway check` validates it.",
        keys::TOP,
        vec![
            (
                "slipway",
                json!({
                    "description": "Plan format version. This Slipway reads version 1.",
                    "const": FORMAT_VERSION,
                }),
            ),
            ("release", reference("release", "What is being released.")),
            (
                "artifact",
                reference(
                    "artifact",
                    "The file shipped to targets; steps receive its path as `$SLIPWAY_ARTIFACT`.",
                ),
            ),
            (
                "variables",
                json!({
                    "description": "Plan variables, used as `{{ vars.NAME }}` and passed to every step \
                        process as the environment variable NAME. A target's `vars` override them for \
                        that target.",
                    "type": "object",
                    "propertyNames": { "$ref": "#/$defs/env_name" },
                    "additionalProperties": scalar("The variable's value (a string, number or boolean)."),
                }),
            ),
            (
                "secrets",
                json!({
                    "description": "Secrets, read when the deployment runs and never stored or shown \
                        unmasked. Used as `{{ secrets.NAME }}` and passed to step processes as the \
                        environment variable NAME.",
                    "type": "object",
                    "propertyNames": { "$ref": "#/$defs/env_name" },
                    "additionalProperties": { "$ref": "#/$defs/secret" },
                }),
            ),
            (
                "roles",
                json!({
                    "description": "Who belongs to each role: role name to a list of people. When \
                        present, `approvals.from` must name declared roles, and there must be enough \
                        approvers besides the release owner.",
                    "type": "object",
                    "additionalProperties": scalar_list("The people in this role."),
                }),
            ),
            (
                "environments",
                json!({
                    "description": "Environments to deploy to, by name (for example `staging`, \
                        `production`).",
                    "type": "object",
                    "additionalProperties": { "$ref": "#/$defs/environment" },
                }),
            ),
            (
                "steps",
                json!({
                    "description": "What a deployment does, in dependency order given by `needs`. \
                        Steps without a path between them may run in parallel.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/step" },
                }),
            ),
            (
                "tests",
                json!({
                    "description": "Functional, performance and security tests run against the \
                        environment after the steps.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/test" },
                }),
            ),
            (
                "risks",
                json!({
                    "description": "The risk register: what may go wrong, how likely, how bad, and \
                        what is done about it. The highest exposure feeds the risk score.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/risk" },
                }),
            ),
            (
                "notify",
                json!({
                    "description": "Who is told about which deployment events, by webhook or e-mail.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/notification" },
                }),
            ),
            (
                "review",
                reference("review", "The post-implementation review."),
            ),
        ],
        &["slipway", "release", "environments", "steps"],
    );
    let extra = json!({
        "$schema": DIALECT,
        "title": "Slipway plan",
        "$defs": Value::Object(defs),
    });
    merge(&mut root, extra);
    // Put `$schema` and `title` first, as readers expect.
    let Value::Object(body) = root else {
        return root;
    };
    let mut ordered = Map::new();
    for key in ["$schema", "title"] {
        if let Some(v) = body.get(key) {
            ordered.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in body {
        if !ordered.contains_key(&k) {
            ordered.insert(k, v);
        }
    }
    Value::Object(ordered)
}

// ----- building blocks ----------------------------------------------------------------------------

/// An object section that rejects unknown keys. `props` are placed in the order of `order` (the
/// section's list in `keys.rs`); any property not in the list goes last, where a test finds it.
fn object(
    description: &str,
    order: &[&str],
    props: Vec<(&str, Value)>,
    required: &[&str],
) -> Value {
    let position = |k: &str| order.iter().position(|o| *o == k).unwrap_or(usize::MAX);
    let mut props = props;
    props.sort_by_key(|(k, _)| position(k));
    let mut properties = Map::new();
    for (k, v) in props {
        properties.insert(k.to_string(), v);
    }
    let mut out = json!({
        "description": description,
        "type": "object",
        "additionalProperties": false,
        "properties": Value::Object(properties),
    });
    if !required.is_empty() {
        merge(&mut out, json!({ "required": required }));
    }
    out
}

/// Adds (or replaces) the top-level keys of `extra` in `target`.
fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(t), Value::Object(e)) = (target, extra) {
        for (k, v) in e {
            t.insert(k, v);
        }
    }
}

fn with(mut schema: Value, extra: Value) -> Value {
    merge(&mut schema, extra);
    schema
}

fn reference(def: &str, description: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{def}"), "description": description })
}

/// Any scalar the decoder reads as text: YAML `8080` and `true` are accepted where a string is.
fn scalar(description: &str) -> Value {
    json!({ "description": description, "type": ["string", "number", "boolean"] })
}

/// A list of texts; a single text is accepted as a list of one.
fn scalar_list(description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [
            { "type": ["string", "number", "boolean"] },
            { "type": "array", "items": { "type": ["string", "number", "boolean"] } },
        ],
    })
}

fn string(description: &str) -> Value {
    json!({ "description": description, "type": "string", "minLength": 1 })
}

fn integer(description: &str, min: i64, max: i64) -> Value {
    json!({ "description": description, "type": "integer", "minimum": min, "maximum": max })
}

fn duration(description: &str) -> Value {
    reference("duration", description)
}

fn command(description: &str) -> Value {
    reference("command", description)
}

fn template(description: &str) -> Value {
    json!({ "description": description, "type": "string" })
}

fn required_one_of(keys: &[&str]) -> Value {
    Value::Array(keys.iter().map(|k| json!({ "required": [k] })).collect())
}

// ----- definitions --------------------------------------------------------------------------------

fn definitions() -> Vec<(&'static str, Value)> {
    vec![
        ("duration", duration_def()),
        ("percent", percent_def()),
        ("count", count_def()),
        ("command", command_def()),
        ("env_name", env_name_def()),
        ("window", window_def()),
        ("instant", instant_def()),
        ("release", release()),
        ("objective", objective()),
        ("artifact", artifact()),
        ("secret", secret()),
        ("environment", environment()),
        ("approvals", approvals()),
        ("freeze", freeze()),
        ("policy", policy()),
        ("policy_rule", policy_rule()),
        ("target", target()),
        ("step", step()),
        ("release_dir", release_dir()),
        ("release_dir_object", release_dir_object()),
        ("strategy", strategy()),
        ("strategy_object", strategy_object()),
        ("rolling", rolling()),
        ("canary", canary()),
        ("check", check()),
        ("expect", expect()),
        ("test", test()),
        ("http_load", http_load()),
        ("security", security()),
        ("risk", risk()),
        ("notification", notification()),
        ("review", review()),
    ]
}

fn duration_def() -> Value {
    json!({
        "description": "A duration with a unit: `300ms`, `30s`, `5m`, `2h`, `2d`, `1w`, or combined \
            such as `1h30m`. A bare number is refused: write `30s`, not `30`.",
        "type": "string",
        "pattern": DURATION_PATTERN,
        "examples": ["30s", "5m", "1h30m"],
    })
}

fn percent_def() -> Value {
    json!({
        "description": "A whole percentage from 1% to 100%, such as `25%`.",
        "type": "string",
        "pattern": PERCENT_PATTERN,
        "examples": ["10%", "25%", "100%"],
    })
}

fn count_def() -> Value {
    json!({
        "description": "A number of targets (at least 1), or a percentage of the step's targets such \
            as `25%` (rounded up, never below one target).",
        "anyOf": [
            { "type": "integer", "minimum": 1, "maximum": u32::MAX },
            { "$ref": "#/$defs/percent" },
        ],
    })
}

fn command_def() -> Value {
    json!({
        "description": "A command. A list is argv: the program and its arguments, run directly with \
            `{{ ... }}` templates replaced by their values, with no shell involved. A string runs \
            through `sh -c`; there each `{{ ... }}` becomes a reference to an environment variable \
            (such as `${port}` or `${SLIPWAY_VERSION}`), so values are never pasted into shell text.",
        "anyOf": [
            {
                "description": "Argv: program and arguments.",
                "type": "array",
                "minItems": 1,
                "items": { "type": ["string", "number", "boolean"] },
            },
            {
                "description": "Shell text, run by `sh -c`.",
                "type": "string",
                "pattern": r"\S",
            },
        ],
        "examples": [["./bin/migrate", "up"], "systemctl reload myapp"],
    })
}

fn env_name_def() -> Value {
    json!({
        "description": "A name usable as an environment variable: letters, digits and `_`, not \
            starting with a digit. Names starting with `SLIPWAY_` are reserved.",
        "type": "string",
        "pattern": ENV_NAME_PATTERN,
        "not": { "pattern": "^SLIPWAY_" },
    })
}

fn window_def() -> Value {
    json!({
        "description": "A weekly maintenance window in an IANA time zone, in local wall-clock time: \
            `Sat 22:00-Sun 04:00 Europe/London` (from one day and time to another), or \
            `Mon-Fri 09:00-17:00 UTC` / `daily 02:00-04:00 America/New_York` (the same hours on \
            each listed day; days may be `Mon`, `Monday`, ranges `Mon-Fri`, lists `Sat,Sun`, \
            `daily`, `weekdays` or `weekends`). Hours may pass midnight (`22:00-02:00`).",
        "type": "string",
        "pattern": WINDOW_PATTERN,
        "examples": ["Sat 22:00-Sun 04:00 Europe/London", "Mon-Fri 09:00-17:00 UTC"],
    })
}

fn instant_def() -> Value {
    json!({
        "description": "A date (`2026-12-20`: the whole day, so a `to` date is included), a date and \
            time (`2026-12-20T18:00`, in the freeze's `tz`), or an RFC 3339 timestamp \
            (`2026-12-20T18:00:00Z`).",
        "type": "string",
        "pattern": INSTANT_PATTERN,
        "examples": ["2026-12-20", "2026-12-20T18:00"],
    })
}

fn release() -> Value {
    object(
        "What is being released.",
        keys::RELEASE,
        vec![
            (
                "name",
                with(
                    scalar("Name of the release or service."),
                    json!({ "minLength": 1 }),
                ),
            ),
            (
                "version",
                scalar(
                    "Version being deployed; `{{ release.version }}` and `$SLIPWAY_VERSION`. \
                     Required by steps with a `release_dir` (releases/<version>).",
                ),
            ),
            (
                "change",
                scalar("Change record reference, such as `CHG-1042`; `{{ release.change }}`."),
            ),
            ("summary", scalar("One-line summary of the change.")),
            (
                "owner",
                scalar(
                    "Who owns the release; `{{ release.owner }}`. The owner never counts towards \
                     approvals.",
                ),
            ),
            (
                "objectives",
                json!({
                    "description": "What the release should achieve; reviewed after the deployment.",
                    "type": "array",
                    "items": {
                        "anyOf": [
                            scalar("The objective, as text."),
                            { "$ref": "#/$defs/objective" },
                        ],
                    },
                }),
            ),
        ],
        &["name"],
    )
}

fn objective() -> Value {
    object(
        "An objective, optionally measured by a test.",
        keys::OBJECTIVE,
        vec![
            ("text", scalar("The objective.")),
            (
                "test",
                scalar("Id of the test (under `tests`) that measures it."),
            ),
        ],
        &["text"],
    )
}

fn artifact() -> Value {
    object(
        "The file shipped to targets; steps receive its path as `$SLIPWAY_ARTIFACT` and \
         `{{ artifact.path }}`.",
        keys::ARTIFACT,
        vec![
            (
                "path",
                template(
                    "Path of the artifact; may use `{{ release.* }}` and `{{ vars.* }}`, for example \
                     `dist/shop-{{ release.version }}.tar.gz`.",
                ),
            ),
            (
                "sha256",
                json!({
                    "description": "Expected SHA-256 digest (64 hex digits), checked before any \
                        target is touched.",
                    "type": "string",
                    "pattern": SHA256_PATTERN,
                }),
            ),
        ],
        &["path"],
    )
}

fn secret() -> Value {
    with(
        object(
            "Where a secret's value comes from: exactly one of `env` and `file`.",
            keys::SECRET,
            vec![
                (
                    "env",
                    string("Environment variable of the deploying process that holds the value."),
                ),
                (
                    "file",
                    string("File holding the value (a trailing newline is trimmed)."),
                ),
            ],
            &[],
        ),
        json!({ "oneOf": required_one_of(&["env", "file"]) }),
    )
}

fn environment() -> Value {
    with(
        object(
            "An environment: its targets and the rules a deployment to it must follow.",
            keys::ENVIRONMENT,
            vec![
                (
                    "protected",
                    json!({
                        "description": "A protected environment needs at least one approval and \
                            adds 10 points to the risk score.",
                        "type": "boolean",
                        "default": false,
                    }),
                ),
                (
                    "approvals",
                    reference(
                        "approvals",
                        "Approvals a deployment needs before it starts.",
                    ),
                ),
                (
                    "windows",
                    json!({
                        "description": "Maintenance windows. When any are listed, deployments run \
                            only inside one; with none, the environment is always open.",
                        "type": "array",
                        "items": { "$ref": "#/$defs/window" },
                    }),
                ),
                (
                    "freezes",
                    json!({
                        "description": "Periods when the environment must not change (an admin can \
                            break glass, which is audited).",
                        "type": "array",
                        "items": { "$ref": "#/$defs/freeze" },
                    }),
                ),
                (
                    "policy",
                    reference(
                        "policy",
                        "What each risk level demands here: more approvals, or a block.",
                    ),
                ),
                (
                    "targets",
                    json!({
                        "description": "The hosts or directories deployed to, by name.",
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": { "$ref": "#/$defs/target" },
                    }),
                ),
            ],
            &["targets"],
        ),
        json!({
            "if": { "required": ["protected"], "properties": { "protected": { "const": true } } },
            "then": {
                "required": ["approvals"],
                "properties": { "approvals": { "properties": { "required": { "minimum": 1 } } } },
            },
        }),
    )
}

fn approvals() -> Value {
    object(
        "Approvals needed before a deployment starts. The requester never approves their own \
         deployment, and an approval is bound to the plan's hash.",
        keys::APPROVALS,
        vec![
            (
                "required",
                integer("How many distinct people must approve.", 0, 100),
            ),
            (
                "from",
                scalar_list(
                    "Roles whose members may approve. With a `roles` section, each must be \
                     declared there.",
                ),
            ),
        ],
        &["required"],
    )
}

fn freeze() -> Value {
    object(
        "A freeze period: no deployment from `from` until the end of `to`.",
        keys::FREEZE,
        vec![
            ("from", reference("instant", "When the freeze starts.")),
            (
                "to",
                reference(
                    "instant",
                    "When the freeze ends; a bare date means the end of that day.",
                ),
            ),
            (
                "reason",
                scalar("Why the environment is frozen, shown to whoever is refused."),
            ),
            (
                "tz",
                json!({
                    "description": "IANA time zone of dates and times without an offset.",
                    "type": "string",
                    "default": "UTC",
                    "examples": ["Europe/London", "America/New_York"],
                }),
            ),
        ],
        &["from", "to"],
    )
}

fn policy() -> Value {
    json!({
        "description": "Risk policy, keyed by risk level (low, medium, high, critical). The rule for \
            the highest level at or below the assessed level applies: `block` forbids the \
            deployment, `{ approvals: N }` raises the required approvals to N (never lowers them).",
        "type": "object",
        "propertyNames": { "enum": RiskLevel::NAMES },
        "additionalProperties": {
            "anyOf": [
                { "const": "block", "description": "No deployment at this risk level." },
                { "$ref": "#/$defs/policy_rule" },
            ],
        },
    })
}

fn policy_rule() -> Value {
    object(
        "Raise the required approvals at this risk level.",
        keys::POLICY_RULE,
        vec![(
            "approvals",
            integer("Approvals required at this risk level.", 0, 100),
        )],
        &["approvals"],
    )
}

fn target() -> Value {
    let vars = json!({
        "description": "Variables for this target only, overriding plan `variables` of the same name.",
        "type": "object",
        "propertyNames": { "$ref": "#/$defs/env_name" },
        "additionalProperties": scalar("The variable's value for this target."),
    });
    with(
        object(
            "A target, reached in exactly one way: `host: local`, `ssh: user@host` or `agent: name`.",
            keys::TARGET,
            vec![
                (
                    "host",
                    json!({
                        "description": "`local`: a directory and processes on this machine.",
                        "enum": ["local", "localhost"],
                    }),
                ),
                (
                    "ssh",
                    json!({
                        "description": "Reach the host with OpenSSH: `user@host`, `user@host:port` \
                            or `user@[v6addr]:port` (port 22 by default).",
                        "type": "string",
                        "pattern": SSH_PATTERN,
                        "examples": ["deploy@10.0.0.11", "deploy@web-1.internal:2222"],
                    }),
                ),
                (
                    "agent",
                    string("Name of the `slipway agent` running on the host."),
                ),
                (
                    "labels",
                    scalar_list("Labels that steps select the target by, with `on`."),
                ),
                ("vars", vars),
                (
                    "root",
                    string(
                        "A local target's directory; a relative path resolves under Slipway's data \
                         directory. Local targets only.",
                    ),
                ),
                (
                    "address",
                    string(
                        "Address used for `{{ target.address }}` in checks; defaults to 127.0.0.1 \
                         for local, the SSH host, or the agent name.",
                    ),
                ),
            ],
            &[],
        ),
        json!({
            "oneOf": required_one_of(&["host", "ssh", "agent"]),
            "dependentRequired": { "root": ["host"] },
        }),
    )
}

fn step() -> Value {
    let not_with_manual = [
        "run",
        "rollback",
        "release_dir",
        "activate",
        "strategy",
        "validate",
    ];
    with(
        object(
            "A step. It runs a command, switches a release directory, or waits for a person \
             (`manual`).",
            keys::STEP,
            vec![
                (
                    "id",
                    with(
                        scalar(
                            "Unique id of the step: letters, digits, `-`, `_` and `.`. `needs` \
                             refers to it.",
                        ),
                        json!({ "pattern": STEP_ID_PATTERN }),
                    ),
                ),
                ("description", scalar("What the step does.")),
                (
                    "owner",
                    scalar(
                        "Team or role responsible. For a manual step, the role whose members \
                         confirm it.",
                    ),
                ),
                (
                    "on",
                    scalar_list(
                        "Where the step runs: targets carrying any of these labels, or named by \
                         them. Without `on`, every target of the environment.",
                    ),
                ),
                (
                    "needs",
                    scalar_list("Ids of steps that must finish before this one starts."),
                ),
                (
                    "run",
                    command("The command run on each target, in a batch order set by `strategy`."),
                ),
                (
                    "rollback",
                    command(
                        "Compensating command, run on rollback in reverse step order. A step with \
                         `run` but neither `rollback` nor `release_dir` is irreversible.",
                    ),
                ),
                (
                    "activate",
                    command("Run after the `current` symlink switches; needs `release_dir`."),
                ),
                (
                    "timeout",
                    duration("Longest a run of the step may take on one target (more than zero)."),
                ),
                (
                    "retries",
                    with(
                        integer("How often a failed run is retried on a target.", 0, 100),
                        json!({ "default": 0 }),
                    ),
                ),
                (
                    "release_dir",
                    reference(
                        "release_dir",
                        "Capistrano-style release directory: `NAME/releases/<version>` with an \
                         atomic `NAME/current` symlink switch.",
                    ),
                ),
                (
                    "strategy",
                    reference("strategy", "How the step's targets are split into batches."),
                ),
                (
                    "validate",
                    json!({
                        "description": "Health checks that gate every batch; a failed check stops \
                            the rollout and rolls it back.",
                        "type": "array",
                        "items": { "$ref": "#/$defs/check" },
                    }),
                ),
                (
                    "manual",
                    with(
                        scalar(
                            "Instruction for a person: the step waits until a member of its \
                             `owner` role confirms it.",
                        ),
                        json!({ "minLength": 1 }),
                    ),
                ),
            ],
            &["id"],
        ),
        json!({
            "anyOf": required_one_of(&["run", "release_dir", "manual"]),
            "if": { "required": ["manual"] },
            "then": {
                "required": ["owner"],
                "not": { "anyOf": required_one_of(&not_with_manual) },
            },
            "dependentRequired": { "activate": ["release_dir"] },
        }),
    )
}

fn release_dir() -> Value {
    json!({
        "description": "Release directory: a name or path (relative paths resolve under a local \
            target's root or an SSH login's home), or `{ path, keep }`.",
        "anyOf": [
            { "type": "string", "minLength": 1 },
            { "$ref": "#/$defs/release_dir_object" },
        ],
    })
}

fn release_dir_object() -> Value {
    object(
        "Release directory with the number of releases kept.",
        keys::RELEASE_DIR,
        vec![
            (
                "path",
                string("Directory holding `releases/` and the `current` symlink."),
            ),
            (
                "keep",
                with(
                    integer(
                        "Releases kept for rollback, the current one included (at least 2).",
                        2,
                        1000,
                    ),
                    json!({ "default": DEFAULT_KEEP_RELEASES }),
                ),
            ),
        ],
        &["path"],
    )
}

fn strategy() -> Value {
    json!({
        "description": "Rollout strategy: `all_at_once` (the default), `rolling` (batches of one), \
            `blue_green`, or a mapping with exactly one of `all_at_once`, `rolling`, `canary`, \
            `blue_green`.",
        "anyOf": [
            { "enum": ["all_at_once", "rolling", "blue_green"] },
            { "$ref": "#/$defs/strategy_object" },
        ],
        "default": "all_at_once",
    })
}

fn strategy_object() -> Value {
    let empty = |d: &str| json!({ "description": d, "type": ["object", "null"], "additionalProperties": false });
    with(
        object(
            "Exactly one strategy.",
            keys::STRATEGY,
            vec![
                ("all_at_once", empty("Every selected target in one batch.")),
                (
                    "rolling",
                    reference(
                        "rolling",
                        "Batches of `batch` targets, one after another, each validated.",
                    ),
                ),
                (
                    "canary",
                    reference(
                        "canary",
                        "Growing stages, each the cumulative share of targets on the new release.",
                    ),
                ),
                (
                    "blue_green",
                    empty(
                        "Deploy every target to its idle slot, validate, then switch all at once.",
                    ),
                ),
            ],
            &[],
        ),
        json!({ "minProperties": 1, "maxProperties": 1 }),
    )
}

fn rolling() -> Value {
    with(
        object(
            "Rolling: batches of `batch` targets, never more than `max_unavailable` at once.",
            keys::ROLLING,
            vec![
                (
                    "batch",
                    with(
                        reference("count", "Targets per batch: a number or a percentage."),
                        json!({ "default": 1 }),
                    ),
                ),
                (
                    "max_unavailable",
                    reference(
                        "count",
                        "Most targets out of service at once; caps the batch size.",
                    ),
                ),
            ],
            &[],
        ),
        json!({ "type": ["object", "null"] }),
    )
}

fn canary() -> Value {
    object(
        "Canary: stages of growing shares of the targets, each validated before the next.",
        keys::CANARY,
        vec![
            (
                "stages",
                json!({
                    "description": "Cumulative share of targets after each stage, growing, the \
                        last `100%`: for example `[10%, 50%, 100%]`.",
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "anyOf": [
                            { "type": "integer", "minimum": 1, "maximum": 100 },
                            { "$ref": "#/$defs/percent" },
                        ],
                    },
                }),
            ),
            (
                "pause",
                json!({
                    "description": "Between stages: wait this long (validation keeps running), or \
                        `confirm` to wait for a person.",
                    "anyOf": [
                        { "const": "confirm" },
                        { "$ref": "#/$defs/duration" },
                    ],
                }),
            ),
        ],
        &["stages"],
    )
}

fn check() -> Value {
    with(
        object(
            "A health check: exactly one of `http`, `tcp` and `command`, retried every `interval` \
             until it passes or `deadline` passes.",
            keys::CHECK,
            vec![
                (
                    "http",
                    with(
                        template(
                            "URL fetched with GET, such as \
                             `http://{{ target.address }}:{{ vars.port }}/health`.",
                        ),
                        json!({ "pattern": HTTP_URL_PATTERN }),
                    ),
                ),
                (
                    "tcp",
                    template(
                        "`host:port` that must accept a connection, such as \
                              `{{ target.address }}:5432`.",
                    ),
                ),
                ("command", command("Command that must exit 0.")),
                (
                    "expect",
                    reference("expect", "What the HTTP response must look like."),
                ),
                (
                    "interval",
                    with(
                        duration("Time between attempts."),
                        json!({ "default": "1s" }),
                    ),
                ),
                (
                    "deadline",
                    with(
                        duration("How long the check may keep failing before the batch fails."),
                        json!({ "default": "30s" }),
                    ),
                ),
            ],
            &[],
        ),
        json!({
            "oneOf": required_one_of(&["http", "tcp", "command"]),
            "dependentRequired": { "expect": ["http"] },
        }),
    )
}

fn expect() -> Value {
    object(
        "Expectations of an `http` check's response.",
        keys::EXPECT,
        vec![
            (
                "status",
                with(
                    integer("Expected HTTP status.", 100, 599),
                    json!({ "default": 200 }),
                ),
            ),
            (
                "body_contains",
                scalar("Text the response body must contain."),
            ),
            (
                "latency_below",
                duration("The response must arrive faster than this."),
            ),
        ],
        &[],
    )
}

fn test() -> Value {
    with(
        object(
            "A test run against the environment: exactly one of `run`, `http_load` and `security`.",
            keys::TEST,
            vec![
                (
                    "id",
                    with(scalar("Unique id of the test."), json!({ "minLength": 1 })),
                ),
                (
                    "kind",
                    json!({
                        "description": "What the test measures.",
                        "enum": ["functional", "performance", "security"],
                    }),
                ),
                (
                    "run",
                    command("Command that runs the test; it passes when it exits 0."),
                ),
                (
                    "junit",
                    string("JUnit XML report written by `run`; parsed and kept with the record."),
                ),
                (
                    "http_load",
                    reference("http_load", "Built-in HTTP load check."),
                ),
                (
                    "security",
                    reference("security", "Built-in security checks."),
                ),
                ("timeout", duration("Longest the test may take.")),
            ],
            &["id", "kind"],
        ),
        json!({
            "oneOf": required_one_of(&["run", "http_load", "security"]),
            "dependentRequired": { "junit": ["run"] },
        }),
    )
}

fn http_load() -> Value {
    object(
        "Built-in HTTP load check: requests for `duration` from `concurrency` clients.",
        keys::HTTP_LOAD,
        vec![
            (
                "url",
                template("URL requested with GET; may use `{{ vars.* }}`."),
            ),
            (
                "duration",
                with(
                    duration("How long the load runs."),
                    json!({ "default": "10s" }),
                ),
            ),
            (
                "concurrency",
                with(
                    integer("Requests in flight at once (0 counts as 1).", 0, 1000),
                    json!({ "default": 4 }),
                ),
            ),
            (
                "p95_below",
                duration("The 95th percentile latency must be below this."),
            ),
            (
                "max_error_rate",
                json!({
                    "description": "Largest share of failed requests, from 0 to 1 (0.01 is 1%).",
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                }),
            ),
        ],
        &["url"],
    )
}

fn security() -> Value {
    let ports = |d: &str| {
        json!({
            "description": d,
            "type": "array",
            "items": { "type": "integer", "minimum": 0, "maximum": 65535 },
        })
    };
    object(
        "Built-in security checks against a URL.",
        keys::SECURITY,
        vec![
            ("url", template("URL checked; may use `{{ vars.* }}`.")),
            (
                "require_headers",
                scalar_list("Response headers that must be present."),
            ),
            (
                "cert_valid_for",
                duration("The TLS certificate must stay valid at least this long."),
            ),
            (
                "allowed_ports",
                ports(
                    "Ports allowed to be open on the URL's host; any other open port among \
                       `scan_ports` fails the test.",
                ),
            ),
            ("scan_ports", ports("Ports probed on the URL's host.")),
        ],
        &["url"],
    )
}

fn risk() -> Value {
    object(
        "A risk in the register.",
        keys::RISK,
        vec![
            (
                "id",
                with(
                    scalar("Unique id of the risk, such as `R1`."),
                    json!({ "minLength": 1 }),
                ),
            ),
            ("title", scalar("What may go wrong.")),
            (
                "likelihood",
                integer("How likely: 1 (rare) to 5 (almost certain).", 1, 5),
            ),
            (
                "impact",
                integer("How bad: 1 (negligible) to 5 (severe).", 1, 5),
            ),
            ("mitigation", scalar("What lowers the risk beforehand.")),
            ("contingency", scalar("What is done if it happens.")),
            ("owner", scalar("Who watches the risk.")),
        ],
        &["id", "title", "likelihood", "impact"],
    )
}

fn notification() -> Value {
    let event = json!({ "enum": NOTIFY_EVENTS });
    with(
        object(
            "A notification: the events it is sent on, and one channel, `webhook` or `email`.",
            keys::NOTIFY,
            vec![
                (
                    "on",
                    json!({
                        "description": "Deployment events that send it.",
                        "anyOf": [event.clone(), { "type": "array", "items": event }],
                    }),
                ),
                (
                    "webhook",
                    template("Webhook URL that receives a POST; may use `{{ vars.* }}`."),
                ),
                (
                    "format",
                    json!({
                        "description": "Payload: `slack` (Slack-compatible) or `json` (generic JSON \
                            with an HMAC signature when `secret` is set). Webhooks only.",
                        "enum": ["slack", "json"],
                        "default": "json",
                    }),
                ),
                (
                    "secret",
                    reference(
                        "env_name",
                        "Name of a plan secret used as the HMAC-SHA256 signing key. Webhooks only.",
                    ),
                ),
                (
                    "email",
                    json!({
                        "description": "E-mail addresses to send to (SMTP).",
                        "anyOf": [
                            { "type": "string", "pattern": "@" },
                            { "type": "array", "items": { "type": "string", "pattern": "@" } },
                        ],
                    }),
                ),
            ],
            &["on"],
        ),
        json!({
            "oneOf": [
                { "required": ["webhook"], "not": { "required": ["email"] } },
                {
                    "required": ["email"],
                    "not": { "anyOf": required_one_of(&["webhook", "format", "secret"]) },
                },
            ],
        }),
    )
}

fn review() -> Value {
    object(
        "The post-implementation review, generated from the record.",
        keys::REVIEW,
        vec![
            (
                "due",
                duration("How long after the deployment the review is due."),
            ),
            ("attendees", scalar_list("Who attends the review.")),
        ],
        &[],
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::source::Source;

    fn def<'a>(schema: &'a Value, name: &str) -> &'a Value {
        if name == "#" {
            return schema;
        }
        schema
            .get("$defs")
            .and_then(|d| d.get(name))
            .unwrap_or_else(|| panic!("no definition `{name}`"))
    }

    fn property_names(section: &Value) -> BTreeSet<String> {
        section
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Where each section of `keys.rs` lives in the schema.
    const SECTIONS: &[(&str, &[&str])] = &[
        ("#", keys::TOP),
        ("release", keys::RELEASE),
        ("objective", keys::OBJECTIVE),
        ("artifact", keys::ARTIFACT),
        ("secret", keys::SECRET),
        ("environment", keys::ENVIRONMENT),
        ("approvals", keys::APPROVALS),
        ("freeze", keys::FREEZE),
        ("policy_rule", keys::POLICY_RULE),
        ("target", keys::TARGET),
        ("step", keys::STEP),
        ("release_dir_object", keys::RELEASE_DIR),
        ("strategy_object", keys::STRATEGY),
        ("rolling", keys::ROLLING),
        ("canary", keys::CANARY),
        ("check", keys::CHECK),
        ("expect", keys::EXPECT),
        ("test", keys::TEST),
        ("http_load", keys::HTTP_LOAD),
        ("security", keys::SECURITY),
        ("risk", keys::RISK),
        ("notification", keys::NOTIFY),
        ("review", keys::REVIEW),
    ];

    #[test]
    fn every_section_has_exactly_the_decoder_keys() {
        let schema = json_schema();
        for (name, keys) in SECTIONS {
            let section = def(&schema, name);
            let expected: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
            assert_eq!(property_names(section), expected, "section `{name}`");
            assert_eq!(
                section.get("additionalProperties"),
                Some(&Value::Bool(false)),
                "section `{name}` must reject unknown keys, as the decoder does"
            );
            // Properties come in the order of keys.rs, which is the order the docs use.
            let order: Vec<&str> = section["properties"]
                .as_object()
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            assert_eq!(order, keys.to_vec(), "order of section `{name}`");
        }
    }

    #[test]
    fn every_object_with_properties_is_a_listed_section() {
        // A new object section must be added to SECTIONS (and so to keys.rs) to be kept in step.
        let schema = json_schema();
        let listed: BTreeSet<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
        let defs = schema["$defs"].as_object().expect("$defs");
        for (name, d) in defs {
            if d.get("properties").is_some() {
                assert!(
                    listed.contains(name.as_str()),
                    "`{name}` is not checked against keys.rs"
                );
            }
        }
    }

    #[test]
    fn schema_is_json_with_its_dialect_and_resolvable_references() {
        let schema = json_schema();
        assert_eq!(schema["$schema"], Value::String(DIALECT.into()));
        let text = serde_json::to_string_pretty(&schema).expect("serialises");
        let back: Value = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, schema);
        let mut refs = Vec::new();
        collect_refs(&schema, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            assert!(schema["$defs"].get(name).is_some(), "dangling $ref {r}");
        }
    }

    #[test]
    fn every_property_is_described() {
        fn walk(v: &Value, path: &str) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::Object(props)) = m.get("properties") {
                        for (k, p) in props {
                            assert!(
                                p.get("description").is_some(),
                                "{path}.{k} has no description"
                            );
                        }
                    }
                    for (k, child) in m {
                        // Conditions only narrow properties described elsewhere.
                        if !matches!(k.as_str(), "if" | "then" | "not") {
                            walk(child, &format!("{path}/{k}"));
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| walk(i, path)),
                _ => {}
            }
        }
        walk(&json_schema(), "#");
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|c| collect_refs(c, out));
            }
            Value::Array(items) => items.iter().for_each(|c| collect_refs(c, out)),
            _ => {}
        }
    }

    // ----- a small validator for the keywords this schema uses ----------------------------------

    fn valid(schema: &Value, root: &Value, v: &Value) -> bool {
        let Some(s) = schema.as_object() else {
            return schema.as_bool().unwrap_or(true);
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/$defs/");
            if !valid(&root["$defs"][name], root, v) {
                return false;
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let ok = types.iter().any(|t| match *t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                "number" => v.is_number(),
                "integer" => v.is_i64() || v.is_u64(),
                _ => false,
            });
            if !ok {
                return false;
            }
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.contains(v)
        {
            return false;
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            return false;
        }
        if let Some(n) = v.as_f64() {
            if s.get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
            {
                return false;
            }
            if s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
            {
                return false;
            }
        }
        // Of `pattern`, only a literal prefix (`^SLIPWAY_`) is checked; other patterns are taken as
        // matching, and are checked with a full validator when the schema changes.
        if let (Some(text), Some(prefix)) = (
            v.as_str(),
            s.get("pattern")
                .and_then(Value::as_str)
                .and_then(|p| p.strip_prefix('^')),
        ) && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !text.starts_with(prefix)
        {
            return false;
        }
        if let Some(text) = v.as_str()
            && s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| (text.chars().count() as u64) < m)
        {
            return false;
        }
        if let Some(items) = v.as_array() {
            if s.get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| (items.len() as u64) < m)
            {
                return false;
            }
            if let Some(item_schema) = s.get("items")
                && !items.iter().all(|i| valid(item_schema, root, i))
            {
                return false;
            }
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(p) => {
                        if !valid(p, root, val) {
                            return false;
                        }
                    }
                    None => {
                        if let Some(extra) = s.get("additionalProperties")
                            && !valid(extra, root, val)
                        {
                            return false;
                        }
                    }
                }
                if let Some(names) = s.get("propertyNames")
                    && !valid(names, root, &Value::String(k.clone()))
                {
                    return false;
                }
            }
            if let Some(Value::Array(req)) = s.get("required")
                && !req
                    .iter()
                    .filter_map(Value::as_str)
                    .all(|k| obj.contains_key(k))
            {
                return false;
            }
            let len = obj.len() as u64;
            if s.get("minProperties")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
                || s.get("maxProperties")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| len > m)
            {
                return false;
            }
            if let Some(Value::Object(deps)) = s.get("dependentRequired") {
                for (k, needed) in deps {
                    if obj.contains_key(k)
                        && !needed
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .all(|n| obj.contains_key(n))
                    {
                        return false;
                    }
                }
            }
        }
        if let Some(Value::Array(all)) = s.get("anyOf")
            && !all.iter().any(|o| valid(o, root, v))
        {
            return false;
        }
        if let Some(Value::Array(all)) = s.get("oneOf")
            && all.iter().filter(|o| valid(o, root, v)).count() != 1
        {
            return false;
        }
        if let Some(n) = s.get("not")
            && valid(n, root, v)
        {
            return false;
        }
        if let Some(cond) = s.get("if")
            && valid(cond, root, v)
            && let Some(then) = s.get("then")
            && !valid(then, root, v)
        {
            return false;
        }
        true
    }

    fn yaml_to_json(text: &str) -> Value {
        crate::yaml::load(&Source::new("t.yaml", text))
            .expect("YAML loads")
            .to_json()
    }

    const STARTER: &str = include_str!("../../../cli/src/starter.slipway.yaml");

    #[test]
    fn starter_plan_is_valid_without_warnings() {
        let loaded = crate::plan::load("starter.slipway.yaml", STARTER.as_bytes());
        match loaded {
            Ok(plan) => assert!(plan.warnings.is_empty(), "warnings: {:?}", plan.warnings),
            Err(e) => panic!("starter plan has errors: {:#?}", e.diagnostics),
        }
    }

    #[test]
    fn starter_plan_matches_the_schema() {
        let schema = json_schema();
        assert!(valid(&schema, &schema, &yaml_to_json(STARTER)));
    }

    #[test]
    fn schema_refuses_what_the_decoder_refuses() {
        let schema = json_schema();
        let base = "slipway: 1\nrelease: { name: app, version: 1.0.0 }\n\
                    environments:\n  dev:\n    targets:\n      web-1: { host: local, labels: [web] }\n";
        let ok = |steps: &str| {
            let doc = format!("{base}steps:\n{steps}");
            let by_schema = valid(&schema, &schema, &yaml_to_json(&doc));
            let by_decoder = crate::plan::load("t.yaml", doc.as_bytes()).is_ok();
            assert_eq!(
                by_schema, by_decoder,
                "schema and decoder disagree on:\n{doc}"
            );
            by_schema
        };
        assert!(ok("  - { id: a, run: [sleep, 1] }\n"));
        assert!(ok("  - { id: a, run: echo hi, strategy: rolling }\n"));
        assert!(ok(
            "  - { id: a, release_dir: { path: app, keep: 3 }, strategy: { canary: { stages: [50%, 100] } } }\n"
        ));
        assert!(ok(
            "  - { id: a, manual: Check the dashboard, owner: ops }\n"
        ));
        assert!(!ok("  - { id: a, run: [sleep, 1], retry: 2 }\n"));
        assert!(!ok("  - { id: a }\n"));
        assert!(!ok("  - { id: a, manual: Check the dashboard }\n"));
        assert!(!ok("  - { id: a, manual: Check, owner: ops, run: [x] }\n"));
        assert!(!ok("  - { id: a, run: [x], activate: [y] }\n"));
        assert!(!ok(
            "  - { id: a, run: [x], strategy: { rolling: {}, canary: { stages: [100%] } } }\n"
        ));
        assert!(!ok("  - { id: a, run: [x], strategy: canary }\n"));
        assert!(!ok(
            "  - { id: a, run: [x], release_dir: { path: app, keep: 1 } }\n"
        ));
        assert!(!ok(
            "  - { id: a, run: [x], validate: [{ tcp: 'x:1', expect: { status: 200 } }] }\n"
        ));
        assert!(!ok(
            "  - { id: a, run: [x], validate: [{ interval: 1s }] }\n"
        ));
        assert!(!ok("  - { id: a, run: [] }\n"));
    }
}
