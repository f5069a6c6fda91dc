# syntax=docker/dockerfile:1.7
# The `order` image. Build from the repository root:
#   docker build -f deploy/order.Dockerfile -t ghcr.io/weir-dev/order:0.1.0 .
# Multi-stage: the Rust toolchain stays in the build stage; the runtime image
# holds only the binary, runs as a non-root user and needs no writable
# root filesystem (its SQLite file lives in WEIR_DATA_DIR=/var/lib/weir, a volume).
# No HEALTHCHECK: Kubernetes probes (and compose's depends_on) do that.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p order --bin order \
    && install -D target/release/order /out/order
RUN install -d -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/order /usr/local/bin/order
# An owned, empty data directory, so a fresh volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/weir
ENV WEIR_DATA_DIR=/var/lib/weir
USER 65532:65532
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/order"]
