# One image for both controllers: they are one Python package and differ only by command
# (`orderflow run order` / `orderflow run fulfillment`), so one build, one scan, one version.
# Each chart chooses the command; each runs in its own Deployment with its own ServiceAccount.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="orderflow" \
      org.opencontainers.image.description="Order and fulfillment controllers (Kopf) for orderflow.dev"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin orderflow
USER 10001:10001
ENTRYPOINT ["orderflow"]
CMD ["run", "fulfillment"]
