//! The gateway: the platform's only public entry point.
//!
//! It serves a REST facade (`rest`), a GraphQL facade (`graphql`), OpenAPI
//! documentation, health endpoints and Prometheus metrics over HTTP, and
//! turns each request into calls to the user and order gRPC services
//! (`backend`). Both facades share one set of backend operations (`api`) and
//! one error mapping (`error`). The gateway stores no data of its own; it
//! caches user lookups (`cache`) in Redis or in its memory. In front of the
//! routes, `edge` applies CORS, security headers, load shedding and
//! per-client rate limits.

mod api;
mod audit;
pub mod auth;
mod backend;
mod cache;
mod edge;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod graphql;
mod health;
mod https;
mod inputs;
mod int64;
mod metrics;
mod model;
mod request_id;
mod resilience;
mod rest;
mod telemetry;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::serve::ListenerExt;
use lintas_common::balance::Balance;
use lintas_common::tls::ServerTlsSettings;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::{AuthSettings, JwksSource, JwtSettings};
pub use backend::BackendSettings;
#[doc(hidden)]
pub use cache::FillPause;
pub use cache::{CacheSettings, NearCacheSettings};
pub use edge::cors::CorsSettings;
pub use edge::rate_limit::RateLimitSettings;
pub use graphql::QueryLimits;
pub use resilience::ResilienceSettings;
pub use rest::{DOCS_PATH, OPENAPI_PATH};

use crate::api::Api;
use crate::auth::Authenticator;
use crate::backend::Backends;
use crate::cache::UserCache;
use crate::edge::load_shed::InFlightLimit;
use crate::edge::rate_limit::RateLimiter;
use crate::health::ReadinessState;
use crate::metrics::Metrics;

/// Settings that [`serve`] needs; the binary fills them from flags and the
/// environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub user_service: BackendSettings,
    pub order_service: BackendSettings,
    /// Total time budget of one request; every backend call made for it
    /// gets the time left as its gRPC deadline.
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    pub graphql_limits: QueryLimits,
    pub cache: CacheSettings,
    /// Web pages that may call the API from their scripts; none by default.
    pub cors: CorsSettings,
    /// Whether clients reach the gateway over HTTPS, through a proxy that
    /// terminates TLS. Then responses carry `Strict-Transport-Security`,
    /// which they also carry whenever `tls` is set.
    pub behind_tls: bool,
    /// HTTPS on the gateway's own listener: its certificate and key. Unset,
    /// the listener serves plain HTTP, as it does behind an ingress that
    /// terminates TLS.
    pub tls: Option<ServerTlsSettings>,
    /// Call a backend that is not on loopback without TLS, which
    /// `lintas_common::tls::plaintext` rejects otherwise.
    pub allow_plaintext: bool,
    /// Requests in progress at once, past which the gateway responds 503
    /// at once. Probes and `/metrics` are not counted.
    pub max_in_flight_requests: usize,
    /// Requests each client may send; unlimited by default.
    pub rate_limit: RateLimitSettings,
    /// How callers authenticate. Off in [`Settings::with_backends`]; the
    /// binary does not start until it is configured or switched off.
    pub auth: AuthSettings,
    /// Reverse proxies in front of the gateway that append the address of
    /// their peer to `X-Forwarded-For`. 0 takes the TCP peer as the client.
    pub trusted_proxy_hops: usize,
}

