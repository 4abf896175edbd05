# A mirror or a hardened base with Python 3.11 and pip on PATH can stand in: --build-arg BASE=...
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HANDOFF_HOST=0.0.0.0 HANDOFF_PORT=8080 HANDOFF_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY handoff ./handoff
COPY schemas ./schemas
COPY adapters ./adapters
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home /data handoff \
 && mkdir -p /data && chown handoff /data

USER handoff
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,sys,urllib.request as u; port=os.environ.get('HANDOFF_PORT','8080'); sys.exit(u.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status != 200)"
# The embedded Redis keeps its data in /data; set HANDOFF_REDIS_URL to use your own instead.
CMD ["handoff", "serve", "--host", "0.0.0.0"]
