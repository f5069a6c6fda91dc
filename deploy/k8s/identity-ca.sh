#!/usr/bin/env bash
# Makes the mesh's trust anchor and identity issuer and hands them to the cluster:
#   1. `sidecar identity init`: a trust anchor and an issuer certificate
#      (ECDSA P-256) for TRUST_DOMAIN, in OUT_DIR;
#   2. the Secret weir-system/weir-identity-ca the issuer Deployment mounts
#      (trust-domain, anchor.crt, issuer.crt, issuer.key; not the anchor key);
#   3. the ConfigMap weir-trust-anchor (anchor.crt) in every mesh namespace,
#      which injected sidecars mount;
#   4. a rollout restart of the issuer.
# Run it once after `kubectl apply -k deploy/k8s/...`. Keep OUT_DIR/anchor.key
# offline: it is only needed to make a new issuer certificate. See docs/identity.md.
#
# Usage: deploy/k8s/identity-ca.sh --out-dir DIR [--no-apply]
# Environment: TRUST_DOMAIN (weir.local), NAMESPACES (weir-demo, space-separated),
#   SIDECAR (the sidecar binary; default `sidecar` on PATH, else `cargo run -p sidecar`).
# The issuer signs only IDs of this trust domain, and injected sidecars and the
# gateway ask for spiffe://weir.local/... (identity.trust_domain's default; the
# injector sets no WEIR_IDENTITY_TRUST_DOMAIN): another value here needs the
# same value in every sidecar's and the gateway's `identity.trust_domain` and
# in the SPIFFE IDs the configs name (demo/tests/cluster_identity.rs checks).
set -euo pipefail

TRUST_DOMAIN="${TRUST_DOMAIN:-weir.local}"
NAMESPACES="${NAMESPACES:-weir-demo}"
out_dir=""
apply=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out-dir) out_dir="${2:?--out-dir needs a directory}"; shift 2 ;;
    --no-apply) apply=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out_dir" ] || { echo "--out-dir is required (the anchor key is kept there)" >&2; exit 2; }
if [ "$apply" = 1 ]; then
  command -v kubectl >/dev/null || { echo "kubectl not found" >&2; exit 1; }
fi

if [ -n "${SIDECAR:-}" ]; then
  sidecar=("$SIDECAR")
elif command -v sidecar >/dev/null; then
  sidecar=(sidecar)
else
  sidecar=(cargo run -q -p sidecar --)
fi
"${sidecar[@]}" identity init --dir "$out_dir" --trust-domain "$TRUST_DOMAIN"

[ "$apply" = 1 ] || exit 0
kubectl -n weir-system create secret generic weir-identity-ca \
  --from-file=trust-domain="$out_dir/trust-domain" \
  --from-file=anchor.crt="$out_dir/anchor.crt" \
  --from-file=issuer.crt="$out_dir/issuer.crt" \
  --from-file=issuer.key="$out_dir/issuer.key" \
  --dry-run=client -o yaml | kubectl apply -f -
for ns in $NAMESPACES; do
  kubectl -n "$ns" create configmap weir-trust-anchor \
    --from-file=anchor.crt="$out_dir/anchor.crt" \
    --dry-run=client -o yaml | kubectl apply -f -
done
kubectl -n weir-system rollout restart deployment/weir-identity
