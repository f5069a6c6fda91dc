# syntax=docker/dockerfile:1.7
# The `sidecar` image. Build from the repository root:
#   docker build -f deploy/sidecar.Dockerfile -t ghcr.io/weir-dev/sidecar:0.1.0 .
# Multi-stage: the Rust toolchain stays in the build stage; the runtime image
# holds only the binary, runs as a non-root user and needs no writable
# root filesystem (config is mounted read-only at /etc/weir).
# No HEALTHCHECK: Kubernetes probes (and compose's depends_on) do that.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sidecar --bin sidecar \
    && install -D target/release/sidecar /out/sidecar

# Debian slim rather than distroless: `sidecar init-iptables` (the weir-init
# init container) needs the iptables tools. The proxy itself runs as uid 2102,
# the uid the iptables rules exempt from redirection.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 2102 weir \
    && useradd --uid 2102 --gid 2102 --no-create-home --shell /usr/sbin/nologin weir
COPY --from=build /out/sidecar /usr/local/bin/sidecar
USER 2102:2102
# inbound, outbound, admin (/healthz /readyz /metrics), admission webhook
EXPOSE 4143 4140 4191 8443
ENTRYPOINT ["/usr/local/bin/sidecar"]
CMD ["run", "--config", "/etc/weir/sidecar.yaml"]
