# syntax=docker/dockerfile:1
# Multi-stage build of the taskpilot operator: a static binary on distroless, run as non-root.
# `make image` builds the same image without a Docker engine (hack/image: the binary alone on an
# empty base with distroless's nonroot user, CA certificates and /tmp, for linux/amd64 and
# linux/arm64); this file is for those who build with Docker (`make docker-build`).
# The whole module is copied (.dockerignore keeps bin/, docs/, test/ and VCS data out), so a new
# package never breaks the image build.

FROM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# The version stamped into the binary (`taskpilot version`, taskpilot_build_info).
ARG VERSION=v0.0.0-devel
ARG REVISION=
WORKDIR /workspace
# Dependencies first, so source edits reuse the module download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -o /out/taskpilot \
    -ldflags="-s -w -X github.com/taskpilot/taskpilot/internal/version.stamped=${VERSION} -X github.com/taskpilot/taskpilot/internal/version.stampedRevision=${REVISION}" .

FROM gcr.io/distroless/static:nonroot
ARG VERSION=v0.0.0-devel
ARG REVISION=
LABEL org.opencontainers.image.title=taskpilot \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.source=https://github.com/taskpilot/taskpilot
WORKDIR /
COPY --from=builder /out/taskpilot /taskpilot
USER 65532:65532
ENTRYPOINT ["/taskpilot"]
