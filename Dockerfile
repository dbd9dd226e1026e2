# opslive in a container: the dashboard built with Node (a static export), opslive built with the
# Rust toolchain, both run on a slim Debian where opslive serves the dashboard from web_dir.
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY graphql/ graphql/
COPY web/package.json web/package-lock.json web/.npmrc web/
RUN npm ci --prefix web --no-audit --no-fund
COPY web/ web/
RUN NEXT_TELEMETRY_DISABLED=1 npm run build --prefix web

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin opslive

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/opslive /usr/local/bin/opslive
COPY --from=web /src/web/out /usr/share/opslive/web
ENV OPSLIVE_WEB_DIR=/usr/share/opslive/web
EXPOSE 8080
ENTRYPOINT ["opslive"]
CMD ["serve"]
