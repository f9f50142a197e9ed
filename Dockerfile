# The driftline worker image used by docker-compose.yml.
FROM python:3.11-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY driftline driftline
COPY schemas schemas
COPY monitors monitors
COPY streams streams
COPY agents agents
RUN pip install --no-cache-dir . && rm -rf /src

RUN useradd --system --create-home driftline \
    && mkdir -p /var/lib/driftline && chown driftline /var/lib/driftline
USER driftline
WORKDIR /var/lib/driftline
# The working directory must never shadow an installed package.
ENV PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1

ENTRYPOINT ["driftline"]
CMD ["worker"]
