//! The background task of a balanced channel: looks the server's name up at
//! each interval, opens a channel per new address, and probes the addresses
//! outside the rotation until they accept a connection.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Endpoint;

use super::{Member, Resolution};
use crate::tls::client::Target;

/// Upper bound on one DNS lookup.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before the next lookup while no address is known.
const RETRY_WITHOUT_ADDRESS: Duration = Duration::from_secs(1);
/// Interval between probes of the addresses outside the rotation.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound on one probe's TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `lookup` every `refresh` and publishes the addresses found, keeping
/// the channels of addresses that stay. A failed lookup keeps the addresses
/// found before. Ends when every receiver is gone.
pub(super) async fn run<L, F>(
    target: Target,
    configure: impl Fn(Endpoint) -> Endpoint,
    refresh: Duration,
    mut lookup: L,
    sender: watch::Sender<Resolution>,
) where
    L: FnMut() -> F,
    F: Future<Output = Result<Vec<SocketAddr>, String>>,
{
    let name = format!("{}:{}", target.host(), target.port());
    let mut members: HashMap<SocketAddr, Arc<Member>> = HashMap::new();
    let mut next_lookup = Instant::now();
    loop {
        if Instant::now() >= next_lookup {
            next_lookup = Instant::now() + refresh;
            match lookup().await {
                Ok(found) => {
                    if let Some(ordered) =
                        update(&target, &configure, &name, &mut members, found).await
                    {
                        sender.send_replace(Resolution::Ready(ordered));
                    }
                }
                Err(message) if members.is_empty() => {
                    tracing::warn!(server = %name, error = %message, "cannot resolve the server");
                    sender.send_replace(Resolution::Failed(message.into()));
                }
                Err(message) => tracing::warn!(
                    server = %name,
                    error = %message,
                    "cannot resolve the server; keeping the addresses found before"
                ),
            }
        }
        probe_unreachable(&name, members.values(), true).await;

        let until_lookup = next_lookup.saturating_duration_since(Instant::now());
        let wait = if members.is_empty() {
            RETRY_WITHOUT_ADDRESS.min(until_lookup)
        } else if members
            .values()
            .any(|member| !member.reachable.load(Ordering::Relaxed))
        {
            PROBE_INTERVAL.min(until_lookup)
        } else {
            until_lookup
        };
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Replaces `members` with the addresses `found`, reusing the members of
/// addresses that stay and probing the new ones. Returns the new rotation,
/// in address order, or `None` when the addresses did not change.
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

    let mut kept = HashMap::with_capacity(addresses.len());
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
        kept.insert(*address, member);
    }
    *members = kept;
    probe_unreachable(name, added.iter(), false).await;

    let unreachable: Vec<SocketAddr> = added
        .iter()
        .filter(|member| !member.reachable.load(Ordering::Relaxed))
        .map(|member| member.address)
        .collect();
    tracing::info!(
        server = %name,
        ?addresses,
        ?unreachable,
        "resolved the server's addresses; the unreachable ones join the rotation once they accept a connection"
    );
    Some(
        addresses
            .iter()
            .map(|address| Arc::clone(&members[address]))
            .collect(),
    )
}

/// Opens a TCP connection to each unreachable member at once, and puts
/// those that accept it back in the rotation, logging it when `announce`.
async fn probe_unreachable<'a>(
    name: &str,
    members: impl Iterator<Item = &'a Arc<Member>>,
    announce: bool,
) {
    let mut probes = tokio::task::JoinSet::new();
    for member in members.filter(|member| !member.reachable.load(Ordering::Relaxed)) {
        let member = Arc::clone(member);
        probes.spawn(async move {
            let connect = tokio::net::TcpStream::connect(member.address);
            let accepted = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, connect).await,
                Ok(Ok(_))
            );
            (member, accepted)
        });
    }
    while let Some(Ok((member, accepted))) = probes.join_next().await {
        if accepted {
            member.reachable.store(true, Ordering::Relaxed);
            if announce {
                tracing::info!(server = name, address = %member.address, "the address accepts connections again and rejoins the rotation");
            }
        }
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
