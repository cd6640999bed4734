//! `dashboard`: the partnership dashboard over HTTP.
//!
//! It holds no data of its own: every figure comes from the projections,
//! asked with the caller's own token, so the projections' roles,
//! partnership scopes and small-number suppression apply to the page and to
//! the JSON alike.
//!
//! # Layout
//! - [`run`] and the routes: `/` (the overview: the national page for
//!   those who read it, else the caller's partnerships), `/national`,
//!   `/partnerships/<code>` and `/partnerships/<code>/pickups` (pages),
//!   `/login`, `/logout`, `/auth/start` and `/auth/callback` (signing in
//!   at the identity provider: [`oidc`]),
//!   `/api/partnerships/<code>/training`,
//!   `/api/partnerships/<code>/pickup-summary`,
//!   `/api/partnerships/<code>/activity`, `/api/national` and
//!   `/api/partnerships/<code>/break-glass` (JSON, or CSV with
//!   `&format=csv`: [`csv`]), `/healthz`, `/metrics`.
//! - [`page`]: the HTML, rendered on the server from maud templates (no
//!   script but the live list's); [`chart`]: the charts, as SVG.
//! - Callers: `authorization: Bearer <token>`, or a signed-in session
//!   ([`session`]): the browser keeps only an opaque id, the token stays
//!   here; CSRF tokens on every form, a limit on failed sign-ins.
//! - Every response: `Cache-Control: no-store`, a Content-Security-Policy
//!   allowing only the dashboard's one script (by hash) and no framing.

pub mod chart;
pub mod csv;
pub mod oidc;
pub mod page;
pub mod session;

use std::{future::Future, sync::Arc};

use axum::{
    extract::{Form, Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use tokio::net::TcpListener;
use tonic::{transport::Channel, Code, Request};

use hub_core::{
    auth::{Action, Caller, PartnershipScope},
    partnerships::PartnershipRegister,
    time::{london_today, FinancialYear},
    Error,
};
use hub_proto::admin::{
    admin_service_client::AdminServiceClient, AuditRecord, ListAuditRecordsRequest,
};
use hub_proto::projections::{
    activity_service_client::ActivityServiceClient,
    pickup_list_service_client::PickupListServiceClient,
    training_counts_service_client::TrainingCountsServiceClient, Activity, GetActivityRequest,
    GetNationalComparisonRequest, GetPickupSummaryRequest, GetTrainingCountsRequest,
    ListPickupsRequest, NationalComparison, PickupSummary, TrainingCounts, WatchPickupsRequest,
};
use hub_runtime::{
    config::{CommonArgs, ProjectionAddrs},
    prometheus,
};

pub const NAME: &str = "dashboard";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The session cookie: an opaque id (see [`session`]).
const COOKIE: &str = "hub_session";
/// The sign-in form's double-submitted CSRF token.
const LOGIN_CSRF_COOKIE: &str = "hub_login_csrf";
/// The `state` of a sign-in under way at the identity provider. SameSite=Lax:
/// the provider's redirect back is a cross-site navigation, on which a
/// Strict cookie would not be sent.
const OIDC_STATE_COOKIE: &str = "hub_oidc_state";
/// How long a stopping dashboard lets requests in flight (a live page's
/// stream among them) finish.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub projections: ProjectionAddrs,
    /// activity-projection's gRPC address.
    #[arg(
        long,
        env = "HUB_ACTIVITY_PROJECTION_ADDR",
        default_value = "127.0.0.1:50063"
    )]
    pub activity_projection_addr: String,
    /// A signed-in session ends after this long without a request.
    #[arg(long, env = "HUB_DASHBOARD_SESSION_IDLE", default_value = "30m",
          value_parser = hub_runtime::config::parse_duration)]
    pub session_idle: std::time::Duration,
    /// ... and this long after sign-in, however active.
    #[arg(long, env = "HUB_DASHBOARD_SESSION_MAX", default_value = "12h",
          value_parser = hub_runtime::config::parse_duration)]
    pub session_max: std::time::Duration,
    #[command(flatten)]
    pub oidc_client: oidc::OidcClientArgs,
}

