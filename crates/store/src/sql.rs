//! [`Store`] on SQL through sqlx's `Any` driver. SQL is written once, with `$n` placeholders that
//! both SQLite and PostgreSQL accept; migrations are kept per backend and only ever appended to.
//! Where the dialects differ (connection set-up, how a write transaction begins, the migration
//! bookkeeping table) the code branches on [`Backend`].

use std::path::Path;
use std::time::Duration;

use slipway_core::lifecycle::{DeploymentKind, DeploymentState};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};

use crate::chain::{GENESIS_HASH, event_hash};
use crate::records::*;
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Migrations per backend, in order. Never edit one that has shipped; add the next.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "record",
        include_str!("../migrations/sqlite/0001_record.sql"),
    ),
    (
        2,
        "coordination",
        include_str!("../migrations/sqlite/0002_coordination.sql"),
    ),
];

/// The same migrations for PostgreSQL: same versions, same tables, BIGINT for every integer.
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "record",
        include_str!("../migrations/postgres/0001_record.sql"),
    ),
    (
        2,
        "coordination",
        include_str!("../migrations/postgres/0002_coordination.sql"),
    ),
];

#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    location: String,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("location", &self.location)
            .finish()
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

impl SqlStore {
    /// Opens the database at `location`: a file path or `sqlite://PATH` (created if needed), or a
    /// `postgres://` / `postgresql://` URL (the database must exist; its tables are created).
    pub async fn open(location: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let (url, backend, shown) =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                (
                    location.to_string(),
                    Backend::Postgres,
                    without_password(location),
                )
            } else if let Some(path) = location.strip_prefix("sqlite://") {
                (
                    format!("sqlite://{path}?mode=rwc"),
                    Backend::Sqlite,
                    path.to_string(),
                )
            } else if location.contains("://") {
                return Err(StoreError::UnsupportedUrl(location.to_string()));
            } else {
                let path = Path::new(location);
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| corrupt(format!("cannot create {}: {e}", parent.display())))?;
                }
                (
                    format!("sqlite://{location}?mode=rwc"),
                    Backend::Sqlite,
                    location.to_string(),
                )
            };
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; the busy timeout makes a
                        // second process wait for the write lock instead of failing.
                        conn.execute("PRAGMA busy_timeout = 15000").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = SqlStore {
            pool,
            backend,
            location: shown,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    async fn migrate(&self) -> Result<()> {
        let (migrations, bookkeeping) = match self.backend {
            Backend::Sqlite => (
                SQLITE_MIGRATIONS,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            ),
            Backend::Postgres => (
                POSTGRES_MIGRATIONS,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            ),
        };
        let mut conn = self.pool.acquire().await?;
        let mut tx = begin_write(&mut conn, self.backend).await?;
        if self.backend == Backend::Postgres {
            // `BEGIN IMMEDIATE` makes SQLite migrate one process at a time; PostgreSQL needs a lock
            // of its own (held until commit), since the tables it would lock may not exist yet.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(bookkeeping).execute(&mut *tx).await?;
        let applied: Vec<i64> =
            sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>("version"))
                .collect::<std::result::Result<_, _>>()?;
        if let Some(&newest) = applied.last()
            && newest > migrations.last().map_or(0, |m| m.0)
        {
            return Err(corrupt(format!(
                "the database is at schema version {newest}, newer than this Slipway understands; upgrade Slipway"
            )));
        }
        for &(version, name, sql) in migrations {
            if applied.contains(&version) {
                continue;
            }
            // Statements are split on `;` at line ends; SQLite triggers keep theirs on one line
            // and PostgreSQL function bodies are dollar-quoted.
            for statement in split_statements(sql) {
                tx.execute(sqlx::AssertSqlSafe(statement)).await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write(&self) -> Result<(sqlx::pool::PoolConnection<Any>, Backend)> {
        Ok((self.pool.acquire().await?, self.backend))
    }
}

/// The key of the PostgreSQL advisory lock that serialises migrations ("slipway" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_6c69_7077_6179;

/// A connection URL fit to show: the password, if any, left out.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Process output may hold NUL characters, which PostgreSQL text cannot; both backends store them
/// as U+FFFD, the mark `from_utf8_lossy` already leaves for bytes that were not text.
fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Splits a migration into statements: a statement ends at a line ending in `;`, except a line
/// opening an SQLite trigger body (`BEGIN …` without `END;`) and any line inside a PostgreSQL
/// dollar-quoted string (`$$ … $$`, `$tag$ … $tag$`).
fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut dollar_quote: Option<String> = None;
    for line in sql.lines() {
        let trimmed = line.trim();
        if dollar_quote.is_none() && (trimmed.starts_with("--") || trimmed.is_empty()) {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        dollar_quote = dollar_quote_after(line, dollar_quote);
        if dollar_quote.is_none()
            && trimmed.ends_with(';')
            && (!trimmed.starts_with("BEGIN") || trimmed.ends_with("END;"))
        {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The dollar-quoted string still open after `line`, given the one open before it (its tag,
/// `$$` or `$name$`). Single-quoted strings and `--` comments outside dollar quotes are skipped, and
/// `$1` placeholders are not tags.
fn dollar_quote_after(line: &str, mut open: Option<String>) -> Option<String> {
    let mut rest = line;
    loop {
        if let Some(tag) = &open {
            match rest.find(tag.as_str()) {
                Some(at) => {
                    rest = &rest[at + tag.len()..];
                    open = None;
                }
                None => return open,
            }
        }
        let at = rest.find(['$', '\'', '-'])?;
        let after = &rest[at + 1..];
        match rest.as_bytes()[at] {
            b'\'' => match after.find('\'') {
                Some(end) => rest = &after[end + 1..],
                None => return None,
            },
            b'-' if after.starts_with('-') => return None,
            b'$' => {
                let name_len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                let name = &after[..name_len];
                let is_tag = after[name_len..].starts_with('$')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if is_tag {
                    open = Some(format!("${name}$"));
                    rest = &after[name_len + 1..];
                } else {
                    rest = after;
                }
            }
            _ => rest = after,
        }
    }
}

/// Starts a write transaction. SQLite: `BEGIN IMMEDIATE` holds the write lock from the first
/// statement, so concurrent writers queue on the busy timeout instead of failing on a lock
/// upgrade. PostgreSQL: a plain `BEGIN` (read committed); writers serialise on the rows they
/// change, and appends on the `chain_head` row, which `append` updates (and so locks until commit)
/// before it writes any event.
async fn begin_write(conn: &mut AnyConnection, backend: Backend) -> Result<Transaction<'_, Any>> {
    match backend {
        Backend::Sqlite => Ok(Connection::begin_with(conn, "BEGIN IMMEDIATE").await?),
        Backend::Postgres => Ok(Connection::begin(conn).await?),
    }
}

/// Appends events to the chain inside `tx`.
async fn append(tx: &mut AnyConnection, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let head = sqlx::query("UPDATE chain_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(n)
        .fetch_one(&mut *tx)
        .await?;
    let last: i64 = head.try_get("seq")?;
    let mut prev: String = head.try_get("hash")?;
    for (seq, e) in (last - n + 1..).zip(events) {
        let data = e.data.to_string();
        let hash = event_hash(&prev, seq, e.deployment_id, e.at, &e.kind, &e.actor, &data);
        sqlx::query(
            "INSERT INTO events (seq, deployment_id, at, kind, actor, data, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(e.deployment_id)
        .bind(e.at)
        .bind(&e.kind)
        .bind(&e.actor)
        .bind(&data)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        prev = hash;
    }
    sqlx::query("UPDATE chain_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Ends a compare-and-set write: commits it with its events if it changed a row, else undoes it.
async fn commit_if_changed(
    mut tx: Transaction<'_, Any>,
    changed: u64,
    events: &[NewEvent],
) -> Result<bool> {
    if changed == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    append(&mut tx, events).await?;
    tx.commit().await?;
    Ok(true)
}

fn json_column(row: &AnyRow, column: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| corrupt(format!("{column} is not JSON: {e}")))
    })
    .transpose()
}

const DEPLOYMENT_COLUMNS: &str = "id, kind, environment, plan_name, plan_file, plan_hash, plan_source, version, requester, state, created_at, started_at, finished_at, scheduled_for, rollback_of, summary, cancel_requested, params, break_glass, risk";

fn deployment_from_row(row: &AnyRow) -> Result<Deployment> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(Deployment {
        id: row.try_get("id")?,
        kind: DeploymentKind::parse(&kind)
            .ok_or_else(|| corrupt(format!("unknown deployment kind `{kind}`")))?,
        environment: row.try_get("environment")?,
        plan_name: row.try_get("plan_name")?,
        plan_file: row.try_get("plan_file")?,
        plan_hash: row.try_get("plan_hash")?,
        plan_source: row.try_get("plan_source")?,
        version: row.try_get("version")?,
        requester: row.try_get("requester")?,
        state: DeploymentState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown deployment state `{state}`")))?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        scheduled_for: row.try_get("scheduled_for")?,
        rollback_of: row.try_get("rollback_of")?,
        summary: json_column(row, "summary")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        params: json_column(row, "params")?.unwrap_or(serde_json::Value::Null),
        break_glass: json_column(row, "break_glass")?,
        risk: json_column(row, "risk")?,
    })
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    let roles: String = row.try_get("roles")?;
    Ok(User {
        name: row.try_get("name")?,
        roles: serde_json::from_str(&roles)
            .map_err(|e| corrupt(format!("roles are not JSON: {e}")))?,
        created_at: row.try_get("created_at")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

fn token_from_row(row: &AnyRow) -> Result<Token> {
    Ok(Token {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

const TOKEN_COLUMNS: &str = "id, user_name, name, created_at, expires_at, revoked_at, last_used_at";

fn step_run_from_row(row: &AnyRow) -> Result<StepRun> {
    Ok(StepRun {
        id: row.try_get("id")?,
        deployment_id: row.try_get("deployment_id")?,
        step_id: row.try_get("step_id")?,
        target: row.try_get("target")?,
        phase: row.try_get("phase")?,
        attempt: i32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(i32::MAX),
        state: row.try_get("state")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        exit_code: row
            .try_get::<Option<i64>, _>("exit_code")?
            .map(|c| i32::try_from(c).unwrap_or(-1)),
        output: row.try_get("output")?,
        message: row.try_get("message")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<Event> {
    Ok(Event {
        seq: row.try_get("seq")?,
        deployment_id: row.try_get("deployment_id")?,
        at: row.try_get("at")?,
        kind: row.try_get("kind")?,
        actor: row.try_get("actor")?,
        data: json_column(row, "data")?.unwrap_or(serde_json::Value::Null),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn lock_from_row(row: &AnyRow) -> Result<Lock> {
    Ok(Lock {
        environment: row.try_get("environment")?,
        holder: row.try_get("holder")?,
        deployment_id: row.try_get("deployment_id")?,
        pid: row.try_get("pid")?,
        host: row.try_get("host")?,
        acquired_at: row.try_get("acquired_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn release_from_row(row: &AnyRow) -> Result<TargetRelease> {
    let kept: String = row.try_get("kept")?;
    Ok(TargetRelease {
        environment: row.try_get("environment")?,
        target: row.try_get("target")?,
        current: row.try_get("current_version")?,
        previous: row.try_get("previous_version")?,
        kept: serde_json::from_str(&kept)
            .map_err(|e| corrupt(format!("kept releases are not JSON: {e}")))?,
        deployment_id: row.try_get("deployment_id")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store for SqlStore {
    async fn create_deployment(&self, new: NewDeployment, event: NewEvent) -> Result<Deployment> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let row = sqlx::query(
            "INSERT INTO deployments (kind, environment, plan_name, plan_file, plan_hash, plan_source, version, requester, state, created_at, scheduled_for, rollback_of, params, risk) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(new.kind.as_str())
        .bind(&new.environment)
        .bind(&new.plan_name)
        .bind(&new.plan_file)
        .bind(&new.plan_hash)
        .bind(&new.plan_source)
        .bind(&new.version)
        .bind(&new.requester)
        .bind(new.state.as_str())
        .bind(new.created_at)
        .bind(new.scheduled_for)
        .bind(new.rollback_of)
        .bind(new.params.to_string())
        .bind(new.risk.map(|r| r.to_string()))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        let mut event = event;
        event.deployment_id = Some(id);
        append(&mut tx, &[event]).await?;
        tx.commit().await?;
        self.deployment(id)
            .await?
            .ok_or(StoreError::NoSuchDeployment(id))
    }

    async fn deployment(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(deployment_from_row).transpose()
    }

    async fn deployments(&self, filter: DeploymentFilter) -> Result<Vec<Deployment>> {
        let columns = if filter.without_plan {
            DEPLOYMENT_COLUMNS.replace("plan_source", "'' AS plan_source")
        } else {
            DEPLOYMENT_COLUMNS.to_string()
        };
        let mut sql = format!("SELECT {columns} FROM deployments WHERE 1 = 1");
        let mut n = 0;
        if filter.environment.is_some() {
            n += 1;
            sql.push_str(&format!(" AND environment = ${n}"));
        }
        if !filter.states.is_empty() {
            // States are our own fixed words, so they can be inlined safely.
            let list: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND state IN ({})", list.join(", ")));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(env) = &filter.environment {
            q = q.bind(env.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(deployment_from_row).collect()
    }

    async fn transition(
        &self,
        id: DeploymentId,
        from: &[DeploymentState],
        to: DeploymentState,
        patch: StatePatch,
        event: NewEvent,
    ) -> Result<bool> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let sql = format!(
            "UPDATE deployments SET state = $1, started_at = COALESCE($2, started_at), finished_at = COALESCE($3, finished_at), summary = COALESCE($4, summary), \
             scheduled_for = COALESCE($5, scheduled_for) WHERE id = $6 AND state IN ({})",
            list.join(", ")
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to.as_str())
            .bind(patch.started_at)
            .bind(patch.finished_at)
            .bind(patch.summary.map(|s| s.to_string()))
            .bind(patch.scheduled_for)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let mut event = event;
        event.deployment_id = Some(id);
        commit_if_changed(tx, done.rows_affected(), &[event]).await
    }

    async fn request_cancel(&self, id: DeploymentId, event: NewEvent) -> Result<bool> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let finals: Vec<String> = DeploymentState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = format!(
            "UPDATE deployments SET cancel_requested = 1 WHERE id = $1 AND cancel_requested = 0 AND state NOT IN ({})",
            finals.join(", ")
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        commit_if_changed(tx, done.rows_affected(), &[event]).await
    }

    async fn start_step_runs(
        &self,
        runs: Vec<NewStepRun>,
        event: Option<NewEvent>,
    ) -> Result<Vec<i64>> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let mut ids = Vec::with_capacity(runs.len());
        for r in &runs {
            let row = sqlx::query(
                "INSERT INTO step_runs (deployment_id, step_id, target, phase, attempt, state, started_at) VALUES ($1, $2, $3, $4, $5, 'started', $6) RETURNING id",
            )
            .bind(r.deployment_id)
            .bind(&r.step_id)
            .bind(&r.target)
            .bind(&r.phase)
            .bind(i64::from(r.attempt))
            .bind(r.started_at)
            .fetch_one(&mut *tx)
            .await?;
            ids.push(row.try_get("id")?);
        }
        if let Some(e) = event {
            append(&mut tx, &[e]).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn finish_step_runs(
        &self,
        results: Vec<StepRunResult>,
        event: Option<NewEvent>,
    ) -> Result<()> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        for r in &results {
            sqlx::query("UPDATE step_runs SET state = $1, finished_at = $2, exit_code = $3, output = $4, message = $5 WHERE id = $6")
                .bind(&r.state)
                .bind(r.finished_at)
                .bind(r.exit_code.map(i64::from))
                .bind(storable_text(&r.output).into_owned())
                .bind(r.message.as_deref().map(|m| storable_text(m).into_owned()))
                .bind(r.id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(e) = event {
            append(&mut tx, &[e]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn step_runs(&self, deployment: DeploymentId) -> Result<Vec<StepRun>> {
        let rows = sqlx::query(
            "SELECT id, deployment_id, step_id, target, phase, attempt, state, started_at, finished_at, exit_code, output, message FROM step_runs WHERE deployment_id = $1 ORDER BY id",
        )
        .bind(deployment)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(step_run_from_row).collect()
    }

    async fn append_events(&self, events: Vec<NewEvent>) -> Result<()> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        append(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<Event>> {
        let mut sql = String::from(
            "SELECT seq, deployment_id, at, kind, actor, data, prev_hash, hash FROM events WHERE seq > $1",
        );
        if filter.deployment_id.is_some() {
            sql.push_str(" AND deployment_id = $2");
        }
        sql.push_str(" ORDER BY seq");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(filter.after_seq.unwrap_or(0));
        if let Some(d) = filter.deployment_id {
            q = q.bind(d);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn verify_chain(&self) -> Result<ChainReport> {
        let mut expected_prev = GENESIS_HASH.to_string();
        let mut expected_seq = 1i64;
        let mut count = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT seq, deployment_id, at, kind, actor, data, prev_hash, hash FROM events WHERE seq >= $1 ORDER BY seq LIMIT 5000",
            )
            .bind(expected_seq)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                let deployment_id: Option<i64> = row.try_get("deployment_id")?;
                let at: i64 = row.try_get("at")?;
                let kind: String = row.try_get("kind")?;
                let actor: String = row.try_get("actor")?;
                let data: String = row.try_get("data")?;
                let prev: String = row.try_get("prev_hash")?;
                let hash: String = row.try_get("hash")?;
                let bad = |why: String| {
                    Ok(ChainReport {
                        events: count,
                        first_bad: Some((seq, why)),
                    })
                };
                if seq != expected_seq {
                    return bad(format!(
                        "event {expected_seq} is missing (found {seq} next)"
                    ));
                }
                if prev != expected_prev {
                    return bad("its link to the previous event does not match".into());
                }
                if event_hash(&prev, seq, deployment_id, at, &kind, &actor, &data) != hash {
                    return bad("its content does not match its hash".into());
                }
                expected_prev = hash;
                expected_seq += 1;
                count += 1;
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        if head_seq != count || head_hash != expected_prev {
            return Ok(ChainReport {
                events: count,
                first_bad: Some((
                    count + 1,
                    format!("the chain ends at event {count}, but {head_seq} were written"),
                )),
            });
        }
        Ok(ChainReport {
            events: count,
            first_bad: None,
        })
    }

    async fn inventory(&self, environment: Option<&str>) -> Result<Vec<TargetRelease>> {
        let base = "SELECT environment, target, current_version, previous_version, kept, deployment_id, updated_at FROM inventory";
        let rows = match environment {
            Some(env) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{base} WHERE environment = $1 ORDER BY environment, target"
                )))
                .bind(env.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{base} ORDER BY environment, target"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(release_from_row).collect()
    }

    async fn set_inventory(
        &self,
        entries: Vec<TargetRelease>,
        event: Option<NewEvent>,
    ) -> Result<()> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        for e in &entries {
            let kept = serde_json::to_string(&e.kept).map_err(|err| corrupt(err.to_string()))?;
            sqlx::query(
                "INSERT INTO inventory (environment, target, current_version, previous_version, kept, deployment_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (environment, target) DO UPDATE SET current_version = excluded.current_version, previous_version = excluded.previous_version, \
                 kept = excluded.kept, deployment_id = excluded.deployment_id, updated_at = excluded.updated_at",
            )
            .bind(&e.environment)
            .bind(&e.target)
            .bind(&e.current)
            .bind(&e.previous)
            .bind(kept)
            .bind(e.deployment_id)
            .bind(e.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(ev) = event {
            append(&mut tx, &[ev]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn try_lock(&self, lock: Lock, now: i64) -> Result<LockOutcome> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        // One statement decides, so that two PostgreSQL transactions (which do not queue behind
        // each other as SQLite's do) cannot both see the lock free and both take it: the upsert
        // only replaces a lock that is ours or has run out, and locks the row either way.
        let done = sqlx::query(
            "INSERT INTO locks (environment, holder, deployment_id, pid, host, acquired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (environment) DO UPDATE SET holder = excluded.holder, deployment_id = excluded.deployment_id, pid = excluded.pid, \
             host = excluded.host, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
             WHERE locks.holder = excluded.holder OR locks.expires_at <= $8",
        )
        .bind(&lock.environment)
        .bind(&lock.holder)
        .bind(lock.deployment_id)
        .bind(lock.pid)
        .bind(&lock.host)
        .bind(lock.acquired_at)
        .bind(lock.expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(LockOutcome::Acquired);
        }
        let row = sqlx::query(
            "SELECT environment, holder, deployment_id, pid, host, acquired_at, expires_at FROM locks WHERE environment = $1",
        )
        .bind(&lock.environment)
        .fetch_one(&mut *tx)
        .await?;
        let held = lock_from_row(&row)?;
        tx.rollback().await?;
        Ok(LockOutcome::Held(held))
    }

    async fn take_over_lock(&self, old_holder: &str, lock: Lock) -> Result<bool> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let done = sqlx::query(
            "UPDATE locks SET holder = $1, deployment_id = $2, pid = $3, host = $4, acquired_at = $5, expires_at = $6 WHERE environment = $7 AND holder = $8",
        )
        .bind(&lock.holder)
        .bind(lock.deployment_id)
        .bind(lock.pid)
        .bind(&lock.host)
        .bind(lock.acquired_at)
        .bind(lock.expires_at)
        .bind(&lock.environment)
        .bind(old_holder)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew_lock(&self, environment: &str, holder: &str, expires_at: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE locks SET expires_at = $1 WHERE environment = $2 AND holder = $3")
                .bind(expires_at)
                .bind(environment.to_string())
                .bind(holder.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lock(&self, environment: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM locks WHERE environment = $1 AND holder = $2")
            .bind(environment.to_string())
            .bind(holder.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn locks(&self) -> Result<Vec<Lock>> {
        let rows = sqlx::query(
            "SELECT environment, holder, deployment_id, pid, host, acquired_at, expires_at FROM locks ORDER BY environment",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lock_from_row).collect()
    }

    async fn confirm_step(&self, confirmation: Confirmation, event: NewEvent) -> Result<bool> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let done = sqlx::query(
            "INSERT INTO confirmations (deployment_id, step_id, actor, at) VALUES ($1, $2, $3, $4) ON CONFLICT (deployment_id, step_id) DO NOTHING",
        )
        .bind(confirmation.deployment_id)
        .bind(&confirmation.step_id)
        .bind(&confirmation.actor)
        .bind(confirmation.at)
        .execute(&mut *tx)
        .await?;
        commit_if_changed(tx, done.rows_affected(), &[event]).await
    }

    async fn confirmations(&self, deployment: DeploymentId) -> Result<Vec<Confirmation>> {
        let rows = sqlx::query("SELECT deployment_id, step_id, actor, at FROM confirmations WHERE deployment_id = $1 ORDER BY at")
            .bind(deployment)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Confirmation {
                    deployment_id: r.try_get("deployment_id")?,
                    step_id: r.try_get("step_id")?,
                    actor: r.try_get("actor")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    async fn upsert_user(&self, user: User, event: NewEvent) -> Result<()> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let roles = serde_json::to_string(&user.roles).map_err(|e| corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO users (name, roles, created_at, disabled) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET roles = excluded.roles, disabled = excluded.disabled",
        )
        .bind(&user.name)
        .bind(roles)
        .bind(user.created_at)
        .bind(i64::from(user.disabled))
        .execute(&mut *tx)
        .await?;
        append(&mut tx, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<User>> {
        let row =
            sqlx::query("SELECT name, roles, created_at, disabled FROM users WHERE name = $1")
                .bind(name.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT name, roles, created_at, disabled FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn create_token(&self, token: NewToken, event: NewEvent) -> Result<()> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        sqlx::query("INSERT INTO tokens (id, user_name, name, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&token.id)
            .bind(&token.user)
            .bind(&token.name)
            .bind(&token.hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str, now: i64) -> Result<Option<(Token, User)>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash.to_string())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        match self.user(&token.user).await? {
            Some(user) if !user.disabled => Ok(Some((token, user))),
            _ => Ok(None),
        }
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<Token>> {
        let rows =
            match user {
                Some(u) => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_name = $1 ORDER BY created_at"
                )))
                .bind(u.to_string())
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at"
                    )))
                    .fetch_all(&self.pool)
                    .await?
                }
            };
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: i64, event: NewEvent) -> Result<bool> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        commit_if_changed(tx, done.rows_affected(), &[event]).await
    }

    async fn touch_token(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_decision(
        &self,
        deployment: DeploymentId,
        decision: Decision,
        event: NewEvent,
    ) -> Result<()> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        sqlx::query("INSERT INTO decisions (deployment_id, approver, approve, reason, plan_hash, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(deployment)
            .bind(&decision.approver)
            .bind(i64::from(decision.approve))
            .bind(&decision.reason)
            .bind(&decision.plan_hash)
            .bind(decision.at)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn decisions(&self, deployment: DeploymentId) -> Result<Vec<Decision>> {
        let rows = sqlx::query("SELECT approver, approve, reason, plan_hash, at FROM decisions WHERE deployment_id = $1 ORDER BY id")
            .bind(deployment)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Decision {
                    approver: r.try_get("approver")?,
                    approve: r.try_get::<i64, _>("approve")? != 0,
                    reason: r.try_get("reason")?,
                    plan_hash: r.try_get("plan_hash")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    async fn amend_plan(
        &self,
        deployment: DeploymentId,
        from: &[DeploymentState],
        plan_source: String,
        plan_hash: String,
        risk: Option<serde_json::Value>,
        event: NewEvent,
    ) -> Result<bool> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let sql = format!(
            "UPDATE deployments SET plan_source = $1, plan_hash = $2, risk = COALESCE($3, risk) WHERE id = $4 AND state IN ({})",
            list.join(", ")
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(plan_source)
            .bind(plan_hash)
            .bind(risk.map(|r| r.to_string()))
            .bind(deployment)
            .execute(&mut *tx)
            .await?;
        commit_if_changed(tx, done.rows_affected(), &[event]).await
    }

    async fn set_break_glass(
        &self,
        deployment: DeploymentId,
        record: serde_json::Value,
        event: NewEvent,
    ) -> Result<bool> {
        let (mut conn, backend) = self.write().await?;
        let mut tx = begin_write(&mut conn, backend).await?;
        let done = sqlx::query("UPDATE deployments SET break_glass = $1 WHERE id = $2")
            .bind(record.to_string())
            .bind(deployment)
            .execute(&mut *tx)
            .await?;
        commit_if_changed(tx, done.rows_affected(), &[event]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_migrations_split_with_triggers_whole() {
        let statements = split_statements(SQLITE_MIGRATIONS[0].2);
        let triggers: Vec<&String> = statements
            .iter()
            .filter(|s| s.starts_with("CREATE TRIGGER"))
            .collect();
        assert_eq!(triggers.len(), 2);
        assert!(triggers.iter().all(|t| t.trim_end().ends_with("END;")));
        assert!(statements.iter().all(|s| s.trim_end().ends_with(';')));
        assert_eq!(split_statements(SQLITE_MIGRATIONS[1].2).len(), 6);
    }

    #[test]
    fn postgres_function_bodies_stay_whole() {
        let statements = split_statements(POSTGRES_MIGRATIONS[0].2);
        let function: Vec<&String> = statements
            .iter()
            .filter(|s| s.starts_with("CREATE FUNCTION"))
            .collect();
        assert_eq!(function.len(), 1);
        assert!(function[0].contains("RAISE EXCEPTION"));
        assert!(function[0].trim_end().ends_with("$$;"));
        assert_eq!(
            statements
                .iter()
                .filter(|s| s.starts_with("CREATE TRIGGER"))
                .count(),
            3
        );
        // Every backend has the same migrations, in the same order.
        fn versions(m: &[(i64, &'static str, &str)]) -> Vec<(i64, &'static str)> {
            m.iter().map(|m| (m.0, m.1)).collect()
        }
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
    }

    #[test]
    fn dollar_quotes_are_tracked_across_lines() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$\nSELECT 1;\nSELECT '$$';\n$body$;\nSELECT $1, '$x$';\nSELECT 2; -- $$\n";
        assert_eq!(
            split_statements(sql),
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$\nSELECT 1;\nSELECT '$$';\n$body$;\n",
                "SELECT $1, '$x$';\n",
                "SELECT 2; -- $$\n",
            ]
        );
    }

    #[test]
    fn shown_urls_leave_out_the_password() {
        assert_eq!(
            without_password("postgres://slipway:secret@db:5432/slipway?sslmode=require"),
            "postgres://slipway@db:5432/slipway?sslmode=require"
        );
        assert_eq!(
            without_password("postgresql://db/slipway"),
            "postgresql://db/slipway"
        );
    }

    #[test]
    fn nul_characters_become_replacement_marks() {
        assert_eq!(storable_text("a\0b"), "a\u{fffd}b");
        assert!(matches!(
            storable_text("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
