# The hanzo-ml worker and simulator image (used by docker-compose.yml; tests/unit/test_compose.py checks that
# every package of pyproject.toml is copied).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
# hanzo/ml holds the package's __init__ and symlinks to the folders below
COPY hanzo hanzo
COPY schemas schemas
COPY streams streams
COPY learners learners
COPY features features
COPY registry registry
COPY monitor monitor
COPY config config
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 hanzo \
    && mkdir -p /registry && chown hanzo /registry
USER hanzo
# Inside a container the worker must listen on every interface so Prometheus (and the port mapping) reach it;
# docker-compose binds the published ports to 127.0.0.1 on the host.
ENV HANZO_WEB_HOST=0.0.0.0 HANZO_METRICS_HOST=0.0.0.0 HANZO_STATE_DIR=/tmp/hanzo
EXPOSE 6066 9464
ENTRYPOINT ["hanzo-ml"]
CMD ["worker"]
