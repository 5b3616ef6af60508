//! The `gateway` binary: reads its configuration and calls [`gateway::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::{BoolishValueParser, RangedU64ValueParser};
use lintas_common::balance::Balance;
use lintas_common::tls::{ClientTlsSettings, IdentityFiles, ServerTlsSettings};
use lintas_telemetry::{LogFormat, TelemetryConfig};

/// HTTP gateway: REST and GraphQL over the user and order gRPC services.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address and port to serve HTTP on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// URL of the user service: https://HOST:PORT with BACKEND_TLS_CA,
    /// http://HOST:PORT without.
    #[arg(
        long,
        env = "USER_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    user_service_url: String,

    /// URL of the order service: https://HOST:PORT with BACKEND_TLS_CA,
    /// http://HOST:PORT without.
    #[arg(
        long,
        env = "ORDER_SERVICE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    order_service_url: String,

    /// PEM CA certificates that sign the backends' certificates; turns TLS
    /// on for calls to both. The system's CA store is not used.
    #[arg(long, env = "BACKEND_TLS_CA")]
    backend_tls_ca: Option<PathBuf>,

    /// PEM client certificate chain presented to both backends.
    #[arg(long, env = "BACKEND_TLS_CERT", requires_all = ["backend_tls_key", "backend_tls_ca"])]
    backend_tls_cert: Option<PathBuf>,

    /// PEM private key of BACKEND_TLS_CERT.
    #[arg(long, env = "BACKEND_TLS_KEY", requires = "backend_tls_cert")]
    backend_tls_key: Option<PathBuf>,

    /// Name that the user service's certificate must carry. Default: the
    /// host of USER_SERVICE_URL.
    #[arg(
        long,
        env = "USER_SERVICE_TLS_SERVER_NAME",
        requires = "backend_tls_ca"
    )]
    user_service_tls_server_name: Option<String>,

    /// Name that the order service's certificate must carry. Default: the
    /// host of ORDER_SERVICE_URL.
    #[arg(
        long,
        env = "ORDER_SERVICE_TLS_SERVER_NAME",
        requires = "backend_tls_ca"
    )]
    order_service_tls_server_name: Option<String>,

    /// Call a backend outside loopback without TLS: on or off. Off, the
    /// gateway stops at startup with such a backend URL and no
    /// BACKEND_TLS_CA.
    #[arg(long, env = "ALLOW_PLAINTEXT", default_value = "off", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    allow_plaintext: bool,

    /// PEM certificate chain for HTTPS on the gateway's own listener,
    /// certificate first; turns HTTPS on, with HTTP/2 and HTTP/1.1, and
    /// Strict-Transport-Security. Re-read every minute.
    #[arg(long, env = "GATEWAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of GATEWAY_TLS_CERT.
    #[arg(long, env = "GATEWAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// How calls spread over a backend's servers. `single` keeps one HTTP/2
    /// connection to the URL's host. `dns` resolves the host, such as a
    /// Kubernetes headless Service, every BACKEND_RESOLVE_INTERVAL_MS and
    /// sends calls to each of its addresses in turn.
    #[arg(long, env = "BACKEND_BALANCE", default_value = "single", value_parser = ["single", "dns"])]
    backend_balance: String,

    /// Interval between lookups of the backends' host names with
    /// BACKEND_BALANCE=dns, in milliseconds.
    #[arg(long, env = "BACKEND_RESOLVE_INTERVAL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..))]
    backend_resolve_interval_ms: u64,

    /// Upper bound on each backend call, in milliseconds.
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 5000)]
    backend_timeout_ms: u64,

    /// Total time budget of one request, in milliseconds; backend calls get
    /// the time left as their gRPC deadline.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,

    /// Most retries of a backend call that failed with UNAVAILABLE (reads,
    /// and writes with an idempotency key); 0 turns retries off.
    #[arg(long, env = "BACKEND_RETRY_MAX", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=10))]
    backend_retry_max: u32,

    /// Retries allowed per 100 backend calls, over the last ten seconds.
    #[arg(long, env = "BACKEND_RETRY_BUDGET_PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    backend_retry_budget_percent: u32,

    /// Consecutive failed calls that open a backend's circuit.
    #[arg(long, env = "BACKEND_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    backend_breaker_failures: u32,

    /// Time an open circuit fails calls fast before a probe call, in
    /// milliseconds.
    #[arg(long, env = "BACKEND_BREAKER_COOLDOWN_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    backend_breaker_cooldown_ms: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 65536)]
    max_body_bytes: usize,

    /// Redis URL for the user cache shared by all gateway replicas, for
    /// example redis://127.0.0.1:6379. Without it each gateway caches in its
    /// own memory.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,

    /// Cache user lookups: on or off.
    #[arg(long, env = "CACHE_ENABLED", default_value = "on", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    cache_enabled: bool,

    /// Lifetime of a cached user, in seconds. A write that bypasses the
    /// gateway stays unseen for at most this long.
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    cache_ttl_secs: u64,

    /// Lifetime of a cached "user not found", in seconds; 0 turns it off.
    #[arg(long, env = "CACHE_NEGATIVE_TTL_SECS", default_value_t = 5)]
    cache_negative_ttl_secs: u64,

    /// Upper bound on each Redis operation, in milliseconds; a slower one
    /// sends the request to the user service.
    #[arg(long, env = "CACHE_REDIS_TIMEOUT_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    cache_redis_timeout_ms: u64,

    /// Prefix of every cache key in Redis.
    #[arg(long, env = "CACHE_KEY_PREFIX", default_value = "lintas")]
    cache_key_prefix: String,

    /// Consecutive Redis failures after which the cache is bypassed.
    #[arg(long, env = "CACHE_FAILURE_THRESHOLD", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    cache_failure_threshold: u32,

    /// How long the cache is bypassed after failures before Redis is tried
    /// again, in milliseconds.
    #[arg(long, env = "CACHE_COOLDOWN_MS", default_value_t = 5000)]
    cache_cooldown_ms: u64,

    /// Keep users read from Redis in the gateway's memory as well, dropped
    /// when Redis reports a write of them: on or off. Used only with
    /// REDIS_URL.
    #[arg(long, env = "NEAR_CACHE_ENABLED", default_value = "on", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    near_cache_enabled: bool,

    /// Maximum lifetime of a user in the near cache, in milliseconds. It
    /// bounds how long a lost Redis invalidation stays unseen.
    #[arg(long, env = "NEAR_CACHE_TTL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    near_cache_ttl_ms: u64,

    /// Maximum number of users in the near cache.
    #[arg(long, env = "NEAR_CACHE_MAX_ENTRIES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    near_cache_max_entries: u64,

    /// Origins whose web pages may call the API, comma-separated, such as
    /// https://app.example.com; `*` allows every origin. Unset: no CORS
    /// headers, so browsers block cross-origin calls.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    cors_allowed_origins: Vec<String>,

    /// Let those pages send cookies and HTTP authentication: on or off. Not
    /// allowed with `*`.
    #[arg(long, env = "CORS_ALLOW_CREDENTIALS", default_value = "off", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    cors_allow_credentials: bool,

    /// Whether clients reach the gateway over HTTPS, through a proxy that
    /// terminates TLS: on or off. On sends Strict-Transport-Security, as
    /// GATEWAY_TLS_CERT does.
    #[arg(long, env = "BEHIND_TLS", default_value = "off", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, hide_possible_values = true)]
    behind_tls: bool,

    /// Requests in progress at once; more get 503 at once. /healthz,
    /// /readyz and /metrics are not counted.
    #[arg(long, env = "MAX_IN_FLIGHT_REQUESTS", default_value_t = 1024, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_in_flight_requests: usize,

    /// Requests per second that each client may sustain; 0 turns rate
    /// limiting off. With REDIS_URL, all replicas share each client's limit.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 0.0)]
    rate_limit_per_second: f64,

    /// Requests that a client may send at once after being idle; 0 means
    /// one second's worth.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 0)]
    rate_limit_burst: u32,

    /// Reverse proxies in front of the gateway that append to
    /// X-Forwarded-For. The client is the entry that the outermost one
    /// appended; 0 takes the TCP peer and ignores the header.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 0)]
    trusted_proxy_hops: usize,

    #[command(flatten)]
    auth: gateway::auth::AuthArgs,

    /// Log line format: json or pretty.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: LogFormat,
}

