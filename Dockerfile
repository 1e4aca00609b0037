FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY engine ./engine
COPY projections ./projections
COPY demo ./demo
COPY journeys ./journeys
COPY templates ./templates
RUN pip install --no-cache-dir --no-deps .
ENV HUOKE_JOURNEYS_DIR=/app/journeys HUOKE_TEMPLATES_DIR=/app/templates
CMD ["huoke", "worker"]
