//! Health of every component: the gateway's probes, the services' standard
//! gRPC health, Prometheus targets and rules, Alertmanager receivers.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use serde_json::Value;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::client::{grpc_channel, poll};
use crate::platform::Platform;
use crate::platform::monitoring::{SERVICE_DOWN_ALERT, SERVICE_DOWN_FOR};
use crate::report::Category;

pub async fn run(category: &mut Category, platform: &Platform) -> anyhow::Result<()> {
    let gateway = platform.anonymous();

    category
        .step("gateway /healthz answers 200 with status ok", async {
            let reply = gateway.get("/healthz").await?;
            let body = reply.expect(StatusCode::OK)?;
            ensure!(body["status"] == "ok", "unexpected body {body}");
            ensure!(
                reply.header("x-request-id").is_some(),
                "the response has no x-request-id header"
            );
            Ok(())
        })
        .await
        .ok();

    category
        .step(
            "gateway /readyz answers 200: both backends serving, Redis cache serving",
            async {
                let reply = gateway.get("/readyz").await?;
                let body = reply.expect(StatusCode::OK)?;
                ensure!(body["status"] == "ready", "status is not ready: {body}");
                ensure!(body["checks"]["user_service"] == "serving", "{body}");
                ensure!(body["checks"]["order_service"] == "serving", "{body}");
                ensure!(body["checks"]["cache"] == "serving", "{body}");
                Ok(())
            },
        )
        .await
        .ok();

    for (name, address, service) in [
        (
            "user-svc",
            &platform.addresses.user_grpc,
            "user.v1.UserService",
        ),
        (
            "order-svc",
            &platform.addresses.order_grpc,
            "order.v1.OrderService",
        ),
    ] {
        category
            .step(
                &format!("{name}: grpc.health.v1 Check is SERVING for the server and {service}"),
                async {
                    let mut client = HealthClient::new(grpc_channel(address)?);
                    for checked in ["", service] {
                        let status = client
                            .check(HealthCheckRequest {
                                service: checked.to_owned(),
                            })
                            .await
                            .with_context(|| format!("Check({checked:?}) failed"))?
                            .into_inner()
                            .status();
                        ensure!(
                            status == ServingStatus::Serving,
                            "Check({checked:?}) returned {}",
                            status.as_str_name()
                        );
                    }
                    Ok(())
                },
            )
            .await
            .ok();
    }

    category
        .step(
            "Prometheus: all three targets up (lintas-gateway, lintas-services x2)",
            every_target_up(platform),
        )
        .await
        .ok();

    category
        .step(
            &format!(
                "Prometheus: the repository's rules are loaded, {SERVICE_DOWN_ALERT} with for {SERVICE_DOWN_FOR} (the repository has {})",
                platform.generated.repository_service_down_for
            ),
            async {
                let url = format!("{}/api/v1/rules", platform.prometheus_url());
                let body: Value = platform.http.get(url).send().await?.json().await?;
                let rules: Vec<&Value> = body["data"]["groups"]
                    .as_array()
                    .context("no rule groups")?
                    .iter()
                    .flat_map(|group| group["rules"].as_array().into_iter().flatten())
                    .collect();
                let recording = rules.iter().filter(|rule| rule["type"] == "recording").count();
                let alerting = rules.iter().filter(|rule| rule["type"] == "alerting").count();
                ensure!(recording > 0, "no recording rule loaded");
                let service_down = rules
                    .iter()
                    .find(|rule| rule["name"] == SERVICE_DOWN_ALERT)
                    .with_context(|| format!("{SERVICE_DOWN_ALERT} is not loaded; {alerting} alerting rules are"))?;
                ensure!(
                    service_down["duration"] == 5,
                    "{SERVICE_DOWN_ALERT} has duration {} s, expected 5 s",
                    service_down["duration"]
                );
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "Alertmanager: the oncall-webhook receiver is configured",
            async {
                let url = format!(
                    "http://{}/api/v2/receivers",
                    platform.addresses.alertmanager
                );
                let receivers: Value = platform.http.get(url).send().await?.json().await?;
                let names: Vec<&str> = receivers
                    .as_array()
                    .context("receivers is not a list")?
                    .iter()
                    .filter_map(|receiver| receiver["name"].as_str())
                    .collect();
                ensure!(names.contains(&"oncall-webhook"), "receivers are {names:?}");
                Ok(())
            },
        )
        .await
        .ok();

    Ok(())
}

/// Waits until Prometheus has scraped all three targets successfully.
pub async fn every_target_up(platform: &Platform) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/targets?state=active", platform.prometheus_url());
    poll(
        Duration::from_secs(20),
        Duration::from_millis(500),
        "every target up",
        || async {
            let body: Value = platform.http.get(&url).send().await?.json().await?;
            let targets = body["data"]["activeTargets"]
                .as_array()
                .context("no activeTargets")?;
            let mut apps: Vec<String> = Vec::new();
            for target in targets {
                let app = target["labels"]["app"].as_str().unwrap_or("?");
                let job = target["labels"]["job"].as_str().unwrap_or("?");
                if target["health"] != "up" {
                    bail!(
                        "target {app} (job {job}) is {}: {}",
                        target["health"],
                        target["lastError"]
                    );
                }
                apps.push(format!("{job}/{app}"));
            }
            apps.sort();
            let expected = [
                "lintas-gateway/gateway",
                "lintas-services/order-svc",
                "lintas-services/user-svc",
            ];
            ensure!(
                apps == expected,
                "targets are {apps:?}, expected {expected:?}"
            );
            Ok(Some(()))
        },
    )
    .await
}
