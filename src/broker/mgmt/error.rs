//! The management API's errors: RabbitMQ's status codes and `{"error":..,"reason":..}`
//! bodies, and how broker (AMQP) errors map onto them.

use crate::broker::error::{AmqpError, code};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub(crate) status: u16,
    /// The `error` field (RabbitMQ's category, e.g. `bad_request`).
    pub(crate) error: String,
    /// The `reason` field.
    pub(crate) reason: String,
    /// A `reason` that is not text: RabbitMQ answers some errors with the Erlang term
    /// it threw, as JSON (an invalid topic permission pattern).
    pub(crate) reason_json: Option<serde_json::Value>,
}

impl ApiError {
    pub(crate) fn new(
        status: u16,
        error: impl Into<String>,
        reason: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            reason: reason.into(),
            reason_json: None,
        }
    }

    /// 400 with a JSON `reason` (its text form is the JSON, for logs and imports).
    pub(crate) fn bad_request_json(reason: serde_json::Value) -> ApiError {
        ApiError {
            reason: reason.to_string(),
            reason_json: Some(reason),
            ..ApiError::bad_request("")
        }
    }

    /// RabbitMQ's answer for a path naming nothing (unknown vhost, queue, exchange, ...).
    pub(crate) fn not_found() -> ApiError {
        ApiError::new(404, "Object Not Found", "Not Found")
    }

    pub(crate) fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", reason)
    }

    /// RabbitMQ's answer to a PUT into a missing vhost.
    pub(crate) fn vhost_not_found() -> ApiError {
        ApiError::new(404, "not_found", "vhost_not_found")
    }
}

impl From<AmqpError> for ApiError {
    /// A channel error of the operation, as RabbitMQ's management plugin reports it: the
    /// text without its `CODE - ` prefix, 404 for NOT_FOUND, 400 otherwise.
    fn from(e: AmqpError) -> ApiError {
        let reason = match e.text.split_once(" - ") {
            Some((_, detail)) => detail.to_string(),
            None => e.text.clone(),
        };
        match e.code {
            code::NOT_FOUND => ApiError::new(404, "not_found", reason),
            code::ACCESS_REFUSED => ApiError::new(403, "access_refused", reason),
            code::INTERNAL_ERROR => ApiError::new(500, "internal_error", reason),
            _ => ApiError::bad_request(reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (
            status,
            axum::Json(json!({
                "error": self.error,
                "reason": self.reason_json.unwrap_or(serde_json::Value::String(self.reason)),
            })),
        )
            .into_response();
        if self.status == 401 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        resp
    }
}
