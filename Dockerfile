# msc4191-shim: the MSC4191 deep-link and discovery translating sidecar.
#
#   docker build -t msc4191-shim .
#   docker run --read-only -p 8080:8080 -e MSC4191_SHIM_UPSTREAM_URL=http://portal:8081 msc4191-shim
#
# Multi-arch (docs/operations.md; .github/workflows/image.yml does this on a tag):
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" --build-arg SOURCE=https://github.com/OWNER/REPO \
#     -t ghcr.io/OWNER/msc4191-shim:0.1.0 --push .
#
# The image runs `msc4191-shim run` as UID/GID 10001 from a virtualenv that nobody can write, with
# the configuration at /etc/msc4191-shim/config.yaml (deploy/container/config.yaml; replace it with a
# read-only mount, or override single keys with the MSC4191_SHIM_* variables). It writes no files, so it runs with a read-only
# root filesystem and no writable volume. tests/process/test_image_entrypoint.py reproduces this image
# without a Docker engine; keep the two in step.

# Pinned by digest: the tag moves with every Debian and Python patch release, and a rebuild should
# change only what this repository changed. This is the multi-platform index (amd64, arm64, ...)
# of python:3.11-slim-bookworm (Python 3.11.16) as Docker Hub's tags API reported it on
# 2026-09-21, the digest that public repositories pin for that tag (for example the Dockerfile of
# github.com/peiyang-z6/BandStructure_AI_Project). Bump it deliberately, with the digest from
# `docker buildx imagetools inspect python:3.11-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---- builder: build the project's wheel and install it with its dependencies into a venv ----------
FROM ${PYTHON_IMAGE} AS builder

# MSC4191_SHIM_COMPILE=1: setup.py compiles the request path with mypyc (about a fifth less CPU a
# request; bench/README.md), so this stage needs a C compiler. The final stage does not.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MSC4191_SHIM_COMPILE=1

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore admits only what the build needs: pyproject.toml, setup.py, README.md, shim/,
# the example config.
COPY . .

# pip builds the wheel from the source tree (PEP 517: setuptools and mypyc) and installs it with the
# runtime dependencies and the uvloop extra; pip itself is then removed from the venv, which is all that the
# final stage copies.
RUN python -m venv /opt/msc4191-shim \
    && /opt/msc4191-shim/bin/python -m pip install --no-cache-dir ".[uvloop]" \
    && /opt/msc4191-shim/bin/python -m pip uninstall --yes --quiet pip

# ---- final: the venv, the example configuration and nothing else ---------------------------------
FROM ${PYTHON_IMAGE}

# What the image was built from (OCI annotations; the CI workflow passes all three): the
# repository's URL, the version (pyproject.toml's, or the tag) and the commit.
ARG SOURCE=""
ARG VERSION=0.1.0
ARG REVISION=""
LABEL org.opencontainers.image.title="msc4191-shim" \
      org.opencontainers.image.description="Translates MSC4191 account-management deep links and discovery metadata in front of a legacy Matrix account portal" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

# A fixed numeric UID/GID, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 msc4191-shim \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin msc4191-shim

COPY --from=builder /opt/msc4191-shim /opt/msc4191-shim
# The container's own settings (the admin listener on 0.0.0.0 for kubelet probes) live in this
# file, not in ENV: a variable would silently beat the operator's mounted file.
COPY deploy/container/config.yaml /etc/msc4191-shim/config.yaml

# PYTHONDONTWRITEBYTECODE: no .pyc writes, the root filesystem may be read-only. No
# MSC4191_SHIM_* key override here, only where the file is.
ENV PATH=/opt/msc4191-shim/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MSC4191_SHIM_CONFIG=/etc/msc4191-shim/config.yaml

# Refuse to build an image whose bundled configuration does not load.
RUN ["msc4191-shim", "check-config", "--config", "/etc/msc4191-shim/config.yaml"]

USER 10001:10001

EXPOSE 8080 9090

# `healthcheck` reads the configuration `run` reads (a mounted file, the MSC4191_SHIM_* variables)
# and asks /healthz on the admin listener it names (0.0.0.0 asked as 127.0.0.1), so moving the
# admin listener does not turn a healthy shim unhealthy. Any error or non-2xx exits 1.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["msc4191-shim", "healthcheck"]

# Exec form: the shim is PID 1 and receives SIGTERM itself; it drains within shutdown_grace and
# exits 0. `docker run IMAGE check-config` or `IMAGE doctor ...` replace only the CMD.
STOPSIGNAL SIGTERM
ENTRYPOINT ["msc4191-shim"]
CMD ["run"]
