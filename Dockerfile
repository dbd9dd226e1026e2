# opslive in a container: built with the Rust toolchain, run on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin opslive

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/opslive /usr/local/bin/opslive
EXPOSE 8080
ENTRYPOINT ["opslive"]
CMD ["serve"]
