//! Starts and stops everything the suite runs against.
//!
//! Inside the driver process: the OTLP trace receiver and the Loki push
//! endpoint from `lintas_telemetry::testing`, and the Alertmanager webhook
//! receiver. As child processes, each on a free loopback port: a private
//! PostgreSQL cluster with one database per service, a private Redis, the
//! user service, the order service, the gateway, Prometheus and
//! Alertmanager. The three binaries get the settings of the Kubernetes
//! manifests (`k8s/base/kustomization.yaml`) with loopback addresses, except
//! that every trace is sampled and logs are also pushed to Loki. The gateway
//! requires bearer tokens signed with an HS256 secret made for the run
//! (`tokens`).

pub mod monitoring;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod tokens;
pub mod webhook;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use lintas_telemetry::testing::{LokiReceiver, OtlpReceiver};

use crate::client::Gateway;
use crate::report::Category;
use monitoring::{Generated, Target};
use postgres::Postgres;
use process::{Managed, Spec};
use redis::Redis;
use tokens::Tokens;
use webhook::WebhookReceiver;

/// How long a binary may take from start to its "listening" log line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the suite finds its inputs and writes its outputs.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The repository's root, for `monitoring/` and `README.md`.
    pub repository: PathBuf,
    /// Folder with the `gateway`, `user-svc` and `order-svc` executables.
    pub bin_dir: PathBuf,
    /// This run's artifacts folder: logs, generated configuration,
    /// screenshots and the summary.
    pub artifacts: PathBuf,
}

/// Loopback addresses, as `127.0.0.1:PORT`.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub gateway: String,
    pub user_grpc: String,
    pub user_metrics: String,
    pub order_grpc: String,
    pub order_metrics: String,
    pub prometheus: String,
    pub alertmanager: String,
}

/// The running platform.
pub struct Platform {
    pub paths: Paths,
    pub addresses: Addresses,
    pub http: reqwest::Client,
    /// The gateway's signing secret and the admin token.
    pub tokens: Tokens,
    pub otlp: OtlpReceiver,
    pub loki: LokiReceiver,
    pub webhook: WebhookReceiver,
    pub generated: Generated,
    pub postgres: Postgres,
    pub redis: Redis,
    pub user_svc: Managed,
    pub order_svc: Managed,
    pub gateway: Managed,
    pub prometheus: Managed,
    pub alertmanager: Managed,
    /// Redis, Prometheus and Alertmanager data; deleted at the end.
    _state: tempfile::TempDir,
}

