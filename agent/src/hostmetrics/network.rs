//! Network interface counters from `/proc/net/dev`.
//!
//! After two header lines, each line is `name: ` and sixteen counters: eight received
//! (bytes, packets, errs, drop, fifo, frame, compressed, multicast) and eight
//! transmitted (bytes, packets, errs, drop, fifo, colls, carrier, compressed). Every
//! interface is reported, loopback included, as the OpenTelemetry Collector does.

use std::time::SystemTime;

use super::otlp::{Descriptor, Kind, MetricSet, Point};

const NETWORK_IO: Descriptor = Descriptor {
    name: "system.network.io",
    description: "Bytes received and transmitted by each interface since boot.",
    unit: "By",
    kind: Kind::Counter,
};
const NETWORK_PACKETS: Descriptor = Descriptor {
    name: "system.network.packets",
    description: "Packets received and transmitted by each interface since boot.",
    unit: "{packets}",
    kind: Kind::Counter,
};
const NETWORK_ERRORS: Descriptor = Descriptor {
    name: "system.network.errors",
    description: "Receive and transmit errors of each interface since boot.",
    unit: "{errors}",
    kind: Kind::Counter,
};
const NETWORK_DROPPED: Descriptor = Descriptor {
    name: "system.network.dropped",
    description: "Packets each interface dropped on receive and transmit since boot.",
    unit: "{packets}",
    kind: Kind::Counter,
};

/// One direction's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    pub bytes: u64,
    pub packets: u64,
    pub errors: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub device: String,
    pub receive: Traffic,
    pub transmit: Traffic,
}

pub fn parse_net_dev(text: &str) -> Result<Vec<InterfaceCounters>, String> {
    let mut interfaces = Vec::new();
    for line in text.lines().skip(2) {
        let Some((device, counters)) = line.split_once(':') else {
            continue;
        };
        let device = device.trim();
        let counters: Vec<u64> = counters
            .split_ascii_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("net/dev {device}: a counter is not a number"))?;
        if counters.len() < 16 {
            return Err(format!("net/dev {device}: fewer than 16 counters"));
        }
        let traffic = |first: usize| Traffic {
            bytes: counters[first],
            packets: counters[first + 1],
            errors: counters[first + 2],
            dropped: counters[first + 3],
        };
        interfaces.push(InterfaceCounters {
            device: device.to_string(),
            receive: traffic(0),
            transmit: traffic(8),
        });
    }
    Ok(interfaces)
}

/// Picks one counter out of a direction's [`Traffic`].
type TrafficCounter = fn(&Traffic) -> u64;

pub fn push_interfaces(
    interfaces: &[InterfaceCounters],
    boot: SystemTime,
    metrics: &mut MetricSet,
) {
    let metric_of: [(Descriptor, TrafficCounter); 4] = [
        (NETWORK_IO, |traffic| traffic.bytes),
        (NETWORK_PACKETS, |traffic| traffic.packets),
        (NETWORK_ERRORS, |traffic| traffic.errors),
        (NETWORK_DROPPED, |traffic| traffic.dropped),
    ];
    for (descriptor, counter) in metric_of {
        let mut points = Vec::with_capacity(interfaces.len() * 2);
        for interface in interfaces {
            for (direction, traffic) in [
                ("receive", &interface.receive),
                ("transmit", &interface.transmit),
            ] {
                points.push(Point::int(
                    vec![
                        ("device", interface.device.clone()),
                        ("direction", direction.to_string()),
                    ],
                    counter(traffic),
                ));
            }
        }
        metrics.push(descriptor, boot, points);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostmetrics::fixture;
    use crate::hostmetrics::tests::points_of;

    #[test]
    fn net_dev_gives_bytes_packets_errors_and_drops_per_direction() {
        let interfaces = parse_net_dev(&fixture("net/dev")).unwrap();
        assert_eq!(interfaces.len(), 2);
        assert_eq!(interfaces[1].device, "eth0");
        assert_eq!(
            interfaces[1].receive,
            Traffic {
                bytes: 123_456_789,
                packets: 100_000,
                errors: 3,
                dropped: 7,
            }
        );
        assert_eq!(
            interfaces[1].transmit,
            Traffic {
                bytes: 98_765_432,
                packets: 80_000,
                errors: 1,
                dropped: 2,
            }
        );
        let mut metrics = MetricSet::new(SystemTime::now());
        push_interfaces(&interfaces, SystemTime::UNIX_EPOCH, &mut metrics);
        let errors = points_of(metrics, "system.network.errors");
        assert_eq!(errors["eth0,receive"], 3.0);
        assert_eq!(errors["eth0,transmit"], 1.0);
        assert_eq!(errors["lo,receive"], 0.0);
    }

    #[test]
    fn garbled_counters_are_an_error() {
        let text = "h1\nh2\n eth0: 1 2 3\n";
        assert!(parse_net_dev(text).is_err());
        let text = "h1\nh2\n eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n";
        assert!(parse_net_dev(text).is_err());
    }
}
