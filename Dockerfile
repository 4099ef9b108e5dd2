# syntax=docker/dockerfile:1
# fraudvae scoring service. Build: docker build -t fraudvae .
# Run:   docker run -p 8000:8000 -v "$PWD/demo_output/model:/model:ro" fraudvae
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first (cache-friendly): the CPU-only torch wheel, then the pinned set.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY requirements/constraints.txt /src/requirements/constraints.txt
COPY pyproject.toml README.md /src/
COPY fraudvae/_version.py /src/fraudvae/_version.py
RUN for p in fraudvae fraudvae/cli fraudvae/data fraudvae/datasets fraudvae/detection fraudvae/features fraudvae/jobs \
        fraudvae/model fraudvae/monitor fraudvae/report fraudvae/state service service/routers; do mkdir -p "/src/$p" && touch "/src/$p/__init__.py"; done \
    && pip install -c /src/requirements/constraints.txt "/src[service]" \
    && pip uninstall -y fraudvae
# Then the code.
COPY fraudvae /src/fraudvae
COPY service /src/service
RUN pip install --no-deps -c /src/requirements/constraints.txt /src

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 fraudvae
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FRAUDVAE_MODEL_DIR=/model \
    FRAUDVAE_HOST=0.0.0.0 \
    FRAUDVAE_PORT=8000 \
    FRAUDVAE_STATE_URL=sqlite:////state/state.sqlite
# A spec model keeps its entities' history in SQLite on this volume (Redis: set FRAUDVAE_STATE_URL).
RUN mkdir /state && chown 10001 /state
USER 10001
VOLUME ["/model", "/state"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["fraudvae", "serve"]
