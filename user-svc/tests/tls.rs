//! The user service with TLS: mutual TLS on its gRPC port, the plaintext
//! health port beside it, and the binary's startup errors for unusable
//! TLS settings.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use lintas_common::grpc::ServiceListeners;
use lintas_common::test_pki::TestCa;
use lintas_common::tls::{ClientTlsSettings, IdentityFiles, ServerTlsSettings, lazy_channel};
use lintas_proto::user::v1::CreateUserRequest;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long the binary may take to fail at startup.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

fn free_address() -> SocketAddr {
    let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("bound address")
}

/// Runs the binary with `env` until it exits, for at most
/// [`STARTUP_TIMEOUT`], and returns its output.
async fn run_binary(folder: &Path, env: &[(&str, &str)]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_user-svc"))
        .env_clear()
        .env("USER_SVC_LISTEN", free_address().to_string())
        .env("METRICS_LISTEN", free_address().to_string())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", folder.join("users.db").display()),
        )
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(STARTUP_TIMEOUT, child)
        .await
        .expect("user-svc exits at startup")
        .expect("run user-svc")
}

fn https_channel(url: &str, settings: &ClientTlsSettings) -> Channel {
    lazy_channel(url, Some(settings), false, |endpoint| {
        endpoint.timeout(Duration::from_secs(5))
    })
    .expect("valid client settings")
}

#[tokio::test]
async fn binary_names_missing_certificate_file() {
    let folder = tempfile::tempdir().unwrap();
    let missing = folder.path().join("missing.crt");
    let key = folder.path().join("missing.key");
    let missing_text = missing.display().to_string();
    let key_text = key.display().to_string();

    let output = run_binary(
        folder.path(),
        &[("TLS_CERT", &missing_text), ("TLS_KEY", &key_text)],
    )
    .await;

    assert!(
        !output.status.success(),
        "user-svc started without its certificate"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TLS_CERT"), "{stderr}");
    assert!(
        stderr.contains(&format!("failed to read certificate file {missing_text}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn binary_requires_key_with_certificate() {
    let folder = tempfile::tempdir().unwrap();
    let pki = TestCa::new("Lintas test CA")
        .issue_server(&["localhost"])
        .write(folder.path(), "user-svc");
    let cert = pki.cert.display().to_string();

    let output = run_binary(folder.path(), &[("TLS_CERT", &cert)]).await;

    assert!(!output.status.success(), "user-svc started without TLS_KEY");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

#[tokio::test]
async fn binary_rejects_plaintext_on_all_interfaces() {
    let folder = tempfile::tempdir().unwrap();

    // The check runs before the address is bound, so nothing listens on
    // the other interfaces.
    let output = run_binary(folder.path(), &[("USER_SVC_LISTEN", "0.0.0.0:50051")]).await;

    assert!(
        !output.status.success(),
        "user-svc served plaintext on 0.0.0.0"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0.0.0.0:50051"), "{stderr}");
    assert!(stderr.contains("ALLOW_PLAINTEXT=on"), "{stderr}");
}

#[tokio::test]
async fn health_port_serves_plaintext_beside_mutual_tls() {
    let folder = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Lintas test CA");
    let ca_path = ca.write(folder.path(), "ca");
    let server: IdentityFiles = ca
        .issue_server(&["localhost"])
        .write(folder.path(), "user-svc");
    let client = ca.issue_client("gateway").write(folder.path(), "gateway");

    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_port = grpc.local_addr().unwrap().port();
    let health_address = health.local_addr().unwrap();
    let mut settings = user_svc::Settings::new(
        lintas_common::testing::fresh_database_url(folder.path(), "users").await,
    );
    settings.tls = Some(ServerTlsSettings {
        client_ca: Some(ca_path.clone()),
        ..ServerTlsSettings::new(&server.cert, &server.key)
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(user_svc::serve(
        ServiceListeners {
            grpc,
            health: Some(health),
        },
        settings,
        async {
            let _ = stopped.await;
        },
    ));

    // The gRPC port answers a client with a certificate.
    let with_certificate = ClientTlsSettings {
        identity: Some(client),
        ..ClientTlsSettings::new(&ca_path)
    };
    let mut users = UserServiceClient::new(https_channel(
        &format!("https://localhost:{grpc_port}"),
        &with_certificate,
    ));
    let mut created = None;
    for _ in 0..100 {
        let request = CreateUserRequest {
            name: "Ayu".to_owned(),
            email: "ayu@example.com".to_owned(),
            ..Default::default()
        };
        match users.create_user(request).await {
            Ok(response) => {
                created = response.into_inner().user;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(created.expect("user created over mutual TLS").name, "Ayu");

    // The health port answers in plaintext, with the service's status.
    let channel = Channel::from_shared(format!("http://{health_address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the health port");
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: user_svc::SERVICE_NAME.to_owned(),
        })
        .await
        .expect("health check on the health port")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);

    // The gRPC port rejects a client without a certificate.
    let mut anonymous = UserServiceClient::new(https_channel(
        &format!("https://localhost:{grpc_port}"),
        &ClientTlsSettings::new(&ca_path),
    ));
    let error = anonymous
        .create_user(CreateUserRequest {
            name: "Bayu".to_owned(),
            email: "bayu@example.com".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("no client certificate");
    assert!(
        format!("{error:?}").contains("CertificateRequired"),
        "{error:?}"
    );

    drop(stop);
}
