# syntax=docker/dockerfile:1.7
# The `catalog` image. Build from the repository root:
#   docker build -f deploy/catalog.Dockerfile -t ghcr.io/weir-dev/catalog:0.1.0 .
# Multi-stage: the Rust toolchain stays in the build stage; the runtime image
# holds only the binary, runs as a non-root user and needs no writable
# root filesystem (its SQLite file lives in WEIR_DATA_DIR=/var/lib/weir, a volume).
# No HEALTHCHECK: Kubernetes probes (and compose's depends_on) do that.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p catalog --bin catalog \
    && install -D target/release/catalog /out/catalog
RUN install -d -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/catalog /usr/local/bin/catalog
# An owned, empty data directory, so a fresh volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/weir
ENV WEIR_DATA_DIR=/var/lib/weir
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/catalog"]
