# The lab in a container: `docker compose up --build`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sdlab

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 sdlab && mkdir /data && chown sdlab /data
COPY --from=build /src/target/release/sdlab /usr/local/bin/sdlab
USER sdlab
ENV SDLAB_DATA_DIR=/data
EXPOSE 8080 8081 8082 8092 8085 8095 8083 8093 8084
ENTRYPOINT ["/usr/local/bin/sdlab"]
