# syntax=docker/dockerfile:1
# One image for every bankstream process; docker-compose.yml picks the process with `command:`.
#   API (default CMD): uvicorn api.main:app --host 0.0.0.0 --port 8000
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
# Files the code finds relative to the source tree (core.settings.PROJECT_ROOT): the topic registry
# and the SQL migrations. They are not package data, so they live in /app.
COPY topics.yaml /app/topics.yaml
COPY migrations /app/migrations

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels bankstream \
 # Installed into site-packages, PROJECT_ROOT is site-packages itself: cli/migrate.py reads
 # PROJECT_ROOT/migrations and has no setting to override it, so point that path at /app/migrations.
 # (topics.yaml is covered by BANK_TOPICS_FILE below.)
 && root="$(python -c 'from core.settings import PROJECT_ROOT; print(PROJECT_ROOT)')" \
 && ln -s /app/migrations "$root/migrations" \
 && groupadd --system --gid 10001 bank \
 && useradd --system --uid 10001 --gid bank --home-dir /app --no-create-home --shell /usr/sbin/nologin bank \
 # /app itself is writable (Faust keeps its `<app_id>-data` dir in the working directory); the
 # files in it stay root-owned and read-only. /var/lib/bankstream is BANK_HOME.
 && mkdir -p /var/lib/bankstream \
 && chown bank:bank /app /var/lib/bankstream

ENV BANK_TOPICS_FILE=/app/topics.yaml \
    BANK_RULES_FILE=/app/rules/default.yaml \
    BANK_SANCTIONS_FILE=/app/rules/sanctions.csv \
    BANK_HOME=/var/lib/bankstream \
    BANK_API_HOST=0.0.0.0 \
    BANK_API_PORT=8000 \
    BANK_WORKER_WEB_PORT=6066

USER bank:bank
EXPOSE 8000 6066
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
