package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
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

	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/pkcs7"
	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/pkcs9"
	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/x509tools"
)

// MaxSignatureSize bounds a detached signature file.
const MaxSignatureSize = 1 << 20

// Result describes a signature that verified.
type Result struct {
	// Format is "detached CMS", "Authenticode (PE)" or "Authenticode (MSI)".
	Format string
	// Chain is the verified chain, leaf first, pinned root last.
	Chain []*x509.Certificate
	// Publisher is the pinned identity that matched.
	Publisher Identity
	// CheckedAt is the time the chain was validated at.
	CheckedAt time.Time
	// Timestamped says whether CheckedAt comes from a trusted RFC 3161
	// timestamp (false: it is the verifier's clock).
	Timestamped bool
	// TSAChain is the timestamp authority's verified chain, if any.
	TSAChain []*x509.Certificate
	// Digest is the content digest algorithm of the signature.
	Digest crypto.Hash
	// Revocation says what the CRLs said about each certificate.
	Revocation []string
	// Notes are other decisions worth showing (e.g. an ignored timestamp).
	Notes []string
}

func describeChain(b *strings.Builder, title string, chain []*x509.Certificate) {
	for i, c := range chain {
		role := "intermediate"
		switch {
		case i == 0:
			role = "leaf"
		case i == len(chain)-1:
			role = "root (pinned)"
		}
		fmt.Fprintf(b, "%s[%d] %s\n  subject: %s\n  issuer:  %s\n  valid:   %s to %s\n  eku:     %s\n  key:     %s\n  spki-sha256: %s\n",
			title, i, role, x509tools.FormatSubject(c), x509tools.FormatIssuer(c),
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), ekuString(c), keyString(c), SPKIHash(c))
	}
}

// Explain renders the result for people: the chain, the timestamp and its
// authority, the revocation decision and the pinned identity that matched.
func (r *Result) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "signature: %s, digest %s\n", r.Format, x509tools.HashShortName(r.Digest))
	describeChain(&b, "chain", r.Chain)
	if r.Timestamped {
		fmt.Fprintf(&b, "timestamp: %s (trusted RFC 3161 timestamp)\n", r.CheckedAt.UTC().Format(time.RFC3339))
		describeChain(&b, "tsa", r.TSAChain)
	} else {
		fmt.Fprintf(&b, "timestamp: none trusted; chain checked at %s (verifier clock)\n", r.CheckedAt.UTC().Format(time.RFC3339))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, n := range r.Revocation {
		fmt.Fprintf(&b, "revocation: %s\n", n)
	}
	fmt.Fprintf(&b, "publisher: matched %s\n", r.Publisher)
	return b.String()
}

func keyString(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d, signed with %s", k.N.BitLen(), c.SignatureAlgorithm)
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA %s, signed with %s", k.Curve.Params().Name, c.SignatureAlgorithm)
	default:
		return fmt.Sprintf("%T, signed with %s", k, c.SignatureAlgorithm)
	}
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
	return t.VerifyDetachedDigest(func(h crypto.Hash) ([]byte, error) {
		d := h.New()
		if _, err := io.Copy(d, content); err != nil {
			return nil, fmt.Errorf("read signed content: %w", err)
		}
		return d.Sum(nil), nil
	}, sig)
}

