//! The mock's HTTP layer (axum): routes, authentication headers, fault injection, the three error shapes; no business rules.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FormRejection};
use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use firefly_tlspc::wire::{API_KEY_HEADER, paths};

use super::faults::{ErrorBody, Route};
use super::state::{Caller, Failure, Kind, Shared, api, codes};

type S = State<Arc<Shared>>;

/// Builds the router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let crud = |kind: Kind| {
        (
            get(move |s: S, h: HeaderMap| async move { admin(&s, &h, |sh| Ok(sh.admin_list(kind))) })
                .post(move |s: S, h: HeaderMap, b: Result<Bytes, BytesRejection>| async move {
                    let b = body(b)?;
                    admin_with(&s, &h, StatusCode::CREATED, |sh| sh.admin_upsert(kind, None, &b))
                }),
            get(move |s: S, h: HeaderMap, Path(id): Path<String>| async move { admin(&s, &h, |sh| sh.admin_get(kind, &id)) })
                .patch(
                    move |s: S, h: HeaderMap, Path(id): Path<String>, b: Result<Bytes, BytesRejection>| async move {
                        let b = body(b)?;
                        admin(&s, &h, |sh| sh.admin_upsert(kind, Some(&id), &b))
                    },
                )
                .delete(move |s: S, h: HeaderMap, Path(id): Path<String>| async move {
                    admin(&s, &h, |sh| sh.admin_delete(kind, &id))
                }),
        )
    };
    let (policies, policy) = crud(Kind::Policy);
    let (providers, provider) = crud(Kind::Provider);
    let (_, configuration) = crud(Kind::Configuration);
    let configurations = get(list_configurations).post(
        |s: S, h: HeaderMap, b: Result<Bytes, BytesRejection>| async move {
            let b = body(b)?;
            admin_with(&s, &h, StatusCode::CREATED, |sh| {
                sh.admin_upsert(Kind::Configuration, None, &b)
            })
        },
    );
    Router::new()
        .route(paths::TOKEN, post(token))
        .route(paths::CONFIGURATIONS, configurations)
        .route(&format!("{}/{{id}}", paths::CONFIGURATIONS), configuration)
        .route(paths::POLICIES, policies)
        .route(&format!("{}/{{id}}", paths::POLICIES), policy)
        .route(paths::SUBCA_PROVIDERS, providers)
        .route(&format!("{}/{{id}}", paths::SUBCA_PROVIDERS), provider)
        .route(
            paths::INTERMEDIATE_CERTIFICATES,
            post(request_intermediate).get(|s: S, h: HeaderMap| async move {
                admin(&s, &h, |sh| Ok(sh.list_intermediates()))
            }),
        )
        .route(
            &format!("{}/{{id}}", paths::INTERMEDIATE_CERTIFICATES),
            get(poll_intermediate).patch(report_usage),
        )
        .route("/mock/root.pem", get(root_pem))
        .route("/mock/ca", get(ca_hierarchy))
        .route(
            "/mock/faults",
            get(|s: S, h: HeaderMap| async move { admin(&s, &h, |sh| Ok(json!(sh.faults()))) })
                .put(
                    |s: S, h: HeaderMap, b: Result<Bytes, BytesRejection>| async move {
                        let b = body(b)?;
                        admin(&s, &h, |sh| sh.set_faults(&b).map(|f| json!(f)))
                    },
                )
                .patch(
                    |s: S, h: HeaderMap, b: Result<Bytes, BytesRejection>| async move {
                        let b = body(b)?;
                        admin(&s, &h, |sh| sh.patch_faults(&b).map(|f| json!(f)))
                    },
                ),
        )
        .route("/mock/tokens/revoke", post(revoke_tokens))
        .route(
            "/mock/serviceaccounts",
            get(|s: S, h: HeaderMap| async move { admin(&s, &h, |sh| Ok(sh.list_accounts())) }),
        )
        .route(
            "/mock/serviceaccounts/{client_id}/revoke",
            post(|s: S, h: HeaderMap, Path(c): Path<String>| async move {
                admin(&s, &h, |sh| sh.set_account_revoked(&c, true))
            }),
        )
        .route(
            "/mock/serviceaccounts/{client_id}/restore",
            post(|s: S, h: HeaderMap, Path(c): Path<String>| async move {
                admin(&s, &h, |sh| sh.set_account_revoked(&c, false))
            }),
        )
        .fallback(|m: Method, uri: axum::http::Uri| async move {
            Reply::Err(api(
                404,
                codes::NOT_FOUND,
                format!("no such endpoint: {m} {}", uri.path()),
            ))
        })
        .method_not_allowed_fallback(|m: Method, uri: axum::http::Uri| async move {
            Reply::Err(api(
                405,
                codes::BAD_REQUEST,
                format!("method {m} is not allowed on {}", uri.path()),
            ))
        })
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            inject_faults,
        ))
        .with_state(shared)
}

