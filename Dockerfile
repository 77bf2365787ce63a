# The hanzo-ml worker and simulator image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams streams
COPY learners learners
COPY features features
COPY registry registry
COPY monitor monitor
COPY config config
RUN pip install --no-cache-dir .
ENV HANZO_WEB_HOST=0.0.0.0 HANZO_METRICS_HOST=0.0.0.0
ENTRYPOINT ["hanzo-ml"]
CMD ["worker"]
