# ModelQL API image: migrates the database named by DATABASE_URL, then serves.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MODELQL_DATA_DIR=/var/lib/modelql

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY modelql ./modelql
COPY graph ./graph
COPY services ./services
COPY persistence ./persistence
COPY models ./models
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --create-home --home-dir /var/lib/modelql modelql

USER modelql
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["sh", "-c", "modelql migrate && exec modelql serve --host 0.0.0.0 --port 8000"]
