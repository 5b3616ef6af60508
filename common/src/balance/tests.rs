//! Calls through a [`BackendChannel`] to health servers on loopback, with a
//! lookup that the test controls or, for one test, the system's resolver.

use std::sync::Mutex;
use std::sync::atomic::AtomicU32;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Server;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::*;

/// The service name that the test servers report on.
const PROBE: &str = "probe";
/// Interval between lookups in these tests.
const REFRESH: Duration = Duration::from_millis(20);
/// Most calls a test makes while it waits for the rotation to change.
const PATIENCE: usize = 200;

/// A gRPC server with only the health service, which reports `PROBE` with
/// a status that differs from the other server's; stopped when dropped.
struct TestServer {
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_server(status: ServingStatus) -> TestServer {
    start_server_at("127.0.0.1:0".parse().unwrap(), status).await
}

async fn start_server_at(address: SocketAddr, status: ServingStatus) -> TestServer {
    let listener = TcpListener::bind(address).await.unwrap();
    let address = listener.local_addr().unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    let reported = match status {
        ServingStatus::Serving => tonic_health::ServingStatus::Serving,
        _ => tonic_health::ServingStatus::NotServing,
    };
    reporter.set_service_status(PROBE, reported).await;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    TestServer {
        address,
        _stop: stop,
    }
}

/// A lookup whose result the test sets, counting how often it runs.
#[derive(Clone)]
struct TestLookup {
    result: Arc<Mutex<Result<Vec<SocketAddr>, String>>>,
    runs: Arc<AtomicU32>,
}

impl TestLookup {
    fn new(result: Result<Vec<SocketAddr>, String>) -> Self {
        Self {
            result: Arc::new(Mutex::new(result)),
            runs: Arc::new(AtomicU32::new(0)),
        }
    }

    fn set_result(&self, result: Result<Vec<SocketAddr>, String>) {
        *self.result.lock().unwrap() = result;
    }

    fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }

    fn channel(&self, url: &str) -> BackendChannel {
        let target = Target::parse(url, None, false).unwrap();
        let lookup = self.clone();
        BackendChannel::spread(
            target,
            |endpoint| endpoint,
            REFRESH,
            move || {
                lookup.runs.fetch_add(1, Ordering::SeqCst);
                let result = lookup.result.lock().unwrap().clone();
                async move { result }
            },
        )
    }
}

/// Returns the status that the server taking the call reports.
async fn probe(channel: &BackendChannel) -> Result<ServingStatus, tonic::Status> {
    let request = HealthCheckRequest {
        service: PROBE.to_owned(),
    };
    let response = HealthClient::new(channel.clone()).check(request).await?;
    Ok(response.into_inner().status())
}

/// Probes until the server reporting `expected` takes a call.
async fn probe_until(channel: &BackendChannel, expected: ServingStatus) {
    for _ in 0..PATIENCE {
        if probe(channel).await.ok() == Some(expected) {
            return;
        }
        tokio::time::sleep(REFRESH / 2).await;
    }
    panic!("no call reached the server reporting {expected:?}");
}

#[tokio::test]
async fn calls_go_to_each_address_in_turn() {
    let first = start_server(ServingStatus::Serving).await;
    let second = start_server(ServingStatus::NotServing).await;
    let lookup = TestLookup::new(Ok(vec![second.address, first.address]));
    let channel = lookup.channel("http://localhost:50051");

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(probe(&channel).await.unwrap());
    }

    let serving = statuses
        .iter()
        .filter(|status| **status == ServingStatus::Serving)
        .count();
    assert_eq!(serving, 3, "{statuses:?}");
    assert!(
        statuses.windows(2).all(|pair| pair[0] != pair[1]),
        "consecutive calls reached the same server: {statuses:?}"
    );
}

#[tokio::test]
async fn rotation_follows_the_addresses_of_each_lookup() {
    let first = start_server(ServingStatus::Serving).await;
    let second = start_server(ServingStatus::NotServing).await;
    let lookup = TestLookup::new(Ok(vec![first.address]));
    let channel = lookup.channel("http://localhost:50051");
    for _ in 0..3 {
        assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);
    }

    lookup.set_result(Ok(vec![first.address, second.address]));
    probe_until(&channel, ServingStatus::NotServing).await;

    lookup.set_result(Ok(vec![second.address]));
    // Two calls in a row reach the second server once a lookup has taken
    // the first out of the rotation.
    for _ in 0..PATIENCE {
        if probe(&channel).await.unwrap() == ServingStatus::NotServing
            && probe(&channel).await.unwrap() == ServingStatus::NotServing
        {
            break;
        }
        tokio::time::sleep(REFRESH / 2).await;
    }
    for _ in 0..4 {
        assert_eq!(probe(&channel).await.unwrap(), ServingStatus::NotServing);
    }
}

