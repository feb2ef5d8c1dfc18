# syntax=docker/dockerfile:1
# The firefly image: the controller (`firefly run`), the development mock (`firefly tlspc-mock`) and
# the tools, in a small distroless runtime that runs as user 1001 with a read-only root filesystem
# (nothing is written to disk: the sub-CA key lives in locked memory).
#   docker build -t localhost/firefly:0.1.0 .

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin firefly \
    && install -D -m 0755 target/release/firefly /out/firefly

# glibc + libgcc, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/firefly /usr/local/bin/firefly
# Numeric, so runAsNonRoot can verify it; the chart and the OpenShift SCC expect 1001.
USER 1001:1001
# readiness/liveness, metrics, trust chain
EXPOSE 8080 9402 8008
ENTRYPOINT ["firefly"]
CMD ["run", "-c", "/etc/firefly/config.yaml"]
