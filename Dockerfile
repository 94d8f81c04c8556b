# syntax=docker/dockerfile:1
# Dragoman's image: `docker build -t dragoman .` from the checkout. README, "Running a team", says how to run it.
#
# Two stages: the builder makes Dragoman's wheel and installs it with its dependencies (all prebuilt wheels: no
# compiler is needed or shipped) into a virtual environment; the runtime stage is the same slim Python with that
# environment copied in, tini as PID 1, and a fixed non-root user.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# Extra packages for the image, e.g. --build-arg EXTRA_PACKAGES=opentelemetry-exporter-otlp-proto-http (tracing).
ARG EXTRA_PACKAGES=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dragoman ./dragoman
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/dragoman \
 && /opt/dragoman/bin/pip install /wheels/dragoman-*.whl $EXTRA_PACKAGES \
 && /opt/dragoman/bin/pip uninstall -y pip

FROM ${PYTHON_IMAGE} AS runtime
# tini forwards SIGTERM to the gateway (which then stops accepting and drains: README, "Stopping") and reaps
# orphans; Python as PID 1 would get no default signal handling from the kernel. Debian's version is not pinned:
# a stable release keeps its tini and drops superseded versions from the mirror, which would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dragoman \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/dragoman --create-home --shell /usr/sbin/nologin dragoman \
 && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=builder /opt/dragoman /opt/dragoman
# XDG_DATA_HOME on /data: the embedded SQLite audit store is /data/dragoman/dragoman.db, on a volume; the signing
# key file beside it survives a restart (a team of instances sets DRAGOMAN_SIGNING_KEY instead: one key for all).
ENV PATH=/opt/dragoman/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/dragoman \
    XDG_DATA_HOME=/data \
    DRAGOMAN_SIGNING_KEY_FILE=/data/dragoman/signing.key \
    DRAGOMAN_PORT=8080
VOLUME ["/data"]
USER 10001:10001
WORKDIR /home/dragoman
EXPOSE 8080
# The standard library only: the image has no curl. Any failure (refused, timeout, non-200) exits non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRAGOMAN_PORT', '8080') + '/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "dragoman"]
# The config: mount a file and set DRAGOMAN_CONFIG to its path (or append `--config FILE`); none: zero-config.
CMD ["serve", "--host", "0.0.0.0"]