/// Returns a loopback address on which nothing listens.
async fn closed_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn address_without_listener_never_takes_a_call() {
    let server = start_server(ServingStatus::Serving).await;
    let closed = closed_address().await;
    let lookup = TestLookup::new(Ok(vec![closed, server.address]));
    let channel = lookup.channel("http://localhost:50051");

    for _ in 0..6 {
        assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);
    }
}

#[tokio::test]
async fn failed_call_names_its_address() {
    let closed = closed_address().await;
    let lookup = TestLookup::new(Ok(vec![closed]));
    let channel = lookup.channel("http://localhost:50051");

    let status = probe(&channel).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let message = status.message();
    assert!(message.starts_with(&format!("{closed}: ")), "{message}");
    assert!(message.contains("Connection refused"), "{message}");
}

#[tokio::test]
async fn address_that_never_responds_takes_no_call() {
    let server = start_server(ServingStatus::Serving).await;
    // Accepts connections and never reads from them.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_address = silent.local_addr().unwrap();
    let silent_server = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let lookup = TestLookup::new(Ok(vec![silent_address, server.address]));
    let channel = lookup.channel("http://localhost:50051");

    for _ in 0..6 {
        let status = tokio::time::timeout(Duration::from_secs(5), probe(&channel)).await;
        assert_eq!(status.unwrap().unwrap(), ServingStatus::Serving);
    }
    silent_server.abort();
}

#[tokio::test]
async fn idle_server_that_stops_leaves_before_a_call() {
    let first = start_server(ServingStatus::Serving).await;
    let second = start_server(ServingStatus::NotServing).await;
    let lookup = TestLookup::new(Ok(vec![first.address, second.address]));
    let channel = lookup.channel("http://localhost:50051");
    probe_until(&channel, ServingStatus::NotServing).await;

    drop(second);
    // Two health check intervals, and the checks' time.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    for _ in 0..4 {
        assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);
    }
}

#[tokio::test]
async fn failed_address_leaves_the_rotation_and_rejoins() {
    let first = start_server(ServingStatus::Serving).await;
    let second = start_server(ServingStatus::NotServing).await;
    let second_address = second.address;
    let lookup = TestLookup::new(Ok(vec![first.address, second_address]));
    let channel = lookup.channel("http://localhost:50051");
    probe_until(&channel, ServingStatus::NotServing).await;

    drop(second);
    // The call that finds the second server gone fails, and later calls
    // reach the first alone.
    let mut failures = 0;
    for _ in 0..4 {
        if probe(&channel).await.is_err() {
            failures += 1;
        }
    }
    assert!(failures <= 1, "{failures} calls failed");
    for _ in 0..4 {
        assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);
    }

    let _restarted = start_server_at(second_address, ServingStatus::NotServing).await;
    probe_until(&channel, ServingStatus::NotServing).await;
}

#[tokio::test]
async fn unresolved_name_fails_calls_as_unavailable() {
    let server = start_server(ServingStatus::Serving).await;
    let lookup = TestLookup::new(Err("resolver down".to_owned()));
    let channel = lookup.channel("http://localhost:50051");

    let status = probe(&channel).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        status.message(),
        "no address of localhost:50051 is known: resolver down"
    );

    lookup.set_result(Ok(vec![server.address]));
    probe_until(&channel, ServingStatus::Serving).await;
}

#[tokio::test]
async fn failed_lookup_keeps_addresses() {
    let server = start_server(ServingStatus::Serving).await;
    let lookup = TestLookup::new(Ok(vec![server.address]));
    let channel = lookup.channel("http://localhost:50051");
    assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);

    lookup.set_result(Err("resolver down".to_owned()));
    let runs = lookup.runs();
    while lookup.runs() < runs + 3 {
        tokio::time::sleep(REFRESH).await;
    }

    assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);
}

