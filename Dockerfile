# One image for both controllers: they are one Python package and differ only by command
# (`orderflow run order` / `orderflow run fulfillment`), so one build, one scan, one version.
# Each chart chooses the command; each runs in its own Deployment with its own ServiceAccount.

FROM python:3.11-slim AS build
WORKDIR /src
# The runtime's dependencies exactly as locked (packaging/lock/runtime.txt, `make lock`), each
# checked against its hash: a rebuild next month ships the same Kopf the tests ran against. (The
# runtime leans on one class of Kopf's private modules; see orderflow/runtime/runner.py.)
COPY packaging/lock/runtime.txt ./lock.txt
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r lock.txt
COPY pyproject.toml README.md LICENSE ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="orderflow" \
      org.opencontainers.image.description="Order and fulfillment controllers (Kopf) for orderflow.dev"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
# Only the wheels built above (--no-index), and `pip check` that they are all it needs.
RUN pip install --no-cache-dir --no-index --no-deps /wheels/*.whl && pip check && rm -rf /wheels \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin orderflow
USER 10001:10001
ENTRYPOINT ["orderflow"]
CMD ["run", "fulfillment"]
