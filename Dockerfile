# One image for every checkout-saga process; the command picks the process:
#   docker run IMAGE migrate | run saga --no-relay | run relay | demo | stock show ...
# docker-compose.yml runs the whole product from it (see README "Production with Docker Compose").

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the package (no test extras) into a virtualenv --------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY saga ./saga
COPY services ./services
COPY ops ./ops
COPY migrations ./migrations
RUN /opt/venv/bin/pip install .

# --- runtime: the virtualenv only, run by an unprivileged user ----------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN groupadd --system --gid 10001 checkout \
    && useradd --system --uid 10001 --gid checkout --create-home --home-dir /home/checkout \
       --shell /usr/sbin/nologin checkout

COPY --from=build /opt/venv /opt/venv

# Numeric, so orchestrators that insist on a non-root user can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /home/checkout

# The cart service's HTTP API, where it is served (CHECKOUT_CART__HTTP_HOST=0.0.0.0).
EXPOSE 8000

ENTRYPOINT ["checkout-saga"]
CMD ["--help"]
