//! Stopping the order service makes Prometheus fire the repository's
//! service-down alert, and Alertmanager delivers it to the webhook through
//! the repository's routing. Starting the service again resolves it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use serde_json::Value;

use crate::checks::connectivity::every_target_up;
use crate::client::poll;
use crate::platform::monitoring::SERVICE_DOWN_ALERT;
use crate::platform::{Platform, Service};
use crate::report::Category;

/// Upper bound on each wait: a missed scrape (1 s), the rule's shortened
/// `for:` (5 s), an evaluation (1 s) and Alertmanager's grouping (1 s to
/// 2 s) need about 10 s together.
const ALERT_TIMEOUT: Duration = Duration::from_secs(40);

/// Receiver that the repository routes critical alerts to.
const RECEIVER: &str = "oncall-webhook";

pub async fn run(category: &mut Category, platform: &mut Platform) -> anyhow::Result<()> {
    let outage = stop_and_fire(category, platform).await;
    let recovery = recover(category, platform).await;
    outage.and(recovery)
}

/// First half: stops the order service and waits for the firing alert and
/// its notification.
async fn stop_and_fire(category: &mut Category, platform: &mut Platform) -> anyhow::Result<()> {
    let gateway = platform.anonymous();

    category
        .step(
            &format!("before the stop: {SERVICE_DOWN_ALERT} is not active and was never delivered"),
            async {
                ensure!(
                    alert_state(platform, "order-svc").await?.is_none(),
                    "{SERVICE_DOWN_ALERT} is already active"
                );
                ensure!(
                    platform
                        .webhook
                        .notifications()
                        .iter()
                        .all(|body| !mentions(body, SERVICE_DOWN_ALERT)),
                    "the webhook already received {SERVICE_DOWN_ALERT}: {:?}",
                    platform.webhook.notifications()
                );
                Ok(())
            },
        )
        .await?;

    let stopped_at = Instant::now();
    category
        .step(
            "order-svc stopped with SIGTERM",
            platform.service_mut(Service::OrderSvc).stop(),
        )
        .await?;
    let platform = &*platform;

    category
        .step(
            "while order-svc is down the gateway's /readyz answers 503 naming it",
            async {
                let reply = gateway.get("/readyz").await?;
                let body = reply.expect(StatusCode::SERVICE_UNAVAILABLE)?;
                ensure!(body["checks"]["order_service"] != "serving", "{body}");
                ensure!(body["checks"]["user_service"] == "serving", "{body}");
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            &format!("Prometheus fires {SERVICE_DOWN_ALERT} for app order-svc"),
            async {
                poll(
                    ALERT_TIMEOUT,
                    Duration::from_millis(500),
                    "the firing alert",
                    || async {
                        Ok(alert_state(platform, "order-svc")
                            .await?
                            .filter(|state| state == "firing"))
                    },
                )
                .await?;
                println!(
                    "        fired {:.1} s after the stop",
                    stopped_at.elapsed().as_secs_f64()
                );
                Ok(())
            },
        )
        .await?;

    category
        .step(
            &format!("Alertmanager delivers it to {RECEIVER}: status firing, severity critical, grouped by alertname and app"),
            async {
                let body = platform
                    .webhook
                    .wait_for(ALERT_TIMEOUT, |body| is_notification(body, "firing"))
                    .await
                    .with_context(|| {
                        format!("no firing notification within {} s; received {:?}", ALERT_TIMEOUT.as_secs(), platform.webhook.notifications())
                    })?;
                check_notification(&body, "firing")?;
                println!("        delivered {:.1} s after the stop", stopped_at.elapsed().as_secs_f64());
                Ok(())
            },
        )
        .await
        .ok();

    Ok(())
}

/// Second half: starts the order service again, also after a failed first
/// half, and waits for the alert to resolve and the resolved notification.
async fn recover(category: &mut Category, platform: &mut Platform) -> anyhow::Result<()> {
    if !platform.service_mut(Service::OrderSvc).is_stopped() {
        return Ok(());
    }
    let started_at = Instant::now();
    category
        .step(
            "order-svc started again on the same ports",
            platform.start_service_again(Service::OrderSvc),
        )
        .await?;
    let platform = &*platform;

    category
        .step(
            &format!("Prometheus resolves {SERVICE_DOWN_ALERT}"),
            async {
                poll(
                    ALERT_TIMEOUT,
                    Duration::from_millis(500),
                    "the alert to resolve",
                    || async {
                        Ok(alert_state(platform, "order-svc")
                            .await?
                            .is_none()
                            .then_some(()))
                    },
                )
                .await
            },
        )
        .await
        .ok();

    category
        .step(
            &format!("Alertmanager delivers the resolved notification to {RECEIVER}"),
            async {
                let body = platform
                    .webhook
                    .wait_for(ALERT_TIMEOUT, |body| is_notification(body, "resolved"))
                    .await
                    .with_context(|| {
                        format!(
                            "no resolved notification within {} s; received {:?}",
                            ALERT_TIMEOUT.as_secs(),
                            platform.webhook.notifications()
                        )
                    })?;
                check_notification(&body, "resolved")?;
                println!(
                    "        delivered {:.1} s after the restart",
                    started_at.elapsed().as_secs_f64()
                );
                Ok(())
            },
        )
        .await
        .ok();

    category
        .step(
            "afterwards every Prometheus target is up again",
            every_target_up(platform),
        )
        .await
        .ok();

    category
        .step("no alert for any other app reached the webhook", async {
            for body in platform.webhook.notifications() {
                for alert in body["alerts"].as_array().into_iter().flatten() {
                    let app = &alert["labels"]["app"];
                    if app != "order-svc" {
                        bail!(
                            "unexpected alert {} for app {app}: {body}",
                            alert["labels"]["alertname"]
                        );
                    }
                }
            }
            Ok(())
        })
        .await
        .ok();
    Ok(())
}

/// State of the service-down alert for `app` in Prometheus: `pending`,
/// `firing`, or `None` when it is not active.
async fn alert_state(platform: &Platform, app: &str) -> anyhow::Result<Option<String>> {
    let url = format!("{}/api/v1/alerts", platform.prometheus_url());
    let body: Value = platform.http.get(url).send().await?.json().await?;
    let alerts = body["data"]["alerts"]
        .as_array()
        .context("no alerts list")?;
    Ok(alerts
        .iter()
        .find(|alert| {
            alert["labels"]["alertname"] == SERVICE_DOWN_ALERT && alert["labels"]["app"] == app
        })
        .and_then(|alert| alert["state"].as_str())
        .map(str::to_owned))
}

fn mentions(body: &Value, alert_name: &str) -> bool {
    body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|alert| alert["labels"]["alertname"] == alert_name)
}