impl AsRef<CommonArgs> for Config {
    fn as_ref(&self) -> &CommonArgs {
        &self.common
    }
}

struct App {
    auth: Arc<hub_runtime::authn::Authenticator>,
    /// Whether the dashboard serves TLS (cookies are then `Secure`).
    tls: bool,
    /// Each caller's open live pages.
    live: hub_runtime::quota::StreamQuota,
    sessions: session::Sessions,
    sign_ins: session::SignInLimit,
    /// Signing in at the identity provider, when configured.
    oidc: Option<oidc::OidcLogin>,
    partnerships: PartnershipRegister,
    pickup: Channel,
    training: Channel,
    activity: Channel,
    /// Cancelled when the dashboard stops: open live pages end at once,
    /// so the drain is not held for its whole time limit.
    stopping: hub_runtime::shutdown::Stopping,
}

/// Serves until `shutdown`. Prints `dashboard listening on <addr>`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal_from("the listener's address", e))?;
    let tls = &config.common.tls;
    tls.check_listener("HUB_LISTEN", addr)?;
    let server_tls = tls.server()?;
    let metrics = prometheus::install()?;
    let auth = config.common.authenticator(&[addr]).await?;
    let oidc = oidc::OidcLogin::discover(
        &config.oidc_client,
        auth.oidc_issuer(),
        tls.client.tls_ca_file.as_deref(),
    )
    .await?;
    // Sign-out may send the browser on to the provider's end-session page.
    init_csp(
        config
            .common
            .oidc
            .oidc_issuer
            .as_deref()
            .filter(|_| oidc.is_some()),
    );
    let (pickup, training) = config.projections.channels(&tls.client)?;
    let app = Arc::new(App {
        auth,
        oidc,
        tls: server_tls.is_some(),
        live: hub_runtime::quota::StreamQuota::new(
            "live pick-up pages",
            config.common.max_streams_per_caller,
        ),
        sessions: session::Sessions::new(session::SessionLimits {
            idle: config.session_idle,
            absolute: config.session_max,
        }),
        sign_ins: session::SignInLimit::default(),
        partnerships: config.common.load_partnerships()?,
        pickup,
        training,
        activity: tls.client.channel(
            "HUB_ACTIVITY_PROJECTION_ADDR",
            &config.activity_projection_addr,
        )?,
        stopping: hub_runtime::shutdown::Stopping::new(),
    });
    let router = Router::new()
        .route("/", get(home))
        .route("/national", get(national_page))
        .route("/partnerships/{code}", get(partnership_page))
        .route("/partnerships/{code}/pickups", get(pickups_page))
        .route(
            "/api/partnerships/{code}/pickups/events",
            get(pickup_events),
        )
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/auth/start", get(oidc_start))
        .route("/auth/callback", get(oidc_callback))
        .route("/api/partnerships/{code}/training", get(training_json))
        .route("/api/partnerships/{code}/pickup-summary", get(summary_json))
        .route("/api/partnerships/{code}/activity", get(activity_json))
        .route("/api/national", get(national_json))
        .route(
            "/api/partnerships/{code}/break-glass",
            get(break_glass_json),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(count_requests));
    tracing::info!(%addr, "listening");
    println!("{NAME} listening on {addr}");
    let stopping = app.stopping.clone();
    let router = router.with_state(app);
    hub_runtime::tls::serve_http(
        listener,
        router,
        server_tls.as_ref(),
        hub_runtime::shutdown::cancelling(shutdown, stopping),
        DRAIN_TIMEOUT,
    )
    .await
}

async fn count_requests(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    metrics::counter!("hub_http_requests_total", "route" => route, "status" => response.status().as_u16().to_string()).increment(1);
    response
}

/// A cookie of the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The caller's token, and the CSRF token of their session: the bearer
/// header first (no session, no forms), else the session cookie.
fn token(app: &App, headers: &HeaderMap) -> Option<(String, String)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        // The services' own reading of the header (hub_core::auth).
        return hub_core::auth::bearer(Some(v))
            .ok()
            .map(|t| (t.to_string(), String::new()));
    }
    let session = app.sessions.get(&cookie(headers, COOKIE)?)?;
    Some((session.token, session.csrf))
}

