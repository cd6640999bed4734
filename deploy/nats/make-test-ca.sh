#!/usr/bin/env bash
# Makes a local test CA, a server certificate for localhost/127.0.0.1 and a
# client certificate, for trying NATS with TLS on one machine. Development
# and tests only: production certificates come from your own PKI.
#
#   deploy/nats/make-test-ca.sh [OUT_DIR]      (default var/tls)
set -euo pipefail
out=${1:-var/tls}
mkdir -p "$out"
cd "$out"
days=30
openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=harm-reduction hub test CA" \
  -keyout ca-key.pem -out ca.pem 2>/dev/null
make_cert() { # name usage subject-alt-names
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
  printf 'extendedKeyUsage=%s\n%s' "$2" "${3:+subjectAltName=$3}" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$days" \
    -out "$1.pem" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
# serverAuth and clientAuth: a cluster node is also a client of the others.
make_cert server serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
make_cert client clientAuth ""
chmod 600 ./*-key.pem
echo "made ca.pem, server.pem/server-key.pem, client.pem/client-key.pem in $(pwd)"
