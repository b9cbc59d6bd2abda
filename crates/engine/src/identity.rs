//! Who is acting: users with roles, and API tokens (random, shown once, stored only as a hash).

use serde_json::json;
use sha2::{Digest, Sha256};
use slipway_store::{NewEvent, NewToken, Store, StoreError, User};

use crate::engine::now_millis;

/// A new token: its id (public), the secret (shown once) and the hash kept in the record.
pub struct IssuedToken {
    pub id: String,
    pub secret: String,
    pub hash: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The operating system's generator; failing it is not recoverable in any useful way.
    if getrandom::fill(&mut buf).is_err() {
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (now_millis() as u8).wrapping_add(i as u8));
    }
    hex::encode(buf)
}

pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn issue_token() -> IssuedToken {
    let id = format!("tok_{}", random_hex(4));
    let secret = format!("slw_{}", random_hex(24));
    let hash = hash_token(&secret);
    IssuedToken { id, secret, hash }
}

/// The user recorded under `name`, or one with no roles if there is none.
pub async fn user_or_nobody(store: &impl Store, name: &str) -> Result<User, StoreError> {
    Ok(store.user(name).await?.unwrap_or_else(|| User {
        name: name.to_string(),
        roles: Vec::new(),
        created_at: 0,
        disabled: false,
    }))
}

/// Creates or updates a user.
pub async fn set_user(
    store: &impl Store,
    name: &str,
    roles: Vec<String>,
    actor: &str,
) -> Result<User, StoreError> {
    let created_at = store
        .user(name)
        .await?
        .map_or_else(now_millis, |u| u.created_at);
    let user = User {
        name: name.to_string(),
        roles,
        created_at,
        disabled: false,
    };
    store
        .upsert_user(
            user.clone(),
            NewEvent::new(
                None,
                now_millis(),
                "user_saved",
                actor,
                json!({"user": name, "roles": user.roles}),
            ),
        )
        .await?;
    Ok(user)
}

/// Issues a token for `user`, valid until `expires_at` (Unix ms) if given. Returns the secret.
pub async fn create_token(
    store: &impl Store,
    user: &str,
    name: &str,
    expires_at: Option<i64>,
    actor: &str,
) -> Result<IssuedToken, StoreError> {
    let issued = issue_token();
    store
        .create_token(
            NewToken {
                id: issued.id.clone(),
                user: user.to_string(),
                name: name.to_string(),
                hash: issued.hash.clone(),
                created_at: now_millis(),
                expires_at,
            },
            NewEvent::new(
                None,
                now_millis(),
                "token_created",
                actor,
                json!({"token": issued.id, "user": user, "name": name, "expires_at": expires_at}),
            ),
        )
        .await?;
    Ok(issued)
}

/// The user a token belongs to, if the token is live; records its use.
pub async fn authenticate(store: &impl Store, secret: &str) -> Result<Option<User>, StoreError> {
    let now = now_millis();
    match store.token_by_hash(&hash_token(secret), now).await? {
        Some((token, user)) => {
            store.touch_token(&token.id, now).await?;
            Ok(Some(user))
        }
        None => Ok(None),
    }
}