/// The signed-in caller, their token and their session's CSRF token.
fn caller(app: &App, headers: &HeaderMap) -> Option<(Arc<Caller>, String, String)> {
    let (token, csrf) = token(app, headers)?;
    let caller = app
        .auth
        .authenticate(Some(&format!("Bearer {token}")))
        .ok()?;
    Some((caller, token, csrf))
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// A failed gRPC call as HTTP, for the JSON API.
fn http_error(status: tonic::Status) -> Response {
    let code = match status.code() {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, Json(serde_json::json!({"error": format!("{:?}", status.code()), "message": status.message()}))).into_response()
}

#[derive(Deserialize, Default)]
struct YearQuery {
    fy: Option<String>,
    as_of: Option<String>,
    /// `json` (the default) or `csv`.
    format: Option<String>,
    /// The national page's figure to rank on.
    figure: Option<String>,
}

/// How the JSON API answers: the reply's JSON, or CSV made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

impl YearQuery {
    /// The format asked for; `None` for anything but `json` or `csv`
    /// (answered with [`bad_format`]).
    fn format(&self) -> Option<Format> {
        match self.format.as_deref() {
            None | Some("json") => Some(Format::Json),
            Some("csv") => Some(Format::Csv),
            Some(_) => None,
        }
    }
}

/// A 400 naming `format`.
fn bad_format() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": "InvalidArgument", "message": "format: must be json or csv"})),
    )
        .into_response()
}

/// A reply as JSON, or as a CSV download named after what it is.
fn answer(
    format: Format,
    json: serde_json::Value,
    name: String,
    csv: impl FnOnce(&serde_json::Value) -> String,
) -> Response {
    match format {
        Format::Json => Json(json).into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.csv\""),
                ),
            ],
            csv(&json),
        )
            .into_response(),
    }
}

async fn training_counts(
    app: &App,
    token: String,
    code: &str,
    fy: Option<String>,
) -> Result<TrainingCounts, tonic::Status> {
    let request = GetTrainingCountsRequest {
        partnership_code: code.into(),
        financial_year: fy.unwrap_or_default(),
        min_sequence: 0,
    };
    TrainingCountsServiceClient::new(app.training.clone())
        .get_training_counts(with_token(request, &token))
        .await
        .map(|r| r.into_inner())
}

async fn pickup_summary(
    app: &App,
    token: String,
    code: &str,
    q: &YearQuery,
) -> Result<PickupSummary, tonic::Status> {
    let request = GetPickupSummaryRequest {
        partnership_code: code.into(),
        as_of_date: q.as_of.clone().unwrap_or_default(),
        financial_year: q.fy.clone().unwrap_or_default(),
        min_sequence: 0,
    };
    PickupListServiceClient::new(app.pickup.clone())
        .get_pickup_summary(with_token(request, &token))
        .await
        .map(|r| r.into_inner())
}

fn unauthorised_json() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": "Unauthenticated", "message": "send authorization: Bearer <token>, or log in"})),
    )
        .into_response()
}

/// One JSON API request: the caller's token, the format asked for, then
/// `fetch` with the token and `render` of what it got (a gRPC refusal as
/// its HTTP status).
async fn api<T, Fut>(
    app: &App,
    headers: &HeaderMap,
    q: &YearQuery,
    fetch: impl FnOnce(String) -> Fut,
    render: impl FnOnce(T, Format) -> Response,
) -> Response
where
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let Some((token, _)) = token(app, headers) else {
        return unauthorised_json();
    };
    let Some(format) = q.format() else {
        return bad_format();
    };
    match fetch(token).await {
        Ok(reply) => render(reply, format),
        Err(s) => http_error(s),
    }
}

async fn training_json(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    Query(q): Query<YearQuery>,
    headers: HeaderMap,
) -> Response {
    let fetch = |token: String| training_counts(&app, token, &code, q.fy.clone());
    api(&app, &headers, &q, fetch, |c, format| {
        answer(
            format,
            hub_proto::json::training_counts(&c),
            format!("{code}-training-{}", c.financial_year),
            |v| csv::year_table(v, &code, london_today()),
        )
    })
    .await
}

