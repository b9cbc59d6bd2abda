//! What every command that touches the record shares: where the data lives, the store, the engine,
//! and the recovery of deployments whose process died, which runs before anything else.

use std::path::PathBuf;
use std::sync::Arc;

use slipway_engine::host::ssh::StandardHosts;
use slipway_engine::{Engine, EngineConfig, EngineError};
use slipway_store::SqlStore;

use crate::exit::{FAILED, INVALID, NOT_FOUND_CODE, REFUSED, UNREADABLE, fail};
use crate::output::Format;
use crate::progress::Printer;

pub struct Global {
    pub format: Format,
    pub database: Option<String>,
    pub home: Option<PathBuf>,
    pub actor: Option<String>,
}

impl Global {
    pub fn home(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("slipway")
        })
    }

    pub fn database(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| self.home().join("slipway.db").display().to_string())
    }

    /// The database as it may be shown: a URL's password is masked.
    pub fn database_shown(&self) -> String {
        let db = self.database();
        match (db.find("://"), db.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let credentials = &db[scheme + 3..at];
                match credentials.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &db[..scheme + 3], &db[at..]),
                    None => db,
                }
            }
            _ => db,
        }
    }

    pub fn actor(&self) -> String {
        self.actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|a| !a.trim().is_empty())
            .or_else(|| {
                // The account running the command, when the environment does not say.
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .unwrap_or_else(|| "unknown".into())
    }
}

pub struct Context {
    pub engine: Engine<SqlStore>,
    pub store: Arc<SqlStore>,
}

impl Context {
    /// Opens the record and finishes any deployment left by a dead process.
    pub async fn open(global: &Global) -> anyhow::Result<Context> {
        let location = global.database();
        let store = Arc::new(SqlStore::open(&location).await.map_err(|e| {
            fail(
                UNREADABLE,
                format!("cannot open the record at {}: {e}", global.database_shown()),
            )
        })?);
        let home = global.home();
        let mut config = EngineConfig::new(&home);
        if let Some(ms) = std::env::var("SLIPWAY_LEASE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.lease = std::time::Duration::from_millis(ms);
        }
        let tofu =
            std::env::var("SLIPWAY_SSH_TRUST_NEW_HOSTS").is_ok_and(|v| v == "1" || v == "true");
        let hosts = Arc::new(StandardHosts::new(&home, tofu));
        let engine = Engine::new(store.clone(), config, hosts);
        let ctx = Context { engine, store };
        let printer = Printer::new(global.format == Format::Human, true);
        for d in ctx.engine.recover(&printer).await.map_err(engine_error)? {
            eprintln!(
                "recovered deployment #{} (interrupted): now {}",
                d.id, d.state
            );
        }
        Ok(ctx)
    }
}

/// Maps coordination refusals to exit codes.
pub fn coordination_error(e: slipway_engine::CoordinationError) -> anyhow::Error {
    use slipway_engine::CoordinationError as C;
    match e {
        C::Engine(e) => engine_error(e),
        C::Invalid(m) => fail(INVALID, m),
        other => fail(REFUSED, format!("{other} [{}]", other.code())),
    }
}

impl Context {
    /// The acting user as recorded (with their roles), or one with no roles.
    pub async fn user(&self, global: &Global) -> anyhow::Result<slipway_store::User> {
        Ok(slipway_engine::identity::user_or_nobody(self.store.as_ref(), &global.actor()).await?)
    }
}

/// Maps engine errors to exit codes.
pub fn engine_error(e: EngineError) -> anyhow::Error {
    let code = match &e {
        EngineError::Busy { .. } | EngineError::Refused(_) => REFUSED,
        EngineError::NotFound(_) => NOT_FOUND_CODE,
        EngineError::BadSnapshot(..) => INVALID,
        EngineError::Store(_) => FAILED,
    };
    fail(code, e.to_string())
}

pub fn block_on(f: impl std::future::Future<Output = anyhow::Result<u8>>) -> anyhow::Result<u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(FAILED, format!("cannot start the runtime: {e}")))?
        .block_on(f)
}
