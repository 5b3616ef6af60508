//! The `user-svc` binary, stopped by SIGTERM right after serving a request,
//! still exports that request's spans and log lines.
//!
//! The span batch delay is set to ten minutes, so only the flush on
//! shutdown can deliver the span before the process exits.

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lintas_proto::user::v1::CreateUserRequest;
use lintas_proto::user::v1::user_service_client::UserServiceClient;
use lintas_telemetry::testing::{LokiReceiver, OtlpReceiver};
use tokio::process::Command;
use tonic::transport::Channel;

/// OTLP span kind of a server span.
const SERVER: i32 = 2;

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("bound address")
}

/// Connects to `address`, retrying for at most twenty seconds while the
/// process starts.
async fn connect(address: SocketAddr) -> UserServiceClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Channel::from_shared(format!("http://{address}"))
            .expect("valid URI")
            .connect()
            .await
        {
            Ok(channel) => return UserServiceClient::new(channel),
            Err(error) if Instant::now() >= deadline => panic!("user-svc never listened: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn sigterm_exports_last_request() {
    let otlp = OtlpReceiver::start().await;
    let loki = LokiReceiver::start().await;
    let directory = tempfile::tempdir().unwrap();
    let address = free_address();
    let mut child = Command::new(env!("CARGO_BIN_EXE_user-svc"))
        .env("USER_SVC_LISTEN", address.to_string())
        .env("METRICS_LISTEN", free_address().to_string())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", directory.path().join("users.db").display()),
        )
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("LOKI_URL", &loki.url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start user-svc");

    let mut client = connect(address).await;
    let reply = client
        .create_user(CreateUserRequest {
            name: "Wulan".to_owned(),
            email: "wulan@example.com".to_owned(),
            ..Default::default()
        })
        .await
        .expect("user created")
        .into_inner();
    let trace_id = reply.metadata.expect("response metadata").trace_id;
    assert_eq!(trace_id.len(), 32, "{trace_id:?}");

    let pid = child.id().expect("running process").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("user-svc stops within 20 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "user-svc exited with {status}");

    let spans = otlp.spans();
    let server_spans: Vec<_> = spans
        .iter()
        .filter(|span| span.trace_id == trace_id && span.kind == SERVER)
        .collect();
    assert_eq!(server_spans.len(), 1, "{spans:#?}");
    assert_eq!(server_spans[0].service, "user-svc");
    assert!(
        spans
            .iter()
            .any(|span| span.trace_id == trace_id && span.parent_span_id == server_spans[0].span_id),
        "no child span of the server span: {spans:#?}"
    );
    assert!(
        loki.lines()
            .iter()
            .any(|line| line.line.contains(&trace_id)),
        "no log line with trace id {trace_id}"
    );
}
