//! Runs the README's "A whole flow with curl" block against the running
//! gateway and checks every response, so the documentation cannot drift
//! from the API.
//!
//! The block runs as written under `bash -euo pipefail`, with these
//! changes: `API=` points at the suite's gateway, `AUTH=` carries the
//! suite's admin token in place of the quickstart's, a `curl` shell function
//! adds `--write-out` so that each request also reports its HTTP status on
//! stderr, and a last `jq` prints the ids the block created. The block's
//! `jq` output is read as a stream of JSON values, one per printing
//! command, and compared with what the README promises. When the block
//! changes, the expected statuses and outputs here change with it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::platform::Platform;
use crate::platform::process::Spec;
use crate::report::Category;

const HEADING: &str = "## A whole flow with curl";

/// HTTP statuses of the block's requests, in order: create the user,
/// place the order, pay, ship, deliver, cancel the delivered order, place,
/// pay and cancel the second order, then four GETs.
const EXPECTED_STATUSES: [u16; 13] = [
    201, 201, 200, 200, 200, 409, 201, 200, 200, 200, 200, 200, 200,
];

/// Values the block prints, the suite's ids included.
const EXPECTED_OUTPUTS: usize = 12;

pub async fn run(category: &mut Category, platform: &Platform) -> anyhow::Result<()> {
    let gateway = platform.admin();
    let artifacts = &platform.paths.artifacts;

    let script = category
        .step(
            &format!("README.md: extract the \"{}\" block", &HEADING[3..]),
            async {
                let readme = std::fs::read_to_string(platform.paths.repository.join("README.md"))?;
                let block = extract_block(&readme)?;
                let script = prepare_script(
                    &block,
                    &format!("{}/api/v1", platform.gateway_url()),
                    &platform.tokens.admin,
                )?;
                std::fs::write(artifacts.join("readme-flow.sh"), &script)?;
                Ok((block, script))
            },
        )
        .await?;
    let (block, script) = script;

    let (stdout, statuses) = category
        .step(
            "README.md: the block runs to the end under bash -euo pipefail",
            async { run_script(&script, artifacts).await },
        )
        .await?;

    category
        .step(
            &format!("README.md: the requests answer {EXPECTED_STATUSES:?}"),
            async {
                ensure!(
                    statuses == EXPECTED_STATUSES,
                    "statuses were {statuses:?}, the README implies {EXPECTED_STATUSES:?}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    let outputs = category
        .step("README.md: every jq command printed JSON", async {
            json_stream(&stdout)
        })
        .await?;

    category
        .step(
            "README.md: each printed response is what the README says",
            async { check_outputs(&outputs, &block) },
        )
        .await
        .ok();

    category
        .step(
            "README.md: afterwards the first order is DELIVERED and the second refunded",
            async {
                let ids = outputs.last().context("no output")?;
                let first = gateway
                    .get(&format!("/api/v1/orders/{}", text(&ids["order_id"])?))
                    .await?
                    .expect(StatusCode::OK)?
                    .clone();
                ensure!(first["status"] == "DELIVERED", "first order: {first}");
                let second = gateway
                    .get(&format!(
                        "/api/v1/orders/{}",
                        text(&ids["second_order_id"])?
                    ))
                    .await?
                    .expect(StatusCode::OK)?
                    .clone();
                ensure!(
                    second["status"] == "CANCELLED" && second["refunded"] == true,
                    "second order: {second}"
                );
                Ok(())
            },
        )
        .await
        .ok();

    Ok(())
}

/// Returns the first ```sh block after the heading.
fn extract_block(readme: &str) -> anyhow::Result<String> {
    let after_heading = readme
        .split_once(HEADING)
        .with_context(|| format!("README.md has no heading {HEADING:?}"))?
        .1;
    let section = after_heading.split("\n## ").next().unwrap_or_default();
    let start = section
        .find("```sh\n")
        .with_context(|| format!("the section {HEADING:?} has no ```sh block"))?;
    let body = &section[start + "```sh\n".len()..];
    let end = body
        .find("\n```")
        .context("the ```sh block is not closed")?;
    Ok(body[..end + 1].to_owned())
}

/// Builds the script that runs the block; see the module documentation.
fn prepare_script(block: &str, api_url: &str, token: &str) -> anyhow::Result<String> {
    let mut api_lines = 0;
    let mut auth_lines = 0;
    let lines: Vec<String> = block
        .lines()
        .map(|line| {
            if line.starts_with("API=") {
                api_lines += 1;
                format!("API={api_url}")
            } else if line.starts_with("AUTH=") {
                auth_lines += 1;
                format!("AUTH=\"Authorization: Bearer {token}\"")
            } else {
                line.to_owned()
            }
        })
        .collect();
    ensure!(
        api_lines == 1,
        "expected one API= line in the block, found {api_lines}"
    );
    ensure!(
        auth_lines == 1,
        "expected one AUTH= line in the block, found {auth_lines}"
    );
    Ok(format!("{PROLOGUE}\n{}\n{EPILOGUE}\n", lines.join("\n")))
}

const PROLOGUE: &str = r#"set -euo pipefail
# Added by the end-to-end suite: each request reports its status on stderr.
curl() { command curl --write-out '%{stderr}HTTP %{http_code}\n' "$@"; }"#;

const EPILOGUE: &str = r#"# Added by the end-to-end suite: the ids, for the checks afterwards.
jq -n --arg user "$USER_ID" --arg order "$ORDER_ID" --arg second "$SECOND_ORDER_ID" \
  '{user_id: $user, order_id: $order, second_order_id: $second}'"#;

/// Runs the script with bash and returns its stdout and the HTTP statuses
/// it reported.
async fn run_script(script: &str, artifacts: &Path) -> anyhow::Result<(String, Vec<u16>)> {
    let spec = Spec::new("readme-flow", "bash").arg("-c").arg(script);
    let output = tokio::time::timeout(Duration::from_secs(60), spec.command().output())
        .await
        .context("the README block did not finish within 60 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    std::fs::write(
        artifacts.join("readme-flow.log"),
        format!("### stdout\n{stdout}\n### stderr\n{stderr}"),
    )?;
    if !output.status.success() {
        bail!(
            "bash exited with {}; stderr:\n{}",
            output.status,
            stderr
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let statuses = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("HTTP "))
        .map(|code| code.trim().parse().context("unreadable HTTP status"))
        .collect::<anyhow::Result<Vec<u16>>>()?;
    Ok((stdout, statuses))
}

fn json_stream(stdout: &str) -> anyhow::Result<Vec<Value>> {
    serde_json::Deserializer::from_str(stdout)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("the output is not a stream of JSON values:\n{stdout}"))
}

/// Compares the printed responses with the README's promises.
fn check_outputs(outputs: &[Value], block: &str) -> anyhow::Result<()> {
    ensure!(
        outputs.len() == EXPECTED_OUTPUTS,
        "the block printed {} JSON values (the suite's ids included), the suite expects {EXPECTED_OUTPUTS}",
        outputs.len()
    );
    let ids = &outputs[EXPECTED_OUTPUTS - 1];
    let user_id = text(&ids["user_id"])?;
    let order_id = text(&ids["order_id"])?;
    let second_order_id = text(&ids["second_order_id"])?;

    // The README states the first output in a comment beside the command.
    let promised = promised_output(block)?;
    ensure!(
        outputs[0] == promised,
        "order summary {} differs from the README's comment {promised}",
        outputs[0]
    );
    ensure!(
        outputs[1] == json!({ "order": "PAID", "payment": "SUCCEEDED" }),
        "payment: {}",
        outputs[1]
    );
    ensure!(outputs[2] == "SHIPPED", "ship: {}", outputs[2]);
    ensure!(outputs[3] == "DELIVERED", "deliver: {}", outputs[3]);
    ensure!(
        outputs[4]["status"] == 409 && outputs[4]["code"] == "FAILED_PRECONDITION",
        "cancelling the delivered order: {}",
        outputs[4]
    );
    ensure!(
        outputs[5] == "PAID",
        "paying the second order: {}",
        outputs[5]
    );
    ensure!(
        outputs[6] == json!({ "status": "CANCELLED", "refunded": true }),
        "cancelling the paid order: {}",
        outputs[6]
    );

    let users = outputs[7]["users"]
        .as_array()
        .context("users list without users")?;
    ensure!(
        users
            .iter()
            .any(|user| user["id"] == user_id && user["name"] == "Dewi Lestari"),
        "the name filter did not return Dewi: {}",
        outputs[7]
    );
    let status = order_status_filter(block)?;
    let filtered = outputs[8]["orders"]
        .as_array()
        .context("orders list without orders")?;
    let totals: Vec<i64> = filtered
        .iter()
        .map(|order| {
            order["total"]
                .as_str()
                .and_then(|total| total.parse().ok())
                .unwrap_or(-1)
        })
        .collect();
    ensure!(
        filtered.iter().all(|order| order["status"] == status)
            && totals.iter().all(|total| *total >= 100_000),
        "the status={status}, min_total=100000 filter returned {}",
        outputs[8]
    );
    ensure!(
        totals.windows(2).all(|pair| pair[0] >= pair[1]),
        "not ordered by total descending: {totals:?}"
    );
    let orders: Vec<&str> = outputs[9]["orders"]
        .as_array()
        .context("user orders without orders")?
        .iter()
        .filter_map(|order| order["id"].as_str())
        .collect();
    ensure!(
        orders == [second_order_id.as_str(), order_id.as_str()],
        "the user's orders, newest first, are {orders:?}"
    );
    ensure!(
        outputs[10]["total_orders"].is_string(),
        "order metrics: {}",
        outputs[10]
    );
    Ok(())
}

/// Reads the JSON in the comment of the block's first `jq` line that has
/// one, such as `# {"status": "PENDING", "total": "170000"}`.
fn promised_output(block: &str) -> anyhow::Result<Value> {
    let comment = block
        .lines()
        .filter(|line| line.contains("| jq"))
        .find_map(|line| line.split_once("# {").map(|(_, rest)| format!("{{{rest}")))
        .context("no jq line of the block has a JSON comment")?;
    serde_json::from_str(&comment)
        .with_context(|| format!("the README comment is not JSON: {comment}"))
}

/// Reads the `status=` value of the block's first order list request, such
/// as `SHIPPED` in `"$API/orders?status=SHIPPED&min_total=100000"`.
fn order_status_filter(block: &str) -> anyhow::Result<String> {
    let query = block
        .lines()
        .find_map(|line| line.split_once("/orders?").map(|(_, query)| query))
        .context("the block lists no orders with a query string")?;
    let status = query
        .split(['&', '"', ' '])
        .find_map(|pair| pair.strip_prefix("status="))
        .filter(|status| !status.is_empty())
        .with_context(|| format!("the order list request has no status filter: {query}"))?;
    Ok(status.to_owned())
}

fn text(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("expected a non-empty string, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readme() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap()
    }

    #[test]
    fn readme_block_prepares() {
        let block = extract_block(&readme()).unwrap();
        let script = prepare_script(&block, "http://127.0.0.1:1/api/v1", "t0k3n").unwrap();
        assert!(
            script.contains("API=http://127.0.0.1:1/api/v1\n"),
            "{script}"
        );
        assert!(
            script.contains("AUTH=\"Authorization: Bearer t0k3n\"\n"),
            "{script}"
        );
        assert!(!script.contains("$(cat data/admin.token)"), "{script}");
        let status = order_status_filter(&block).unwrap();
        assert!(
            ["PENDING", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"].contains(&status.as_str()),
            "{status}"
        );
        assert_eq!(promised_output(&block).unwrap()["status"], "PENDING");
    }

    #[test]
    fn order_status_filter_reads_query() {
        let block = "curl -s -H \"$AUTH\" \"$API/orders?min_total=1&status=PAID\" | jq\n";
        assert_eq!(order_status_filter(block).unwrap(), "PAID");
        let unfiltered = "curl -s \"$API/orders?min_total=1\" | jq\n";
        assert!(order_status_filter(unfiltered).is_err());
        assert!(order_status_filter("curl -s \"$API/users\"\n").is_err());
    }
}
