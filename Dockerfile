# syntax=docker/dockerfile:1
# PPO Explorer: slim Python 3.11, CPU-only torch, non-root, health-checked.
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

# Dependencies first, in their own layers: they change far less often than the source.
# torch comes from the CPU wheel index, pinned, so no CUDA build (several GB) is pulled in.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
RUN mkdir -p app/routes ppo_core \
    && touch app/__init__.py app/routes/__init__.py ppo_core/__init__.py \
    && pip install . \
    && pip uninstall -y ppo-explorer \
    && rm -rf app ppo_core build

# The source last; installed in place (editable) so templates/ and static/ sit beside app/.
COPY --chown=app:app app ./app
COPY --chown=app:app ppo_core ./ppo_core
COPY --chown=app:app templates ./templates
COPY --chown=app:app static ./static
RUN pip install --no-deps -e . && rm -rf build

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PPO_EXPLORER_PORT', '8000'), timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["ppo-explorer"]
