#!/usr/bin/env bash
# Builds the container image from this repository and checks that it runs, on a machine that can reach
# neither Docker Hub nor any other image registry (docs/container.md, "Testing the image").
#
#   sudo bash deploy/test-image.sh            # exit 0: passed; 77: skipped (reason printed); else failed
#
# The Dockerfile's BASE (node:24-bookworm-slim from a registry) is replaced by a base built here:
# a Debian bookworm root file system from Debian's own packages (debootstrap --variant=minbase), with the
# Node binary this repository pins (node_modules/node) and the host's npm copied in. Then `podman build`
# runs the real Dockerfile (both stages: npm ci + npm pack, then npm install of the tarball), and the
# image is run with podman and checked: /healthz, the OAuth metadata, the 401 challenge, the user the
# process runs as, the HEALTHCHECK (healthy, and unhealthy when the gateway does not answer), a clean
# stop on SIGTERM, and the /data volume carrying the database and keys into a second container started
# with a read-only root file system. The demo MCP server command of compose.yaml is run too.
#
# The image's dist/ is compared with src/ compiled here, so a stale build cache cannot pass unseen.
# (The variables below are IMAGE_TEST_*, not MCP_GATEWAY_*: the gateway reads every MCP_GATEWAY_*
# variable as configuration and refuses the ones it does not know.)
#
# Idempotent: the root file system and the base image are kept under $IMAGE_TEST_WORK
# (default /var/tmp/mcp-oauth-gateway-image) and reused; containers and the volume are removed on exit.
# IMAGE_TEST_TAG names the image built (default localhost/mcp-oauth-gateway:test).
# IMAGE_TEST_BASE=<image> skips the local base and builds on that image instead (for example
# node:24-bookworm-slim where a registry is reachable). Needs root (debootstrap, rootful podman).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${IMAGE_TEST_WORK:-/var/tmp/mcp-oauth-gateway-image}"
IMAGE="${IMAGE_TEST_TAG:-localhost/mcp-oauth-gateway:test}"
SKIP_STATUS=77
RUN_ID="mcpgw-image-$$"