async fn summary_json(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    Query(q): Query<YearQuery>,
    headers: HeaderMap,
) -> Response {
    let fetch = |token: String| pickup_summary(&app, token, &code, &q);
    api(&app, &headers, &q, fetch, |s, format| {
        answer(
            format,
            hub_proto::json::pickup_summary(&s),
            format!("{code}-pickup-summary-{}", s.financial_year),
            |v| csv::figures(v, &code),
        )
    })
    .await
}

async fn activity(
    app: &App,
    token: String,
    code: &str,
    fy: Option<String>,
) -> Result<Activity, tonic::Status> {
    let request = GetActivityRequest {
        partnership_code: code.into(),
        financial_year: fy.unwrap_or_default(),
        min_sequence: 0,
    };
    ActivityServiceClient::new(app.activity.clone())
        .get_activity(with_token(request, &token))
        .await
        .map(|r| r.into_inner())
}

async fn activity_json(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    Query(q): Query<YearQuery>,
    headers: HeaderMap,
) -> Response {
    let fetch = |token: String| activity(&app, token, &code, q.fy.clone());
    api(&app, &headers, &q, fetch, |a, format| {
        // The same table, line for line, as `hubctl activity --csv`.
        answer(
            format,
            activity_projection::report::json(&a),
            format!("{code}-activity-{}", a.financial_year),
            |_| activity_projection::report::csv(&a, london_today()),
        )
    })
    .await
}

/// Who broke the glass to look up the partnership's people (admins and
/// its data stewards): the last 10,000 reads, as JSON or CSV.
async fn break_glass_json(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    Query(q): Query<YearQuery>,
    headers: HeaderMap,
) -> Response {
    let fetch = |token: String| {
        let (app, code) = (&app, &code);
        async move { break_glass_reads(app, &token, code, 10_000).await }
    };
    api(&app, &headers, &q, fetch, |records, format| {
        answer(
            format,
            csv::break_glass_json(&code, &records),
            format!("{code}-break-glass"),
            csv::break_glass,
        )
    })
    .await
}

async fn national(
    app: &App,
    token: String,
    fy: Option<String>,
) -> Result<NationalComparison, tonic::Status> {
    let request = GetNationalComparisonRequest {
        financial_year: fy.unwrap_or_default(),
        min_sequence: 0,
    };
    ActivityServiceClient::new(app.activity.clone())
        .get_national_comparison(with_token(request, &token))
        .await
        .map(|r| r.into_inner())
}

async fn national_json(
    State(app): State<Arc<App>>,
    Query(q): Query<YearQuery>,
    headers: HeaderMap,
) -> Response {
    let fetch = |token: String| national(&app, token, q.fy.clone());
    api(&app, &headers, &q, fetch, |c, format| {
        // The same table, line for line, as `hubctl national --csv`.
        answer(
            format,
            activity_projection::national::json(&c),
            format!("national-{}", c.financial_year),
            |_| activity_projection::national::csv(&c),
        )
    })
    .await
}

/// The overview: for those who read the national comparison (analysts,
/// admins), the national page; for anyone else with one partnership, its
/// page; with several, each one's pick-up list and continuity of care.
async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some((caller, token, csrf)) = caller(&app, &headers) else {
        return Redirect::to("/login").into_response();
    };
    if caller.role.may(Action::ReadNationalComparison) {
        return Redirect::to("/national").into_response();
    }
    let partnerships: Vec<_> = match &caller.partnerships {
        PartnershipScope::All => app.partnerships.iter().collect(),
        PartnershipScope::Only(codes) => codes
            .iter()
            .filter_map(|c| app.partnerships.get(c))
            .collect(),
    };
    if let [only] = partnerships.as_slice() {
        return Redirect::to(&format!("/partnerships/{}", only.code)).into_response();
    }
    let who = page::Who {
        caller: &caller,
        csrf: &csrf,
    };
    // A worker's few partnerships, each at a glance; someone who may act
    // for every partnership chooses from the register.
    let few = matches!(caller.partnerships, PartnershipScope::Only(_));
    if !few || !caller.role.may(Action::ReadPickupSummary) {
        return Html(page::home(&who, &partnerships)).into_response();
    }
    let this_year = YearQuery::default();
    let summaries = futures::future::join_all(
        partnerships
            .iter()
            .map(|p| pickup_summary(&app, token.clone(), &p.code, &this_year)),
    )
    .await;
    let overviews: Vec<page::Overview> = partnerships
        .iter()
        .zip(summaries)
        .map(|(partnership, summary)| page::Overview {
            partnership,
            summary,
        })
        .collect();
    Html(page::worker_home(&who, &overviews)).into_response()
}

