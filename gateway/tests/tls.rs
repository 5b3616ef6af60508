//! The platform with TLS everywhere: the gateway calls both services, and
//! the order service calls the user service, over mutual TLS with
//! certificates from a test CA, and the gateway serves HTTPS itself.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use lintas_common::test_pki::TestCa;
use lintas_common::tls::{ClientTlsSettings, IdentityFiles, ServerTlsSettings};
use reqwest::{Certificate, Client, StatusCode, Version};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The certificates of one test platform, all from one CA.
struct Pki {
    folder: tempfile::TempDir,
    ca: PathBuf,
    ca_pem: String,
    user_svc: IdentityFiles,
    order_svc: IdentityFiles,
    gateway_client: IdentityFiles,
    gateway_https: IdentityFiles,
}

impl Pki {
    fn new() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Lintas test CA");
        let path = folder.path();
        Self {
            ca: ca.write(path, "ca"),
            ca_pem: ca.cert_pem(),
            user_svc: ca.issue_server(&["localhost"]).write(path, "user-svc"),
            order_svc: ca
                .issue_server_and_client(&["localhost"])
                .write(path, "order-svc"),
            gateway_client: ca.issue_client("gateway").write(path, "gateway-client"),
            gateway_https: ca
                .issue_server(&["localhost", "127.0.0.1"])
                .write(path, "gateway-https"),
            folder,
        }
    }

    /// Settings of a service port that requires client certificates.
    fn service_tls(&self, identity: &IdentityFiles) -> ServerTlsSettings {
        ServerTlsSettings {
            client_ca: Some(self.ca.clone()),
            ..ServerTlsSettings::new(&identity.cert, &identity.key)
        }
    }

    /// Settings of a client that trusts the CA and presents `identity`.
    fn client_tls(&self, identity: Option<&IdentityFiles>) -> ClientTlsSettings {
        ClientTlsSettings {
            identity: identity.cloned(),
            ..ClientTlsSettings::new(&self.ca)
        }
    }
}

/// The three servers, stopped when this value is dropped.
struct Platform {
    base: String,
    _stop: watch::Sender<bool>,
}

