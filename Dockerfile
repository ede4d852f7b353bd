# syntax=docker/dockerfile:1
# PPO Explorer: slim Python 3.11, CPU-only torch, non-root, health-checked, installed from the
# project's wheel (the page ships inside it as package data).

# --- build: the wheel, nothing else leaves this stage ---------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY ppo_core ./ppo_core
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime --------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PPO_EXPLORER_HOST=0.0.0.0 \
    PPO_EXPLORER_PORT=8000 \
    PPO_EXPLORER_WORKERS=2

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

# torch first, in its own layer, from the CPU wheel index and pinned: no CUDA build (several
# GB) is pulled in, and it changes far less often than the project.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
# The project's wheel (not the source tree): its other dependencies come from PyPI here.
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PPO_EXPLORER_PORT', '8000'), timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["ppo-explorer"]
