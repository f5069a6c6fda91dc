//! Sidecar injection into Kubernetes manifests and the mutating admission webhook.
