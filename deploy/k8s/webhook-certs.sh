#!/usr/bin/env bash
# Makes the TLS certificate of the sidecar-injection webhook and hands it to
# the cluster:
#   1. a private CA (ECDSA P-256) and a serving certificate signed by it for
#      weir-webhook.weir-system.svc (the name the API server calls),
#   2. the Secret weir-system/weir-webhook-tls (type kubernetes.io/tls) that
#      the webhook Deployment mounts,
#   3. the CA as caBundle on both webhooks of the MutatingWebhookConfiguration
#      weir-sidecar-injector, so the API server trusts the certificate,
#   4. a rollout restart of the webhook so it serves the new certificate.
# Run it after `kubectl apply -k deploy/k8s/...`, and again before the
# certificate expires (DAYS, default 365). Needs openssl and kubectl.
#
# Usage: deploy/k8s/webhook-certs.sh [--out-dir DIR] [--no-apply]
#   --out-dir DIR  keep ca.crt, tls.crt, tls.key in DIR (default: a temp dir, removed)
#   --no-apply     only make the files (implies keeping them; needs --out-dir)
# Environment: NAMESPACE (weir-system), SERVICE (weir-webhook),
#   WEBHOOK_CONFIG (weir-sidecar-injector), SECRET (weir-webhook-tls), DAYS (365).
set -euo pipefail

NAMESPACE="${NAMESPACE:-weir-system}"
SERVICE="${SERVICE:-weir-webhook}"
WEBHOOK_CONFIG="${WEBHOOK_CONFIG:-weir-sidecar-injector}"
SECRET="${SECRET:-weir-webhook-tls}"
DAYS="${DAYS:-365}"
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
if [ "$apply" = 0 ] && [ -z "$out_dir" ]; then
  echo "--no-apply needs --out-dir" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
if [ "$apply" = 1 ]; then
  command -v kubectl >/dev/null || { echo "kubectl not found" >&2; exit 1; }
fi

if [ -z "$out_dir" ]; then
  out_dir="$(mktemp -d)"
  trap 'rm -rf "$out_dir"' EXIT
fi
mkdir -p "$out_dir"
umask 077

host="${SERVICE}.${NAMESPACE}.svc"

# 1. CA and serving certificate.
openssl ecparam -name prime256v1 -genkey -noout -out "$out_dir/ca.key"
openssl req -x509 -new -key "$out_dir/ca.key" -sha256 -days "$DAYS" \
  -subj "/CN=weir-webhook-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$out_dir/ca.crt"

openssl ecparam -name prime256v1 -genkey -noout -out "$out_dir/tls.ec.key"
# rustls reads PKCS#8 as well as SEC1; PKCS#8 is what most tools expect.
openssl pkcs8 -topk8 -nocrypt -in "$out_dir/tls.ec.key" -out "$out_dir/tls.key"
rm -f "$out_dir/tls.ec.key"
openssl req -new -key "$out_dir/tls.key" -subj "/CN=${host}" -out "$out_dir/tls.csr"
cat > "$out_dir/tls.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:${SERVICE},DNS:${SERVICE}.${NAMESPACE},DNS:${host},DNS:${host}.cluster.local
EXT
openssl x509 -req -in "$out_dir/tls.csr" -CA "$out_dir/ca.crt" -CAkey "$out_dir/ca.key" \
  -CAcreateserial -days "$DAYS" -sha256 -extfile "$out_dir/tls.ext" -out "$out_dir/tls.crt" 2>/dev/null
rm -f "$out_dir/tls.csr" "$out_dir/tls.ext" "$out_dir/ca.srl"
openssl verify -CAfile "$out_dir/ca.crt" "$out_dir/tls.crt" >/dev/null
echo "certificate for ${host} (valid ${DAYS} days) in ${out_dir}" >&2

if [ "$apply" = 0 ]; then
  exit 0
fi

# 2. The Secret the webhook mounts (created or replaced).
kubectl -n "$NAMESPACE" create secret tls "$SECRET" \
  --cert="$out_dir/tls.crt" --key="$out_dir/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -

# 3. Trust: the CA on every webhook of the configuration.
ca_bundle="$(base64 < "$out_dir/ca.crt" | tr -d '\n')"
count="$(kubectl get mutatingwebhookconfiguration "$WEBHOOK_CONFIG" -o jsonpath='{range .webhooks[*]}x{end}')"
patch="["
for ((i = 0; i < ${#count}; i++)); do
  [ "$i" -gt 0 ] && patch+=","
  patch+="{\"op\":\"add\",\"path\":\"/webhooks/${i}/clientConfig/caBundle\",\"value\":\"${ca_bundle}\"}"
done
patch+="]"
kubectl patch mutatingwebhookconfiguration "$WEBHOOK_CONFIG" --type=json -p "$patch"

# 4. Serve the new certificate.
kubectl -n "$NAMESPACE" rollout restart deployment/"$SERVICE"
kubectl -n "$NAMESPACE" rollout status deployment/"$SERVICE" --timeout=120s