// glibc's allocator took a fifth of the gateway's CPU under load, with
// contention between threads; mimalloc keeps per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry =
        lintas_telemetry::init(&TelemetryConfig::from_env("gateway", args.log_format)?)?;
    lintas_common::memory::apply_process_settings();

    let mut settings =
        gateway::Settings::with_backends(&args.user_service_url, &args.order_service_url);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        settings.tls = Some(ServerTlsSettings::new(cert, key));
    }
    settings.user_service.tls = backend_tls(&args, args.user_service_tls_server_name.clone());
    settings.order_service.tls = backend_tls(&args, args.order_service_tls_server_name.clone());
    settings.allow_plaintext = args.allow_plaintext;
    settings.user_service.timeout = Duration::from_millis(args.backend_timeout_ms);
    settings.order_service.timeout = Duration::from_millis(args.backend_timeout_ms);
    settings.request_timeout = Duration::from_millis(args.request_timeout_ms);
    let balance = Balance::from_mode(
        &args.backend_balance,
        Duration::from_millis(args.backend_resolve_interval_ms),
    )?;
    settings.user_service.balance = balance;
    settings.order_service.balance = balance;
    let resilience = gateway::ResilienceSettings {
        retry_max: args.backend_retry_max,
        retry_ratio: args.backend_retry_budget_percent as f32 / 100.0,
        breaker_failures: args.backend_breaker_failures,
        breaker_cooldown: Duration::from_millis(args.backend_breaker_cooldown_ms),
        ..gateway::ResilienceSettings::default()
    };
    settings.user_service.resilience = resilience.clone();
    settings.order_service.resilience = resilience;
    settings.max_body_bytes = args.max_body_bytes;
    settings.cache = gateway::CacheSettings {
        enabled: args.cache_enabled,
        redis_url: args.redis_url,
        ttl: Duration::from_secs(args.cache_ttl_secs),
        negative_ttl: Duration::from_secs(args.cache_negative_ttl_secs),
        redis_timeout: Duration::from_millis(args.cache_redis_timeout_ms),
        key_prefix: args.cache_key_prefix,
        failure_threshold: args.cache_failure_threshold,
        cooldown: Duration::from_millis(args.cache_cooldown_ms),
        near_cache: gateway::NearCacheSettings {
            enabled: args.near_cache_enabled,
            ttl: Duration::from_millis(args.near_cache_ttl_ms),
            max_entries: args.near_cache_max_entries,
        },
        fill_pause: None,
        near_fill_pause: None,
    };
    settings.cors = gateway::CorsSettings {
        allowed_origins: args.cors_allowed_origins,
        allow_credentials: args.cors_allow_credentials,
    };
    settings.behind_tls = args.behind_tls;
    settings.max_in_flight_requests = args.max_in_flight_requests;
    settings.rate_limit = gateway::RateLimitSettings {
        per_second: args.rate_limit_per_second,
        burst: args.rate_limit_burst,
    };
    settings.trusted_proxy_hops = args.trusted_proxy_hops;
    settings.auth = args.auth.settings()?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to bind {}", args.listen))?;
    let result = gateway::serve(listener, settings, lintas_common::shutdown::signal()).await;
    telemetry.shutdown().await;
    result
}

/// TLS settings of the calls to one backend, when BACKEND_TLS_CA is set.
fn backend_tls(args: &Args, server_name: Option<String>) -> Option<ClientTlsSettings> {
    let ca = args.backend_tls_ca.as_ref()?;
    let identity = match (&args.backend_tls_cert, &args.backend_tls_key) {
        (Some(cert), Some(key)) => Some(IdentityFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    Some(ClientTlsSettings {
        identity,
        server_name,
        ..ClientTlsSettings::new(ca)
    })
}
