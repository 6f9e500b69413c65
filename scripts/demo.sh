#!/usr/bin/env bash
# make demo: the main job end to end, in a temporary workspace, on loopback.
# Publish notification-client 1.0.0 (code-signed .tar.gz) into a new TUF
# repository, serve it, install it with the agent, publish 1.1.0, update.
set -euo pipefail
BIN=${BIN:-$(pwd)/bin}
KEYS_EXAMPLE=$(pwd)/keys.example
work=$(mktemp -d "${TMPDIR:-/tmp}/bcupdate-demo.XXXXXX")
server_pid=""
fleet_pid=""
sso_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$fleet_pid" ]; then kill "$fleet_pid" 2>/dev/null || true; wait "$fleet_pid" 2>/dev/null || true; fi
  if [ -n "$sso_pid" ]; then kill "$sso_pid" 2>/dev/null || true; wait "$sso_pid" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "workspace kept at $work"; fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
pub() { "$BIN/bcpublish" "$@"; }
agent() { "$BIN/bcagent" --state "$work/agent" "$@"; }
fleetctl() { "$BIN/bcfleet" "$@"; }

step "1. role keys (fresh ed25519) and the example code-signing PKI (keys.example/, TEST ONLY)"
pub keys generate --out "$work/keys"
mkdir -p "$work/pki"
install -m 600 "$KEYS_EXAMPLE/pki/leaf.key" "$work/pki/leaf.key"
cp "$KEYS_EXAMPLE/pki/chain.pem" "$work/pki/chain.pem"
cp -r "$KEYS_EXAMPLE/trust" "$work/trust"

step "2. bcpublish init"
pub init --repo "$work/repo" --keys "$work/keys"

build_artifact() { # version: a code-signed .tar.gz (+ .p7s)
  local v=$1 d="$work/build/$1"
  mkdir -p "$d/bin"
  printf '#!/bin/sh\necho "notification-client %s"\n' "$v" > "$d/bin/notification-client"
  chmod 755 "$d/bin/notification-client"
  printf 'notification-client %s\n' "$v" > "$d/VERSION"
  tar -C "$d" -czf "$work/notification-client-$v.tar.gz" bin VERSION
  pub codesign sign --cert "$work/pki/chain.pem" --key "$work/pki/leaf.key" \
    --file "$work/notification-client-$v.tar.gz"
}
publish_release() { # version [extra release add flags...]
  local v=$1
  shift
  pub release add --repo "$work/repo" --keys "$work/keys" --trust "$work/trust" \
    --component notification-client --version "$v" --platform linux-amd64 \
    --file "$work/notification-client-$v.tar.gz" --channel stable \
    --health-check "bin/notification-client --version" "$@"
}
make_release() { build_artifact "$1"; publish_release "$@"; }
expect_exit() { # code command...
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  if [ "$rc" -ne "$want" ]; then echo "expected exit $want, got $rc: $*"; exit 1; fi
  echo "(exit $rc, as expected)"
}

step "3. publish notification-client 1.0.0 (signed .tar.gz + detached .p7s)"
make_release 1.0.0

step "4. bcpublish serve on a random 127.0.0.1 port"
"$BIN/bcpublish" serve --repo "$work/repo" --addr 127.0.0.1:0 > "$work/serve.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^serving .* at \(https\{0,1\}:\/\/[0-9.:]*\) (.*/\1/p' "$work/serve.log" | head -n1)
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { echo "server did not start:"; cat "$work/serve.log"; exit 1; }
head -n1 "$work/serve.log"

step "5. bcagent init, check, stage, apply"
agent init --repo-url "$url" --root "$work/repo/metadata/1.root.json" --trust "$work/trust" \
  --component notification-client --device-id INST-0042 --device-model "Navios EX" --platform linux-amd64
agent check
agent stage
agent apply
"$work/agent/install/notification-client/current/bin/notification-client"

step "6. publish 1.1.0; the agent updates"
make_release 1.1.0
agent check
agent stage
agent apply
"$work/agent/install/notification-client/current/bin/notification-client"

step "7. publish 1.2.0, which turns on phi-file-transfer; this Navios EX holds PHI, so a person must authorize it"
cat > "$work/phi-file-transfer.txt" <<'TXT'
File transfer during remote support sessions
Lets a Beckman Coulter support representative copy files to and from this PC during a
remote support session that you have approved. Files on this PC may contain personal
health information. Each transfer still needs your approval in the TeamViewer client.
TXT
# The features a release turns on are part of the consent gate, so they are
# code-signed too (a gate manifest): the TUF targets key alone cannot turn one on.
# Write the manifest, sign it with the code-signing key (here a file; signtool /p7
# or an HSM in production), publish it with the release.
build_artifact 1.2.0
pub release gate --component notification-client --version 1.2.0 --platform linux-amd64 \
  --file "$work/notification-client-1.2.0.tar.gz" \
  --feature phi-file-transfer:phi-devices --feature-text "phi-file-transfer=$work/phi-file-transfer.txt" \
  --out "$work/gate-1.2.0.json"
