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

# --- rendering tools ---------------------------------------------------------------------
# Pinned kustomize and helm, the exact versions the tests run (scripts/dev-cluster builds the
# same versions from tools/cluster/*/go.mod). Bump version and checksum together: the SHA-256
# of each release archive (from the project's release page: kustomize's checksums.txt, helm's
# .sha256sum) is passed as a build ARG and checked before anything is unpacked.
FROM debian:bookworm-slim AS tools
ARG TARGETARCH=amd64
ARG KUSTOMIZE_VERSION=5.8.2
ARG KUSTOMIZE_SHA256=""
ARG HELM_VERSION=3.22.0
ARG HELM_SHA256=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    test -n "$KUSTOMIZE_SHA256" -a -n "$HELM_SHA256" \
      || { echo "set KUSTOMIZE_SHA256 and HELM_SHA256 (--build-arg) for the pinned versions" >&2; exit 1; }; \
    curl -fsSLo /tmp/kustomize.tgz "https://github.com/kubernetes-sigs/kustomize/releases/download/kustomize%2Fv${KUSTOMIZE_VERSION}/kustomize_v${KUSTOMIZE_VERSION}_linux_${TARGETARCH}.tar.gz"; \
    echo "${KUSTOMIZE_SHA256}  /tmp/kustomize.tgz" | sha256sum -c -; \
    tar -xzf /tmp/kustomize.tgz -C /tmp kustomize; \
    curl -fsSLo /tmp/helm.tgz "https://get.helm.sh/helm-v${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"; \
    echo "${HELM_SHA256}  /tmp/helm.tgz" | sha256sum -c -; \
    tar -xzf /tmp/helm.tgz -C /tmp "linux-${TARGETARCH}/helm"; \
    install -D -m 0755 /tmp/kustomize /out/kustomize; \
    install -D -m 0755 "/tmp/linux-${TARGETARCH}/helm" /out/helm

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
# `driftless agent` finds them on PATH (--kustomize-bin / --helm-bin to override).
COPY --from=tools /out/kustomize /out/helm /usr/local/bin/
# The root filesystem is read-only in the pod: git and ssh write under HOME (/tmp) and the
# repository cache goes to /cache, both emptyDir volumes. kustomize and helm run with HOME and
# their state directories in a private scratch directory under /cache/render.
ENV HOME=/tmp \
    DRIFTLESS_CACHE_DIR=/cache
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/driftless"]
CMD ["agent"]
