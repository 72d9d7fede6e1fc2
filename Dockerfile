# widget-proxy serve, as a container: docs/deploying.md.
#
#   docker build -t widget-proxy .
#   docker run --read-only --tmpfs /tmp --stop-timeout 20 -p 127.0.0.1:8000:8000 \
#     -e SESSION_SECRET_FILE=/run/secrets/session_secret ... widget-proxy
#
# Two stages: the first builds the wheel with the locked build backend and installs it,
# with the locked and hashed dependencies, into a virtual environment; the second is
# that environment on a clean base, run as a user without privileges. The base image
# is an argument so that a machine without a registry can build on a stand-in.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The locks first: this layer is rebuilt only when they change, not with the code.
COPY requirements/runtime.txt requirements/demo.txt requirements/
# /opt/widget-proxy gets what the package needs to run (requirements/runtime.txt: no
# build backend); /opt/build gets what builds the wheel (requirements/demo.txt, with
# hatchling), at the versions the tests ran.
RUN python3 -m venv /opt/widget-proxy \
    && /opt/widget-proxy/bin/pip install --no-cache-dir --require-hashes -r requirements/runtime.txt \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes -r requirements/demo.txt
COPY pyproject.toml hatch_build.py README.md ./
COPY app/ app/
COPY templates/ templates/
# The wheel (not an editable install): the package is `widget_proxy` in site-packages,
# its pages inside it. Its dependencies are already there (--no-deps).
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/widget-proxy/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
    && /opt/widget-proxy/bin/python -m compileall -q /opt/widget-proxy/lib

FROM ${PYTHON_IMAGE}
# A system user and group of its own (10001, what the Kubernetes manifests run as),
# no home, no shell.
RUN groupadd --system --gid 10001 widget-proxy \
    && useradd --system --uid 10001 --gid widget-proxy --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin widget-proxy
COPY --from=build /opt/widget-proxy /opt/widget-proxy
# Read-only root: nothing is written outside /tmp (a tmpfs or an emptyDir), where
# `serve --workers N` keeps each worker's metrics (a fresh folder under TMPDIR) and
# Python its temporary files. The bytecode was compiled in the build stage.
ENV PATH=/opt/widget-proxy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
# `serve` reads a .env from its working folder if one is there (mount it, or use the
# environment and *_FILE secrets).
WORKDIR /srv/widget-proxy
USER 10001:10001
EXPOSE 8000
# uvicorn's own SIGTERM handling is the drain: stop accepting, let requests in flight
# finish for up to SHUTDOWN_TIMEOUT (10 s), run the app's shutdown (the last sync to
# Redis), exit 0. ENTRYPOINT is in exec form, so the server is PID 1 and gets the
# signal itself; allow the runtime SHUTDOWN_TIMEOUT + 10 s before it kills
# (`docker run --stop-timeout 20`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
# Liveness, with the standard library only (no curl in a slim image), straight to the
# process: no proxy from the environment, 2 s at most.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["widget-proxy"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
