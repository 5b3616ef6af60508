//! The platform as the benchmark runs it: a private PostgreSQL and Redis,
//! the two services, and one gateway process per configuration that the
//! scenarios compare, all on loopback.
//!
//! Every binary runs with the production settings of the manifests: JSON
//! logs at `info` with one access-log line per request. Except in the
//! gateway without telemetry, every trace is sampled and exported and every
//! log line is pushed to the counting sink. Every gateway requires bearer
//! tokens signed with a shared HS256 secret, as a deployment with a shared
//! secret would, so each HTTP request pays for a token check. The one
//! change is a cache TTL of an hour instead of a minute, so that entries
//! warmed before the scenarios do not expire during them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lintas_e2e::platform::postgres::Postgres;
use lintas_e2e::platform::process::{Managed, Spec};
use lintas_e2e::platform::redis::Redis;
use lintas_e2e::platform::tokens::Tokens;
use lintas_e2e::platform::{PortPicker, wait_listening};

use crate::sink::Sink;

/// Gateway configurations, one process each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    /// Redis cache on, telemetry on.
    Cached,
    /// Cache off: every lookup reaches the user service.
    Uncached,
    /// Redis cache on, no trace export, no sampling and no Loki push.
    Untraced,
    /// As `Cached`, kept apart so its peak memory is that of the
    /// many-connections scenario alone.
    ManyConnections,
}

impl GatewayKind {
    pub const ALL: [Self; 4] = [
        Self::Cached,
        Self::Uncached,
        Self::Untraced,
        Self::ManyConnections,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Cached => "gateway-cached",
            Self::Uncached => "gateway-uncached",
            Self::Untraced => "gateway-untraced",
            Self::ManyConnections => "gateway-many",
        }
    }
}

pub struct Gateway {
    pub kind: GatewayKind,
    pub address: String,
    pub process: Managed,
}

pub struct BenchPlatform {
    pub sink: Sink,
    /// The gateways' signing secret and the admin token that the load sends.
    pub tokens: Tokens,
    pub postgres: Postgres,
    pub redis: Redis,
    pub user_svc: Managed,
    pub user_address: String,
    pub order_svc: Managed,
    pub order_address: String,
    pub gateways: Vec<Gateway>,
    pub artifacts: PathBuf,
    _state: tempfile::TempDir,
}

impl BenchPlatform {
    pub async fn start(bin_dir: &Path, artifacts: &Path) -> anyhow::Result<Self> {
        let state = tempfile::Builder::new()
            .prefix("lintas-bench-state-")
            .tempdir()?;
        let mut ports = PortPicker::default();
        let sink = Sink::start().await?;
        let tokens = Tokens::new()?;

        println!("  starting PostgreSQL and Redis");
        let postgres = Postgres::start(ports.port()?, artifacts).await?;
        postgres.create_database("lintas_users", artifacts).await?;
        postgres.create_database("lintas_orders", artifacts).await?;
        let redis_dir = state.path().join("redis");
        std::fs::create_dir(&redis_dir)?;
        let redis = Redis::start(ports.port()?, &redis_dir, artifacts).await?;

        let binaries = Binaries {
            bin_dir,
            artifacts,
            sink: &sink,
        };
        let user_database = postgres.database_url("lintas_users");
        let order_database = postgres.database_url("lintas_orders");
        binaries.migrate("user-svc", &user_database).await?;
        binaries.migrate("order-svc", &order_database).await?;

        println!(
            "  starting user-svc, order-svc and {} gateways",
            GatewayKind::ALL.len()
        );
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let user_address = ports.address()?;
        let user_svc = binaries
            .start(
                binaries
                    .spec("user-svc", true)
                    .env("USER_SVC_LISTEN", &user_address)
                    .env("METRICS_LISTEN", ports.address()?)
                    .env("DATABASE_URL", &user_database)
                    .env("PAGE_TOKEN_SECRET", &secret),
                &user_address,
            )
            .await?;
        let order_address = ports.address()?;
        let order_svc = binaries
            .start(
                binaries
                    .spec("order-svc", true)
                    .env("ORDER_SVC_LISTEN", &order_address)
                    .env("METRICS_LISTEN", ports.address()?)
                    .env("USER_SERVICE_URL", format!("http://{user_address}"))
                    .env("DATABASE_URL", &order_database)
                    .env("PAGE_TOKEN_SECRET", &secret),
                &order_address,
            )
            .await?;

        let mut gateways = Vec::new();
        for kind in GatewayKind::ALL {
            let address = ports.address()?;
            let spec = binaries
                .spec("gateway", kind != GatewayKind::Untraced)
                .env("GATEWAY_LISTEN", &address)
                .env("USER_SERVICE_URL", format!("http://{user_address}"))
                .env("ORDER_SERVICE_URL", format!("http://{order_address}"))
                .env("REDIS_URL", redis.url())
                // Longer than the whole run, so that a warm cache stays warm
                // from one scenario to the next.
                .env("CACHE_TTL_SECS", "3600")
                .env(
                    "CACHE_ENABLED",
                    if kind == GatewayKind::Uncached {
                        "off"
                    } else {
                        "on"
                    },
                );
            let mut spec = tokens.configure_gateway(spec);
            spec.name = kind.name().to_owned();
            let process = binaries.start(spec, &address).await?;
            gateways.push(Gateway {
                kind,
                address,
                process,
            });
        }

        Ok(Self {
            sink,
            tokens,
            postgres,
            redis,
            user_svc,
            user_address,
            order_svc,
            order_address,
            gateways,
            artifacts: artifacts.to_owned(),
            _state: state,
        })
    }