impl Platform {
    /// Starts everything, one step per component, in the order a deployment
    /// would: storage, telemetry backends, the binaries, then monitoring.
    /// When a step fails, what already started is stopped by the drop of
    /// its handle.
    pub async fn start(category: &mut Category, paths: Paths) -> anyhow::Result<Self> {
        let artifacts = paths.artifacts.clone();
        let state = tempfile::Builder::new()
            .prefix("lintas-e2e-state-")
            .tempdir()
            .context("failed to create a temporary folder")?;
        process::record_temp_dir(&artifacts, state.path())?;
        let mut ports = PortPicker::default();
        let addresses = Addresses {
            gateway: ports.address()?,
            user_grpc: ports.address()?,
            user_metrics: ports.address()?,
            order_grpc: ports.address()?,
            order_metrics: ports.address()?,
            prometheus: ports.address()?,
            alertmanager: ports.address()?,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?;
        let tokens = Tokens::new()?;

        let postgres_port = ports.port()?;
        let postgres = category
            .step(
                &format!("PostgreSQL: private cluster on 127.0.0.1:{postgres_port}, databases lintas_users and lintas_orders"),
                async {
                    let postgres = Postgres::start(postgres_port, &artifacts).await?;
                    postgres.create_database("lintas_users", &artifacts).await?;
                    postgres.create_database("lintas_orders", &artifacts).await?;
                    Ok(postgres)
                },
            )
            .await?;

        let redis_port = ports.port()?;
        let redis_dir = state.path().join("redis");
        std::fs::create_dir(&redis_dir)?;
        let redis = category
            .step(
                &format!("Redis: private server on 127.0.0.1:{redis_port} with a password"),
                Redis::start(redis_port, &redis_dir, &artifacts),
            )
            .await?;

        let (otlp, loki, webhook) = category
            .step(
                "test doubles: OTLP receiver, Loki push endpoint, Alertmanager webhook",
                async {
                    Ok((
                        OtlpReceiver::start().await,
                        LokiReceiver::start().await,
                        WebhookReceiver::start().await?,
                    ))
                },
            )
            .await?;

        let binaries = Binaries {
            bin_dir: &paths.bin_dir,
            artifacts: &artifacts,
            addresses: &addresses,
            otlp_endpoint: &otlp.endpoint,
            loki_url: &loki.url,
            tokens: &tokens,
        };
        let user_database = postgres.database_url("lintas_users");
        let order_database = postgres.database_url("lintas_orders");
        category
            .step(
                "migrations: user-svc --migrate-only, order-svc --migrate-only",
                async {
                    binaries.migrate("user-svc", &user_database).await?;
                    binaries.migrate("order-svc", &order_database).await
                },
            )
            .await?;

        let page_token_secret = uuid::Uuid::new_v4().simple().to_string();
        let user_svc = category
            .step(
                &format!("user-svc listening on {}", addresses.user_grpc),
                binaries.start_user_svc(&user_database, &page_token_secret),
            )
            .await?;
        let order_svc = category
            .step(
                &format!("order-svc listening on {}", addresses.order_grpc),
                binaries.start_order_svc(&order_database, &page_token_secret),
            )
            .await?;
        let gateway = category
            .step(
                &format!("gateway listening on {}", addresses.gateway),
                binaries.start_gateway(&redis.url()),
            )
            .await?;

        let targets = [
            ("gateway", "http", &addresses.gateway),
            ("user-svc", "metrics", &addresses.user_metrics),
            ("order-svc", "metrics", &addresses.order_metrics),
        ]
        .map(|(app, port_name, address)| Target {
            app: app.to_owned(),
            port_name: port_name.to_owned(),
            address: address.clone(),
        });
        let generated = category
            .step(
                "Prometheus and Alertmanager configuration generated from monitoring/",
                async {
                    monitoring::generate(
                        &paths.repository,
                        &artifacts.join("monitoring"),
                        &targets,
                        &addresses.alertmanager,
                        &webhook.url,
                    )
                },
            )
            .await?;

        let alertmanager = category
            .step(
                &format!("Alertmanager ready on {}", addresses.alertmanager),
                async {
                    let storage = state.path().join("alertmanager");
                    std::fs::create_dir(&storage)?;
                    let mut process = monitoring::start_alertmanager(
                        &generated.alertmanager_config,
                        &storage,
                        &addresses.alertmanager,
                        &artifacts,
                    )?;
                    let url = format!("http://{}", addresses.alertmanager);
                    monitoring::wait_ready(&http, &url, &mut process, Duration::from_secs(30))
                        .await?;
                    Ok(process)
                },
            )
            .await?;
        let prometheus = category
            .step(
                &format!("Prometheus ready on {}", addresses.prometheus),
                async {
                    let storage = state.path().join("prometheus");
                    std::fs::create_dir(&storage)?;
                    let mut process = monitoring::start_prometheus(
                        &generated.prometheus_config,
                        &storage,
                        &addresses.prometheus,
                        &artifacts,
                    )?;
                    let url = format!("http://{}", addresses.prometheus);
                    monitoring::wait_ready(&http, &url, &mut process, Duration::from_secs(30))
                        .await?;
                    Ok(process)
                },
            )
            .await?;

        Ok(Self {
            paths,
            addresses,
            http,
            tokens,
            otlp,
            loki,
            webhook,
            generated,
            postgres,
            redis,
            user_svc,
            order_svc,
            gateway,
            prometheus,
            alertmanager,
            _state: state,
        })
    }

    /// Base URL of the gateway, `http://127.0.0.1:PORT`.
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.addresses.gateway)
    }

    /// Returns a gateway client that sends the admin token.
    pub fn admin(&self) -> Gateway {
        Gateway::with_token(self.gateway_url(), self.http.clone(), &self.tokens.admin)
    }

    /// Returns a gateway client that sends the token of the regular user
    /// `user_id`.
    pub fn user(&self, user_id: &str) -> anyhow::Result<Gateway> {
        let token = self.tokens.user(user_id)?;
        Ok(Gateway::with_token(
            self.gateway_url(),
            self.http.clone(),
            &token,
        ))
    }

    /// Returns a gateway client that sends no token.
    pub fn anonymous(&self) -> Gateway {
        Gateway::anonymous(self.gateway_url(), self.http.clone())
    }

    pub fn prometheus_url(&self) -> String {
        format!("http://{}", self.addresses.prometheus)
    }

    /// Starts a stopped service again and waits for its "listening" line.
    pub async fn start_service_again(&mut self, service: Service) -> anyhow::Result<()> {
        let address = match service {
            Service::UserSvc => self.addresses.user_grpc.clone(),
            Service::OrderSvc => self.addresses.order_grpc.clone(),
        };
        let process = self.service_mut(service);
        let from = process.log_len();
        process.start_again()?;
        wait_listening(process, from, &address).await
    }

    pub fn service_mut(&mut self, service: Service) -> &mut Managed {
        match service {
            Service::UserSvc => &mut self.user_svc,
            Service::OrderSvc => &mut self.order_svc,
        }
    }

    /// Stops everything in reverse start order and reports every failure.
    /// The binaries get SIGTERM, so they flush their spans and log lines.
    pub async fn stop(mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for process in [
            &mut self.gateway,
            &mut self.order_svc,
            &mut self.user_svc,
            &mut self.prometheus,
            &mut self.alertmanager,
            &mut self.redis.process,
        ] {
            if let Err(error) = process.stop().await {
                problems.push(format!("{error:#}"));
            }
        }
        if let Err(error) = self.postgres.stop(&self.paths.artifacts).await {
            problems.push(format!("PostgreSQL: {error:#}"));
        }
        problems
    }
}

