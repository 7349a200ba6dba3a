# syntax=docker/dockerfile:1
#
# sockudo-py image: docker build -t sockudo-py .
#   docker run -p 6001:6001 -p 9601:9601 \
#     -v "$PWD/config.json:/app/config/config.json:ro" sockudo-py
# The baked-in /app/config/config.json is the repository's config.json (0.0.0.0:6001,
# metrics on 9601, the demo app app-id/app-key/app-secret); Sockudo's environment variables
# (PORT, REDIS_URL, SOCKUDO_DEFAULT_APP_ID/KEY/SECRET, ...) override it. See README, "Docker".
# tests/test_docker.py runs this file's pip steps, CMD and HEALTHCHECK outside Docker.

ARG PYTHON_VERSION=3.12

# --- build: the wheel of sockudo-py ----------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sockudo_py/ sockudo_py/
RUN pip wheel --no-deps --wheel-dir /dist .

# --- runtime: the wheel with every driver's client (the "all" extra), run as non-root -------
FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="sockudo-py" \
      org.opencontainers.image.description="Pusher-protocol-compatible multi-tenant WebSocket server" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    pip install --no-cache-dir "$(echo /dist/sockudo_py-*.whl)[all]"
RUN groupadd --system --gid 10001 sockudo \
    && useradd --system --uid 10001 --gid sockudo --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin sockudo
WORKDIR /app
COPY config.json /app/config/config.json
USER 10001:10001
EXPOSE 6001 9601
# /up answers 200 while serving, 503 while draining. The port is PORT when set (it overrides
# the config file too), else 6001: set PORT when your config.json listens elsewhere.
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '6001') + '/up', timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["sockudo-py", "--config", "/app/config/config.json"]
