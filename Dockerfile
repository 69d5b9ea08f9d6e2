# The logserver broker: `docker build -t logserver .`, then see docs/deployment.md.
# Settings are env vars named like the properties (logserver --help lists them);
# the ones set here are the image's defaults, meant to be overridden.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can check it, and volumes can be
# prepared for it (fsGroup 10001).
RUN groupadd --system --gid 10001 logserver \
    && useradd --system --uid 10001 --gid logserver --no-create-home \
        --home-dir /var/lib/logserver --shell /usr/sbin/nologin logserver \
    && mkdir -p /var/lib/logserver \
    && chown logserver:logserver /var/lib/logserver

WORKDIR /src
COPY pyproject.toml README.md ./
COPY client ./client
COPY coordination ./coordination
COPY logserver ./logserver
COPY segment_tools ./segment_tools
# Every dependency ships manylinux wheels: no compiler in the image.
RUN pip install --no-cache-dir . \
    && rm -rf /src
WORKDIR /var/lib/logserver

ENV LOG_DIRS=/var/lib/logserver \
    LISTENERS=PLAINTEXT://0.0.0.0:9092 \
    METRICS_PORT=9404
VOLUME ["/var/lib/logserver"]
EXPOSE 9092 9404

USER 10001:10001

# /health answers 200 while the event loop runs (docs/metrics.md); python, not curl,
# so the slim image needs nothing more.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['METRICS_PORT'] + '/health', timeout=4)"]

# SIGTERM (docker stop, a pod's deletion) makes the broker drain, flush, checkpoint
# and exit 0; give it time: `docker stop -t 30`, terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["logserver"]
