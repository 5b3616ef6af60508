//! HTTP helpers for the gateway's REST and GraphQL APIs, gRPC clients for
//! the services, and a reader for the Prometheus text format.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lintas_proto::order::v1::order_service_client::OrderServiceClient;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::transport::Channel;

/// A response with its JSON body (`Null` when the body is empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub elapsed: Duration,
    /// `METHOD PATH`, for error messages.
    pub request: String,
}

impl Reply {
    /// Returns the body when the status is `expected`, and otherwise fails
    /// with the status and the body.
    pub fn expect(&self, expected: StatusCode) -> anyhow::Result<&Value> {
        if self.status != expected {
            bail!(
                "{} returned {}, expected {expected}: {}",
                self.request,
                self.status,
                self.body
            );
        }
        Ok(&self.body)
    }

    /// Fails unless the response is an RFC 9457 problem with this status
    /// and `code`.
    pub fn expect_problem(&self, expected: StatusCode, code: &str) -> anyhow::Result<()> {
        self.expect(expected)?;
        let content_type = self.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/problem+json") {
            bail!(
                "{} returned content-type {content_type:?}, expected application/problem+json",
                self.request
            );
        }
        if self.body["code"] != code {
            bail!(
                "{} returned code {}, expected {code}: {}",
                self.request,
                self.body["code"],
                self.body
            );
        }
        Ok(())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }
}

/// The gateway, seen from a client.
#[derive(Clone)]
pub struct Gateway {
    pub base: String,
    http: reqwest::Client,
    /// Bearer token sent with every request, or none for an anonymous caller.
    token: Option<String>,
}

impl Gateway {
    /// Creates a client that sends `token` as `Authorization: Bearer` on
    /// every request.
    pub fn with_token(base: String, http: reqwest::Client, token: &str) -> Self {
        Self {
            base,
            http,
            token: Some(token.to_owned()),
        }
    }

    /// Creates a client that sends no credentials.
    pub fn anonymous(base: String, http: reqwest::Client) -> Self {
        Self {
            base,
            http,
            token: None,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path} failed"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let elapsed = started.elapsed();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply {
            status,
            headers,
            body,
            elapsed,
            request: format!("{method} {path}"),
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Sends a GraphQL request and returns the whole response body.
    pub async fn graphql_raw(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let reply = self
            .post(
                "/graphql",
                &json!({ "query": query, "variables": variables }),
            )
            .await?;
        if !reply.status.is_success() {
            bail!("POST /graphql returned {}: {}", reply.status, reply.body);
        }
        Ok(reply.body)
    }

    /// Sends a GraphQL request and returns `data`, failing on any error.
    pub async fn graphql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body = self.graphql_raw(query, variables).await?;
        if let Some(errors) = body.get("errors") {
            bail!("GraphQL errors: {errors}");
        }
        Ok(body["data"].clone())
    }

    /// Sends a GraphQL request that must fail, and returns the
    /// `extensions.code` of its first error.
    pub async fn graphql_error_code(
        &self,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<String> {
        let body = self.graphql_raw(query, variables).await?;
        let code = body["errors"][0]["extensions"]["code"]
            .as_str()
            .with_context(|| {
                format!("expected a GraphQL error with extensions.code, got {body}")
            })?;
        Ok(code.to_owned())
    }

    /// Fetches the gateway's own `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let reply = self.get("/metrics").await?;
        reply.expect(StatusCode::OK)?;
        Ok(reply.body.as_str().unwrap_or_default().to_owned())
    }
}

/// Returns the value of the sample `name{labels}` in Prometheus text: the
/// sum over every sample of `name` whose labels include all of `labels`.
/// `None` when no sample matches.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let all_match = labels
            .iter()
            .all(|(label, wanted)| series_labels.contains(&format!("{label}=\"{wanted}\"")));
        if all_match && let Ok(number) = value.parse::<f64>() {
            total = Some(total.unwrap_or(0.0) + number);
        }
    }
    total
}

/// Creates a gRPC channel that connects on first use, with a 2 s connect
/// timeout and a 5 s timeout per call.
pub fn grpc_channel(address: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{address}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy())
}

pub fn user_client(address: &str) -> anyhow::Result<UserServiceClient<Channel>> {
    Ok(UserServiceClient::new(grpc_channel(address)?))
}

pub fn order_client(address: &str) -> anyhow::Result<OrderServiceClient<Channel>> {
    Ok(OrderServiceClient::new(grpc_channel(address)?))
}

/// Polls `probe` every `interval` until it returns `Ok(Some(value))`, or
/// `timeout` passes, and then fails with `description` and the last error.
pub async fn poll<T, F, Fut>(
    timeout: Duration,
    interval: Duration,
    description: &str,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= deadline {
            let reason =
                last_error.map_or_else(String::new, |error| format!(": last error: {error:#}"));
            bail!(
                "{description} did not happen within {:.0} s{reason}",
                timeout.as_secs_f64()
            );
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_value_sums_matching_series() {
        let text = "# HELP cache_requests_total x\n\
                    cache_requests_total{result=\"hit\"} 3\n\
                    cache_requests_total{result=\"miss\"} 2\n\
                    up 1\n";
        assert_eq!(
            metric_value(text, "cache_requests_total", &[("result", "hit")]),
            Some(3.0)
        );
        assert_eq!(metric_value(text, "cache_requests_total", &[]), Some(5.0));
        assert_eq!(metric_value(text, "up", &[]), Some(1.0));
        assert_eq!(metric_value(text, "cache_requests", &[]), None);
    }
}
