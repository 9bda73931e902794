# Build stage: compile threadline in release mode (dependencies cached in their own layer).
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# The workspace also holds the benchmark (bench/): only its manifest is needed, with an empty library, to build
# the server alone.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY bench/Cargo.toml bench/Cargo.toml
RUN mkdir -p src bench/src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs bench/src/lib.rs \
    && cargo build --release --locked -p threadline \
    && rm -rf src
COPY src src
COPY migrations migrations
COPY ui ui
RUN touch src/main.rs src/lib.rs && cargo build --release --locked -p threadline

# Runtime stage: the binary alone, run as an unprivileged user, with the SQLite file on a volume.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home threadline
COPY --from=build /src/target/release/threadline /usr/local/bin/threadline
USER threadline
WORKDIR /data
VOLUME ["/data"]
# Reachable from outside the container, so clients must authenticate: set THREADLINE_API_KEYS=tenant:key,….
ENV THREADLINE_LISTEN=0.0.0.0:8080 \
    THREADLINE_DATABASE_URL=sqlite:///data/threadline.db \
    THREADLINE_AUTH__MODE=keys
EXPOSE 8080
# On SIGTERM threadline drains: running turns get up to THREADLINE_DRAIN_TIMEOUT (30s) to be stored, so give
# `docker stop` / the orchestrator a longer grace period (docker run --stop-timeout 35).
STOPSIGNAL SIGTERM
ENTRYPOINT ["threadline"]
CMD ["serve"]
