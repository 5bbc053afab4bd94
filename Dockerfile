# iamgate image: a static binary on distroless, running as the nonroot user (65532).
#   docker build --build-arg VERSION=$(git describe --tags --always) -t iamgate .
# Multi-arch (control planes on arm64, e.g. Graviton):
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=... -t REPO/iamgate:TAG .
# For production, pin both base images by digest (FROM image:tag@sha256:...).

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o /out/iamgate ./cmd/iamgate

# distroless/static: CA certificates (for STS and EC2), /etc/passwd with nonroot, tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/iamgate /usr/local/bin/iamgate
USER 65532:65532
EXPOSE 21362 21363
ENTRYPOINT ["/usr/local/bin/iamgate"]
CMD ["server"]