/// A page's `?fy=`: the year asked for, or this year when none.
fn page_year(q: &YearQuery) -> Result<FinancialYear, String> {
    q.fy.as_deref()
        .map_or(Ok(FinancialYear::of(london_today())), FinancialYear::parse)
}

/// The page saying what is wrong with `?fy=`.
fn bad_year(e: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(page::message("Bad financial year", &format!("fy: {e}"))),
    )
        .into_response()
}

/// The page for a partnership code the register does not have.
fn unknown_partnership() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page::message(
            "Unknown partnership",
            "There is no partnership with that code.",
        )),
    )
        .into_response()
}

/// A page the projections refused or could not answer.
fn page_error(what: &str, status: &tonic::Status) -> Response {
    let (code, text) = match status.code() {
        Code::PermissionDenied | Code::Unauthenticated => {
            (StatusCode::FORBIDDEN, status.message().to_string())
        }
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, status.message().to_string()),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "The figures cannot be reached just now; try again shortly. ({})",
                status.message()
            ),
        ),
    };
    let title = if code == StatusCode::FORBIDDEN {
        "Not allowed"
    } else {
        what
    };
    (code, Html(page::message(title, &text))).into_response()
}

/// The national page: England, the spread, and every partnership ranked
/// on one headline figure (`?figure=`, the first when none).
async fn national_page(
    State(app): State<Arc<App>>,
    Query(q): Query<YearQuery>,
    headers: HeaderMap,
) -> Response {
    let Some((caller, token, csrf)) = caller(&app, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let fy = match page_year(&q) {
        Ok(fy) => fy,
        Err(e) => return bad_year(&e),
    };
    let names = activity_projection::national::figures(&Default::default()).map(|(n, _)| n);
    let figure = match q.figure.as_deref() {
        None => names[0],
        Some(f) => match names.iter().find(|n| **n == f) {
            Some(n) => n,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Html(page::message(
                        "Unknown figure",
                        &format!("figure: must be one of {}", names.join(", ")),
                    )),
                )
                    .into_response()
            }
        },
    };
    match national(&app, token, Some(fy.to_string())).await {
        Ok(c) => Html(page::national_page(
            &page::Who {
                caller: &caller,
                csrf: &csrf,
            },
            &c,
            figure,
        ))
        .into_response(),
        Err(s) => page_error("The national comparison is unavailable", &s),
    }
}

