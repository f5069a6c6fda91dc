# syntax=docker/dockerfile:1.7
# The `gateway` image. Build from the repository root:
#   docker build -f deploy/gateway.Dockerfile -t ghcr.io/weir-dev/gateway:0.1.0 .
# Multi-stage: the Rust toolchain stays in the build stage; the runtime image
# holds only the binary, runs as a non-root user and needs no writable
# root filesystem (config is mounted read-only at /etc/weir).
# No HEALTHCHECK: Kubernetes probes (and compose's depends_on) do that.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway --bin gateway \
    && install -D target/release/gateway /out/gateway

# distroless: glibc and CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gateway /usr/local/bin/gateway
USER 65532:65532
# public HTTP, public HTTPS, admin (/healthz /readyz /metrics)
EXPOSE 8080 8443 9901
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["run", "--config", "/etc/weir/gateway.yaml"]
