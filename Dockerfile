# syntax=docker/dockerfile:1
#
# The mcp-oauth-gateway container image (docs/container.md).
#
#   docker build -t mcp-oauth-gateway .
#   docker run -p 127.0.0.1:8080:8080 -v mcp-gateway-data:/data mcp-oauth-gateway
#
# Two stages: `build` packs the npm tarball exactly as `npm pack` does for a release (prepack compiles
# src/ to dist/), and the runtime stage installs that tarball with production dependencies only, so the
# image holds what a user of the npm package gets and nothing of the repository (no sources, no tests,
# no dev dependencies, no compiler).
#
# BASE is any Debian-based image with Node.js >= 22.13 and npm on PATH. The default is pinned by tag;
# for reproducible production builds pin it by digest as well (docs/container.md, "Pinning the base").
# deploy/test-image.sh builds with a base made locally from Debian packages (no image registry needed).
ARG BASE=node:24-bookworm-slim

FROM ${BASE} AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /src
# The lockfile first, so the dependency layer is reused while only the sources change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY docs ./docs
RUN mkdir /pack \
 && npm pack --pack-destination /pack \
 && mv /pack/mcp-oauth-gateway-*.tgz /pack/mcp-oauth-gateway.tgz

FROM ${BASE} AS runtime
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    PATH=/opt/mcp-oauth-gateway/node_modules/.bin:$PATH \
    MCP_GATEWAY_CONFIG=/etc/mcp-oauth-gateway/gateway.yaml
WORKDIR /opt/mcp-oauth-gateway
# An empty project with the tarball as its one dependency: `npm install` resolves the package's own
# pinned dependencies from the registry, dev dependencies omitted; npm's cache is not kept.
# COPY rather than a `RUN --mount` of the build stage: a COPY's cache key is the tarball's content, so
# a new tarball always reinstalls (Buildah reuses a RUN whose text is unchanged, whatever it mounts).
COPY --from=build /pack/mcp-oauth-gateway.tgz /tmp/mcp-oauth-gateway.tgz
RUN printf '{"name":"mcp-oauth-gateway-image","private":true}\n' > package.json \
 && npm install --omit=dev --no-audit --no-fund /tmp/mcp-oauth-gateway.tgz \
 && rm /tmp/mcp-oauth-gateway.tgz \
 && npm cache clean --force \
 && mcp-oauth-gateway --help > /dev/null
# A user of its own, no login shell, owning only the data volume (also its home: npx caches there).
RUN groupadd --gid 10001 mcp-gateway \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --no-log-init --shell /usr/sbin/nologin mcp-gateway \
 && mkdir -p /data /etc/mcp-oauth-gateway \
 && chown 10001:10001 /data \
 && chmod 0700 /data
COPY deploy/image/gateway.yaml /etc/mcp-oauth-gateway/gateway.yaml
COPY deploy/image/healthcheck.mjs /opt/mcp-oauth-gateway/healthcheck.mjs
# Everything the gateway writes (the SQLite database, generated keys) goes to /data; the rest of the
# file system may be mounted read-only.
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080
# Liveness, from inside the container: slim images have no curl, node is there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/opt/mcp-oauth-gateway/healthcheck.mjs"]
ENTRYPOINT ["mcp-oauth-gateway"]
CMD ["serve"]
