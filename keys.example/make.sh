#!/usr/bin/env bash
# Re-creates keys.example/: TEST-ONLY TUF role keys and an example
# code-signing PKI shaped like DigiCert's (root -> code-signing intermediate
# -> publisher leaf with EKU codeSigning). Never use any of it in production.
#
#   bash keys.example/make.sh            (needs openssl and a built bcpublish)
set -euo pipefail
cd "$(dirname "$0")"
BCPUBLISH=${BCPUBLISH:-../bin/bcpublish}
rm -rf roles pki trust
mkdir -p pki trust/roots

"$BCPUBLISH" keys generate --out roles --type ed25519

cat > pki/root.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
C = US
O = Example Trust Services (TEST ONLY)
CN = Example Trusted Root G4 (TEST ONLY)
[v3_root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, digitalSignature, keyCertSign, cRLSign
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

# Root: RSA 4096, self-signed, 25 years.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out pki/root.key 2>/dev/null
openssl req -new -x509 -config pki/root.cnf -extensions v3_root -key pki/root.key \
  -sha384 -days 9131 -set_serial 0x01 -out pki/root.pem

# Intermediate: "Example Trusted G4 Code Signing RSA4096 SHA384 CA1", 15 years.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out pki/intermediate.key 2>/dev/null
openssl req -new -key pki/intermediate.key -sha384 \
  -subj "/C=US/O=Example Trust Services (TEST ONLY)/CN=Example Trusted G4 Code Signing RSA4096 SHA384 CA1 (TEST ONLY)" \
  -out pki/intermediate.csr
openssl x509 -req -in pki/intermediate.csr -CA pki/root.pem -CAkey pki/root.key -sha384 -days 5479 \
  -set_serial 0x1001 -extfile pki/root.cnf -extensions v3_ca -out pki/intermediate.pem

# Publisher leaf: RSA 3072, EKU codeSigning, digitalSignature, 10 years.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out pki/leaf.key 2>/dev/null
openssl req -new -key pki/leaf.key -sha256 \
  -subj "/C=US/ST=California/L=Brea/O=Example Lab Software (TEST ONLY)/CN=Example Lab Software (TEST ONLY)" \
  -out pki/leaf.csr
openssl x509 -req -in pki/leaf.csr -CA pki/intermediate.pem -CAkey pki/intermediate.key -sha256 -days 3652 \
  -set_serial 0x100001 -extfile pki/root.cnf -extensions v3_leaf -out pki/leaf.pem
cat pki/leaf.pem pki/intermediate.pem > pki/chain.pem
chmod 600 pki/*.key
rm -f pki/*.csr

# The trust directory an agent and bcpublish use with this PKI.
cp pki/root.pem trust/roots/example-root.pem
printf '%s\n' "# TEST ONLY: allowed code-signing publishers" "O=Example Lab Software (TEST ONLY)" > trust/publishers
echo "keys.example/ re-created (TEST ONLY)"
