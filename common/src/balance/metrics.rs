//! The `backend_addresses` gauge: how many addresses of each balanced
//! backend are in the rotation, read when the registry is scraped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts, Registry};

use super::{BackendChannel, Resolution, Route, Spread};

/// Counts of one backend's addresses, by the result of their last health
/// check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AddressCounts {
    reachable: usize,
    unreachable: usize,
}

impl Spread {
    fn counts(&self) -> AddressCounts {
        let Resolution::Ready(members) = &*self.addresses.borrow() else {
            return AddressCounts::default();
        };
        let reachable = members
            .iter()
            .filter(|member| member.reachable.load(Ordering::Relaxed))
            .count();
        AddressCounts {
            reachable,
            unreachable: members.len() - reachable,
        }
    }
}

/// Registers `backend_addresses{backend, state}` in `registry` for each
/// `(backend, channel)` pair whose channel balances over DNS. The gauge
/// keeps only weak references, so it does not keep a channel's resolver
/// running, and a dropped channel's series stay at their last values.
pub fn register_address_gauge(
    registry: &Registry,
    channels: &[(&str, &BackendChannel)],
) -> prometheus::Result<()> {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "backend_addresses",
            "Addresses of each balanced backend, by whether the last health check passed.",
        ),
        &["backend", "state"],
    )?;
    let channels = channels
        .iter()
        .filter_map(|(backend, channel)| match &channel.route {
            Route::Spread(spread) => Some(((*backend).to_owned(), Arc::downgrade(spread))),
            Route::Single(_) => None,
        })
        .collect();
    registry.register(Box::new(AddressGauge { gauge, channels }))
}

struct AddressGauge {
    gauge: IntGaugeVec,
    channels: Vec<(String, Weak<Spread>)>,
}

impl Collector for AddressGauge {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (backend, spread) in &self.channels {
            let Some(spread) = spread.upgrade() else {
                continue;
            };
            let counts = spread.counts();
            let set = |state, count: usize| {
                self.gauge
                    .with_label_values(&[backend.as_str(), state])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            };
            set("reachable", counts.reachable);
            set("unreachable", counts.unreachable);
        }
        self.gauge.collect()
    }
}
