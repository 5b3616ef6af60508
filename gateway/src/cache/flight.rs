//! Single-flight: concurrent lookups of one key inside this process share
//! one store read and at most one backend call.
//!
//! The first caller of a key leads: it reads the store, fetches on a miss,
//! fills the store, then publishes the outcome. Callers that arrive in the
//! meantime follow and receive that outcome. A write through the gateway
//! removes the key's flight from the map, so a read that starts after the
//! write returned cannot join a lookup that began before it.

use std::collections::HashMap;
use std::sync::Mutex;

use lintas_proto::user::v1 as user_pb;
use tokio::sync::watch;

use crate::error::ApiError;

/// Result of a lookup: the user, `None` when no user has the id, or the
/// backend's error.
pub(crate) type Outcome = Result<Option<user_pb::User>, ApiError>;

/// Lookups in progress, by cache key.
#[derive(Default)]
pub(crate) struct Flights {
    state: Mutex<FlightMap>,
}

#[derive(Default)]
struct FlightMap {
    next_id: u64,
    flights: HashMap<String, Flight>,
}

struct Flight {
    /// Tells this flight apart from a later one of the same key.
    id: u64,
    outcome: watch::Receiver<Option<Outcome>>,
}

pub(crate) enum Claim<'a> {
    Lead(Lead<'a>),
    Follow(Follower),
}

/// The caller that performs a key's lookup. Dropping it without
/// [`Lead::finish`] releases its followers to fetch on their own.
pub(crate) struct Lead<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
    outcome: watch::Sender<Option<Outcome>>,
}

/// A caller waiting for another caller's lookup of the same key.
pub(crate) struct Follower {
    outcome: watch::Receiver<Option<Outcome>>,
}

impl Flights {
    /// Joins the lookup of `key` in progress, or starts one.
    pub fn claim(&self, key: String) -> Claim<'_> {
        let mut state = self.lock();
        if let Some(flight) = state.flights.get(&key) {
            return Claim::Follow(Follower {
                outcome: flight.outcome.clone(),
            });
        }
        state.next_id += 1;
        let id = state.next_id;
        let (sender, receiver) = watch::channel(None);
        state.flights.insert(
            key.clone(),
            Flight {
                id,
                outcome: receiver,
            },
        );
        Claim::Lead(Lead {
            flights: self,
            key,
            id,
            outcome: sender,
        })
    }

    /// Stops new callers from joining the lookup of `key` in progress.
    /// Callers that already joined still receive its outcome.
    pub fn forget(&self, key: &str) {
        self.lock().flights.remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FlightMap> {
        // Every update under the lock is a single map operation, so a
        // poisoned map is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Lead<'_> {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Publishes the outcome to the followers and ends the flight. Call it
    /// after filling the store, so a caller that arrives once the flight
    /// has ended finds the entry.
    pub fn finish(self, outcome: Outcome) {
        self.outcome.send_replace(Some(outcome));
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut state = self.flights.lock();
        let current = state.flights.get(&self.key).map(|flight| flight.id);
        if current == Some(self.id) {
            state.flights.remove(&self.key);
        }
    }
}

impl Follower {
    /// Waits for the leader's outcome; `None` when the leader was dropped
    /// before it finished, for example because its client disconnected.
    pub async fn wait(mut self) -> Option<Outcome> {
        let outcome = self.outcome.wait_for(Option::is_some).await.ok()?;
        outcome.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(version: i64) -> user_pb::User {
        user_pb::User {
            version,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn followers_receive_leader_outcome() {
        let flights = Flights::default();
        let Claim::Lead(lead) = flights.claim("k".to_owned()) else {
            panic!("first claim must lead");
        };
        let Claim::Follow(follower) = flights.claim("k".to_owned()) else {
            panic!("second claim must follow");
        };
        lead.finish(Ok(Some(user(3))));
        let outcome = follower.wait().await.expect("leader finished");
        assert_eq!(outcome.unwrap().unwrap().version, 3);
    }

    #[tokio::test]
    async fn finished_flight_is_removed() {
        let flights = Flights::default();
        let Claim::Lead(lead) = flights.claim("k".to_owned()) else {
            panic!("first claim must lead");
        };
        lead.finish(Ok(None));
        assert!(matches!(flights.claim("k".to_owned()), Claim::Lead(_)));
    }

    #[tokio::test]
    async fn dropped_leader_releases_followers() {
        let flights = Flights::default();
        let lead = flights.claim("k".to_owned());
        let Claim::Follow(follower) = flights.claim("k".to_owned()) else {
            panic!("second claim must follow");
        };
        drop(lead);
        assert!(follower.wait().await.is_none());
    }

    #[tokio::test]
    async fn forget_starts_new_flight() {
        let flights = Flights::default();
        let Claim::Lead(old) = flights.claim("k".to_owned()) else {
            panic!("first claim must lead");
        };
        let Claim::Follow(early) = flights.claim("k".to_owned()) else {
            panic!("second claim must follow");
        };
        flights.forget("k");
        let Claim::Lead(new) = flights.claim("k".to_owned()) else {
            panic!("claim after forget must lead");
        };
        let Claim::Follow(late) = flights.claim("k".to_owned()) else {
            panic!("claim during the new flight must follow");
        };

        // Ending the old flight must not end the new one.
        old.finish(Ok(Some(user(1))));
        assert!(matches!(flights.claim("k".to_owned()), Claim::Follow(_)));
        new.finish(Ok(Some(user(2))));

        let early = early.wait().await.unwrap().unwrap().unwrap();
        let late = late.wait().await.unwrap().unwrap().unwrap();
        assert_eq!(early.version, 1);
        assert_eq!(late.version, 2);
    }
}