// VerifyDetachedDigest is VerifyDetached for a caller that already hashed
// the content while streaming it (the agent's download computes the sha256
// TUF needs, which is also what signtool and openssl sign): digest is asked
// for the content's digest under the signature's algorithm.
func (t *Trust) VerifyDetachedDigest(digest func(crypto.Hash) ([]byte, error), sig []byte) (*Result, error) {
	if len(sig) > MaxSignatureSize {
		return nil, verr("signature is larger than %d bytes", MaxSignatureSize)
	}
	psd, err := pkcs7.Unmarshal(sig)
	if err != nil {
		return nil, quiet(verr("signature is not a DER CMS SignedData (a .p7s as bcpublish codesign sign, signtool /p7 or openssl cms -outform DER write it)"), err)
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
	if err := checkDigest(hash, "signature digest"); err != nil {
		return nil, err
	}
	// Without signed attributes, relic's skipDigests mode would check no
	// signature at all; every signtool and openssl signature has them.
	if len(si.AuthenticatedAttributes) == 0 {
		return nil, verr("signature has no signed attributes")
	}
	sum, err := digest(hash)
	if err != nil {
		return nil, err
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
	if !hmac.Equal(md, sum) {
		return nil, verr("content does not match the signature (digest differs): the file was changed after signing")
	}
	var ct asn1.ObjectIdentifier
	if err := si.AuthenticatedAttributes.GetOne(pkcs7.OidAttributeContentType, &ct); err != nil || !ct.Equal(pkcs7.OidData) {
		return nil, verr("signature content type is not data")
	}
	ts, err := pkcs9.VerifyOptionalTimestamp(sv)
	if err != nil {
		return nil, verr("timestamp does not verify or does not match this signature: %v", err)
	}
	return t.finish(ts, hash, "detached CMS")
}

func checkDigest(h crypto.Hash, what string) error {
	switch h {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		return nil
	case crypto.SHA1:
		return verr("%s is SHA-1, which is refused (use SHA-256 or stronger)", what)
	default:
		return verr("%s %s is not allowed (use SHA-256 or stronger)", what, x509tools.HashShortName(h))
	}
}

// finish is the part every format shares: algorithm policy, the trusted
// timestamp, the leaf rules, the chain to a pinned root at the trusted
// time, revocation and the pinned publisher.
func (t *Trust) finish(sig pkcs9.TimestampedSignature, contentDigest crypto.Hash, format string) (*Result, error) {
	leaf := sig.Certificate
	if leaf == nil {
		return nil, verr("signature has no signer certificate")
	}
	res := &Result{Format: format, Digest: contentDigest, CheckedAt: t.now()}
	signerDigest, err := x509tools.PkixDigestToHashE(sig.SignerInfo.DigestAlgorithm)
	if err != nil {
		return nil, verr("unsupported signer digest algorithm %s", sig.SignerInfo.DigestAlgorithm.Algorithm)
	}
	if err := checkDigest(signerDigest, "signer digest"); err != nil {
		return nil, err
	}
	if err := checkDigest(contentDigest, "content digest"); err != nil {
		return nil, err
	}
	if cs := sig.CounterSignature; cs != nil {
		if len(t.TSARootCerts) == 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("the signature has a timestamp from %s, but %s/tsa-roots pins no timestamp authority: ignored, checked at the verifier clock", x509tools.FormatSubject(cs.Certificate), t.Dir))
		} else {
			chain, err := t.verifyTimestamp(cs)
			if err != nil {
				return nil, err
			}
			res.TSAChain, res.CheckedAt, res.Timestamped = chain, cs.SigningTime, true
		}
	}
	at := res.CheckedAt
	when := "at the trusted timestamp"
	if !res.Timestamped {
		when = "now, no trusted timestamp"
	}
	who := x509tools.FormatSubject(leaf)
	if err := checkLeaf(leaf); err != nil {
		return nil, verr("signer %s: %v; refusing (this may be an attack)", who, err)
	}
	if err := checkAlgorithms(append([]*x509.Certificate{leaf}, sig.Intermediates...)); err != nil {
		return nil, err
	}
	if at.Before(leaf.NotBefore) {
		return nil, verr("signer %s is not valid before %s (checked at %s, %s)", who, leaf.NotBefore.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), when)
	}
	if at.After(leaf.NotAfter) {
		return nil, verr("signer %s expired at %s (checked at %s, %s)", who, leaf.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), when)
	}
	pool := x509.NewCertPool()
	for _, c := range sig.Intermediates {
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
		return nil, verr("signer %s: %s (this may be an attack)", who, chainError(err, t.Dir, "codeSigning"))
	}
	var lastErr error
	for _, chain := range chains {
		if err := checkAlgorithms(chain); err != nil {
			lastErr = err
			continue
		}
		revocation, err := t.checkRevocation(chain, at, res.Timestamped)
		if err != nil {
			lastErr = verr("%v", err)
			continue
		}
		if id, ok := t.matchPublisher(chain); ok {
			res.Chain, res.Publisher, res.Revocation = chain, id, revocation
			return res, nil
		}
		lastErr = verr("signer %s (O=%s) is not an allowed publisher in %s/publishers (this may be an attack)",
			who, strings.Join(leaf.Subject.Organization, ","), t.Dir)
	}
	return nil, lastErr
}

