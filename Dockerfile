# Switchyard in a container: a build stage with the Rust toolchain, and a small runtime stage
# that holds only the binary and runs as a non-root user.
#   docker build -t switchyard .
#   docker run -p 18000:18000 -p 19000:19000 -v $PWD/examples:/etc/switchyard:ro switchyard
# The admin port's /healthz (the process is up) and /ready (a config is served) are the
# liveness and readiness probes (deploy/kubernetes/switchyard.yaml uses them).
FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin switchyard && strip target/release/switchyard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY examples/quickstart.yaml /etc/switchyard/quickstart.yaml
USER 10001
EXPOSE 18000 19000
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve", "/etc/switchyard", "--xds-listen", "0.0.0.0:18000", "--xds-plaintext", "--admin-listen", "0.0.0.0:19000", "--log-format", "json"]
