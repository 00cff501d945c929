//! The two ways a proxied request comes in: through the router
//! ([`forward`], its handler) or straight from the connection's service
//! once the gate's checks let it through ([`serve`], without the router's
//! boxed layers). Both read the body within `server.max_body_bytes` and
//! hand it to [`super::answer`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::{ROUTE_LABEL, Upstream, answer, finish_as};
use crate::api::auth::Client;
use crate::api::error::ApiError;
use crate::api::{AppState, Caller};

/// The handler: any method under [`super::ROUTE`], behind the router's layers
/// (the gate has read the body already, within `server.max_body_bytes`).
pub(in crate::api) async fn forward(
    State(state): State<AppState>,
    Caller(client): Caller,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return unreadable_body().into_response();
    };
    let (mut response, from_api) = answer(&state, &client, parts, body).await;
    // What `finish` (in the router's `common_headers`) goes by.
    if from_api {
        response.extensions_mut().insert(Upstream);
    }
    response
}

/// What the connection's service runs for a proxied request whose caller
/// the gate's checks (`admit`: browser/proxy/Host, then the client key)
/// have let through: the router's other layers for this route, done here
/// without their boxed services, futures and extensions (see `api::fast`).
/// In their order: the deadline (`server.request_timeout_secs`), the count
/// by route and status, the body read within `server.max_body_bytes`
/// (413), the handler; then the headers of [`super::finish`]. Unlike the router,
/// it opens no `request` span: the proxy logs its own line per request.
pub(in crate::api) fn serve<B>(
    state: AppState,
    client: Arc<Client>,
    request: axum::http::Request<B>,
) -> Served
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    Box::pin(async move {
        let (limit, deadline) = {
            let config = state.config();
            let server = &config.server;
            (
                server.max_body_bytes,
                Duration::from_secs(server.request_timeout_secs),
            )
        };
        let counted = async {
            let (response, from_api) = match read_body(request, limit).await {
                Ok((parts, body)) => answer(&state, &client, parts, body).await,
                Err(e) => (e.into_response(), false),
            };
            state
                .metrics()
                .http_request(ROUTE_LABEL, response.status().as_u16());
            (response, from_api)
        };
        let (mut response, from_api) = tokio::time::timeout(deadline, counted)
            .await
            .unwrap_or_else(|_| (ApiError::Timeout.into_response(), false));
        finish_as(&mut response, from_api);
        Ok(response)
    })
}

/// The future of [`serve`].
pub(in crate::api) type Served = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The request's head and its body, read, at most `limit` bytes, as the
/// router's gate does (none sent: nothing to read).
async fn read_body<B>(
    request: axum::http::Request<B>,
    limit: usize,
) -> Result<(Parts, Bytes), ApiError>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return Ok((parts, Bytes::new()));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::PayloadTooLarge),
        Err(_) => Err(unreadable_body()),
    }
}

fn unreadable_body() -> ApiError {
    ApiError::InvalidRequest("could not read the request body".into())
}
