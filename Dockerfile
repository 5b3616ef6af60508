# syntax=docker/dockerfile:1
#
# Builds one Lintas binary into a distroless image. Pick the binary with a build
# argument:
#
#   docker build --build-arg BINARY=gateway   -t lintas-gateway .
#   docker build --build-arg BINARY=user-svc  -t lintas-user-svc .
#   docker build --build-arg BINARY=order-svc -t lintas-order-svc .
#
# cargo-chef caches the dependency build in its own layer, so a change to the
# project's sources rebuilds only the workspace crates. The `production` profile
# (Cargo.toml) adds link-time optimisation to the release profile.
#
# There is no HEALTHCHECK: the runtime image has no shell and no HTTP or gRPC
# client to run one, and Kubernetes ignores HEALTHCHECK anyway. The probes in
# k8s/base (httpGet on /healthz and /readyz for the gateway, native gRPC probes
# for the services) do that job in the cluster.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.78

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG BINARY
RUN test -n "${BINARY}" || { echo "missing build argument BINARY (gateway, user-svc or order-svc)" >&2; exit 1; }
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --profile production --locked --recipe-path recipe.json --package "${BINARY}"
COPY . .
RUN cargo build --profile production --locked --package "${BINARY}" --bin "${BINARY}" \
    && cp "target/production/${BINARY}" /usr/local/bin/lintas-service

# The cc variant carries glibc and libgcc, which is all the binaries link to.
# The nonroot tag runs as uid 65532 and has no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG BINARY
LABEL org.opencontainers.image.title="lintas-${BINARY}" \
      org.opencontainers.image.source="https://github.com/lintas-dev/lintas" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /usr/local/bin/lintas-service /usr/local/bin/lintas-service
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/lintas-service"]
