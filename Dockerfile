# churn-alert container image: one static-ish binary on distroless (glibc, CA
# certificates, tzdata, no shell), running as uid 65532.
#
# Build:
#   docker build -t churn-alert .
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
# before Docker sends SIGKILL. If [server] is enabled inside a container, listen
# on 0.0.0.0:9898 and publish it, e.g. -p 127.0.0.1:9898:9898.

# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# 1. Dependencies only: this layer is rebuilt only when Cargo.toml/Cargo.lock
#    change. Dummy sources stand in for the lib, the bin and a possible
#    [[bench]] at benches/pipeline.rs, so the manifest resolves.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && echo 'fn main() {}' > benches/pipeline.rs \
 && cargo build --release --locked --bin churn-alert \
 && rm -rf src benches

# 2. The real sources. .dockerignore keeps target/, data/, .git and secrets out;
#    src/, templates/ and tests/fixtures/ (include_str!'d by the crate) come in.
COPY . .
# COPY keeps the context's mtimes, which may be older than the dummy build:
# touch the crate roots so cargo rebuilds churn-alert itself.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin churn-alert \
 && mkdir -p /out/var/lib/churn-alert \
 && cp target/release/churn-alert /out/churn-alert

# ---------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot

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