fn is_notification(body: &Value, status: &str) -> bool {
    body["status"] == status && mentions(body, SERVICE_DOWN_ALERT)
}

/// Checks the routing and grouping that the repository's Alertmanager
/// configuration promises for a critical alert.
fn check_notification(body: &Value, status: &str) -> anyhow::Result<()> {
    ensure!(
        body["receiver"] == RECEIVER,
        "receiver is {}, expected {RECEIVER}: {body}",
        body["receiver"]
    );
    ensure!(
        body["status"] == status,
        "status is {}: {body}",
        body["status"]
    );
    let group = &body["groupLabels"];
    ensure!(
        group["alertname"] == SERVICE_DOWN_ALERT && group["app"] == "order-svc",
        "groupLabels are {group}, expected alertname {SERVICE_DOWN_ALERT} and app order-svc"
    );
    let alert = body["alerts"]
        .as_array()
        .and_then(|alerts| alerts.first())
        .context("no alerts in the notification")?;
    ensure!(
        alert["labels"]["severity"] == "critical",
        "severity is {}",
        alert["labels"]["severity"]
    );
    ensure!(
        alert["status"] == status,
        "the alert's status is {}",
        alert["status"]
    );
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    ensure!(
        summary.contains("order-svc"),
        "the summary does not name order-svc: {summary:?}"
    );
    Ok(())
}
