# syntax=docker/dockerfile:1
#
# The production-like Airflow image: the official apache/airflow image for the Airflow and
# Python versions pinned in requirements/constraints.txt, plus airflow-ml-provider installed
# from this repo with the same uv version, the same constraints file and the same
# `uv pip install` command as `make install`. tests/unit/test_deployment.py checks all three.
#
#   docker build -t airflow-ml-provider:dev .                                   # runtime only
#   docker build --build-arg PROVIDER_EXTRAS='[dev]' -t airflow-ml-provider:ci .  # + test tools, as `make install`
#
# No credentials are baked in: the ml_platform and google_cloud_default connections come
# from the environment at run time (see docker-compose.yaml and .env.example), and GCP
# credentials from a mounted ADC file or the metadata server (workload identity).
FROM apache/airflow:3.3.2-python3.11

# Same uv as the Makefile's UV_VERSION, so the resolver that honours the pins is the same one.
ARG UV_VERSION=0.13.9
# Extras of the provider. Empty in production; '[dev]' reproduces `make install` exactly
# (pytest, ruff, mypy, playwright), for a CI image that runs the test suite.
ARG PROVIDER_EXTRAS=""

USER airflow

# The build writes egg-info next to setup.cfg, so the airflow user creates its own source
# directory (a WORKDIR the builder creates may belong to root).
RUN mkdir -p /opt/airflow/src/airflow-ml-provider
WORKDIR /opt/airflow/src/airflow-ml-provider
COPY --chown=airflow:0 requirements/constraints.txt requirements/constraints.txt
COPY --chown=airflow:0 setup.cfg pyproject.toml README.md ./
COPY --chown=airflow:0 airflow_ml_provider airflow_ml_provider

# The official image's Python environment is the airflow user's virtualenv at
# /home/airflow/.local (VIRTUAL_ENV in the base image), where pip and uv install.
# Non-editable: the image must not depend on this source directory.
# `uv pip check` fails the build if our pins conflict with a provider the base image ships
# (celery, postgres, redis, fab), instead of producing an image that breaks at run time.
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv pip install -q --no-cache -c requirements/constraints.txt ".${PROVIDER_EXTRAS}" \
    && uv pip check

# dags/ and sql/ are bind-mounted by docker-compose.yaml; copies here make the image work
# on its own (e.g. `docker run ... airflow dags list`).
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 sql /opt/airflow/sql

# AIRFLOW_ML_HOME holds the embedded DuckDB warehouse and local artifacts (local mode). It is
# created here, group-writable like the rest of /opt/airflow, so a named volume mounted on it
# starts with these permissions whatever AIRFLOW_UID the containers run as.
ENV AIRFLOW_ML_HOME=/opt/airflow/ml \
    AIRFLOW_ML_SQL_DIR=/opt/airflow/sql \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
RUN mkdir -p "${AIRFLOW_ML_HOME}" && chmod -R g+rwX "${AIRFLOW_ML_HOME}"

WORKDIR /opt/airflow
