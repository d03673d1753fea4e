# rrdsync appliance image: the sidecar (default) and the receiver role, one image.
#
#   docker build -t rrdsync .                       # from a registry (debian:trixie-slim)
#   podman build --format docker -t rrdsync .       # --format docker keeps the HEALTHCHECK
#   Air-gapped / behind a TLS-intercepting proxy:
#   image/build-base-image trixie                   # -> localhost/debian:trixie-slim
#   podman build --format docker --build-arg BASE_IMAGE=localhost/debian:trixie-slim \
#     --secret id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt -t localhost/rrdsync:dev .
#
# Targets: the last stage (rrdsync) is the default; `--target opennms-sim` builds the
# demo's RRD writer.
ARG BASE_IMAGE=debian:trixie-slim

# --- build: the package and its dependencies in a virtualenv --------------------------
FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/rrdsync
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so code changes reuse this layer; then
# supervisord, which the image runs (entrypoint) but the Python package does not import.
COPY pyproject.toml ./
# The optional extra CA (a TLS-intercepting proxy) is a build secret: it is mounted for this
# step only and never stored in a layer. Without --secret the mount is empty and pip uses
# its own CA bundle, as on any normal network.
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi; \
    /opt/rrdsync/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
 && /opt/rrdsync/bin/pip install -r /tmp/requirements.txt \
 && /opt/rrdsync/bin/pip install 'supervisor>=4.2,<5' \
 && /opt/rrdsync/bin/pip install 'setuptools>=68' wheel
COPY rrdsync ./rrdsync
# --no-build-isolation: setuptools is already in the venv, so this step needs no network.
RUN /opt/rrdsync/bin/pip install --no-deps --no-build-isolation . \
 && /opt/rrdsync/bin/pip uninstall -y setuptools wheel pip \
 && find /opt/rrdsync -name __pycache__ -prune -exec rm -rf {} + \
 && /opt/rrdsync/bin/python -m compileall -q /opt/rrdsync/lib

# --- opennms-sim: the demo's collector stand-in (rrdtool writing an OpenNMS-like tree) --
FROM ${BASE_IMAGE} AS opennms-sim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends rrdtool \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown 10001:0 /data && chmod 2775 /data
COPY demo/opennms-sim /usr/local/bin/opennms-sim
USER 10001:0
CMD ["/usr/local/bin/opennms-sim", "/data"]

# --- rrdsync: the runtime image (no compilers, no build tools) ------------------------
FROM ${BASE_IMAGE} AS rrdsync
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rrdsync" \
      org.opencontainers.image.description="Continuous, loss-free replication of an OpenNMS RRD tree over rsync and SSH (sidecar and receiver)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/rrdsync/rrdsync"
ENV DEBIAN_FRONTEND=noninteractive
# rsync brings rrsync (a python3 script, hence python3); openssh-server only for the
# receiver role; libnss-wrapper gives an arbitrary UID a passwd entry (ssh needs one).
# policy-rc.d keeps openssh-server's postinst from trying to start a daemon. Host keys made
# at install time are deleted: they would be shared by every container of this image.
# User rrdsync: UID 10001, primary group 0, and its writable dirs group-0 writable, so any
# UID in group 0 (OpenShift) works too. Password '*' (not '!'): key login allowed, never a
# password.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      rsync openssh-client openssh-server python3 libnss-wrapper \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
      /usr/sbin/policy-rc.d \
 && rm -f /etc/ssh/ssh_host_* \
 && useradd --uid 10001 --gid 0 --home-dir /home/rrdsync --create-home --shell /bin/sh rrdsync \
 && usermod -p '*' rrdsync \
 && mkdir -p /data /var/lib/rrdsync/hostkeys /run/rrdsync /etc/rrdsync/ssh /etc/rrdsync/receiver \
 && chown -R 10001:0 /data /var/lib/rrdsync /run/rrdsync /home/rrdsync \
 && chmod -R g=u /data /var/lib/rrdsync /run/rrdsync /home/rrdsync
COPY --from=build /opt/rrdsync /opt/rrdsync
COPY image/supervisord.conf image/sshd_config /etc/rrdsync/
COPY image/ssh_config /etc/ssh/ssh_config.d/rrdsync.conf
COPY image/fatal-listener image/healthcheck /usr/local/lib/rrdsync/
COPY entrypoint/entrypoint /usr/local/bin/rrdsync-entrypoint
COPY LICENSE /usr/share/doc/rrdsync/LICENSE
ENV PATH=/opt/rrdsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:0
WORKDIR /home/rrdsync
VOLUME ["/var/lib/rrdsync"]
EXPOSE 8080 2222
# Role-aware (sidecar: GET /healthz; receiver: sshd answers with its banner).
# podman build keeps it only with --format docker.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/lib/rrdsync/healthcheck"]
ENTRYPOINT ["/usr/local/bin/rrdsync-entrypoint"]
CMD ["sidecar"]
