package signer

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	_ "crypto/sha256" // register the digests relic may name
	_ "crypto/sha512"

	"github.com/sassoftware/relic/v8/lib/pkcs7"
	"github.com/sassoftware/relic/v8/lib/x509tools"
)

// ErrVerification marks a code signature that does not verify. It may be an
// attack: callers map it to exit code 3.
var ErrVerification = errors.New("code signature verification failed")

// MaxSignatureSize bounds a detached signature file.
const MaxSignatureSize = 1 << 20

// Result describes a signature that verified.
type Result struct {
	// Chain is the verified chain, leaf first, pinned root last.
	Chain []*x509.Certificate
	// Publisher is the pinned identity that matched.
	Publisher Identity
	// CheckedAt is the time the chain was validated at.
	CheckedAt time.Time
	// Timestamped says whether CheckedAt comes from a trusted RFC 3161
	// timestamp (false: it is the verifier's clock).
	Timestamped bool
	// Digest is the content digest algorithm of the signature.
	Digest crypto.Hash
}

// Explain renders the result for people: the chain, the time it was checked
// at and the pinned identity that matched.
func (r *Result) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "signature: detached CMS, digest %s\n", x509tools.HashShortName(r.Digest))
	for i, c := range r.Chain {
		role := "intermediate"
		switch {
		case i == 0:
			role = "leaf"
		case i == len(r.Chain)-1:
			role = "root (pinned)"
		}
		fmt.Fprintf(&b, "chain[%d] %s\n  subject: %s\n  issuer:  %s\n  valid:   %s to %s\n  eku:     %s\n  spki-sha256: %s\n",
			i, role, x509tools.FormatSubject(c), x509tools.FormatIssuer(c),
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), ekuString(c), SPKIHash(c))
	}
	src := "verifier clock (no trusted timestamp)"
	if r.Timestamped {
		src = "trusted RFC 3161 timestamp"
	}
	fmt.Fprintf(&b, "checked at: %s (%s)\n", r.CheckedAt.UTC().Format(time.RFC3339), src)
	b.WriteString("revocation: not checked (no CRL support yet)\n")
	fmt.Fprintf(&b, "publisher: matched %s\n", r.Publisher)
	return b.String()
}

func ekuString(c *x509.Certificate) string {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return "(none)"
	}
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageAny: "any", x509.ExtKeyUsageServerAuth: "serverAuth",
		x509.ExtKeyUsageClientAuth: "clientAuth", x509.ExtKeyUsageCodeSigning: "codeSigning",
		x509.ExtKeyUsageEmailProtection: "emailProtection", x509.ExtKeyUsageTimeStamping: "timeStamping",
		x509.ExtKeyUsageOCSPSigning: "OCSPSigning",
	}
	var out []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("eku(%d)", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return strings.Join(out, ", ")
}

// SignDetached makes a detached CMS signature (DER) over content with key,
// embedding chain (leaf first). It is for development and test chains; in
// production the vendor's signtool or openssl does this.
func SignDetached(content io.Reader, chain []*x509.Certificate, key crypto.Signer) ([]byte, error) {
	if len(chain) == 0 {
		return nil, errors.New("sign: no certificate")
	}
	h := crypto.SHA256.New()
	if _, err := io.Copy(h, content); err != nil {
		return nil, fmt.Errorf("sign: read content: %w", err)
	}
	b := pkcs7.NewBuilder(key, chain, crypto.SHA256)
	if err := b.SetDetachedContent(pkcs7.OidData, h.Sum(nil)); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if err := b.AddAuthenticatedAttribute(pkcs7.OidAttributeSigningTime, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	psd, err := b.Sign()
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return psd.Marshal()
}

func verr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrVerification}, args...)...)
}

