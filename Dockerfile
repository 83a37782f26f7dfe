# One image runs the injector and the agent: `external-secrets-agent injector|init|sidecar|...`.
# The injector sets `command: ["external-secrets-agent", ...]` on the containers it adds, so the
# bundle is on PATH under that name.
#
# NOTE: no Docker engine runs on the project's build machines, so this file is not built in CI;
# the tests build and run the same bundle (npm run build) as injector and agent instead.

# Build stage: install with the lockfile and bundle the CLI with esbuild into one file.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-fund --no-audit
COPY . .
RUN ESA_BUNDLE_NODE=/nodejs/bin/node npm run build \
 && mkdir -p /out/app /out/usr/local/bin \
 && cp -r dist/. /out/app/ \
 && chmod 0555 /out/app/external-secrets-agent.mjs \
 && ln -s /app/external-secrets-agent.mjs /out/usr/local/bin/external-secrets-agent

# Run stage: distroless Node 24 (no shell, no package manager), non-root uid 65532.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/external-secrets-agent"]
CMD ["help"]
