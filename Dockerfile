ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
# transcribed as a container image (for NAS boxes): Python and ffmpeg from Debian's packages, transcribed
# installed from this checkout, tini as PID 1, the daemon running as PUID:PGID with its config and ledger in
# /config. Build from a clone:  docker build -t transcribed .
# (podman: `podman build --format docker -t transcribed .`; the OCI format would drop the HEALTHCHECK).
# The README's "Run with Docker" section has the rest; compose.yaml is the example to start from.

# ---- build: a virtual environment holding transcribed and its dependencies, without pip
FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY daemon /src/daemon
RUN python3 -m venv /opt/transcribed \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/transcribed/bin/pip install --no-cache-dir \
        --disable-pip-version-check /src \
 && /opt/transcribed/bin/pip uninstall --yes --quiet pip setuptools

# ---- the image: the runtime packages and the environment, nothing else (no compilers, caches or pip).
# What the packages install leaves out, as Debian's slim images do, documentation, manuals and translations,
# and also Mesa's GPU drivers and the LLVM they link (about 160 MB): ffmpeg's libavdevice links libGL, which
# loads a driver only to draw on a screen, never for audio work. curl is there for hooks (e.g. a Plex rescan).
FROM ${BASE_IMAGE}
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
        'path-exclude=/usr/lib/*/dri/*' 'path-exclude=/usr/lib/*/libLLVM-*' 'path-exclude=/usr/lib/*/libz3.so*' \
        > /etc/dpkg/dpkg.cfg.d/transcribed-lean \
 && apt-get update \
 && apt-get install -y --no-install-recommends curl ffmpeg python3 tini tzdata \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log
COPY --from=build /opt/transcribed /opt/transcribed
COPY container/transcribed container/entrypoint container/healthcheck /usr/local/bin/
COPY container/config.toml /usr/local/share/transcribed/config.toml
# The default places of the config and the ledger lead to /config too, so a config that leaves out
# ledger.path still keeps its ledger in the volume.
RUN cd /usr/local/bin && mv entrypoint transcribed-entrypoint && mv healthcheck transcribed-healthcheck \
 && chmod 0755 transcribed transcribed-entrypoint transcribed-healthcheck \
 && mkdir -p /config /media \
 && ln -s /config /var/lib/transcribed && ln -s /config /etc/transcribed

# PUID/PGID: who the daemon runs as (and who owns what it writes). TZ: the local time of logs and "done today".
ENV PUID=1000 PGID=1000 TZ=UTC TRANSCRIBED_CONFIG=/config/config.toml PYTHONUNBUFFERED=1
VOLUME ["/config"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/transcribed-entrypoint"]
CMD ["transcribed", "run", "--config", "/config/config.toml"]
# Healthy: the daemon runs, its ledger can be read, and Gladia has not refused the key.
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 CMD ["transcribed-healthcheck"]