/// A JSON answer or a refusal in its real shape.
pub(crate) enum Reply {
    Ok(StatusCode, Value),
    Err(Failure),
}

impl From<Failure> for Reply {
    fn from(f: Failure) -> Self {
        Reply::Err(f)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Ok(status, v) => (status, axum::Json(v)).into_response(),
            Reply::Err(f) => failure_response(f),
        }
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn failure_response(f: Failure) -> Response {
    match f {
        Failure::OAuth {
            status: s,
            error,
            description,
        } => (
            status(s),
            axum::Json(json!({"error": error, "error_description": description})),
        )
            .into_response(),
        Failure::Api {
            status: s,
            code,
            message,
        } => (
            status(s),
            axum::Json(json!({"errors": [{"code": code, "message": message, "args": []}]})),
        )
            .into_response(),
        Failure::PlainText { status: s, body } => (
            status(s),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response(),
    }
}

fn ok(v: Value) -> Result<Reply, Reply> {
    Ok(Reply::Ok(StatusCode::OK, v))
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, Reply> {
    b.map_err(|e| {
        Reply::Err(api(
            e.status().as_u16(),
            codes::BAD_REQUEST,
            format!("request body unreadable: {e}"),
        ))
    })
}

fn credentials(h: &HeaderMap) -> (Option<&[u8]>, Option<&str>) {
    let api_key = h.get(API_KEY_HEADER).map(|v| v.as_bytes());
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    (api_key, bearer)
}

fn caller(s: &Shared, h: &HeaderMap) -> Result<Caller, Reply> {
    let (key, bearer) = credentials(h);
    s.authenticate(key, bearer).map_err(Reply::Err)
}

/// Runs an admin-only operation: API key required; a service-account token gets 403.
fn admin(
    s: &Shared,
    h: &HeaderMap,
    op: impl FnOnce(&Shared) -> Result<Value, Failure>,
) -> Result<Reply, Reply> {
    admin_with(s, h, StatusCode::OK, op)
}

/// [`admin`] answering `status` on success.
fn admin_with(
    s: &Shared,
    h: &HeaderMap,
    status: StatusCode,
    op: impl FnOnce(&Shared) -> Result<Value, Failure>,
) -> Result<Reply, Reply> {
    match caller(s, h)? {
        Caller::Admin => op(s).map(|v| Reply::Ok(status, v)).map_err(Reply::Err),
        Caller::Account(_) => Err(Reply::Err(api(
            403,
            codes::FORBIDDEN,
            "this endpoint is for administrators (tppl-api-key); a service-account token is not allowed",
        ))),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
}

async fn token(State(s): S, form: Result<Form<TokenForm>, FormRejection>) -> Result<Reply, Reply> {
    let oauth = |description: String| {
        Reply::Err(Failure::OAuth {
            status: 400,
            error: "invalid_request",
            description,
        })
    };
    let Form(form) = form.map_err(|e| {
        oauth(format!(
            "expected an application/x-www-form-urlencoded body: {e}"
        ))
    })?;
    let grant_type = form
        .grant_type
        .ok_or_else(|| oauth("grant_type is missing".into()))?;
    let assertion = form
        .assertion
        .ok_or_else(|| oauth("assertion is missing".into()))?;
    let answer = s.exchange_token(&grant_type, &assertion)?;
    ok(json!(answer))
}

async fn list_configurations(State(s): S, h: HeaderMap) -> Result<Reply, Reply> {
    let c = caller(&s, &h)?;
    ok(s.list_configurations(&c)?)
}

async fn request_intermediate(
    State(s): S,
    h: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Reply, Reply> {
    let c = caller(&s, &h)?;
    let b = body(b)?;
    Ok(Reply::Ok(
        StatusCode::CREATED,
        s.request_intermediate(&c, &b)?,
    ))
}

async fn poll_intermediate(
    State(s): S,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    let c = caller(&s, &h)?;
    ok(s.poll_intermediate(&c, &id)?)
}

async fn report_usage(
    State(s): S,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Reply, Reply> {
    let c = caller(&s, &h)?;
    let b = body(b)?;
    ok(s.report_usage(&c, &id, &b)?)
}

async fn root_pem(State(s): S) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        s.ca.root_pem().to_owned(),
    )
        .into_response()
}

async fn ca_hierarchy(State(s): S) -> Response {
    let [root, int1, int2] = s.ca.hierarchy_pems();
    axum::Json(json!({"root": root, "intermediate1": int1, "intermediate2": int2})).into_response()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeTokens {
    client_id: Option<String>,
}

async fn revoke_tokens(
    State(s): S,
    h: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Reply, Reply> {
    let b = body(b)?;
    let req: RevokeTokens = if b.iter().all(u8::is_ascii_whitespace) {
        RevokeTokens::default()
    } else {
        serde_json::from_slice(&b).map_err(|e| {
            Reply::Err(api(
                400,
                codes::BAD_REQUEST,
                format!("request body does not parse: {e}"),
            ))
        })?
    };
    admin(&s, &h, |sh| {
        Ok(json!({"revoked": sh.revoke_tokens(req.client_id.as_deref())}))
    })
}

/// Classifies a request for the fault rules; `/mock/*` is never faulted so tests can always reset.
fn route_of(method: &Method, path: &str) -> Option<Route> {
    if path.starts_with("/mock/") {
        return None;
    }
    let item = |base: &str| {
        path.strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| !r.is_empty())
    };
    Some(if path == paths::TOKEN {
        Route::Token
    } else if path == paths::CONFIGURATIONS && method == Method::GET {
        Route::Configurations
    } else if path == paths::INTERMEDIATE_CERTIFICATES && method == Method::POST {
        Route::IntermediateRequest
    } else if item(paths::INTERMEDIATE_CERTIFICATES) && method == Method::GET {
        Route::IntermediatePoll
    } else if item(paths::INTERMEDIATE_CERTIFICATES) && method == Method::PATCH {
        Route::UsageReport
    } else {
        Route::Admin
    })
}

/// Applies the fault knobs, then logs one line per request: method, path, status (never headers
/// or bodies, which carry tokens, keys and assertions).
async fn inject_faults(State(s): S, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = faulted(&s, req, next).await;
    tracing::info!(%method, %path, status = response.status().as_u16(), "tlspc-mock request");
    response
}

async fn faulted(s: &Shared, req: Request, next: Next) -> Response {
    let Some(route) = route_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let (delay, injected) = {
        let mut store = s.lock();
        let delay = store.faults.latency(route);
        (delay, store.faults.take_error(route, rand::random::<f64>()))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match injected {
        None => next.run(req).await,
        Some((code, shape)) => injected_response(route, code, shape),
    }
}

fn injected_response(route: Route, code: u16, shape: ErrorBody) -> Response {
    let st = status(code);
    match shape {
        ErrorBody::Real if route == Route::Token => failure_response(Failure::OAuth {
            status: code,
            error: "temporarily_unavailable",
            description: format!("injected fault: HTTP {code}"),
        }),
        ErrorBody::Real => failure_response(api(code, codes::INJECTED, format!("injected fault: HTTP {code}"))),
        ErrorBody::PlainText => (
            st,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("injected fault: HTTP {code}"),
        )
            .into_response(),
        ErrorBody::Html => (
            st,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<html><head><title>{code} {reason}</title></head><body><center><h1>{code} {reason}</h1></center><hr><center>mock-lb</center></body></html>\n",
                reason = st.canonical_reason().unwrap_or("Error")
            ),
        )
            .into_response(),
        ErrorBody::Empty => st.into_response(),
        ErrorBody::MalformedJson => (
            st,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"configurations\": [{\"id\": \"trunc",
        )
            .into_response(),
    }
}
