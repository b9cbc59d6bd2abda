//! Users, roles and API tokens.

use clap::Subcommand;
use serde_json::json;
use slipway_engine::identity;
use slipway_store::Store;

use crate::context::{Context, Global};
use crate::exit::{INVALID, OK, REFUSED, fail};
use crate::output::{Format, print_json, table, time};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user, or replace their roles: viewer, deployer, admin, or approving roles named in
    /// plans (such as `cab`) and step owner roles (such as `network-team`).
    Add {
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    List,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token for a user; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "token")]
        name: String,
        /// How long it stays valid, such as `30d`; no expiry if omitted.
        #[arg(long)]
        expires: Option<String>,
    },
    List {
        #[arg(long)]
        user: Option<String>,
    },
    Revoke {
        id: String,
    },
}

pub async fn user(global: &Global, command: UserCommand) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    match command {
        UserCommand::Add { name, roles } => {
            let user =
                identity::set_user(ctx.store.as_ref(), &name, roles, &global.actor()).await?;
            match global.format {
                Format::Json => print_json(&user)?,
                Format::Human => println!("user {} has roles {}", user.name, user.roles.join(", ")),
            }
        }
        UserCommand::List => {
            let users = ctx.store.users().await?;
            match global.format {
                Format::Json => print_json(&users)?,
                Format::Human => {
                    let mut t = table(&["user", "roles", "since"]);
                    for u in &users {
                        t.add_row(vec![u.name.clone(), u.roles.join(", "), time(u.created_at)]);
                    }
                    println!("{t}");
                }
            }
        }
    }
    Ok(OK)
}

pub async fn token(global: &Global, command: TokenCommand) -> anyhow::Result<u8> {
    let ctx = Context::open(global).await?;
    match command {
        TokenCommand::Create {
            user,
            name,
            expires,
        } => {
            if ctx.store.user(&user).await?.is_none() {
                return Err(fail(
                    INVALID,
                    format!("no user `{user}`; add one with `slipway user add {user} --role ROLE`"),
                ));
            }
            let expires_at = match expires {
                Some(text) => {
                    let d = slipway_core::duration::parse_duration(&text)
                        .map_err(|e| fail(INVALID, format!("--expires: {e}")))?;
                    Some(
                        slipway_engine::now_millis()
                            + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
                    )
                }
                None => None,
            };
            let issued = identity::create_token(
                ctx.store.as_ref(),
                &user,
                &name,
                expires_at,
                &global.actor(),
            )
            .await?;
            match global.format {
                Format::Json => print_json(
                    &json!({"id": issued.id, "user": user, "token": issued.secret, "expires_at": expires_at}),
                )?,
                Format::Human => {
                    println!("token {} for {user} (shown once; store it now):", issued.id);
                    println!("{}", issued.secret);
                }
            }
        }
        TokenCommand::List { user } => {
            let tokens = ctx.store.tokens(user.as_deref()).await?;
            match global.format {
                Format::Json => print_json(&tokens)?,
                Format::Human => {
                    let mut t = table(&[
                        "id",
                        "user",
                        "name",
                        "created",
                        "expires",
                        "revoked",
                        "last used",
                    ]);
                    for tk in &tokens {
                        t.add_row(vec![
                            tk.id.clone(),
                            tk.user.clone(),
                            tk.name.clone(),
                            time(tk.created_at),
                            tk.expires_at.map(time).unwrap_or_default(),
                            tk.revoked_at.map(time).unwrap_or_default(),
                            tk.last_used_at.map(time).unwrap_or_default(),
                        ]);
                    }
                    println!("{t}");
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let event = slipway_store::NewEvent::new(
                None,
                slipway_engine::now_millis(),
                "token_revoked",
                global.actor(),
                json!({"token": id}),
            );
            if !ctx
                .store
                .revoke_token(&id, slipway_engine::now_millis(), event)
                .await?
            {
                return Err(fail(REFUSED, format!("no live token `{id}`")));
            }
            if global.format == Format::Human {
                println!("token {id} revoked");
            }
        }
    }
    Ok(OK)
}
