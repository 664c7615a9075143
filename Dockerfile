# Dockerfile — kie-worker and kie on Debian bookworm (the packages the build uses).
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config curl xz-utils libcurl4-openssl-dev libcjson-dev \
      libmicrohttpd-dev libssl-dev ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# hiredis 1.2.0 with TLS, static, from Debian trixie's pinned source (docs/tls.md)
COPY scripts/build-hiredis.sh ./scripts/
RUN ./scripts/build-hiredis.sh
COPY Makefile ./
COPY common ./common
COPY worker ./worker
RUN make -j2 all

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libhiredis0.14 libcurl4 libcjson1 libmicrohttpd12 libssl3 ca-certificates \
      && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/kie kie \
      && mkdir -p /var/lib/kie && chown kie /var/lib/kie
COPY --from=build /src/build/kie /src/build/kie-worker /usr/local/bin/
USER kie
WORKDIR /var/lib/kie
ENTRYPOINT ["/usr/local/bin/kie-worker"]
