//! API errors: an HTTP status, a stable code, a message, and details where they help.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use slipway_engine::{CoordinationError, EngineError};
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_plan`, `self_approval`, `environment_busy`, …
    pub code: String,
    /// For people.
    pub message: String,
    /// For `invalid_plan`, the plan's diagnostics with line and column.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid API token is required (Authorization: Bearer TOKEN)",
        )
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }

    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<slipway_store::StoreError> for ApiError {
    fn from(e: slipway_store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::Busy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "environment_busy", e.to_string())
            }
            EngineError::NotFound(_) => ApiError::not_found(e.to_string()),
            EngineError::Refused(_) => {
                ApiError::new(StatusCode::CONFLICT, "refused", e.to_string())
            }
            EngineError::BadSnapshot(..) | EngineError::Store(_) => ApiError::internal(e),
        }
    }
}

impl From<CoordinationError> for ApiError {
    fn from(e: CoordinationError) -> Self {
        let code = e.code();
        match e {
            CoordinationError::Engine(inner) => inner.into(),
            CoordinationError::Invalid(m) => ApiError::bad_request(code, m),
            CoordinationError::WrongState { .. } => {
                ApiError::new(StatusCode::CONFLICT, code, e.to_string())
            }
            CoordinationError::Refused(slipway_core::coordination::Refusal::ReasonRequired) => {
                ApiError::bad_request(code, e.to_string())
            }
            other => ApiError::forbidden(code, other.to_string()),
        }
    }
}