async fn partnership_page(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    Query(q): Query<YearQuery>,
    headers: HeaderMap,
) -> Response {
    let Some((caller, token, csrf)) = caller(&app, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let Some(partnership) = app.partnerships.get(&code) else {
        return unknown_partnership();
    };
    let fy = match page_year(&q) {
        Ok(fy) => fy,
        Err(e) => return bad_year(&e),
    };
    let role = caller.role;
    let year = |fy: FinancialYear| YearQuery {
        fy: Some(fy.to_string()),
        as_of: q.as_of.clone(),
        ..Default::default()
    };
    // What the caller's role may ask for, asked at once.
    let activity_for = |fy: FinancialYear| {
        let (app, token, code) = (&app, token.clone(), &code);
        async move {
            if role.may(Action::ReadActivity) {
                Some(activity(app, token, code, Some(fy.to_string())).await)
            } else {
                None
            }
        }
    };
    let training_for =
        |fy: FinancialYear| training_counts(&app, token.clone(), &code, Some(fy.to_string()));
    let national_for = async {
        if role.may(Action::ReadNationalComparison) {
            Some(national(&app, token.clone(), Some(fy.to_string())).await)
        } else {
            None
        }
    };
    // Admins and the partnership's data stewards see who broke the glass.
    let break_glass_for = async {
        if role.may(Action::ReadAudit) && caller.may_act_for(&code) {
            Some(break_glass_reads(&app, &token, &code, page::BREAK_GLASS_SHOWN).await)
        } else {
            None
        }
    };
    let earlier = [2, 1].map(|back| FinancialYear {
        start_year: fy.start_year - back,
    });
    let earlier_for = futures::future::join_all(earlier.map(|fy| async move {
        let (training, activity) = tokio::join!(training_for(fy), activity_for(fy));
        page::YearFigures {
            fy,
            training: training.ok(),
            activity: activity.and_then(Result::ok),
        }
    }));
    let this_year = year(fy);
    let (training, summary, activity_figures, national_figures, break_glass, mut years) = tokio::join!(
        training_for(fy),
        pickup_summary(&app, token.clone(), &code, &this_year),
        activity_for(fy),
        national_for,
        break_glass_for,
        earlier_for,
    );
    if let (Err(t), Err(s), None) = (&training, &summary, &break_glass) {
        if t.code() == Code::PermissionDenied && s.code() == Code::PermissionDenied {
            return page_error("Not allowed", t);
        }
    }
    years.push(page::YearFigures {
        fy,
        training: training.as_ref().ok().cloned(),
        activity: activity_figures
            .as_ref()
            .and_then(|a| a.as_ref().ok())
            .cloned(),
    });
    let figures = page::PartnershipFigures {
        fy,
        training,
        summary,
        activity: activity_figures,
        years,
        national: national_figures,
        break_glass,
    };
    Html(page::partnership(
        &page::Who {
            caller: &caller,
            csrf: &csrf,
        },
        partnership,
        &figures,
    ))
    .into_response()
}

/// The partnership's break-the-glass reads, oldest first: the newest
/// `newest` of them.
async fn break_glass_reads(
    app: &App,
    token: &str,
    code: &str,
    newest: usize,
) -> Result<Vec<AuditRecord>, tonic::Status> {
    let mut records = AdminServiceClient::new(app.pickup.clone())
        .list_audit_records(with_token(
            ListAuditRecordsRequest {
                partnership_code: code.to_string(),
                break_glass_only: true,
                limit: 10_000,
                ..Default::default()
            },
            token,
        ))
        .await?
        .into_inner()
        .records;
    let keep = records.len().saturating_sub(newest);
    records.drain(..keep);
    Ok(records)
}

/// `; Secure` when the dashboard serves TLS.
fn secure(app: &App) -> &'static str {
    if app.tls {
        "; Secure"
    } else {
        ""
    }
}

/// The sign-in form, with a fresh CSRF token in a cookie and in the form.
async fn login_page(State(app): State<Arc<App>>) -> Response {
    login_form(&app, StatusCode::OK, None)
}

fn login_form(app: &App, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = session::random_id();
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/login{}",
        secure(app)
    );
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Html(page::login(error, &csrf, app.oidc.is_some())),
    )
        .into_response()
}

/// HTTP 429 with `Retry-After` once `ip` has failed to sign in too often.
fn too_many_sign_ins(app: &App, ip: std::net::IpAddr) -> Option<Response> {
    let wait = app.sign_ins.check(ip).err()?;
    let mut response = login_form(
        app,
        StatusCode::TOO_MANY_REQUESTS,
        Some("Too many failed sign-ins from here. Wait a minute and try again."),
    );
    if let Ok(v) = wait.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(response)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(app): State<Arc<App>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some(refused) = too_many_sign_ins(&app, peer.ip()) {
        return refused;
    }
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same(&expected, &form.csrf) {
        return login_form(
            &app,
            StatusCode::FORBIDDEN,
            Some("The form had expired. Sign in again."),
        );
    }
    let token = form.token.trim().to_string();
    if app
        .auth
        .authenticate(Some(&format!("Bearer {token}")))
        .is_err()
    {
        app.sign_ins.failed(peer.ip());
        return login_form(
            &app,
            StatusCode::UNAUTHORIZED,
            Some("That token is not known. Check it and try again."),
        );
    }
    let spent = format!(
        "{LOGIN_CSRF_COOKIE}=; HttpOnly; SameSite=Strict; Path=/login; Max-Age=0{}",
        secure(&app)
    );
    signed_in(&app, token, None, spent)
}