impl Settings {
    /// Settings with the documented defaults for the given backend URLs.
    pub fn with_backends(user_service_url: &str, order_service_url: &str) -> Self {
        let backend = |url: &str| BackendSettings {
            url: url.to_owned(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            resilience: ResilienceSettings::default(),
            tls: None,
            balance: Balance::Single,
        };
        Self {
            user_service: backend(user_service_url),
            order_service: backend(order_service_url),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            graphql_limits: QueryLimits::default(),
            cache: CacheSettings::default(),
            cors: CorsSettings::default(),
            behind_tls: false,
            tls: None,
            allow_plaintext: false,
            // 10,000 requests per second that take 10 ms each keep 100 in
            // progress (Little's law), so shedding starts only when
            // responses slow down and requests pile up. NOTE: an estimate,
            // not measured under production traffic.
            max_in_flight_requests: 1024,
            rate_limit: RateLimitSettings::default(),
            trusted_proxy_hops: 0,
            auth: AuthSettings::Disabled,
        }
    }
}

/// Builds the whole HTTP application: the routes, inside the edge
/// protections, inside the layers that every request passes, inside the
/// security headers.
pub fn app(settings: &Settings) -> anyhow::Result<Router> {
    let metrics = Metrics::new();
    let authenticator = Authenticator::new(&settings.auth)?;
    let router = routes(settings, &metrics, &authenticator)?;
    let entry = edge::entry::Entry {
        metrics,
        request_timeout: settings.request_timeout,
        trusted_proxy_hops: settings.trusted_proxy_hops,
    };
    let router = with_edge_protections(router, settings, &entry.metrics, authenticator)?
        .layer(axum::middleware::from_fn_with_state(
            entry,
            edge::entry::run,
        ))
        .layer(CatchPanicLayer::custom(panic_response));
    // Outermost, so that a panic's 500 gets the headers too.
    let served_over_https = settings.behind_tls || settings.tls.is_some();
    Ok(edge::security_headers::apply(router, served_over_https))
}

/// Builds every route with its state.
fn routes(
    settings: &Settings,
    metrics: &Metrics,
    authenticator: &Authenticator,
) -> anyhow::Result<Router> {
    let backends = Backends::connect_lazy(
        &settings.user_service,
        &settings.order_service,
        settings.allow_plaintext,
        metrics.clone(),
    )?;
    let cache = UserCache::new(&settings.cache, metrics.clone())?;
    let api = Api::new(backends.clone(), cache.clone());
    let graphql_state = graphql::GraphqlState {
        schema: graphql::schema(api.clone(), settings.graphql_limits),
        checks: std::sync::Arc::new(graphql::DocumentChecks::new(settings.graphql_limits)),
        api: api.clone(),
    };

    let router = Router::new()
        .merge(rest::router(api, authenticator.clone()))
        .route(
            graphql::GRAPHQL_PATH,
            get(graphql::handle)
                .post(graphql::handle)
                .with_state(graphql_state)
                .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
                    authenticator.clone(),
                    auth::authenticate,
                ))
                // async-graphql reads the body itself, past DefaultBodyLimit.
                .layer(tower_http::limit::RequestBodyLimitLayer::new(
                    settings.max_body_bytes,
                )),
        )
        .merge(graphql::playground::router())
        .route("/healthz", get(health::healthz))
        .route(
            "/readyz",
            get(health::readyz).with_state(ReadinessState { backends, cache }),
        )
        .route(
            "/metrics",
            get(metrics::serve_metrics).with_state(metrics.clone()),
        )
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes));
    Ok(router)
}

/// Wraps `router` in the rate limit, then load shedding, then CORS. They
/// run inside the metrics and tracing layers, so rejected and preflight
/// requests are counted and logged like any other. Load shedding comes
/// before the rate limit, so that a shed request costs no Redis call and no
/// token. CORS is outermost, so that a browser may read a 429 or 503, and
/// no preflight request is shed or limited.
fn with_edge_protections(
    router: Router,
    settings: &Settings,
    metrics: &Metrics,
    authenticator: Authenticator,
) -> anyhow::Result<Router> {
    let protections = edge::Protections {
        in_flight: InFlightLimit::new(settings.max_in_flight_requests, metrics.clone())?,
        authenticator,
        rate_limiter: RateLimiter::new(
            &settings.rate_limit,
            &settings.cache,
            settings.trusted_proxy_hops,
            metrics.clone(),
        )?,
    };
    let mut router = router.layer(axum::middleware::from_fn_with_state(
        protections,
        edge::protect,
    ));
    if let Some(cors) = edge::cors::layer(&settings.cors)? {
        router = router.layer(cors);
    }
    Ok(router)
}

/// Serves the gateway on `listener`, over HTTPS when `settings.tls` is
/// set, until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app(&settings)?;
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let address = listener.local_addr()?;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%address, scheme, user_service = %settings.user_service.url,
        order_service = %settings.order_service.url, "gateway listening");

    let served = match &settings.tls {
        Some(tls) => {
            let listener = https::HttpsListener::new(listener, tls)
                .context("invalid HTTPS settings (GATEWAY_TLS_CERT, GATEWAY_TLS_KEY)")?;
            // axum provides the client's address (ConnectInfo) for a tapped
            // listener of any kind, and for a bare TcpListener only.
            let listener = listener.tap_io(|_stream| {});
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    served.context("gateway server failed")?;
    tracing::info!("gateway stopped");
    Ok(())
}

fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("request handler panicked");
    error::ApiError::internal().into_response()
}
