//! GraphQL error codes (`extensions.code`), so clients branch on a code, not on message text.
//!
//! Resolvers raise errors with their code; errors async-graphql raises itself before execution
//! (parsing, validation, depth and complexity limits) carry none, and are labelled here.

use async_graphql::{ErrorExtensions, Response, ServerError};

/// Every code this API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No token, or the server accepts none.
    Unauthenticated,
    /// The role may not do this (not in the policy, or a claim the policy needs is missing).
    Forbidden,
    /// The table is loading its snapshot or waiting for a resync: ask again shortly.
    NotReady,
    /// An argument is well-typed but unusable (a date that does not exist, a limit too large).
    BadUserInput,
    /// The document does not parse.
    ParseFailed,
    /// The document does not fit the role's schema (unknown or hidden field, wrong argument
    /// type), or is too deep or too complex.
    ValidationFailed,
    /// The HTTP request is not a GraphQL request (bad JSON, bad query string).
    BadRequest,
    /// A `[limits]` rate or count is reached: wait, or close something, and ask again.
    RateLimited,
    /// A change stream cannot go on from the client's cursor (older than the change log, from
    /// before a restart, or before the table was truncated or copied again): read the table
    /// again, then subscribe without `after`.
    CursorExpired,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotReady => "NOT_READY",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::ParseFailed => "GRAPHQL_PARSE_FAILED",
            Code::ValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Code::BadRequest => "BAD_REQUEST",
            Code::RateLimited => "RATE_LIMITED",
            Code::CursorExpired => "CURSOR_EXPIRED",
            Code::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// A resolver error with a code.
pub fn error(code: Code, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code.as_str()))
}

/// A response that is only errors, each with `code` (HTTP-level failures: auth, bad body).
pub fn response(code: Code, message: impl Into<String>) -> Response {
    Response::from_errors(vec![server_error(code, message)])
}

pub fn server_error(code: Code, message: impl Into<String>) -> ServerError {
    let mut e = ServerError::new(message, None);
    e.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    e
}

fn code_of(e: &ServerError) -> Option<&async_graphql::Value> {
    e.extensions.as_ref().and_then(|x| x.get("code"))
}

/// Gives every error of an executed request a code. A response without data failed before
/// execution, which only parsing or validation does (resolver errors always carry a code).
/// Returns whether the request was refused before execution.
pub fn label(response: &mut Response) -> bool {
    let before_execution = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| code_of(e).is_none());
    for e in &mut response.errors {
        if code_of(e).is_none() {
            let code = if before_execution { Code::ValidationFailed } else { Code::Internal };
            e.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
        }
    }
    before_execution
}