#[tokio::test]
async fn lookups_stop_when_the_last_clone_is_dropped() {
    let server = start_server(ServingStatus::Serving).await;
    let lookup = TestLookup::new(Ok(vec![server.address]));
    let channel = lookup.channel("http://localhost:50051");
    let clone = channel.clone();
    assert_eq!(probe(&clone).await.unwrap(), ServingStatus::Serving);
    drop(channel);
    drop(clone);

    // One lookup may be under way when the channel goes.
    tokio::time::sleep(REFRESH * 3).await;
    let runs = lookup.runs();
    tokio::time::sleep(REFRESH * 10).await;
    assert_eq!(lookup.runs(), runs);
}

#[tokio::test]
async fn system_resolver_finds_localhost() {
    let server = start_server(ServingStatus::Serving).await;
    let url = format!("http://localhost:{}", server.address.port());
    let balance = Balance::Dns { refresh: REFRESH };
    let channel =
        BackendChannel::connect_lazy(&url, None, false, balance, |endpoint| endpoint).unwrap();
    assert!(matches!(channel.route, Route::Spread(_)));

    assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);
}

#[tokio::test]
async fn ip_address_needs_no_lookup() {
    let server = start_server(ServingStatus::Serving).await;
    let url = format!("http://{}", server.address);
    let balance = Balance::Dns { refresh: REFRESH };
    let channel =
        BackendChannel::connect_lazy(&url, None, false, balance, |endpoint| endpoint).unwrap();
    assert!(matches!(channel.route, Route::Single(_)));

    assert_eq!(probe(&channel).await.unwrap(), ServingStatus::Serving);
}

#[test]
fn balance_from_mode_names() {
    let refresh = Duration::from_secs(5);
    assert_eq!(
        Balance::from_mode("single", refresh).unwrap(),
        Balance::Single
    );
    assert_eq!(
        Balance::from_mode("dns", refresh).unwrap(),
        Balance::Dns { refresh }
    );
    let error = Balance::from_mode("round-robin", refresh).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown balance \"round-robin\": expected single or dns"
    );
}

/// Reads `backend_addresses{backend="users"}` of `state` from `registry`.
fn address_gauge(registry: &prometheus::Registry, state: &str) -> Option<i64> {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == "backend_addresses")
        .flat_map(|family| family.get_metric())
        .find(|metric| {
            let labels: Vec<_> = metric
                .get_label()
                .iter()
                .map(|label| (label.name(), label.value()))
                .collect();
            labels.contains(&("backend", "users")) && labels.contains(&("state", state))
        })
        .map(|metric| metric.get_gauge().get_value() as i64)
}

#[tokio::test]
async fn address_gauge_counts_reachable_addresses() {
    let server = start_server(ServingStatus::Serving).await;
    let closed = closed_address().await;
    let lookup = TestLookup::new(Ok(vec![closed, server.address]));
    let channel = lookup.channel("http://localhost:50051");
    let registry = prometheus::Registry::new();
    register_address_gauge(&registry, &[("users", &channel)]).unwrap();

    let counts = || {
        (
            address_gauge(&registry, "reachable"),
            address_gauge(&registry, "unreachable"),
        )
    };
    let mut seen = counts();
    for _ in 0..PATIENCE {
        if seen == (Some(1), Some(1)) {
            break;
        }
        tokio::time::sleep(REFRESH).await;
        seen = counts();
    }
    assert_eq!(seen, (Some(1), Some(1)));

    lookup.set_result(Ok(vec![server.address]));
    for _ in 0..PATIENCE {
        seen = counts();
        if seen.1 == Some(0) {
            break;
        }
        tokio::time::sleep(REFRESH).await;
    }
    assert_eq!(seen, (Some(1), Some(0)));
}

#[tokio::test]
async fn address_gauge_skips_single_channels() {
    let channel = BackendChannel::connect_lazy(
        "http://127.0.0.1:50051",
        None,
        false,
        Balance::Single,
        |endpoint| endpoint,
    )
    .unwrap();
    let registry = prometheus::Registry::new();
    register_address_gauge(&registry, &[("users", &channel)]).unwrap();

    assert_eq!(address_gauge(&registry, "reachable"), None);
    assert_eq!(address_gauge(&registry, "unreachable"), None);
}
