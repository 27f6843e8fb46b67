# syntax=docker/dockerfile:1
# Multi-stage build of the taskpilot operator: a static binary on distroless, run as non-root.
# The whole module is copied (.dockerignore keeps bin/, docs/, test/ and VCS data out), so a new
# package never breaks the image build.

FROM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /workspace
# Dependencies first, so source edits reuse the module download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/taskpilot .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /out/taskpilot /taskpilot
USER 65532:65532
ENTRYPOINT ["/taskpilot"]
