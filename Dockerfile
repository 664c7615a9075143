# Dockerfile — kie-worker and kie on Debian bookworm: a build stage with the toolchain,
# a runtime stage with the shared libraries only, running as uid 10001 (not root).
#   docker build -t kie-worker .
#   docker run -e REDIS_URL=redis://redis:6379/0 -e KIE_API_TOKEN_FILE=/run/secrets/kie_api_token ... kie-worker
# The worker's HTTP server listens on :8080 (KIE's callbacks, /healthz, /readyz).
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config curl xz-utils patch libcurl4-openssl-dev libcjson-dev \
      libmicrohttpd-dev libssl-dev ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the whole tree, less what .dockerignore leaves out (build output, .git, secrets): new
# source folders (cli/, common/lua/, ...) come along without editing this file
COPY . .
# hiredis 1.2.0 with TLS, static, from Debian trixie's pinned source (docs/tls.md)
RUN ./scripts/build-hiredis.sh
# --- build and install into /out (make install: PREFIX, DESTDIR; docs/deploy.md)
RUN make -j"$(nproc)" all && make install DESTDIR=/out PREFIX=/usr/local \
    && rm -rf /out/usr/local/share/man /out/usr/local/lib/systemd

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libcurl4 libcjson1 libmicrohttpd12 libssl3 ca-certificates \
      && rm -rf /var/lib/apt/lists/* \
      && groupadd --system --gid 10001 kie \
      && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kie-worker \
           --shell /usr/sbin/nologin kie \
      && install -d -o 10001 -g 10001 -m 0750 /var/lib/kie-worker
COPY --from=build /out/usr/local/ /usr/local/
# the fs metadata store (when no R2/S3 store is configured): mount a volume here
ENV KIE_HTTP_ADDR=:8080 \
    KIE_METADATA_DIR=/var/lib/kie-worker \
    KIE_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/kie-worker"]
WORKDIR /var/lib/kie-worker
USER 10001:10001
# SIGTERM: finish in-flight work within KIE_SHUTDOWN_GRACE_MS (20 s) and give back the
# rest; give the container that long plus a margin (docker stop -t 30, compose's
# stop_grace_period: 30s)
STOPSIGNAL SIGTERM
# GET /healthz with bash's /dev/tcp: no HTTP client package in the image. The port is
# KIE_OPS_ADDR's when set (the operator routes are there then), else KIE_HTTP_ADDR's
# (":8080" unless overridden to another ":PORT").
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "a=${KIE_OPS_ADDR:-$KIE_HTTP_ADDR}; p=${a##*:}; exec 3<>/dev/tcp/127.0.0.1/${p:-8080} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 3 _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["/usr/local/bin/kie-worker"]