/// A backend service that the checks stop and start.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    UserSvc,
    OrderSvc,
}

/// Settings shared by the three binaries' start-up.
struct Binaries<'a> {
    bin_dir: &'a Path,
    artifacts: &'a Path,
    addresses: &'a Addresses,
    otlp_endpoint: &'a str,
    loki_url: &'a str,
    tokens: &'a Tokens,
}

impl Binaries<'_> {
    /// Builds the command of binary `name` with the telemetry settings of
    /// the manifests' `lintas-telemetry` ConfigMap, the test receivers and
    /// every trace sampled.
    fn spec(&self, name: &str, service_name: &str) -> Spec {
        Spec::new(name, self.bin_dir.join(name))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("DEPLOYMENT_ENVIRONMENT", "e2e")
            .env("OTEL_SERVICE_NAME", service_name)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", self.otlp_endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", "1.0")
            .env("LOKI_URL", self.loki_url)
    }

    /// Runs `NAME --migrate-only`, as the manifests' init container does.
    async fn migrate(&self, name: &str, database_url: &str) -> anyhow::Result<()> {
        self.spec(name, &format!("{name}-migrate"))
            .env("DATABASE_URL", database_url)
            .arg("--migrate-only")
            .run_to_end(
                &self.artifacts.join(format!("{name}-migrate.log")),
                START_TIMEOUT,
            )
            .await
    }

    async fn start_user_svc(&self, database_url: &str, secret: &str) -> anyhow::Result<Managed> {
        let spec = self
            .spec("user-svc", "user-svc")
            .env("USER_SVC_LISTEN", &self.addresses.user_grpc)
            .env("METRICS_LISTEN", &self.addresses.user_metrics)
            .env("DATABASE_URL", database_url)
            .env("DATABASE_MAX_CONNECTIONS", "8")
            .env("PAGE_TOKEN_SECRET", secret);
        self.start(spec, &self.addresses.user_grpc).await
    }

    async fn start_order_svc(&self, database_url: &str, secret: &str) -> anyhow::Result<Managed> {
        let spec = self
            .spec("order-svc", "order-svc")
            .env("ORDER_SVC_LISTEN", &self.addresses.order_grpc)
            .env("METRICS_LISTEN", &self.addresses.order_metrics)
            .env("USER_SERVICE_URL", by_name(&self.addresses.user_grpc))
            .env("USER_SERVICE_BALANCE", "dns")
            .env("DATABASE_URL", database_url)
            .env("DATABASE_MAX_CONNECTIONS", "8")
            .env("PAGE_TOKEN_SECRET", secret);
        self.start(spec, &self.addresses.order_grpc).await
    }

    async fn start_gateway(&self, redis_url: &str) -> anyhow::Result<Managed> {
        let spec = self
            .spec("gateway", "gateway")
            .env("GATEWAY_LISTEN", &self.addresses.gateway)
            .env("USER_SERVICE_URL", by_name(&self.addresses.user_grpc))
            .env("ORDER_SERVICE_URL", by_name(&self.addresses.order_grpc))
            .env("BACKEND_BALANCE", "dns")
            .env("BACKEND_TIMEOUT_MS", "5000")
            .env("MAX_BODY_BYTES", "65536")
            .env("REDIS_URL", redis_url);
        let spec = self.tokens.configure_gateway(spec);
        self.start(spec, &self.addresses.gateway).await
    }

    async fn start(&self, spec: Spec, address: &str) -> anyhow::Result<Managed> {
        let mut process = Managed::start(spec, self.artifacts)?;
        wait_listening(&mut process, 0, address).await?;
        Ok(process)
    }
}