    pub fn gateway(&self, kind: GatewayKind) -> &Gateway {
        self.gateways
            .iter()
            .find(|gateway| gateway.kind == kind)
            .expect("every gateway kind is started")
    }

    /// Stops the binaries with SIGTERM, then Redis and PostgreSQL.
    pub async fn stop(mut self) {
        for gateway in &mut self.gateways {
            let _ = gateway.process.stop().await;
        }
        let _ = self.order_svc.stop().await;
        let _ = self.user_svc.stop().await;
        let _ = self.redis.process.stop().await;
        let _ = self.postgres.stop(&self.artifacts).await;
    }
}

struct Binaries<'a> {
    bin_dir: &'a Path,
    artifacts: &'a Path,
    sink: &'a Sink,
}

impl Binaries<'_> {
    /// Builds the command of binary `name`, with or without telemetry export.
    fn spec(&self, name: &str, telemetry: bool) -> Spec {
        let spec = Spec::new(name, self.bin_dir.join(name))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("DEPLOYMENT_ENVIRONMENT", "bench")
            .env("OTEL_SERVICE_NAME", name);
        if telemetry {
            spec.env("OTEL_EXPORTER_OTLP_ENDPOINT", &self.sink.otlp_endpoint)
                .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
                .env("OTEL_TRACES_SAMPLER_ARG", "1.0")
                .env("LOKI_URL", &self.sink.loki_url)
        } else {
            spec.env("OTEL_TRACES_SAMPLER", "always_off")
        }
    }

    async fn migrate(&self, name: &str, database_url: &str) -> anyhow::Result<()> {
        let mut spec = self
            .spec(name, false)
            .env("DATABASE_URL", database_url)
            .arg("--migrate-only");
        spec.name = format!("{name}-migrate");
        spec.run_to_end(
            &self.artifacts.join(format!("{name}-migrate.log")),
            std::time::Duration::from_secs(60),
        )
        .await
        .with_context(|| format!("{name} --migrate-only failed"))
    }

    async fn start(&self, spec: Spec, address: &str) -> anyhow::Result<Managed> {
        let name = spec.name.clone();
        let mut process = Managed::start(spec, self.artifacts)?;
        wait_listening(&mut process, 0, address)
            .await
            .with_context(|| format!("{name} did not start"))?;
        Ok(process)
    }
}
