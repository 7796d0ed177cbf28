# A static sandbox-webhook image: `docker build -t sandbox-webhook:latest .`
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /sandbox-webhook ./cmd/sandbox-webhook

FROM scratch
COPY --from=build /sandbox-webhook /sandbox-webhook
USER 65532:65532
ENTRYPOINT ["/sandbox-webhook"]
