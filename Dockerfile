# stockx-sync: multi-stage build, small non-root runtime image.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that a code change does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked || true
COPY src src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/stockx-sync

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin stockx-sync
COPY --from=build /src/target/release/stockx-sync /usr/local/bin/stockx-sync
USER stockx-sync
ENV STOCKX_SYNC_HTTP_ADDR=0.0.0.0:9464 \
    STOCKX_SYNC_LOG_FORMAT=json
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
ENTRYPOINT ["stockx-sync"]
CMD ["worker"]
