# syntax=docker/dockerfile:1
# One image for every bankstream process; docker-compose.yml picks the process with `command:`.
#   API and web apps (default CMD): uvicorn server.main:app --host 0.0.0.0 --port 8000 (/app/, /admin/ beside the API)
#   stream worker:     python -m streams
#   one-shot setup:    bank topics apply && bank migrate
# Every setting comes from BANK_* env vars (core/settings.py).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: the project and every dependency as wheels (all deps ship manylinux wheels) ---------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The context is filtered by .dockerignore (no .venv, tests, .git, local data).
COPY . .
RUN pip wheel --wheel-dir /wheels .

# --- runtime: `pip install .` from those wheels, run as an unprivileged user ----------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
# Files the processes read at run time, not package data, so they live in /app and the ENV below points the
# settings at them: the topic registry, the SQL migrations, the fraud rule set and the sanctions list (a worker
# without its rules or sanctions file exits at start). tests/integration/test_compose.py checks every path the ENV and
# docker-compose.yml name is copied here.
COPY topics.yaml /app/topics.yaml
COPY migrations /app/migrations
COPY rules /app/rules

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels bankstream \
 && groupadd --system --gid 10001 bank \
 && useradd --system --uid 10001 --gid bank --home-dir /app --no-create-home --shell /usr/sbin/nologin bank \
 # /app itself is writable (Faust keeps its `<app_id>-data` dir in the working directory); the
 # files in it stay root-owned and read-only. /var/lib/bankstream is BANK_HOME.
 && mkdir -p /var/lib/bankstream \
 && chown bank:bank /app /var/lib/bankstream

# Installed into site-packages, the default paths (core.settings.PROJECT_ROOT/...) would be site-packages'.
ENV BANK_TOPICS_FILE=/app/topics.yaml \
    BANK_MIGRATIONS_DIR=/app/migrations \
    BANK_RULES_FILE=/app/rules/default.yaml \
    BANK_SANCTIONS_FILE=/app/rules/sanctions.csv \
    BANK_HOME=/var/lib/bankstream \
    BANK_API_HOST=0.0.0.0 \
    BANK_API_PORT=8000 \
    BANK_WORKER_WEB_PORT=6066

USER bank:bank
EXPOSE 8000 6066
CMD ["uvicorn", "server.main:app", "--host", "0.0.0.0", "--port", "8000"]