/// Returns the http URL of a loopback `address` with the host name
/// `localhost`, so that the clients resolve it as they resolve a headless
/// Service in a cluster (BACKEND_BALANCE=dns).
fn by_name(address: &str) -> String {
    let port = address.rsplit(':').next().unwrap_or_default();
    format!("http://localhost:{port}")
}

/// Cargo's output folder of `profile` (`debug`, `release`, ...): under
/// `CARGO_TARGET_DIR` when it is set, as Cargo places it, else under the
/// repository's `target`. A relative `CARGO_TARGET_DIR` is taken from the
/// current folder, as Cargo takes it.
pub fn profile_dir(repository: &Path, profile: &str) -> PathBuf {
    profile_dir_within(std::env::var_os("CARGO_TARGET_DIR"), repository, profile)
}

fn profile_dir_within(
    target_dir: Option<std::ffi::OsString>,
    repository: &Path,
    profile: &str,
) -> PathBuf {
    target_dir
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| repository.join("target"), PathBuf::from)
        .join(profile)
}

/// Waits for the JSON log line whose message ends in "listening" and whose
/// `address` field is the serving address, which each binary writes once
/// its listener is bound.
pub async fn wait_listening(process: &mut Managed, from: u64, address: &str) -> anyhow::Result<()> {
    let line = process
        .wait_for_line(from, START_TIMEOUT, |line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|json| {
                json["message"]
                    .as_str()
                    .is_some_and(|message| message.ends_with("listening"))
                    && json["address"] == address
            })
        })
        .await?;
    let json: serde_json::Value = serde_json::from_str(&line)?;
    if json["level"] != "INFO" {
        bail!(
            "the listening line has level {}, expected INFO: {line}",
            json["level"]
        );
    }
    Ok(())
}

/// Hands out free loopback ports, never the same one twice in a run.
#[derive(Default)]
pub struct PortPicker {
    handed_out: HashSet<u16>,
}

impl PortPicker {
    /// Returns a port that was free a moment ago. Another program may still
    /// take it before the suite binds it, and then that component fails to
    /// start.
    pub fn port(&mut self) -> anyhow::Result<u16> {
        for _ in 0..50 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            if self.handed_out.insert(port) {
                return Ok(port);
            }
        }
        bail!("found no unused loopback port in 50 tries")
    }

    pub fn address(&mut self) -> anyhow::Result<String> {
        Ok(format!("127.0.0.1:{}", self.port()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_follows_cargo_target_dir() {
        let repository = Path::new("/src/lintas");
        assert_eq!(
            profile_dir_within(None, repository, "debug"),
            Path::new("/src/lintas/target/debug")
        );
        assert_eq!(
            profile_dir_within(Some("".into()), repository, "debug"),
            Path::new("/src/lintas/target/debug")
        );
        assert_eq!(
            profile_dir_within(Some("/cache/build".into()), repository, "production"),
            Path::new("/cache/build/production")
        );
        assert_eq!(
            profile_dir_within(Some("out".into()), repository, "release"),
            Path::new("out/release")
        );
    }
}
