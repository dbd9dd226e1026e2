//! The two response media types of GraphQL over HTTP, and the status each answer gets.
//!
//! The GraphQL-over-HTTP spec has `application/graphql-response+json`, where the status tells
//! a request error (the document does not parse or validate, its variables do not fit: 4xx,
//! and no `data` key) from an executed request (2xx), and the older `application/json`, where
//! every well-formed GraphQL response is a 200 because intermediaries may replace non-2xx
//! bodies. A client says which it understands in `Accept`; one that sends none, or `*/*`, gets
//! `application/json`, as the spec asks. Failures before GraphQL is involved at all (no token,
//! a body that is not JSON, a missing `query`) keep their 4xx in both.

use axum::http::StatusCode;

/// What the response is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    GraphqlResponse,
    Json,
}

pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

impl Media {
    /// The media type for an `Accept` header, preferring `application/graphql-response+json`
    /// when it is accepted at all; `None` when the header accepts neither (406).
    pub fn from_accept(accept: Option<&str>) -> Option<Media> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(Media::Json) };
        let mut json = false;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            // `q=0` means "not acceptable" (RFC 9110 §12.4.2).
            let refused = parts.any(|p| {
                p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
            });
            if refused {
                continue;
            }
            match name.as_str() {
                GRAPHQL_RESPONSE => return Some(Media::GraphqlResponse),
                "application/json" | "application/*" | "*/*" => json = true,
                _ => {}
            }
        }
        json.then_some(Media::Json)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }

    /// The status of a request error: `status` (400, or 503 for a table still loading) under
    /// `application/graphql-response+json`, 200 under `application/json`.
    pub fn request_error(self, status: StatusCode) -> StatusCode {
        match self {
            Media::GraphqlResponse => status,
            Media::Json => StatusCode::OK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_header_picks_the_media_type() {
        for (accept, media) in [
            (None, Some(Media::Json)),
            (Some(""), Some(Media::Json)),
            (Some("*/*"), Some(Media::Json)),
            (Some("application/json"), Some(Media::Json)),
            (Some("application/json; charset=utf-8"), Some(Media::Json)),
            (Some("application/graphql-response+json"), Some(Media::GraphqlResponse)),
            (Some("application/json, application/graphql-response+json;q=0.9"), Some(Media::GraphqlResponse)),
            (Some("Application/GraphQL-Response+JSON"), Some(Media::GraphqlResponse)),
            (Some("application/graphql-response+json;q=0, application/json"), Some(Media::Json)),
            (Some("text/html"), None),
            (Some("application/json;q=0"), None),
        ] {
            assert_eq!(Media::from_accept(accept), media, "{accept:?}");
        }
        assert_eq!(Media::Json.request_error(StatusCode::BAD_REQUEST), StatusCode::OK);
        assert_eq!(Media::GraphqlResponse.request_error(StatusCode::BAD_REQUEST), StatusCode::BAD_REQUEST);
    }
}
