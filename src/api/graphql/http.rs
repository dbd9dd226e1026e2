//! `/graphql` over HTTP: POST with a JSON body, GET with a query string, the web app's Explorer for a browser,
//! and `/graphql/schema.graphql` (the caller's own SDL).
//!
//! Every request is authenticated before anything else is read: no token, or a bad one, is a
//! 401 with a GraphQL error body and no data. A role the policy does not know is a 403. A
//! document that does not parse or validate is a 400; an executed one is a 200, with errors
//! (each with `extensions.code`) next to whatever data could be answered.

use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::{Request, Response};
use axum::body::Bytes;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

use super::GraphqlState;
use super::errors::{self, Code};
use super::resolve::Scope;
use crate::auth::Principal;
use crate::replica::Replica;

type Answer = axum::response::Response;

fn json(status: StatusCode, response: &Response) -> Answer {
    match serde_json::to_vec(response) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn refuse(status: StatusCode, code: Code, message: impl Into<String>) -> Answer {
    json(status, &errors::response(code, message))
}

/// The caller, or the answer that refuses it.
async fn authenticate(state: &GraphqlState, headers: &HeaderMap) -> Result<Principal, Answer> {
    let value = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    state.auth.require(value).await.map_err(|e| {
        let mut response = Response::from_errors(vec![async_graphql::ServerError::new(e.to_string(), None)]);
        if let Some(err) = response.errors.first_mut() {
            err.extensions.get_or_insert_with(Default::default).set("code", e.code());
        }
        json(e.http_status(), &response)
    })
}

pub async fn post(State(state): State<Arc<GraphqlState>>, headers: HeaderMap, body: Bytes) -> Answer {
    let principal = match authenticate(&state, &headers).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !content_type.trim_start().to_ascii_lowercase().starts_with("application/json") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::BadRequest, "send the request as application/json");
    }
    match serde_json::from_slice::<Request>(&body) {
        Ok(request) => execute(&state, principal, request).await,
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            format!(
                "the body is not a GraphQL request (JSON with `query`, optional `variables` and `operationName`): {e}"
            ),
        ),
    }
}

pub async fn get(
    State(state): State<Arc<GraphqlState>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    if let Ok(ws) = upgrade {
        return super::ws::upgrade(state, ws);
    }
    let query = query.unwrap_or_default();
    let has_document = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "query");
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    if !has_document && wants_html {
        // A person opened the endpoint: GraphiQL is the web app's Explorer.
        return axum::response::Redirect::temporary("/explorer/").into_response();
    }
    let principal = match authenticate(&state, &headers).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    match async_graphql::http::parse_query_string(&query) {
        Ok(request) if !request.query.is_empty() => execute(&state, principal, request).await,
        Ok(_) => refuse(StatusCode::BAD_REQUEST, Code::BadRequest, "GET /graphql needs a `query` parameter"),
        Err(e) => refuse(StatusCode::BAD_REQUEST, Code::BadRequest, format!("bad query string: {e}")),
    }
}

/// The caller's role's schema as SDL.
pub async fn sdl(State(state): State<Arc<GraphqlState>>, headers: HeaderMap) -> Answer {
    let principal = match authenticate(&state, &headers).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    match state.role_schema(&principal) {
        Ok((schema, _)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], super::schema::sdl(&schema)).into_response()
        }
        Err((status, code, message)) => refuse(status, code, message),
    }
}

async fn execute(state: &GraphqlState, principal: Principal, request: Request) -> Answer {
    // The cheap check first: a document that does not parse gets its own code.
    if let Err(e) = async_graphql::parser::parse_query(&request.query) {
        return refuse(StatusCode::BAD_REQUEST, Code::ParseFailed, e.to_string());
    }
    let (schema, replica) = match state.role_schema(&principal) {
        Ok(found) => found,
        Err((status, code, message)) => return refuse(status, code, message),
    };
    let role = principal.role.clone();
    let request = state.with_data(request.data(Scope::new(principal, replica.clone())));
    let mut response = schema.execute(request).await;
    let status = if !errors::label(&mut response) {
        StatusCode::OK
    } else if super::loading::relabel(&mut response, &role, &state.policy.current().policy, &state.registry, &replica) {
        // Only tables still loading were missing: the same request will work shortly.
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    };
    json(status, &response)
}

/// Why a request is refused before execution.
pub(super) type Refusal = (StatusCode, Code, String);

impl GraphqlState {
    /// The schema of the caller's role and the replica version it was built for.
    pub(super) fn role_schema(&self, principal: &Principal) -> Result<(Schema, Arc<Replica>), Refusal> {
        let policy = self.policy.current();
        if !policy.policy.has_role(&principal.role) {
            return Err((
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                format!(
                    "role `{}` is not in the policy ({}): it may read nothing",
                    principal.role,
                    policy.policy.origin()
                ),
            ));
        }
        let replica = self.replica.borrow().clone();
        match self.cache.get(&principal.role, &policy, &replica) {
            Ok(schema) => Ok((schema, replica)),
            Err(e) => {
                tracing::error!(role = %principal.role, error = %e.0, "cannot build the role's GraphQL schema");
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Code::Internal,
                    "the schema for this role cannot be built".into(),
                ))
            }
        }
    }
}
