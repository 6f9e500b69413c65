// Package signer holds the two kinds of keys bcupdate uses.
//
// Role keys sign TUF metadata. They are PKCS#8 PEM files (ed25519 or ECDSA
// P-256), private keys 0600, and are handed to go-tuf as sigstore
// signature.Signer values, so a file key, a KMS key or an HSM key plug in the
// same way.
//
// Code-signing keys are X.509 certificates chained to a pinned root (DigiCert
// in production, keys.example/ in tests). Every artifact carries a code
// signature; for everything but Windows installers it is a detached CMS
// signature (DER, what `openssl cms -sign -binary -outform DER` and
// `signtool /p7` produce). Trust verifies it against a trust directory:
//
//   - only the pinned roots of DIR/roots, never the system pool;
//   - the leaf lists codeSigning explicitly (no EKU and anyExtendedKeyUsage are
//     refused, although Go's x509 accepts both), is not a CA and has
//     digitalSignature;
//   - the chain is valid at the trusted signing time, which is "now" until
//     RFC 3161 timestamps are accepted (the signer-chosen signingTime
//     attribute is never trusted);
//   - the signer's identity is one of DIR/publishers, because a root alone
//     accepts every customer of the CA.
//
// What an attacker gets: whoever holds the TUF targets key but no
// certificate for a pinned publisher cannot get code accepted. This package
// never imports the rest of bcupdate and never prints.
package signer