pub codesign sign --cert "$work/pki/chain.pem" --key "$work/pki/leaf.key" --file "$work/gate-1.2.0.json"
publish_release 1.2.0 --gate "$work/gate-1.2.0.json"
agent check
expect_exit 4 agent stage
expect_exit 4 agent apply --no-prompt
agent apply --authorize phi-file-transfer --by "Lab Supervisor"
echo "features.json: $(cat "$work/agent/install/notification-client/features.json" | tr -d ' \n')"
agent consent list
agent audit verify

step "8. bcagent status"
agent status

step "9. the fleet service: enroll this PC with a key of its own, report, see the rollout"
# The dashboard's sign-in: a demo OpenID Connect issuer on loopback
# (internal/demosso; it asks who to sign in as, no passwords), and a
# simulated fleet (internal/demofleet), built from this checkout.
(cd "$(dirname "$0")/.." && go build -trimpath -o "$work/demo-bin/" ./internal/demosso ./internal/demofleet)
"$work/demo-bin/demosso" -addr 127.0.0.1:0 -secret-file "$work/oidc-secret" > "$work/sso.log" 2>&1 &
sso_pid=$!
issuer="" client_id=""
for _ in $(seq 1 100); do
  read -r _ issuer _ client_id < <(grep '^issuer ' "$work/sso.log" || true) || true
  [ -n "$issuer" ] && break
  sleep 0.05
done
[ -n "$issuer" ] || { echo "demosso did not start:"; cat "$work/sso.log"; exit 1; }
fleetctl kek generate "$work/fleet.kek"
db="sqlite:$work/fleet.db"
# Started directly (not through a function), so that $! is bcfleet itself.
"$BIN/bcfleet" serve --db "$db" --kek "file://$work/fleet.kek" --addr 127.0.0.1:0 \
  --oidc-issuer "$issuer" --oidc-client-id "$client_id" --oidc-client-secret-file "$work/oidc-secret" \
  --roles-claim groups > "$work/fleet.log" 2>&1 &
fleet_pid=$!
fleet_url=""
for _ in $(seq 1 100); do
  fleet_url=$(sed -n 's/^bcfleet .* serving devices at \(http:\/\/[0-9.:]*\),.*/\1/p' "$work/fleet.log" | head -n1)
  [ -n "$fleet_url" ] && break
  sleep 0.1
done
[ -n "$fleet_url" ] || { echo "bcfleet did not start:"; cat "$work/fleet.log"; exit 1; }
head -n1 "$work/fleet.log"
token=$(fleetctl token create --db "$db" --site demo-lab --expires 1d --uses 1 | tail -n1)
agent enroll --fleet "$fleet_url" --token "$token" --email lab.supervisor@hospital.example \
  --name "Lab Supervisor" --instrument-model "Navios EX" --instrument-id 4711 --serial SN-4711
agent report
agent report
fleetctl devices list --db "$db"
fleetctl rollout status notification-client 1.2.0 --db "$db"
echo "the database holds no personal data in the clear:"
if grep -a -q -i -e "lab.supervisor" -e "Lab Supervisor" "$work/fleet.db" "$work/fleet.db-wal" 2>/dev/null; then echo "  FOUND the enrollee in plaintext"; exit 1; fi
echo "  no trace of the enrollee (lab.supervisor@hospital.example, "Lab Supervisor") in fleet.db"

step "10. the dashboard: a simulated fleet of 40 PCs, and a demo sign-in"
token=$(fleetctl token create --db "$db" --site st-marys-lab --expires 1d --uses 40 | tail -n1)
"$work/demo-bin/demofleet" -fleet "$fleet_url" -token "$token" -devices 40
fleetctl rollout status notification-client 1.2.0 --db "$db"
echo "dashboard: $fleet_url/  (sign in as a viewer, support associate or admin on the demo sign-in page)"
if [ -t 0 ] && [ -t 1 ]; then
  read -r -p "open the dashboard in a browser on this machine; press Enter to stop the demo " _ || true
fi

step "11. stop the servers"
kill "$server_pid" "$fleet_pid" "$sso_pid"; wait "$server_pid" "$fleet_pid" "$sso_pid" 2>/dev/null || true; server_pid=""; fleet_pid=""; sso_pid=""
echo "demo finished: notification-client went 1.0.0 -> 1.1.0 -> 1.2.0, each verified by TUF and by its code signature; phi-file-transfer turned on only after a recorded authorization; the PC reports to the fleet service with its own key"
