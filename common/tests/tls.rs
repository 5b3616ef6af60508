//! TLS between a gRPC server and client built by `lintas_common::tls`, with
//! certificates from a test CA: which clients the server accepts, which
//! servers the client trusts, the errors for unusable files, and reloading
//! renewed certificates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lintas_common::balance::{BackendChannel, Balance};
use lintas_common::test_pki::TestCa;
use lintas_common::tls::{
    ALPN_H2, ChannelError, ClientTls, ClientTlsSettings, FileKind, IdentityFiles, ServerTls,
    ServerTlsSettings, TlsError, TlsIncoming, lazy_channel,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The files of one test: a CA with a server and a client certificate, and
/// a second CA with a client certificate of its own.
struct Pki {
    folder: tempfile::TempDir,
    ca: PathBuf,
    server: IdentityFiles,
    client: IdentityFiles,
    other_ca: PathBuf,
    other_client: IdentityFiles,
}

impl Pki {
    fn new() -> Self {
        let folder = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Lintas test CA");
        let other = TestCa::new("Other CA");
        Self {
            ca: ca.write(folder.path(), "ca"),
            server: ca
                .issue_server(&["localhost", "127.0.0.1"])
                .write(folder.path(), "server"),
            client: ca.issue_client("gateway").write(folder.path(), "client"),
            other_ca: other.write(folder.path(), "other-ca"),
            other_client: other
                .issue_client("gateway")
                .write(folder.path(), "other-client"),
            folder,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// Server settings that require client certificates from the CA.
    fn mutual_server(&self) -> ServerTlsSettings {
        ServerTlsSettings {
            client_ca: Some(self.ca.clone()),
            ..ServerTlsSettings::new(&self.server.cert, &self.server.key)
        }
    }

    /// Client settings that trust the CA and present `identity`.
    fn client(&self, identity: Option<&IdentityFiles>) -> ClientTlsSettings {
        ClientTlsSettings {
            identity: identity.cloned(),
            ..ClientTlsSettings::new(&self.ca)
        }
    }
}

/// A gRPC server with only the health service, stopped when dropped.
struct HealthServer {
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_server(settings: &ServerTlsSettings) -> HealthServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = ServerTls::load(settings, &[ALPN_H2]).expect("valid server TLS files");
    let incoming = TlsIncoming::new(listener, tls).unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    HealthServer {
        address,
        _stop: stop,
    }
}

fn https_channel(url: &str, settings: &ClientTlsSettings) -> Channel {
    lazy_channel(url, Some(settings), false, |endpoint| {
        endpoint
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
    })
    .expect("valid client settings")
}

async fn check_health<S>(channel: S) -> Result<ServingStatus, tonic::Status>
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<tonic::codegen::StdError>,
    S::ResponseBody: tonic::transport::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <S::ResponseBody as tonic::transport::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn call_with_valid_client_certificate_succeeds() {
    let pki = Pki::new();
    let server = start_server(&pki.mutual_server()).await;
    let channel = https_channel(
        &format!("https://localhost:{}", server.address.port()),
        &pki.client(Some(&pki.client)),
    );

    let status = check_health(channel)
        .await
        .expect("health check over mutual TLS");

    assert_eq!(status, ServingStatus::Serving);
}

#[tokio::test]
async fn call_without_client_certificate_is_rejected() {
    let pki = Pki::new();
    let server = start_server(&pki.mutual_server()).await;
    let channel = https_channel(
        &format!("https://localhost:{}", server.address.port()),
        &pki.client(None),
    );

    let error = check_health(channel)
        .await
        .expect_err("no client certificate");

    // TLS 1.3 clients learn of the rejection from the server's alert, after
    // their side of the handshake.
    assert!(
        format!("{error:?}").contains("received fatal alert: CertificateRequired"),
        "{error:?}"
    );
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected() {
    let pki = Pki::new();
    let server = start_server(&pki.mutual_server()).await;
    let channel = https_channel(
        &format!("https://localhost:{}", server.address.port()),
        &pki.client(Some(&pki.other_client)),
    );

    let error = check_health(channel)
        .await
        .expect_err("certificate of another CA");

    assert!(
        format!("{error:?}").contains("received fatal alert: UnknownCA"),
        "{error:?}"
    );
}

#[tokio::test]
async fn plaintext_call_to_tls_server_fails() {
    let pki = Pki::new();
    let server = start_server(&pki.mutual_server()).await;
    let channel = lazy_channel(
        &format!("http://127.0.0.1:{}", server.address.port()),
        None,
        false,
        |endpoint| endpoint.timeout(Duration::from_secs(5)),
    )
    .expect("plaintext is allowed on loopback");

    let error = check_health(channel)
        .await
        .expect_err("plaintext to a TLS port");

    // The server reads the HTTP/2 preface as a broken ClientHello and
    // closes the connection.
    assert_eq!(error.code(), tonic::Code::Unknown, "{error:?}");
    assert!(
        format!("{error:?}").contains("transport error"),
        "{error:?}"
    );
}

#[tokio::test]
async fn server_certificate_from_another_ca_is_rejected() {
    let pki = Pki::new();
    let server = start_server(&pki.mutual_server()).await;
    let settings = ClientTlsSettings {
        identity: Some(pki.client.clone()),
        ..ClientTlsSettings::new(&pki.other_ca)
    };
    let channel = https_channel(
        &format!("https://localhost:{}", server.address.port()),
        &settings,
    );

    let error = check_health(channel)
        .await
        .expect_err("untrusted server certificate");

    assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
    assert!(format!("{error:?}").contains("UnknownIssuer"), "{error:?}");
}

#[tokio::test]
async fn server_name_must_match_certificate() {
    let pki = Pki::new();
    let server = start_server(&pki.mutual_server()).await;
    let url = format!("https://127.0.0.1:{}", server.address.port());

    let wrong = ClientTlsSettings {
        server_name: Some("user-svc.lintas.svc".to_owned()),
        ..pki.client(Some(&pki.client))
    };
    let error = check_health(https_channel(&url, &wrong))
        .await
        .expect_err("name not in the certificate");
    assert!(
        format!("{error:?}").contains("NotValidForName"),
        "{error:?}"
    );

    let right = ClientTlsSettings {
        server_name: Some("localhost".to_owned()),
        ..pki.client(Some(&pki.client))
    };
    let status = check_health(https_channel(&url, &right))
        .await
        .expect("name in the certificate");
    assert_eq!(status, ServingStatus::Serving);

    // Without an override, the IP address of the URL is checked, and the
    // certificate lists it.
    let status = check_health(https_channel(&url, &pki.client(Some(&pki.client))))
        .await
        .expect("IP address in the certificate");
    assert_eq!(status, ServingStatus::Serving);
}

#[tokio::test]
async fn balanced_channel_checks_url_server_name() {
    let pki = Pki::new();
    let server = start_server(&pki.mutual_server()).await;
    let balanced = |settings: &ClientTlsSettings| {
        let url = format!("https://localhost:{}", server.address.port());
        let balance = Balance::Dns {
            refresh: Duration::from_secs(5),
        };
        BackendChannel::connect_lazy(&url, Some(settings), false, balance, |endpoint| {
            endpoint.timeout(Duration::from_secs(5))
        })
        .expect("valid client settings")
    };

    // The connection goes to the address that localhost resolves to, and
    // the certificate is checked for localhost, not for that address.
    let status = check_health(balanced(&pki.client(Some(&pki.client))))
        .await
        .expect("name in the certificate");
    assert_eq!(status, ServingStatus::Serving);

    let wrong = ClientTlsSettings {
        server_name: Some("user-svc.lintas.svc".to_owned()),
        ..pki.client(Some(&pki.client))
    };
    let error = check_health(balanced(&wrong))
        .await
        .expect_err("name not in the certificate");
    assert!(
        format!("{error:?}").contains("NotValidForName"),
        "{error:?}"
    );
}

#[tokio::test]
async fn no_client_ca_accepts_any_client() {
    let pki = Pki::new();
    let server = start_server(&ServerTlsSettings::new(&pki.server.cert, &pki.server.key)).await;
    let channel = https_channel(
        &format!("https://localhost:{}", server.address.port()),
        &pki.client(None),
    );

    let status = check_health(channel).await.expect("server TLS only");

    assert_eq!(status, ServingStatus::Serving);
}

#[tokio::test]
async fn missing_certificate_file_is_named() {
    let pki = Pki::new();
    let missing = pki.path("missing.crt");
    let settings = ServerTlsSettings::new(&missing, &pki.server.key);

    let error = ServerTls::load(&settings, &[ALPN_H2]).expect_err("missing file");

    assert!(
        matches!(&error, TlsError::Read { kind: FileKind::Certificate, path, .. } if *path == missing),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("failed to read certificate file "),
        "{message}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn certificate_file_without_certificate_is_rejected() {
    let pki = Pki::new();
    // The key where the certificate belongs.
    let settings = ServerTlsSettings::new(&pki.server.key, &pki.server.key);

    let error = ServerTls::load(&settings, &[ALPN_H2]).expect_err("no certificate");

    assert!(
        matches!(&error, TlsError::NoCertificate { kind: FileKind::Certificate, path } if *path == pki.server.key),
        "{error:?}"
    );
}

#[tokio::test]
async fn key_file_without_key_is_rejected() {
    let pki = Pki::new();
    // The certificate where the key belongs.
    let settings = ServerTlsSettings::new(&pki.server.cert, &pki.server.cert);

    let error = ServerTls::load(&settings, &[ALPN_H2]).expect_err("no key");

    assert!(
        matches!(&error, TlsError::NoPrivateKey { path } if *path == pki.server.cert),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("contains no PEM private key"),
        "{error}"
    );
}

#[tokio::test]
async fn key_of_another_certificate_is_rejected() {
    let pki = Pki::new();
    let settings = ServerTlsSettings::new(&pki.server.cert, &pki.client.key);

    let error = ServerTls::load(&settings, &[ALPN_H2]).expect_err("mismatched key");

    assert!(
        matches!(&error, TlsError::KeyMismatch { cert, key } if *cert == pki.server.cert && *key == pki.client.key),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&pki.client.key.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&pki.server.cert.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn truncated_pem_is_rejected() {
    let pki = Pki::new();
    let cert = std::fs::read_to_string(&pki.server.cert).unwrap();
    let truncated = pki.path("truncated.crt");
    std::fs::write(&truncated, &cert[..cert.len() / 2]).unwrap();
    let settings = ServerTlsSettings::new(&truncated, &pki.server.key);

    let error = ServerTls::load(&settings, &[ALPN_H2]).expect_err("truncated PEM");

    assert!(
        matches!(&error, TlsError::InvalidPem { kind: FileKind::Certificate, path, .. } if *path == truncated),
        "{error:?}"
    );
}

#[tokio::test]
async fn empty_client_ca_file_is_rejected() {
    let pki = Pki::new();
    let empty = pki.path("empty-ca.crt");
    std::fs::write(&empty, "").unwrap();
    let settings = ServerTlsSettings {
        client_ca: Some(empty.clone()),
        ..ServerTlsSettings::new(&pki.server.cert, &pki.server.key)
    };

    let error = ServerTls::load(&settings, &[ALPN_H2]).expect_err("empty CA file");

    assert!(
        matches!(&error, TlsError::NoCertificate { kind: FileKind::CaCertificates, path } if *path == empty),
        "{error:?}"
    );
}

#[tokio::test]
async fn client_key_mismatch_is_rejected() {
    let pki = Pki::new();
    let settings = ClientTlsSettings {
        identity: Some(IdentityFiles {
            cert: pki.client.cert.clone(),
            key: pki.server.key.clone(),
        }),
        ..ClientTlsSettings::new(&pki.ca)
    };

    let error = ClientTls::load(&settings).expect_err("mismatched client key");

    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
}

#[tokio::test]
async fn channel_url_must_match_tls_settings() {
    let pki = Pki::new();
    let settings = pki.client(Some(&pki.client));
    let keep = |endpoint| endpoint;

    let error =
        lazy_channel("https://localhost:50051", None, true, keep).expect_err("https without TLS");
    assert!(
        matches!(error, ChannelError::HttpsWithoutTls { .. }),
        "{error:?}"
    );

    let error = lazy_channel("http://localhost:50051", Some(&settings), true, keep)
        .expect_err("TLS with http");
    assert!(
        matches!(error, ChannelError::TlsWithoutHttps { .. }),
        "{error:?}"
    );

    let error = lazy_channel("http://user-svc:50051", None, false, keep)
        .expect_err("plaintext to another host");
    assert!(matches!(error, ChannelError::Plaintext(_)), "{error:?}");
    assert!(error.to_string().contains("ALLOW_PLAINTEXT=on"), "{error}");

    assert!(
        lazy_channel("http://user-svc:50051", None, true, keep).is_ok(),
        "plaintext allowed explicitly"
    );

    let missing_ca = ClientTlsSettings::new(pki.path("missing-ca.crt"));
    let error = lazy_channel("https://user-svc:50051", Some(&missing_ca), false, keep)
        .expect_err("missing CA file");
    assert!(
        matches!(
            error,
            ChannelError::Tls(TlsError::Read {
                kind: FileKind::CaCertificates,
                ..
            })
        ),
        "{error:?}"
    );
}

/// Replaces `target` with `source` in one rename, as the kubelet swaps a
/// Secret's files.
fn replace_file(source: &Path, target: &Path) {
    let staged = target.with_extension("staged");
    std::fs::copy(source, &staged).unwrap();
    std::fs::rename(&staged, target).unwrap();
}

/// Checks health with `settings` every 50 ms until the result is `expected`,
/// for at most ten seconds.
async fn wait_for_health(url: &str, settings: &ClientTlsSettings, expected: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let healthy = check_health(https_channel(url, settings)).await.is_ok();
        if healthy == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health check never returned ok = {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn renewed_server_certificate_is_served_without_restart() {
    let pki = Pki::new();
    let served = IdentityFiles {
        cert: pki.path("served.crt"),
        key: pki.path("served.key"),
    };
    replace_file(&pki.server.cert, &served.cert);
    replace_file(&pki.server.key, &served.key);
    let settings = ServerTlsSettings {
        identity: served.clone(),
        client_ca: Some(pki.ca.clone()),
        reload_interval: Duration::from_millis(100),
    };
    let server = start_server(&settings).await;
    let url = format!("https://localhost:{}", server.address.port());
    let old_trust = pki.client(Some(&pki.client));
    let new_ca = TestCa::new("Renewed CA");
    let new_trust = ClientTlsSettings {
        identity: Some(pki.client.clone()),
        ..ClientTlsSettings::new(new_ca.write(pki.folder.path(), "new-ca"))
    };
    check_health(https_channel(&url, &old_trust))
        .await
        .expect("first certificate");

    // A file that does not parse keeps the certificate that works.
    std::fs::write(pki.path("broken.crt"), "not a certificate").unwrap();
    replace_file(&pki.path("broken.crt"), &served.cert);
    tokio::time::sleep(Duration::from_millis(400)).await;
    check_health(https_channel(&url, &old_trust))
        .await
        .expect("first certificate kept");

    let renewed = new_ca
        .issue_server(&["localhost"])
        .write(pki.folder.path(), "renewed");
    replace_file(&renewed.key, &served.key);
    replace_file(&renewed.cert, &served.cert);
    wait_for_health(&url, &new_trust, true).await;
    wait_for_health(&url, &old_trust, false).await;
}
