# tests/fakes.Dockerfile — the KIE fake and the S3 stand-in for docker-compose.local.yml:
# the same tests/fake_kie.py and tests/fake_s3.py the system tests use, on Debian's python3
# and python3-botocore (fake_s3's signature oracle).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-botocore \
    && rm -rf /var/lib/apt/lists/*
COPY tests/fake_kie.py tests/fake_s3.py /opt/fakes/
USER 65534:65534