fn stopped(receiver: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut receiver = receiver.clone();
    async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// Starts both services with mutual TLS and a gateway in front of them,
/// whose settings `adjust` may change after the TLS settings are filled in.
async fn start(pki: &Pki, adjust: impl FnOnce(&mut gateway::Settings)) -> Platform {
    let (stop, receiver) = watch::channel(false);
    let user_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let order_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let user_url = format!(
        "https://localhost:{}",
        user_listener.local_addr().unwrap().port()
    );
    let order_url = format!(
        "https://localhost:{}",
        order_listener.local_addr().unwrap().port()
    );
    let gateway_address = gateway_listener.local_addr().unwrap();

    let data = pki.folder.path();
    let mut user_settings =
        user_svc::Settings::new(lintas_common::testing::fresh_database_url(data, "users").await);
    user_settings.tls = Some(pki.service_tls(&pki.user_svc));

    let mut order_settings = order_svc::Settings::new(
        lintas_common::testing::fresh_database_url(data, "orders").await,
        &user_url,
    );
    order_settings.tls = Some(pki.service_tls(&pki.order_svc));
    order_settings.user_service_tls = Some(pki.client_tls(Some(&pki.order_svc)));

    let mut gateway_settings = gateway::Settings::with_backends(&user_url, &order_url);
    gateway_settings.user_service.tls = Some(pki.client_tls(Some(&pki.gateway_client)));
    gateway_settings.order_service.tls = Some(pki.client_tls(Some(&pki.gateway_client)));
    adjust(&mut gateway_settings);
    let scheme = if gateway_settings.tls.is_some() {
        "https"
    } else {
        "http"
    };

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
    Platform {
        base: format!("{scheme}://localhost:{}", gateway_address.port()),
        _stop: stop,
    }
}

/// An HTTPS client that trusts only the test CA.
fn client(
    pki: &Pki,
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Client {
    let builder = Client::builder()
        .timeout(Duration::from_secs(20))
        .tls_built_in_root_certs(false)
        .add_root_certificate(Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
    configure(builder).build().unwrap()
}

/// Polls `/readyz` every 50 ms for at most ten seconds and returns the
/// last status.
async fn wait_ready(client: &Client, base: &str) -> StatusCode {
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            status = response.status();
            if status == StatusCode::OK {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    status
}

async fn post(client: &Client, url: String, body: Value) -> (StatusCode, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn order_crosses_mutual_tls_end_to_end() {
    let pki = Pki::new();
    let platform = start(&pki, |settings| {
        settings.tls = Some(ServerTlsSettings::new(
            &pki.gateway_https.cert,
            &pki.gateway_https.key,
        ));
    })
    .await;
    let client = client(&pki, |builder| builder);
    assert_eq!(wait_ready(&client, &platform.base).await, StatusCode::OK);

    // The gateway calls the user service.
    let (status, user) = post(
        &client,
        format!("{}/api/v1/users", platform.base),
        json!({ "name": "Ayu", "email": "ayu@example.com" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = user["id"].as_str().unwrap();

    // The gateway calls the order service, which checks the user with the
    // user service.
    let (status, order) = post(
        &client,
        format!("{}/api/v1/orders", platform.base),
        common::order_body(user_id, 15_000),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["user_id"], user_id, "{order}");

    // An order for an unknown user fails in the user service's lookup,
    // which proves that call was made.
    let unknown = "0190a7a4-0000-7000-8000-000000000000";
    let (status, problem) = post(
        &client,
        format!("{}/api/v1/orders", platform.base),
        common::order_body(unknown, 15_000),
    )
    .await;
    common::assert_problem(status, &problem, 409, "FAILED_PRECONDITION");
}

#[tokio::test]
async fn https_listener_negotiates_http1_and_http2() {
    let pki = Pki::new();
    let platform = start(&pki, |settings| {
        settings.tls = Some(ServerTlsSettings::new(
            &pki.gateway_https.cert,
            &pki.gateway_https.key,
        ));
    })
    .await;
    let http1 = client(&pki, |builder| builder.http1_only());
    let http2 = client(&pki, |builder| builder);
    assert_eq!(wait_ready(&http1, &platform.base).await, StatusCode::OK);

    let response = http1
        .get(format!("{}/healthz", platform.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_11);

    let response = http2
        .get(format!("{}/healthz", platform.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // reqwest offers h2 and http/1.1 through ALPN, and the gateway picks h2.
    assert_eq!(response.version(), Version::HTTP_2);
    let hsts = response.headers().get("strict-transport-security");
    assert!(
        hsts.is_some(),
        "HTTPS responses carry Strict-Transport-Security"
    );
}

#[tokio::test]
async fn https_listener_rejects_plain_http() {
    let pki = Pki::new();
    let platform = start(&pki, |settings| {
        settings.tls = Some(ServerTlsSettings::new(
            &pki.gateway_https.cert,
            &pki.gateway_https.key,
        ));
    })
    .await;
    let client = client(&pki, |builder| builder);
    assert_eq!(wait_ready(&client, &platform.base).await, StatusCode::OK);

    let plain_url = platform.base.replacen("https://", "http://", 1) + "/healthz";
    let result = client.get(plain_url).send().await;

    assert!(result.is_err(), "plain HTTP got a response: {result:?}");
}

#[tokio::test]
async fn backends_reject_gateway_without_certificate() {
    let pki = Pki::new();
    let platform = start(&pki, |settings| {
        settings.user_service.tls = Some(pki.client_tls(None));
        settings.order_service.tls = Some(pki.client_tls(None));
    })
    .await;
    let client = client(&pki, |builder| builder);

    // Readiness asks both backends' health service, which they refuse to
    // a client without a certificate.
    assert_eq!(
        wait_ready(&client, &platform.base).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = post(
        &client,
        format!("{}/api/v1/users", platform.base),
        json!({ "name": "Ayu", "email": "ayu@example.com" }),
    )
    .await;
    assert!(status.is_server_error(), "{status} {body}");
}

#[tokio::test]
async fn plaintext_backend_off_loopback_fails_startup() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings =
        gateway::Settings::with_backends("http://user-svc:50051", "http://order-svc:50052");

    let error = gateway::serve(listener, settings, std::future::pending())
        .await
        .expect_err("plaintext to a host other than loopback");

    let message = format!("{error:#}");
    assert!(message.contains("USER_SERVICE_URL"), "{message}");
    assert!(message.contains("http://user-svc:50051"), "{message}");
    assert!(message.contains("ALLOW_PLAINTEXT=on"), "{message}");
}

#[tokio::test]
async fn missing_https_certificate_fails_startup() {
    let pki = Pki::new();
    let missing = pki.folder.path().join("missing.crt");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = gateway::Settings::with_backends("http://127.0.0.1:1", "http://127.0.0.1:2");
    settings.tls = Some(ServerTlsSettings::new(&missing, &pki.gateway_https.key));

    let error = gateway::serve(listener, settings, std::future::pending())
        .await
        .expect_err("missing certificate file");

    let message = format!("{error:#}");
    assert!(message.contains("GATEWAY_TLS_CERT"), "{message}");
    assert!(
        message.contains("failed to read certificate file"),
        "{message}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn missing_backend_ca_fails_startup() {
    let pki = Pki::new();
    let missing = pki.folder.path().join("missing-ca.crt");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings =
        gateway::Settings::with_backends("https://localhost:50051", "https://localhost:50052");
    settings.user_service.tls = Some(ClientTlsSettings::new(&missing));
    settings.order_service.tls = Some(pki.client_tls(None));

    let error = gateway::serve(listener, settings, std::future::pending())
        .await
        .expect_err("missing CA file");

    let message = format!("{error:#}");
    assert!(message.contains("BACKEND_TLS_CA"), "{message}");
    assert!(
        message.contains("failed to read CA certificate file"),
        "{message}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}
