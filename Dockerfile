# churn-alert container image: one static-ish binary on distroless (glibc, CA
# certificates, tzdata, no shell), running as uid 65532.
#
# Build:
#   docker build -t churn-alert .
#
# Build arguments (all optional; the defaults build from the public registries):
#   RUST_IMAGE      the builder image, default rust:1-bookworm (Docker Hub).
#   RUNTIME_IMAGE   the image the binary is copied onto, default
#                   gcr.io/distroless/cc-debian12:nonroot. A replacement must
#                   also provide glibc, CA certificates and a nonroot user with
#                   uid/gid 65532 (a mirror of the same image does).
#   CARGO_REGISTRY  empty by default (crates.io itself). When set, crates.io is
#                   replaced by this registry in the builder's cargo config
#                   ($CARGO_HOME/config.toml) before the first cargo build; use
#                   the sparse form, e.g. sparse+https://rsproxy.cn/index/ or
#                   sparse+https://mirrors.ustc.edu.cn/crates.io-index/.
#                   Cargo.lock is unchanged, so --locked still applies.
# Where Docker Hub, gcr.io or crates.io are slow or unreachable (e.g. mainland
# China), point all three at mirrors:
#   docker build \
#     --build-arg RUST_IMAGE=<mirror>/library/rust:1-bookworm \
#     --build-arg RUNTIME_IMAGE=<mirror>/distroless/cc-debian12:nonroot \
#     --build-arg CARGO_REGISTRY=sparse+https://rsproxy.cn/index/ \
#     -t churn-alert .
#
# Run (config.toml must be world-readable, its [store] path must be
# "/var/lib/churn-alert/store"; secrets come from the env file):
#   docker run -d --name churn-alert --stop-timeout 15 \
#     --env-file churn-alert.env \
#     -v $PWD/config.toml:/etc/churn-alert/config.toml:ro \
#     -v churn-alert-data:/var/lib/churn-alert \
#     churn-alert
#
# The daemon exits 0 within 10 s of SIGTERM; --stop-timeout 15 leaves it room
# before Docker sends SIGKILL. To reach /healthz and /metrics from the host, set
# [server] listen = "0.0.0.0:9898" AND token = "${CHURN_ALERT_TOKEN}" (the token
# guards /state/*, which holds customer names; without one, /state/* is not
# served over TCP at all), and publish the port on loopback only:
# -p 127.0.0.1:9898:9898. `churn-alert state stats|pending` in a one-off
# container on the same volume reach the daemon over its unix socket
# /var/lib/churn-alert/store.sock, with no port at all.

# Declared before the first FROM so that both FROM lines can use them.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /build

# 0. Optional crates.io mirror (see CARGO_REGISTRY above). Written before any
#    cargo command runs; nothing is written when the argument is empty.
ARG CARGO_REGISTRY=
RUN if [ -n "$CARGO_REGISTRY" ]; then \
      cargo_home="${CARGO_HOME:-$HOME/.cargo}" \
      && mkdir -p "$cargo_home" \
      && printf '[source.crates-io]\nreplace-with = "mirror"\n\n[source.mirror]\nregistry = "%s"\n' \
           "$CARGO_REGISTRY" > "$cargo_home/config.toml" \
      && echo "crates.io replaced by $CARGO_REGISTRY in $cargo_home/config.toml"; \
    fi

# 1. Dependencies only: this layer is rebuilt only when a manifest or
#    Cargo.lock changes. Cargo loads every workspace member, so each member's
#    Cargo.toml is copied too (keep this list in step with [workspace] members
#    in Cargo.toml). Dummy sources stand in for the lib, the bin, the members'
#    targets and a possible [[bench]] at benches/pipeline.rs, so the workspace
#    resolves.
COPY Cargo.toml Cargo.lock ./
COPY crates/sim/Cargo.toml crates/sim/
COPY crates/bench/Cargo.toml crates/bench/
RUN mkdir -p src benches crates/sim/src crates/bench/src \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && echo 'fn main() {}' > benches/pipeline.rs \
 && : > crates/sim/src/lib.rs \
 && : > crates/bench/src/lib.rs \
 && echo 'fn main() {}' > crates/bench/src/main.rs \
 && cargo build --profile dist --locked --no-default-features --bin churn-alert \
 && rm -rf src benches crates

# 2. The real sources. .dockerignore keeps target/, data/, .git and secrets out;
#    src/ (with src/source/documented-example.json, include_str!'d by the
#    crate), templates/ and crates/ come in. The image is built without the
#    default `demo` feature: the simulators stay out of the shipped binary.
COPY . .
# COPY keeps the context's mtimes, which may be older than the dummy build:
# touch the crate roots so cargo rebuilds churn-alert and the workspace crates
# it links (churn-alert-sim) instead of keeping the dummies.
RUN touch src/main.rs src/lib.rs crates/sim/src/lib.rs \
 && cargo build --profile dist --locked --no-default-features --bin churn-alert \
 && mkdir -p /out/var/lib/churn-alert \
 && cp target/dist/churn-alert /out/churn-alert

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

COPY --from=builder /out/churn-alert /usr/local/bin/churn-alert
# The state folder must belong to nonroot before the volume is first mounted:
# a new named volume copies this ownership. (A bind-mounted host folder must be
# chowned to 65532:65532 by hand.)
COPY --from=builder --chown=65532:65532 /out/var/lib/churn-alert /var/lib/churn-alert

VOLUME /var/lib/churn-alert
WORKDIR /var/lib/churn-alert
USER nonroot:nonroot

ENTRYPOINT ["/usr/local/bin/churn-alert"]
CMD ["run", "--config", "/etc/churn-alert/config.toml"]
