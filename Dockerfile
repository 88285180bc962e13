# authql container image: a static binary on distroless, running as nonroot.
#
#   docker build -t authql .
#   docker run -p 8080:8080 -v authql-data:/data authql            # SQLite in /data/authql.db
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://... authql  # PostgreSQL
#
# See docker-compose.yml for authql with PostgreSQL.

FROM golang:1.26-bookworm AS build
WORKDIR /src

# Modules in a layer of their own, so that a change to the code alone does
# not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
# The SQLite driver (glebarez/sqlite, modernc.org/sqlite) is pure Go, so the
# binary needs no libc and runs on distroless/static.
# VERSION is what authql version prints (docker build --build-arg
# VERSION=v1.2.3); without it, the module version Go records.
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/authql .

# The final image has no shell to mkdir or chown with, so the data directory
# is made here. 65532 is distroless's nonroot user and group.
RUN mkdir -p /out/data && chown 65532:65532 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/authql /authql
COPY --from=build --chown=65532:65532 /out/data /data
# Without DATABASE_URL authql uses SQLite at ./authql.db, that is
# /data/authql.db: mount a volume there to keep it. A new named volume takes
# the directory's owner, so nonroot can write to it.
WORKDIR /data
VOLUME /data
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/authql"]
