//! Starts the real user service, order service and gateway on loopback
//! port 0 with fresh SQLite files, and offers typed request helpers.

#![allow(dead_code)]

pub mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct Platform {
    pub base: String,
    /// gRPC URL of the user service, for writes that bypass the gateway.
    pub user_url: String,
    /// gRPC URL of the order service.
    pub order_url: String,
    pub client: Client,
    /// Stops what this value started: the whole platform, or one gateway
    /// from [`Platform::start_gateway`].
    stop: watch::Sender<bool>,
    _data: Arc<tempfile::TempDir>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn stopped(receiver: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut receiver = receiver.clone();
    async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Starts the whole platform.
pub async fn start() -> Platform {
    start_with(|_| {}).await
}

/// Starts the whole platform, letting the caller adjust gateway settings.
pub async fn start_with(adjust: impl FnOnce(&mut gateway::Settings)) -> Platform {
    let data = tempfile::tempdir().unwrap();
    let (stop, receiver) = watch::channel(false);

    let user_listener = loopback().await;
    let order_listener = loopback().await;
    let gateway_listener = loopback().await;
    let user_url = format!("http://{}", user_listener.local_addr().unwrap());
    let order_url = format!("http://{}", order_listener.local_addr().unwrap());
    let base = format!("http://{}", gateway_listener.local_addr().unwrap());

    let user_settings = user_svc::Settings::new(
        lintas_common::testing::fresh_database_url(data.path(), "users").await,
    );
    let order_settings = order_svc::Settings::new(
        lintas_common::testing::fresh_database_url(data.path(), "orders").await,
        user_url.clone(),
    );
    let mut gateway_settings = settings(&user_url, &order_url);
    adjust(&mut gateway_settings);

    tokio::spawn(user_svc::serve(
        user_listener,
        user_settings,
        stopped(&receiver),
    ));
    tokio::spawn(order_svc::serve(
        order_listener,
        order_settings,
        stopped(&receiver),
    ));
    tokio::spawn(gateway::serve(
        gateway_listener,
        gateway_settings,
        stopped(&receiver),
    ));

    let platform = Platform {
        base,
        user_url: user_url.clone(),
        order_url,
        client: http_client(),
        stop,
        _data: Arc::new(data),
    };
    platform.wait_ready().await;
    platform
}

/// Secret of the tokens that test gateways accept.
pub const SECRET: &[u8] = b"test-secret-with-at-least-32-bytes!";
pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "lintas-test";

/// Gateway settings of the tests: the documented defaults, with HS256
/// tokens signed by [`SECRET`] required.
pub fn settings(user_url: &str, order_url: &str) -> gateway::Settings {
    let mut settings = gateway::Settings::with_backends(user_url, order_url);
    settings.auth =
        gateway::AuthSettings::Jwt(gateway::JwtSettings::hs256(SECRET, ISSUER, AUDIENCE));
    settings
}

/// A token for `subject`, valid for an hour.
pub fn token(subject: &str, admin: bool) -> String {
    gateway::auth::issue::hs256(
        SECRET,
        &gateway::auth::issue::TokenSpec {
            issuer: ISSUER,
            audience: AUDIENCE,
            subject,
            admin,
            lifetime: Duration::from_secs(3600),
        },
    )
    .unwrap()
}

/// An HTTP client that sends `token` with every request, or no token.
pub fn client_with(token: Option<&str>) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    Client::builder()
        .timeout(Duration::from_secs(20))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The client of most tests: an admin's.
fn http_client() -> Client {
    client_with(Some(&token("test-admin", true)))
}

impl Platform {
    /// Starts another gateway in front of this platform's services, as a
    /// second replica would run. Dropping the returned value stops only that
    /// gateway. Keep `self` alive while it is in use.
    pub async fn start_gateway(&self, adjust: impl FnOnce(&mut gateway::Settings)) -> Platform {
        let (stop, receiver) = watch::channel(false);
        let listener = loopback().await;
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut settings = settings(&self.user_url, &self.order_url);
        adjust(&mut settings);
        tokio::spawn(gateway::serve(listener, settings, stopped(&receiver)));

        let gateway = Platform {
            base,
            user_url: self.user_url.clone(),
            order_url: self.order_url.clone(),
            client: http_client(),
            stop,
            _data: Arc::clone(&self._data),
        };
        gateway.wait_ready().await;
        gateway
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("platform did not become ready within 5 seconds");
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Sends a request and returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, path, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn create_user(&self, name: &str, email: &str) -> Value {
        let (status, body) = self
            .post("/api/v1/users", json!({ "name": name, "email": email }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn create_order(&self, user_id: &str, unit_price: i64) -> Value {
        let (status, body) = self
            .post("/api/v1/orders", order_body(user_id, unit_price))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn pay(&self, order: &Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/orders/{}/payments", order["id"].as_str().unwrap());
        let body = json!({
            "amount": order["total"],
            "currency": order["currency"],
            "method": "CARD",
            "payment_token": "tok_visa",
        });
        self.post(&path, body).await
    }

    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// Reads one sample of a metric from `/metrics`, 0 when absent.
    pub async fn metric(&self, name_and_labels: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

pub fn order_body(user_id: &str, unit_price: i64) -> Value {
    json!({
        "user_id": user_id,
        "currency": "IDR",
        "items": [{ "sku": "KOPI-1", "quantity": 2, "unit_price": unit_price }],
        "shipping_address": {
            "recipient": "Siti",
            "line1": "Jl. Merdeka 1",
            "city": "Jakarta",
            "postal_code": "10110",
            "country": "ID"
        }
    })
}

/// Asserts a problem+json body with the given status and code.
pub fn assert_problem(status: StatusCode, body: &Value, expected_status: u16, expected_code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["code"], expected_code, "{body}");
    assert_eq!(body["status"], expected_status, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| !detail.is_empty()),
        "{body}"
    );
}
