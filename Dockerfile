# syntax=docker/dockerfile:1
# The driftless agent image: `docker build -t ghcr.io/driftless-dev/driftless:0.1.0 .`
# Deployed by charts/driftless (and deploy/install.yaml), which runs `driftless agent`.

# --- build -------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin driftless \
    && install -D -m 0755 target/release/driftless /out/driftless

# --- runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim
# git and ssh for fetching (SSH deploy keys, Azure DevOps), CA certificates for HTTPS remotes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 driftless \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin driftless \
    && install -d -o 65532 -g 65532 -m 0750 /cache
COPY --from=builder /out/driftless /usr/local/bin/driftless
# The root filesystem is read-only in the pod: git and ssh write under HOME (/tmp) and the
# repository cache goes to /cache, both emptyDir volumes.
ENV HOME=/tmp \
    DRIFTLESS_CACHE_DIR=/cache
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/driftless"]
CMD ["agent"]
