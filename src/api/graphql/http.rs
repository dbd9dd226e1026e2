//! `/graphql` over HTTP: POST with a JSON body, GET with a query string, the web app's Explorer for a browser,
//! and `/graphql/schema.graphql` (the caller's own SDL).
//!
//! Every request is authenticated before anything else is read: no token, or a bad one, is a
//! 401 with a GraphQL error body and no data. A role the policy does not know is a 403. A
//! document that does not parse or validate is a request error: no `data` key, and a 400 when
//! the client accepts `application/graphql-response+json`, a 200 under `application/json`
//! ([`super::media`]); an executed one is a 200, with errors (each with `extensions.code`) next
//! to whatever data could be answered. A mutation sent with GET is a 405.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

use super::GraphqlState;
use super::errors::{self, Code};
use super::media::{GRAPHQL_RESPONSE, Media};
use super::resolve::Scope;
use crate::auth::Principal;
use crate::replica::Replica;

type Answer = axum::response::Response;

/// A GraphQL response as `media`; without its `data` key when the request failed before
/// execution (the spec: a request error has no `data`, not even null).
fn write(media: Media, status: StatusCode, response: &Response, executed: bool) -> Answer {
    // An executed answer (it can be large) is written as it is; a refusal, small, goes through
    // a JSON value to lose its `data`.
    let body = if executed {
        serde_json::to_vec(response)
    } else {
        serde_json::to_value(response).and_then(|mut body| {
            if let Some(object) = body.as_object_mut() {
                object.remove("data");
            }
            serde_json::to_vec(&body)
        })
    };
    match body {
        Ok(body) => (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a GraphQL response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(super) fn refuse(media: Media, status: StatusCode, code: Code, message: impl Into<String>) -> Answer {
    write(media, status, &errors::response(code, message), false)
}

/// The response media type the client accepts; `None` when it accepts neither.
fn negotiate(headers: &HeaderMap) -> Option<Media> {
    Media::from_accept(headers.get(header::ACCEPT).map(|v| v.to_str().unwrap_or("")))
}

fn not_acceptable() -> Answer {
    refuse(
        Media::Json,
        StatusCode::NOT_ACCEPTABLE,
        Code::BadRequest,
        format!("GraphQL answers are {GRAPHQL_RESPONSE} or application/json: accept one of them"),
    )
}

/// The caller, or the answer that refuses it.
pub(super) async fn authenticate(state: &GraphqlState, headers: &HeaderMap, media: Media) -> Result<Principal, Answer> {
    let value = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    state.auth.require(value).await.map_err(|e| {
        let mut response = Response::from_errors(vec![async_graphql::ServerError::new(e.to_string(), None)]);
        if let Some(err) = response.errors.first_mut() {
            err.extensions.get_or_insert_with(Default::default).set("code", e.code());
        }
        write(media, e.http_status(), &response, false)
    })
}

pub async fn post(State(state): State<Arc<GraphqlState>>, headers: HeaderMap, body: Bytes) -> Answer {
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    let principal = match authenticate(&state, &headers, media).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !content_type.trim_start().to_ascii_lowercase().starts_with("application/json") {
        return refuse(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadRequest,
            "send the request as application/json",
        );
    }
    match serde_json::from_slice::<Request>(&body) {
        Ok(request) if !request.query.is_empty() => execute(&state, principal, request, media, Method::Post).await,
        // `{"qeury": …}`: not a GraphQL request, however the client accepts answers.
        Ok(_) => refuse(media, StatusCode::BAD_REQUEST, Code::BadRequest, "the body has no `query` (or it is empty)"),
        Err(e) => refuse(
            media,
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
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    if let Ok(ws) = upgrade {
        // Counted per address before the upgrade: a refused client costs no socket task.
        let ticket = match peer.map(|Extension(ConnectInfo(addr))| state.admission.address(addr.ip())) {
            Some(Err(message)) => {
                let mut answer = refuse(Media::Json, StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, message);
                answer.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
                return answer;
            }
            Some(Ok(ticket)) => Some(ticket),
            // Served without connection info (in-process tests): not counted.
            None => None,
        };
        return super::ws::upgrade(state, ws, ticket);
    }
    let query = query.unwrap_or_default();
    let has_document = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "query");
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    if !has_document && wants_html {
        // A person opened the endpoint: GraphiQL is the web app's Explorer.
        return axum::response::Redirect::temporary("/explorer/").into_response();
    }
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    let principal = match authenticate(&state, &headers, media).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    match async_graphql::http::parse_query_string(&query) {
        Ok(request) if !request.query.is_empty() => execute(&state, principal, request, media, Method::Get).await,
        Ok(_) => refuse(media, StatusCode::BAD_REQUEST, Code::BadRequest, "GET /graphql needs a `query` parameter"),
        Err(e) => refuse(media, StatusCode::BAD_REQUEST, Code::BadRequest, format!("bad query string: {e}")),
    }
}

/// The caller's role's schema as SDL.
pub async fn sdl(State(state): State<Arc<GraphqlState>>, headers: HeaderMap) -> Answer {
    let principal = match authenticate(&state, &headers, Media::Json).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    match state.role_schema(&principal) {
        Ok((schema, _)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], super::schema::sdl(&schema)).into_response()
        }
        Err((status, code, message)) => refuse(Media::Json, status, code, message),
    }
}

/// How the request came: GET may only read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

async fn execute(
    state: &GraphqlState,
    principal: Principal,
    mut request: Request,
    media: Media,
    method: Method,
) -> Answer {
    // The cheap check first: a document that does not parse gets its own code. The request
    // keeps the parsed document, so execution does not parse it again.
    let name = request.operation_name.clone();
    let operation = match request.parsed_query() {
        Ok(document) => super::operation_type(document, name.as_deref()),
        Err(e) => return refuse(media, media.request_error(StatusCode::BAD_REQUEST), Code::ParseFailed, e.message),
    };
    // GET must be safe to repeat and to prefetch (the spec, and HTTP): a mutation is refused
    // before anything is resolved.
    if method == Method::Get && operation == Some(OperationType::Mutation) {
        let mut answer =
            refuse(media, StatusCode::METHOD_NOT_ALLOWED, Code::BadRequest, "mutations are sent with POST, not GET");
        answer.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return answer;
    }
    let (schema, replica) = match state.role_schema(&principal) {
        Ok(found) => found,
        Err((status, code, message)) => return refuse(media, status, code, message),
    };
    let role = principal.role.clone();
    let request = state.with_data(request.data(Scope::new(principal, replica.clone())));
    let mut response = schema.execute(request).await;
    if !errors::label(&mut response) {
        return write(media, StatusCode::OK, &response, true);
    }
    let status =
        if super::loading::relabel(&mut response, &role, &state.policy.current().policy, &state.registry, &replica) {
            // Only tables still loading were missing: the same request will work shortly.
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
    write(media, media.request_error(status), &response, false)
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