/// Starts a session for `token` and sends the browser home, clearing
/// the sign-in's own cookie (`spent`).
fn signed_in(app: &App, token: String, id_token: Option<String>, spent: String) -> Response {
    let id = app.sessions.start(token, id_token);
    let session_cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{}",
        secure(app)
    );
    let mut response = Redirect::to("/").into_response();
    for c in [session_cookie, spent] {
        if let Ok(v) = c.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Sends the browser to the identity provider to sign in.
async fn oidc_start(State(app): State<Arc<App>>) -> Response {
    let Some(oidc) = &app.oidc else {
        return (
            StatusCode::NOT_FOUND,
            Html(page::message(
                "Not found",
                "No identity provider is configured: sign in with a token.",
            )),
        )
            .into_response();
    };
    match oidc.begin() {
        Ok(begun) => {
            let cookie = format!(
                "{OIDC_STATE_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age={}{}",
                begun.state,
                oidc::PENDING_FOR.as_secs(),
                secure(&app)
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&begun.url)).into_response()
        }
        Err(e) => login_form(
            &app,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&e.to_string()),
        ),
    }
}

#[derive(Deserialize)]
struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The identity provider's answer: a session when it checks out.
async fn oidc_callback(
    State(app): State<Arc<App>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(oidc) = &app.oidc else {
        return (
            StatusCode::NOT_FOUND,
            Html(page::message(
                "Not found",
                "No identity provider is configured.",
            )),
        )
            .into_response();
    };
    if let Some(refused) = too_many_sign_ins(&app, peer.ip()) {
        return refused;
    }
    let mine = cookie(&headers, OIDC_STATE_COOKIE).unwrap_or_default();
    if !answer.error.is_empty() {
        tracing::warn!(error = %answer.error, description = %answer.error_description, "the identity provider did not sign someone in");
        return login_form(
            &app,
            StatusCode::UNAUTHORIZED,
            Some("The identity provider did not sign you in. Try again."),
        );
    }
    if mine.is_empty() || !session::same(&mine, &answer.state) || answer.code.is_empty() {
        app.sign_ins.failed(peer.ip());
        return login_form(
            &app,
            StatusCode::FORBIDDEN,
            Some("That sign-in was not started here, or has expired. Sign in again."),
        );
    }
    let auth = app.auth.clone();
    let finished = oidc
        .finish(
            &answer.state,
            &answer.code,
            |id_token, client_id, nonce| auth.verify_id_token(id_token, client_id, nonce),
            |access| auth.authenticate(Some(&format!("Bearer {access}"))),
        )
        .await;
    match finished {
        Ok(tokens) => {
            let spent = format!(
                "{OIDC_STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/auth; Max-Age=0{}",
                secure(&app)
            );
            signed_in(&app, tokens.access_token, Some(tokens.id_token), spent)
        }
        Err(e) => {
            app.sign_ins.failed(peer.ip());
            tracing::warn!(error = %e, "sign-in at the identity provider refused");
            login_form(
                &app,
                StatusCode::UNAUTHORIZED,
                Some(&format!("Not signed in: {e}")),
            )
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session on the server (a copied cookie is then worthless) and
/// clears the cookie. Refused without the session's CSRF token.
async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let mut ended = None;
    if let Some(id) = cookie(&headers, COOKIE) {
        match app.sessions.get(&id) {
            Some(s) if !session::same(&s.csrf, &form.csrf) => {
                return (
                    StatusCode::FORBIDDEN,
                    Html(page::message(
                        "Not signed out",
                        "The sign-out form had expired. Reload the page and sign out again.",
                    )),
                )
                    .into_response()
            }
            Some(s) => {
                app.sessions.end(&id);
                ended = s.id_token;
            }
            None => {}
        }
    }
    let cookie = format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure(&app)
    );
    // Signed in at the identity provider: end its session too, so the
    // next sign-in asks again.
    let next = match (&app.oidc, ended) {
        (Some(oidc), Some(id_token)) => oidc
            .end_session_url(&id_token, &oidc.after_sign_out())
            .unwrap_or_else(|| "/login".into()),
        _ => "/login".into(),
    };
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// Headers on every response: nothing cached (pages carry names), no
/// framing, no script but the dashboard's own, no referrer leaving.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in security_header_values() {
        if let Ok(v) = value.parse() {
            h.insert(name, v);
        }
    }
    response
}

