//! The REST edge's error type: one variant per answer a client can act on,
//! an explicit status for each, and a JSON body
//! `{"error": {"code": "...", "message": "..."}}`. Internal details go to the
//! log, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bootler_domain::accounts::{AccountError, FieldError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: fix it and send again.
    #[error("{0}")]
    BadRequest(String),
    /// No or bad credentials: sign in or send a token.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this address.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state (taken, already done).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but invalid values.
    #[error("{0}")]
    Unprocessable(String),
    /// Invalid form fields, each with its own message.
    #[error("Some fields are not valid: {}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))]
    Invalid(Vec<FieldError>),
    /// Too many requests: wait and try again.
    #[error("{0}")]
    RateLimited(String),
    /// A dependency (database, directory, backend) is down: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the detail is logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) | ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable code for the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Invalid(_) => "invalid",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Internal(_) => {
                "Something went wrong on the server. The error was logged; please try again or tell an administrator."
                    .to_string()
            }
            other => other.to_string(),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [FieldError]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(err) => tracing::error!(error = ?err, "internal error"),
            ApiError::Unavailable(msg) => tracing::warn!(%msg, "dependency unavailable"),
            _ => {}
        }
        let fields = match &self {
            ApiError::Invalid(fields) => Some(fields.as_slice()),
            _ => None,
        };
        let body = Body {
            error: Detail {
                code: self.code(),
                message: self.message(),
                fields,
            },
        };
        (self.status(), Json(body)).into_response()
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(fields) => ApiError::Invalid(fields),
            AccountError::Taken { message, .. } => ApiError::Conflict(message),
            AccountError::BadLink(message) => ApiError::Unprocessable(message),
            AccountError::WrongCredentials => ApiError::Unauthorized(err.to_string()),
            AccountError::NotActive(message) => ApiError::Forbidden(message),
            AccountError::NotFound(message) => ApiError::NotFound(message),
            AccountError::Forbidden(message) => ApiError::Forbidden(message),
            AccountError::Conflict(message) => ApiError::Conflict(message),
            AccountError::RateLimited { .. } => ApiError::RateLimited(err.to_string()),
            AccountError::Directory(bootler_domain::directory::DirectoryError::Unavailable(_)) => {
                tracing::warn!(error = %err, "directory unavailable");
                ApiError::Unavailable(
                    "The account directory does not answer right now; nothing was changed. Try again in a few minutes.".into(),
                )
            }
            AccountError::Directory(bootler_domain::directory::DirectoryError::Rejected(
                message,
            )) => {
                tracing::warn!(%message, "directory refused a change");
                ApiError::Conflict(format!(
                    "The account directory refused the change: {message}. Ask the lab's administrator."
                ))
            }
            AccountError::Mail(_) => {
                tracing::warn!(error = %err, "mail not sent");
                ApiError::Unavailable(
                    "The confirmation mail could not be sent right now. Try again in a few minutes.".into(),
                )
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<bootler_domain::jobs::JobsError> for ApiError {
    fn from(err: bootler_domain::jobs::JobsError) -> Self {
        use bootler_domain::jobs::JobsError;
        match err {
            JobsError::NotFound(message) => ApiError::NotFound(message),
            JobsError::Forbidden(message) => ApiError::Forbidden(message),
            JobsError::Conflict(message) => ApiError::Conflict(message),
            JobsError::Invalid(message) => ApiError::Unprocessable(message),
            JobsError::Database(err) => ApiError::Internal(err.into()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match rejection {
            R::JsonDataError(err) => ApiError::Unprocessable(err.body_text()),
            R::JsonSyntaxError(err) => ApiError::BadRequest(err.body_text()),
            R::MissingJsonContentType(_) => ApiError::BadRequest(
                "Send the request body as JSON with `Content-Type: application/json`.".into(),
            ),
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_variant_has_its_status_and_code() {
        let cases = [
            (ApiError::BadRequest("b".into()), 400, "bad_request"),
            (ApiError::Unauthorized("u".into()), 401, "unauthorized"),
            (ApiError::Forbidden("f".into()), 403, "forbidden"),
            (ApiError::NotFound("n".into()), 404, "not_found"),
            (ApiError::Conflict("c".into()), 409, "conflict"),
            (ApiError::Unprocessable("p".into()), 422, "unprocessable"),
            (
                ApiError::Invalid(vec![FieldError {
                    field: "username",
                    message: "bad".into(),
                }]),
                422,
                "invalid",
            ),
            (ApiError::RateLimited("r".into()), 429, "rate_limited"),
            (ApiError::Unavailable("d".into()), 503, "unavailable"),
        ];
        for (err, status, code) in cases {
            let message = err.to_string();
            let (got_status, body) = body_of(err).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(body["error"]["code"], code);
            assert_eq!(body["error"]["message"], message);
        }
        let (_, body) = body_of(ApiError::Invalid(vec![FieldError {
            field: "email",
            message: "Not an address.".into(),
        }]))
        .await;
        assert_eq!(body["error"]["fields"][0]["field"], "email");
        assert_eq!(body["error"]["fields"][0]["message"], "Not an address.");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_detail() {
        let (status, body) = body_of(ApiError::Internal(anyhow::anyhow!(
            "password=hunter2 leaked"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("hunter2"));
        assert!(message.contains("logged"));
    }
}
