//! The API pages in a real browser: `e2e/browser/playground.mjs` drives
//! Debian's headless Chromium with playwright-core and prints one JSON line
//! per step, which this module turns into report lines.
//!
//! The browser may only reach the gateway: the script aborts every other
//! request and Chromium resolves no host name, so nothing leaves the
//! machine. The gateway serves GraphiQL and Swagger UI with all their files,
//! so the script fails a step when a request was aborted. On each page it
//! enters the user's own bearer token as a person would, runs a query
//! through the UI and checks that the user is shown.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::platform::Platform;
use crate::platform::process::Spec;
use crate::report::Category;

/// Chromium from Debian's `chromium` package.
pub const CHROMIUM: &str = "/usr/bin/chromium";

pub async fn run(
    category: &mut Category,
    platform: &Platform,
    user_id: &str,
    user_name: &str,
) -> anyhow::Result<()> {
    let script = platform.paths.repository.join("e2e/browser/playground.mjs");
    let modules = platform
        .paths
        .repository
        .join("e2e/browser/node_modules/playwright-core");
    category
        .step("Chromium and playwright-core are installed", async {
            if !std::path::Path::new(CHROMIUM).exists() {
                bail!("{CHROMIUM} is missing: install the chromium package (e2e/run.sh does)");
            }
            if !modules.exists() {
                bail!(
                    "{} is missing: run `npm ci --prefix e2e/browser` (e2e/run.sh does)",
                    modules.display()
                );
            }
            Ok(())
        })
        .await?;

    category
        .step(
            "API docs: every operationId in /api/openapi.json is unique, as Swagger UI needs",
            unique_operation_ids(platform),
        )
        .await
        .ok();

    let token = platform.tokens.user(user_id)?;
    let spec = Spec::new("browser", "node")
        .arg(script.display().to_string())
        .env("GATEWAY_URL", platform.gateway_url())
        .env("USER_ID", user_id)
        .env("USER_NAME", user_name)
        .env("USER_TOKEN", token)
        .env("CHROMIUM", CHROMIUM)
        .env("ARTIFACTS", platform.paths.artifacts.display().to_string());
    let output = tokio::time::timeout(Duration::from_secs(90), spec.command().output())
        .await
        .context("the browser script did not finish within 90 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    std::fs::write(
        platform.paths.artifacts.join("browser.log"),
        format!("### stdout\n{stdout}\n### stderr\n{stderr}"),
    )?;

    let mut steps = 0;
    for line in stdout.lines() {
        let Ok(result) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let name = result["step"].as_str().unwrap_or("unnamed browser step");
        let detail = result["detail"].as_str().unwrap_or_default();
        let elapsed = Duration::from_millis(result["ms"].as_u64().unwrap_or(0));
        steps += 1;
        let outcome = match result["status"].as_str() {
            Some("pass") => Ok(()),
            Some("fail") => Err(detail.to_owned()),
            other => Err(format!("unknown step status {other:?}: {detail}")),
        };
        category.external(name, outcome, elapsed);
    }
    if !output.status.success() || steps == 0 {
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "the browser script exited with {} after {steps} step(s):\n{}",
            output.status,
            tail.join("\n")
        );
    }
    Ok(())
}

/// Checks that no two operations share an `operationId`. OpenAPI requires
/// unique ids, and Swagger UI identifies operations by them: with a
/// duplicate, "Try it out" on one operation sends the request of another.
async fn unique_operation_ids(platform: &Platform) -> anyhow::Result<()> {
    let url = format!("{}/api/openapi.json", platform.gateway_url());
    let document: Value = platform.http.get(url).send().await?.json().await?;
    let mut operations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, item) in document["paths"]
        .as_object()
        .context("the document has no paths")?
    {
        for (method, operation) in item.as_object().into_iter().flatten() {
            if let Some(id) = operation["operationId"].as_str() {
                operations
                    .entry(id.to_owned())
                    .or_default()
                    .push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let duplicates: Vec<String> = operations
        .iter()
        .filter(|(_, uses)| uses.len() > 1)
        .map(|(id, uses)| format!("{id:?} on {}", uses.join(" and ")))
        .collect();
    if !duplicates.is_empty() {
        bail!("duplicate operationId: {}", duplicates.join("; "));
    }
    Ok(())
}
