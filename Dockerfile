# syntax=docker/dockerfile:1
#
# chimport container image: a static Go binary on distroless, running as the
# non-root user 65532. Build it for the platform you deploy to:
#
#   docker buildx build --platform linux/arm64 --build-arg VERSION=v1.2.3 -t chimport:v1.2.3 .
#
# The build stage runs on the build machine's own platform and cross-compiles
# (GOOS/GOARCH from BuildKit's TARGETOS/TARGETARCH), so an arm64 image builds
# on an amd64 machine without emulation. See deploy/terraform/README.md.

# ---- build ----------------------------------------------------------------
# Pinned to the toolchain go.mod asks for (go 1.26.8).
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build

WORKDIR /src
# Pure Go (SQLite is modernc.org/sqlite): no cgo, so the binary is static and
# runs on distroless/static.
ENV CGO_ENABLED=0 \
    GOFLAGS=-buildvcs=false

# Module download in its own layer: rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .

ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/chimport ./cmd/chimport \
 && mkdir -p /out/state

# ---- runtime --------------------------------------------------------------
# distroless/static: CA certificates, tzdata and /etc/passwd, no shell, no
# package manager. The :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
LABEL org.opencontainers.image.title="chimport" \
      org.opencontainers.image.description="Syncs Mailchimp audience members to your HTTP API" \
      org.opencontainers.image.source="https://github.com/chimport/chimport" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /out/chimport /chimport
# An empty directory owned by the runtime user, for SQLite state
# (state: sqlite:///var/lib/chimport/state.db) on a mounted volume. On AWS the
# state lives in DynamoDB and nothing is written here.
COPY --from=build --chown=65532:65532 /out/state /var/lib/chimport

# Numeric, so Kubernetes can enforce runAsNonRoot without runAsUser.
USER 65532:65532
WORKDIR /var/lib/chimport

# `chimport serve --listen 0.0.0.0:9187` serves /healthz and /metrics here.
EXPOSE 9187

ENTRYPOINT ["/chimport"]
CMD ["run"]