skip() { echo "SKIP: $*" >&2; exit "$SKIP_STATUS"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
ok() { echo "ok - $*"; }
# podman without systemd says on every container start and stop that it could not set up the periodic
# health-check timer; that is expected here (see HEALTH_ARGS) and hides real messages, so it is dropped.
pm() { podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

command -v podman >/dev/null || skip "podman is not installed (apt-get install podman)"
command -v curl >/dev/null || skip "curl is not installed"
[ "$(id -u)" = 0 ] || skip "needs root: debootstrap and rootful podman"

# The Node that checks JSON answers here, and that goes into the local base: the repository's pin.
NODE="$(readlink -f "$REPO_ROOT/node_modules/node/bin/node" 2>/dev/null || true)"
[ -x "$NODE" ] && head -c 4 "$NODE" | grep -q ELF || skip "no pinned Node binary at node_modules/node/bin/node (run npm ci)"
NODE_VERSION="$("$NODE" --version)"

# `json FILE 'expression of j'`: prints the expression, evaluated on the JSON document in FILE.
json() { "$NODE" -e 'const j = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")); const v = eval(process.argv[2]); process.stdout.write(typeof v === "string" ? v : JSON.stringify(v))' "$1" "$2"; }

mkdir -p "$WORK"
SCRATCH="$(mktemp -d "$WORK/run.XXXXXX")"
cleanup() {
  podman rm --force --ignore --volumes --time 0 "$RUN_ID-a" "$RUN_ID-b" "$RUN_ID-demo" "$RUN_ID-copy" >/dev/null 2>&1 || true
  podman volume rm -f "$RUN_ID-data" >/dev/null 2>&1 || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------
# The base image: Debian bookworm from Debian packages, plus Node and npm.

BASE="${IMAGE_TEST_BASE:-localhost/mcp-oauth-gateway-base:node-${NODE_VERSION#v}-bookworm}"
if podman image exists "$BASE"; then
  step "base image $BASE (kept from an earlier run)"
elif [ -n "${IMAGE_TEST_BASE:-}" ]; then
  podman pull "$BASE" || skip "base image $BASE is neither local nor pullable"
else
  command -v debootstrap >/dev/null || skip "debootstrap is not installed (apt-get install debootstrap)"
  NPM_CLI="$(readlink -f "$(command -v npm 2>/dev/null || echo /nonexistent)" || true)"
  NPM_DIR="$(dirname "$(dirname "$NPM_CLI")")"
  [ -f "$NPM_DIR/package.json" ] || skip "no npm on the host to copy into the base image"
  ROOTFS="$WORK/rootfs-bookworm"
  if [ ! -x "$ROOTFS/usr/bin/apt-get" ]; then
    step "debootstrap --variant=minbase bookworm (Debian packages only)"
    rm -rf "$ROOTFS.partial"
    debootstrap --variant=minbase bookworm "$ROOTFS.partial" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log" 2>&1 ||
      skip "debootstrap failed (is deb.debian.org reachable?): $(tail -n 3 "$WORK/debootstrap.log")"
    mv "$ROOTFS.partial" "$ROOTFS"
  fi
  step "base image $BASE: the root file system + Node $NODE_VERSION + npm $(npm --version)"
  install -m 0755 "$NODE" "$ROOTFS/usr/local/bin/node"
  rm -rf "$ROOTFS/usr/local/lib/node_modules/npm"
  mkdir -p "$ROOTFS/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$ROOTFS/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
  # Where outbound TLS is intercepted by a proxy the host trusts, the base trusts its CA too (the build
  # stages reach the npm registry); an organisation's own base image does the same.
  CA_ENV=()
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
    install -m 0644 "$NODE_EXTRA_CA_CERTS" "$ROOTFS/etc/ssl/certs/host-extra-ca.crt" 2>/dev/null ||
      { mkdir -p "$ROOTFS/etc/ssl/certs" && install -m 0644 "$NODE_EXTRA_CA_CERTS" "$ROOTFS/etc/ssl/certs/host-extra-ca.crt"; }
    CA_ENV=(--change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-extra-ca.crt")
  fi
  tar -C "$ROOTFS" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "${CA_ENV[@]}" --change 'CMD ["node"]' - "$BASE" >/dev/null
fi

# ---------------------------------------------------------------------------------------------------
# Can podman run a container here? Sandboxes without CAP_SYS_RESOURCE refuse podman's default rlimits,
# and crun refuses hybrid cgroups (v1 with a v2 mount); runc with rlimits at or under the current ones
# works in both. The defaults are tried first; the workaround is said out loud when it is needed.

if ! probe="$(podman run --rm "$BASE" node --version 2>&1)"; then
  echo "podman cannot run a container with its defaults: $probe"
  command -v runc >/dev/null || skip "podman cannot run containers here ($probe) and runc is not installed to work around it"
  cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF="$WORK/containers.conf"
  probe="$(podman run --rm "$BASE" node --version 2>&1)" || skip "podman cannot run containers here, even with runc and lowered rlimits: $probe"
  echo "   so runc and rlimits nofile=$(ulimit -Hn), nproc=4096 are used ($CONTAINERS_CONF)"
fi
ok "podman runs containers of $BASE (node $probe)"
# Podman runs the periodic HEALTHCHECK from systemd timers; without systemd (a container, a sandbox) it
# can only run it on demand (`podman healthcheck run`, below), so the timers are not asked for.
HEALTH_ARGS=()
if [ ! -d /run/systemd/system ]; then
  HEALTH_ARGS=(--health-interval=disable)
  echo "   no systemd here: periodic health checks off, the HEALTHCHECK is run on demand"
fi

# ---------------------------------------------------------------------------------------------------
step "podman build (the Dockerfile, BASE=$BASE)"
started=$SECONDS
# --format docker: the OCI image format has no HEALTHCHECK; Docker's keeps it.
podman build --format docker --build-arg "BASE=$BASE" -t "$IMAGE" "$REPO_ROOT" >"$WORK/build.log" 2>&1 ||
  fail "podman build failed: $(tail -n 20 "$WORK/build.log")"
ok "built $IMAGE in $((SECONDS - started)) s, $(($(podman image inspect --format '{{.Size}}' "$IMAGE") / 1000000)) MB"

# The image must hold this checkout's code, not a cached older build: its dist/ must equal what the
# same compiler makes of src/ here (tsc from node_modules, the version package-lock.json pins).
"$NODE" "$REPO_ROOT/node_modules/typescript/bin/tsc" -p "$REPO_ROOT/tsconfig.build.json" --outDir "$SCRATCH/dist" ||
  fail "tsc could not build src/ for the comparison"
pm create --name "$RUN_ID-copy" "$IMAGE" >/dev/null
podman cp "$RUN_ID-copy:/opt/mcp-oauth-gateway/node_modules/mcp-oauth-gateway/dist" "$SCRATCH/image-dist"
pm rm --volumes "$RUN_ID-copy" >/dev/null
diff -r "$SCRATCH/dist" "$SCRATCH/image-dist" >"$SCRATCH/dist.diff" || fail "the image's dist/ differs from src/ compiled here: $(head -n 20 "$SCRATCH/dist.diff")"
ok "the image's package holds src/ of this checkout, compiled ($(find "$SCRATCH/dist" -name '*.js' | wc -l) files)"

config() { podman image inspect --format "$1" "$IMAGE"; }
[ "$(config '{{.Config.User}}')" = "10001:10001" ] || fail "image user is '$(config '{{.Config.User}}')', not 10001:10001"
[[ "$(config '{{json .Config.Healthcheck.Test}}')" == *healthcheck.mjs* ]] || fail "image has no HEALTHCHECK: $(config '{{json .Config.Healthcheck}}')"
[[ "$(config '{{json .Config.Volumes}}')" == *'"/data"'* ]] || fail "image declares no /data volume"
[[ "$(config '{{json .Config.ExposedPorts}}')" == *8080/tcp* ]] || fail "image exposes no 8080/tcp"
[ "$(config '{{json .Config.Entrypoint}}')" = '["mcp-oauth-gateway"]' ] || fail "entrypoint is $(config '{{json .Config.Entrypoint}}')"
ok "image metadata: user 10001:10001, HEALTHCHECK, VOLUME /data, EXPOSE 8080, ENTRYPOINT mcp-oauth-gateway"
pm run --rm "${HEALTH_ARGS[@]}" "$IMAGE" config check >"$SCRATCH/check.txt" 2>"$SCRATCH/check.err" || fail "config check of the baked configuration: $(cat "$SCRATCH/check.txt" "$SCRATCH/check.err")"
ok "the baked configuration passes: $(head -n 1 "$SCRATCH/check.txt")"

# ---------------------------------------------------------------------------------------------------
PORT="$("$NODE" -e 's = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
URL="http://localhost:$PORT"
run_gateway() { # name, extra podman args...
  local name="$1"
  shift
  pm run -d --name "$name" -p "127.0.0.1:$PORT:8080" -v "$RUN_ID-data:/data" -e "MCP_GATEWAY_PUBLIC_URL=$URL" "${HEALTH_ARGS[@]}" "$@" "$IMAGE" >/dev/null
}
wait_healthy() { # name
  local deadline=$((SECONDS + 60)) code
  until code="$(curl -s -o "$SCRATCH/health.json" -w '%{http_code}' "$URL/healthz")" && [ "$code" = 200 ]; do
    [ "$(podman inspect --format '{{.State.Running}}' "$1")" = true ] || fail "$1 exited: $(podman logs "$1" 2>&1 | tail -n 20)"
    [ "$SECONDS" -lt "$deadline" ] || fail "$1: no 200 from /healthz within 60 s: $(podman logs "$1" 2>&1 | tail -n 20)"
    sleep 0.5
  done
}
get() { # path, expected status -> body in $SCRATCH/body
  local code
  code="$(curl -s -o "$SCRATCH/body" -D "$SCRATCH/headers" -w '%{http_code}' "${@:3}" "$URL$1")"
  [ "$code" = "$2" ] || fail "$1 answered $code, not $2: $(head -c 300 "$SCRATCH/body")"
}

step "first container (publicUrl $URL, volume $RUN_ID-data)"
podman volume create "$RUN_ID-data" >/dev/null
run_gateway "$RUN_ID-a"
wait_healthy "$RUN_ID-a"
[ "$(json "$SCRATCH/health.json" j.status)" = ok ] || fail "/healthz body: $(cat "$SCRATCH/health.json")"
ok "/healthz answers 200 {\"status\":\"ok\"} on the published port"

get /.well-known/oauth-authorization-server 200
[ "$(json "$SCRATCH/body" j.issuer)" = "$URL" ] || fail "issuer is $(json "$SCRATCH/body" j.issuer), not $URL"
[[ "$(json "$SCRATCH/body" j.code_challenge_methods_supported)" == *S256* ]] || fail "S256 not advertised"
JWKS_URI="$(json "$SCRATCH/body" j.jwks_uri)"
ok "authorization server metadata: issuer $URL, PKCE S256"
get /.well-known/oauth-protected-resource/mcp 200
[ "$(json "$SCRATCH/body" j.resource)" = "$URL/mcp" ] || fail "protected resource metadata names $(json "$SCRATCH/body" j.resource)"
ok "protected resource metadata for $URL/mcp"
get /mcp 401 -X POST -H 'content-type: application/json' --data '{}'
grep -qi '^www-authenticate: Bearer .*resource_metadata=' "$SCRATCH/headers" || fail "no Bearer challenge: $(cat "$SCRATCH/headers")"
ok "an MCP request without a token gets 401 with the resource_metadata challenge"

uid="$(podman exec "$RUN_ID-a" sh -c 'grep ^Uid: /proc/1/status' | awk '{print $2 ":" $3 ":" $4 ":" $5}')"
[ "$uid" = "10001:10001:10001:10001" ] || fail "the gateway (PID 1) runs with uids $uid"
ok "the gateway runs as uid 10001 (real, effective, saved, fs)"

pm healthcheck run "$RUN_ID-a" 2>"$SCRATCH/hc.err" || fail "podman healthcheck run: $(cat "$SCRATCH/hc.err")"
status="$(podman inspect --format '{{.State.Health.Status}}' "$RUN_ID-a" 2>/dev/null || podman inspect --format '{{.State.Healthcheck.Status}}' "$RUN_ID-a")"
[ "$status" = healthy ] || fail "health status after a passing check: $status"
ok "HEALTHCHECK: podman healthcheck run passes, status healthy"
if podman exec -e HEALTHCHECK_URL=http://127.0.0.1:8081/healthz "$RUN_ID-a" node /opt/mcp-oauth-gateway/healthcheck.mjs 2>"$SCRATCH/hc.err"; then
  fail "the health check passed against a port nothing listens on"
fi
ok "the health check fails when nothing answers ($(cat "$SCRATCH/hc.err"))"

podman logs "$RUN_ID-a" >"$SCRATCH/a.log" 2>&1
grep -q 'username: demo' "$SCRATCH/a.log" || fail "the first start did not create the demo account: $(tail -n 20 "$SCRATCH/a.log")"
podman exec "$RUN_ID-a" sh -c 'stat -c "%n %u %a" /data/gateway.db /data/encryption.key' >"$SCRATCH/data.txt" ||
  fail "the database and the key are not in /data: $(podman exec "$RUN_ID-a" ls -la /data)"
KEY_SUM="$(podman exec "$RUN_ID-a" sha256sum /data/encryption.key | cut -d' ' -f1)"
curl -s "$JWKS_URI" -o "$SCRATCH/jwks-a.json"
KIDS_A="$(json "$SCRATCH/jwks-a.json" 'j.keys.map((k) => k.kid).sort().join(",")')"
ok "the first start wrote to the volume: $(tr '\n' ';' <"$SCRATCH/data.txt")"

pm stop -t 20 "$RUN_ID-a" >/dev/null
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$RUN_ID-a")"
[ "$exit_code" = 0 ] || fail "the gateway exited $exit_code on SIGTERM: $(podman logs "$RUN_ID-a" 2>&1 | tail -n 10)"
ok "podman stop: the gateway stopped on SIGTERM with status 0"
pm rm "$RUN_ID-a" >/dev/null

# ---------------------------------------------------------------------------------------------------
step "second container on the same volume, read-only root file system"
run_gateway "$RUN_ID-b" --read-only
wait_healthy "$RUN_ID-b"
podman logs "$RUN_ID-b" >"$SCRATCH/b.log" 2>&1
if grep -q 'username: demo' "$SCRATCH/b.log"; then fail "the second start created the demo account again: the volume did not keep it"; fi
[ "$(podman exec "$RUN_ID-b" sha256sum /data/encryption.key | cut -d' ' -f1)" = "$KEY_SUM" ] || fail "the encryption key changed across restarts"
curl -s "$JWKS_URI" -o "$SCRATCH/jwks-b.json"
[ "$(json "$SCRATCH/jwks-b.json" 'j.keys.map((k) => k.kid).sort().join(",")')" = "$KIDS_A" ] || fail "the signing keys changed across restarts"
if podman exec "$RUN_ID-b" touch /opt/mcp-oauth-gateway/written 2>/dev/null; then fail "the root file system was writable despite --read-only"; fi
ok "the volume kept the demo account, the encryption key and the signing keys ($KIDS_A); / was read-only"
pm stop -t 20 "$RUN_ID-b" >/dev/null

# ---------------------------------------------------------------------------------------------------
step "the demo MCP server, as compose.yaml runs it"
pm run -d --name "$RUN_ID-demo" --no-healthcheck --entrypoint node "$IMAGE" \
  /opt/mcp-oauth-gateway/node_modules/mcp-oauth-gateway/dist/demo/server.js --host 0.0.0.0 --port 3001 >/dev/null
deadline=$((SECONDS + 30))
# compose.yaml's own health check for the demo service (a CMD-SHELL string), run in the container.
DEMO_CHECK="$(cd "$REPO_ROOT" && "$NODE" -e 'const c = require("yaml").parse(require("node:fs").readFileSync("compose.yaml", "utf8")); process.stdout.write(c.services.demo.healthcheck.test[1])')"
until podman exec "$RUN_ID-demo" sh -c "$DEMO_CHECK" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the demo server did not answer within 30 s: $(podman logs "$RUN_ID-demo" 2>&1 | tail -n 10)"
  sleep 0.5
done
podman exec "$RUN_ID-demo" node -e "
  fetch('http://127.0.0.1:3001/mcp', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test-image', version: '1' } } }) })
    .then(async (r) => { const text = await r.text(); if (r.status !== 200 || !text.includes('mcp-oauth-gateway-demo')) { console.error(r.status, text); process.exit(1); } })" ||
  fail "the demo server did not answer initialize"
ok "the demo MCP server, started as compose.yaml's demo service, passes its health check and answers initialize"

echo "PASS: $IMAGE built from $BASE and checked"
# For test/e2e/container-image.test.ts, which runs compose.yaml on the same image.
echo "RESULT_IMAGE=$IMAGE"
echo "RESULT_BASE=$BASE"
echo "RESULT_CONTAINERS_CONF=${CONTAINERS_CONF:-}"
