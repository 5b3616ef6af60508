//! The background task of a balanced channel: looks the server's name up at
//! each interval, opens a channel per new address, and checks every
//! address with a gRPC health check each second. An address is in the
//! rotation while its last check got SERVING.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{Member, Resolution};
use crate::tls::client::Target;

/// Upper bound on one DNS lookup.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval between lookups while no address is known.
const RETRY_WITHOUT_ADDRESS: Duration = Duration::from_secs(1);
/// Interval between health checks of every address.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound on one health check, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `lookup` every `refresh` and publishes the addresses found, keeping
/// the channels of addresses that stay. A failed lookup keeps the addresses
/// found before. Ends when every receiver is gone. `name` is the host and
/// port, for the logs.
pub(super) async fn run<L, F>(
    target: Target,
    name: String,
    configure: impl Fn(Endpoint) -> Endpoint,
    refresh: Duration,
    mut lookup: L,
    sender: watch::Sender<Resolution>,
) where
    L: FnMut() -> F,
    F: Future<Output = Result<Vec<SocketAddr>, String>>,
{
    let mut members: HashMap<SocketAddr, Arc<Member>> = HashMap::new();
    let mut next_lookup = Instant::now();
    let mut lookup_failing = false;
    loop {
        if Instant::now() >= next_lookup {
            next_lookup = Instant::now() + refresh;
            match lookup().await {
                Ok(found) => {
                    lookup_failing = false;
                    if let Some(ordered) =
                        update(&target, &configure, &name, &mut members, found).await
                    {
                        sender.send_replace(Resolution::Ready(ordered));
                    }
                }
                Err(message) => {
                    if members.is_empty() {
                        next_lookup = Instant::now() + RETRY_WITHOUT_ADDRESS.min(refresh);
                        sender.send_replace(Resolution::Failed(message.as_str().into()));
                    }
                    if !lookup_failing {
                        tracing::warn!(
                            server = %name,
                            error = %message,
                            known_addresses = members.len(),
                            "cannot resolve the server; keeping the addresses found before, if any"
                        );
                    }
                    lookup_failing = true;
                }
            }
        }
        check_health(&name, members.values(), true).await;

        let until_lookup = next_lookup.saturating_duration_since(Instant::now());
        let wait = if members.is_empty() {
            until_lookup
        } else {
            PROBE_INTERVAL.min(until_lookup)
        };
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Replaces `members` with the addresses `found`, reusing the members of
/// addresses that stay and health-checking the new ones. Returns the new
/// rotation, in address order, or `None` when the addresses did not change.
async fn update(
    target: &Target,
    configure: &impl Fn(Endpoint) -> Endpoint,
    name: &str,
    members: &mut HashMap<SocketAddr, Arc<Member>>,
    found: Vec<SocketAddr>,
) -> Option<Arc<[Arc<Member>]>> {
    let mut addresses = found;
    addresses.sort_unstable();
    addresses.dedup();
    let unchanged = addresses.len() == members.len()
        && addresses
            .iter()
            .all(|address| members.contains_key(address));
    if unchanged {
        return None;
    }

    let mut current = HashMap::with_capacity(addresses.len());
    let mut added = Vec::new();
    for address in &addresses {
        let member = members.remove(address).unwrap_or_else(|| {
            let member = Arc::new(Member {
                address: *address,
                channel: target.channel(Some(*address), configure),
                reachable: AtomicBool::new(false),
            });
            added.push(Arc::clone(&member));
            member
        });
        current.insert(*address, member);
    }
    *members = current;
    check_health(name, added.iter(), false).await;

    let unreachable: Vec<SocketAddr> = added
        .iter()
        .filter(|member| !member.reachable.load(Ordering::Relaxed))
        .map(|member| member.address)
        .collect();
    tracing::info!(
        server = %name,
        ?addresses,
        ?unreachable,
        "resolved the server's addresses; the unreachable ones join the rotation once a health check passes"
    );
    Some(
        addresses
            .iter()
            .map(|address| Arc::clone(&members[address]))
            .collect(),
    )
}

/// Runs a health check on each member at once, and sets whether it is in
/// the rotation. Logs each change when `announce`.
async fn check_health<'a>(
    name: &str,
    members: impl Iterator<Item = &'a Arc<Member>>,
    announce: bool,
) {
    let mut checks = tokio::task::JoinSet::new();
    for member in members {
        let member = Arc::clone(member);
        checks.spawn(async move {
            let outcome = health(&member).await;
            (member, outcome)
        });
    }
    while let Some(Ok((member, outcome))) = checks.join_next().await {
        let was_reachable = member.reachable.swap(outcome.is_ok(), Ordering::Relaxed);
        if !announce || was_reachable == outcome.is_ok() {
            continue;
        }
        match outcome {
            Ok(()) => tracing::info!(
                server = name,
                address = %member.address,
                "health check passed; the address rejoins the rotation"
            ),
            Err(error) => tracing::warn!(
                server = name,
                address = %member.address,
                %error,
                "health check failed; the address leaves the rotation until one passes"
            ),
        }
    }
}

/// Asks the member for the server's overall health. A server without the
/// health service counts as healthy, since it responded.
async fn health(member: &Member) -> Result<(), String> {
    let mut client = HealthClient::new(member.channel.clone());
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let response = tokio::time::timeout(PROBE_TIMEOUT, client.check(request))
        .await
        .map_err(|_elapsed| format!("timed out after {} ms", PROBE_TIMEOUT.as_millis()))?;
    match response {
        Ok(response) => match response.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("the server reports {}", other.as_str_name())),
        },
        Err(status) if status.code() == tonic::Code::Unimplemented => Ok(()),
        Err(status) => Err(crate::errors::status_text(&status)),
    }
}

/// Looks `host` up with the system's resolver. A result without addresses
/// is an error.
pub(super) async fn system_lookup(host: String, port: u16) -> Result<Vec<SocketAddr>, String> {
    let query = tokio::net::lookup_host((host.as_str(), port));
    let addresses: Vec<SocketAddr> = tokio::time::timeout(RESOLVE_TIMEOUT, query)
        .await
        .map_err(|_elapsed| format!("timed out after {} s", RESOLVE_TIMEOUT.as_secs()))?
        .map_err(|error| error.to_string())?
        .collect();
    if addresses.is_empty() {
        return Err("the name has no address".to_owned());
    }
    Ok(addresses)
}