// VerifyDetached checks a detached CMS signature over content, which is
// streamed once and never held in memory.
func (t *Trust) VerifyDetached(content io.Reader, sig []byte) (*Result, error) {
	if len(sig) > MaxSignatureSize {
		return nil, verr("signature is larger than %d bytes", MaxSignatureSize)
	}
	psd, err := pkcs7.Unmarshal(sig)
	if err != nil {
		return nil, verr("signature is not a DER CMS SignedData: %v", err)
	}
	sd := &psd.Content
	if len(sd.SignerInfos) != 1 {
		return nil, verr("signature has %d signers, want exactly 1", len(sd.SignerInfos))
	}
	if embedded, err := sd.ContentInfo.Bytes(); err != nil || embedded != nil {
		return nil, verr("signature is not detached (it embeds content)")
	}
	si := &sd.SignerInfos[0]
	hash, err := x509tools.PkixDigestToHashE(si.DigestAlgorithm)
	if err != nil {
		return nil, verr("unsupported digest algorithm %s", si.DigestAlgorithm.Algorithm)
	}
	if hash != crypto.SHA256 && hash != crypto.SHA384 && hash != crypto.SHA512 {
		return nil, verr("digest %s is not allowed (use sha256 or stronger)", x509tools.HashShortName(hash))
	}
	// Without signed attributes, relic's skipDigests mode would check no
	// signature at all; every signtool and openssl signature has them.
	if len(si.AuthenticatedAttributes) == 0 {
		return nil, verr("signature has no signed attributes")
	}
	h := hash.New()
	if _, err := io.Copy(h, content); err != nil {
		return nil, fmt.Errorf("read signed content: %w", err)
	}
	// Check the signature over the signed attributes, then the content's
	// digest against the messageDigest attribute.
	sv, err := sd.Verify(nil, true)
	if err != nil {
		return nil, verr("signature does not verify: %v", err)
	}
	var md []byte
	if err := si.AuthenticatedAttributes.GetOne(pkcs7.OidAttributeMessageDigest, &md); err != nil {
		return nil, verr("signature has no message digest: %v", err)
	}
	if !hmac.Equal(md, h.Sum(nil)) {
		return nil, verr("content does not match the signature (digest differs): the file was changed after signing")
	}
	var ct asn1.ObjectIdentifier
	if err := si.AuthenticatedAttributes.GetOne(pkcs7.OidAttributeContentType, &ct); err != nil || !ct.Equal(pkcs7.OidData) {
		return nil, verr("signature content type is not data")
	}
	res, err := t.verifyChain(sv.Certificate, sv.Intermediates)
	if err != nil {
		return nil, err
	}
	res.Digest = hash
	return res, nil
}

// verifyChain applies the leaf rules, builds a chain to a pinned root at the
// trusted time and matches a pinned publisher.
func (t *Trust) verifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate) (*Result, error) {
	who := x509tools.FormatSubject(leaf)
	if err := checkLeaf(leaf); err != nil {
		return nil, verr("signer %s: %v; refusing (this may be an attack)", who, err)
	}
	at := t.now()
	if at.Before(leaf.NotBefore) {
		return nil, verr("signer %s is not valid before %s (checked at %s)", who, leaf.NotBefore.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	if at.After(leaf.NotAfter) {
		return nil, verr("signer %s expired at %s (checked at %s, no trusted timestamp)", who, leaf.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		if !bytes.Equal(c.Raw, leaf.Raw) {
			pool.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.Roots,
		Intermediates: pool,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return nil, verr("signer %s does not chain to a pinned root in %s: %v (this may be an attack)", who, t.Dir, err)
	}
	for _, chain := range chains {
		if id, ok := t.matchPublisher(chain); ok {
			return &Result{Chain: chain, Publisher: id, CheckedAt: at}, nil
		}
	}
	return nil, verr("signer %s (O=%s) is not an allowed publisher in %s/publishers (this may be an attack)",
		who, strings.Join(leaf.Subject.Organization, ","), t.Dir)
}

// checkLeaf enforces what Go's x509 does not: an explicit codeSigning EKU
// (no EKU and anyExtendedKeyUsage are refused), not a CA, digitalSignature.
func checkLeaf(leaf *x509.Certificate) error {
	if slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return errors.New("certificate has anyExtendedKeyUsage instead of codeSigning")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) {
		return fmt.Errorf("certificate does not list codeSigning in its extended key usage (has: %s)", ekuString(leaf))
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return errors.New("certificate is a CA certificate, not a signing leaf")
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("certificate key usage lacks digitalSignature")
	}
	return nil
}

func (t *Trust) matchPublisher(chain []*x509.Certificate) (Identity, bool) {
	leaf := chain[0]
	for _, id := range t.Publishers {
		switch id.Kind {
		case IdentityOrganization:
			if slices.Contains(leaf.Subject.Organization, id.Value) {
				return id, true
			}
		case IdentityCommonName:
			if leaf.Subject.CommonName == id.Value {
				return id, true
			}
		case IdentitySPKI:
			// The leaf or an intermediate key; never the root, which
			// would accept every customer of the CA.
			for _, c := range chain[:len(chain)-1] {
				if SPKIHash(c) == id.Value {
					return id, true
				}
			}
		}
	}
	return Identity{}, false
}