// verifyTimestamp checks an RFC 3161 timestamp's authority: its leaf lists
// timeStamping explicitly, and its chain reaches a pinned TSA root, valid at
// the time it stamped, under the same algorithm and revocation rules.
func (t *Trust) verifyTimestamp(cs *pkcs9.CounterSignature) ([]*x509.Certificate, error) {
	tsa := cs.Certificate
	who := x509tools.FormatSubject(tsa)
	if err := checkDigest(cs.Hash, "timestamp imprint digest"); err != nil {
		return nil, err
	}
	if d, err := x509tools.PkixDigestToHashE(cs.SignerInfo.DigestAlgorithm); err != nil {
		return nil, verr("timestamp: unsupported digest algorithm")
	} else if err := checkDigest(d, "timestamp signature digest"); err != nil {
		return nil, err
	}
	if !slices.Contains(tsa.ExtKeyUsage, x509.ExtKeyUsageTimeStamping) {
		return nil, verr("timestamp authority %s does not list timeStamping in its extended key usage", who)
	}
	if err := checkAlgorithms(append([]*x509.Certificate{tsa}, cs.Intermediates...)); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cs.Intermediates {
		pool.AddCert(c)
	}
	chains, err := tsa.Verify(x509.VerifyOptions{
		Roots:         t.TSARoots,
		Intermediates: pool,
		CurrentTime:   cs.SigningTime,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	})
	if err != nil {
		return nil, verr("timestamp authority %s is not trusted: %s (pinned TSA roots are in %s/tsa-roots)", who, chainError(err, t.Dir, "timeStamping"), t.Dir)
	}
	lastErr := verr("timestamp authority %s is not trusted", who)
	for _, chain := range chains {
		if err := checkAlgorithms(chain); err != nil {
			lastErr = err
			continue
		}
		if _, err := t.checkRevocation(chain, cs.SigningTime, false); err != nil {
			lastErr = verr("timestamp authority: %v", err)
			continue
		}
		return chain, nil
	}
	return nil, lastErr
}

// chainError turns an x509 verification error into a sentence.
func chainError(err error, dir, usage string) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "does not chain to a pinned root in " + dir
	case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
		return "a certificate in its chain does not allow " + usage + " in its extended key usage"
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "a certificate in its chain is expired or not yet valid at the signing time: " + ci.Error()
	default:
		return err.Error()
	}
}

// checkAlgorithms refuses RSA keys under 2048 bits, SHA-1 certificate
// signatures (except a self-signed root's, which nobody relies on) and
// unknown critical extensions.
func checkAlgorithms(certs []*x509.Certificate) error {
	for _, c := range certs {
		who := x509tools.FormatSubject(c)
		if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
			return verr("%s has an RSA-%d key; at least 2048 bits are required", who, k.N.BitLen())
		}
		isRoot := bytes.Equal(c.RawIssuer, c.RawSubject) && c.IsCA
		switch c.SignatureAlgorithm {
		case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
			if !isRoot {
				return verr("%s is signed with %s; SHA-1 and MD5 are refused", who, c.SignatureAlgorithm)
			}
		}
		if len(c.UnhandledCriticalExtensions) > 0 {
			var oids []string
			for _, o := range c.UnhandledCriticalExtensions {
				oids = append(oids, o.String())
			}
			return verr("%s has unknown critical extension %s", who, strings.Join(oids, ", "))
		}
	}
	return nil
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
