//! Mesh metrics: who calls inbound and what authorization decided, how
//! inbound connections arrive (mutual TLS or plaintext), and how each
//! destination is reached. Peer labels are workload identities (bounded by
//! the workloads of the trust domain) or `none`/`plaintext`, never request data.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationTransportLabels {
    destination: String,
    transport: &'static str,
}

#[derive(Clone, Default)]
pub(crate) struct MeshMetrics {
    inbound_peers: Family<PeerLabels, Counter>,
    inbound_connections: Family<TransportLabels, Counter>,
    destination_transport: Family<DestinationTransportLabels, Gauge>,
}

impl MeshMetrics {
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "weir_sidecar_inbound_peer_requests",
            "Inbound requests by caller identity (`none`: TLS without a client \
             certificate, `plaintext`) and authorization decision",
            self.inbound_peers.clone(),
        );
        r.register(
            "weir_sidecar_inbound_connections",
            "Inbound connections by transport (`tls`, `plaintext`, or `refused` when \
             the port's TLS mode closed them)",
            self.inbound_connections.clone(),
        );
        r.register(
            "weir_sidecar_destination_transport",
            "1 for how each destination is reached: `mtls` or `plaintext`",
            self.destination_transport.clone(),
        );
    }

    pub(crate) fn inbound_request(&self, peer: &str, allowed: bool) {
        self.inbound_peers
            .get_or_create(&PeerLabels {
                peer: peer.to_owned(),
                decision: if allowed { "allowed" } else { "denied" },
            })
            .inc();
    }

    pub(crate) fn inbound_connection(&self, transport: &'static str) {
        self.inbound_connections
            .get_or_create(&TransportLabels { transport })
            .inc();
    }

    pub(crate) fn destination_transport(&self, destination: &str, mtls: bool) {
        let (on, off) = if mtls {
            ("mtls", "plaintext")
        } else {
            ("plaintext", "mtls")
        };
        let labels = |transport| DestinationTransportLabels {
            destination: destination.to_owned(),
            transport,
        };
        self.destination_transport.get_or_create(&labels(on)).set(1);
        self.destination_transport
            .get_or_create(&labels(off))
            .set(0);
    }
}