static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The Content-Security-Policy: only the dashboard's own script (by hash),
/// forms only to itself, and to `provider` (the identity provider, where
/// sign-out continues) when given.
fn init_csp(provider: Option<&str>) -> &'static str {
    CSP.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(page::LIVE_SCRIPT.as_bytes()));
        let provider = provider
            .map(|p| format!(" {}", p.trim_end_matches('/')))
            .unwrap_or_default();
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self'; form-action 'self'{provider}; base-uri 'none'; \
             frame-ancestors 'none'"
        )
    })
}

fn security_header_values() -> [(header::HeaderName, String); 5] {
    let csp = init_csp(None);
    [
        (header::CONTENT_SECURITY_POLICY, csp.to_string()),
        (header::CACHE_CONTROL, "no-store".into()),
        (header::X_FRAME_OPTIONS, "DENY".into()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
        (header::REFERRER_POLICY, "no-referrer".into()),
    ]
}

/// The pick-up list for workers: soonest first, alerts highlighted, names
/// only where consent allows; the page follows changes through
/// `/api/partnerships/<code>/pickups/events`.
async fn pickups_page(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((caller, token, csrf)) = caller(&app, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let Some(partnership) = app.partnerships.get(&code) else {
        return unknown_partnership();
    };
    let request = ListPickupsRequest {
        partnership_code: code.clone(),
        ..Default::default()
    };
    match PickupListServiceClient::new(app.pickup.clone())
        .list_pickups(with_token(request, &token))
        .await
    {
        Ok(reply) => Html(page::pickups(
            &page::Who {
                caller: &caller,
                csrf: &csrf,
            },
            partnership,
            &reply.into_inner().entries,
        ))
        .into_response(),
        Err(s) if s.code() == Code::PermissionDenied => (
            StatusCode::FORBIDDEN,
            Html(page::message(
                "Not allowed",
                "Your role may not see the pick-up list.",
            )),
        )
            .into_response(),
        Err(s) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(page::message("Pick-up list unavailable", s.message())),
        )
            .into_response(),
    }
}

/// Server-sent events: each entry of the partnership's list as it changes
/// (event `entry`, data: the entry's JSON), starting with the whole list.
async fn pickup_events(
    State(app): State<Arc<App>>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    let Some((caller, token, _)) = caller(&app, &headers) else {
        return unauthorised_json();
    };
    // Each open live page holds a stream here and a watch on the
    // projection: a cap per caller (the projection has its own).
    let slot = match app.live.acquire(&caller) {
        Ok(slot) => slot,
        Err(e) => return http_error(hub_runtime::ApiError(e).into()),
    };
    let request = WatchPickupsRequest {
        partnership_code: code,
    };
    let stream = match PickupListServiceClient::new(app.pickup.clone())
        .watch_pickups(with_token(request, &token))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return http_error(s),
    };
    // The page's stream ends when the dashboard stops (the browser's
    // EventSource reconnects by itself), not at the drain's time limit.
    let stopping = app.stopping.clone().cancelled_owned();
    let events = stream.take_until(stopping).map(move |item| {
        let _held_while_the_page_is_open = &slot;
        Ok::<_, std::convert::Infallible>(match item {
            Ok(entry) => Event::default()
                .event("entry")
                .data(hub_proto::json::pickup_entry(&entry).to_string()),
            Err(status) => Event::default().event("error").data(status.message()),
        })
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
