package signer

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/x509tools"
)

// DefaultCRLGrace is how long after its NextUpdate a CRL is still used
// before verification fails closed. It covers a publisher's weekend; the
// repository's own expiry (targets: 90 days) bounds how stale a CRL
// published through TUF can get anyway.
const DefaultCRLGrace = 72 * time.Hour

// MaxCRLSize bounds a CRL file.
const MaxCRLSize = 8 << 20

// reasonKeyCompromise is the CRL reason code for keyCompromise (RFC 5280).
const reasonKeyCompromise = 1

var reasonNames = map[int]string{
	0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
	4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL",
	9: "privilegeWithdrawn", 10: "aACompromise",
}

// CRL is a parsed certificate revocation list and where it came from.
type CRL struct {
	Name string
	List *x509.RevocationList
}

// ParseCRL parses a DER or PEM CRL.
func ParseCRL(data []byte, name string) (*CRL, error) {
	if len(data) > MaxCRLSize {
		return nil, fmt.Errorf("CRL %s: larger than %d bytes", name, MaxCRLSize)
	}
	if block, _ := pem.Decode(data); block != nil && block.Type == "X509 CRL" {
		data = block.Bytes
	}
	l, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("CRL %s is not a certificate revocation list (DER, or PEM \"X509 CRL\"): %w", name, err)
	}
	return &CRL{Name: name, List: l}, nil
}

func (t *Trust) grace() time.Duration {
	if t.CRLGrace > 0 {
		return t.CRLGrace
	}
	return DefaultCRLGrace
}

// crlFor picks the newest CRL issued by issuer whose signature verifies.
// A CRL that names issuer but is signed by another key is an error: it is
// either an attack or a broken publication, and fails closed.
func (t *Trust) crlFor(issuer *x509.Certificate) (*CRL, error) {
	var best *CRL
	for _, c := range t.CRLs {
		if !bytes.Equal(c.List.RawIssuer, issuer.RawSubject) {
			continue
		}
		if err := c.List.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("CRL %s names %s as its issuer but is not signed by it: %v", c.Name, x509tools.FormatSubject(issuer), err)
		}
		if best == nil || c.List.ThisUpdate.After(best.List.ThisUpdate) {
			best = c
		}
	}
	return best, nil
}

// checkRevocation checks every certificate of chain but the root against
// the CRL of its issuer, if there is one. at is the trusted signing time
// and timestamped says whether it comes from a trusted timestamp. Windows'
// rule: a revocation for keyCompromise always counts; any other revocation
// counts only for signatures whose trusted timestamp is not before it.
func (t *Trust) checkRevocation(chain []*x509.Certificate, at time.Time, timestamped bool) ([]string, error) {
	var notes []string
	now := t.now()
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		who := x509tools.FormatSubject(cert)
		crl, err := t.crlFor(issuer)
		if err != nil {
			return nil, err
		}
		if crl == nil {
			notes = append(notes, fmt.Sprintf("%s: no CRL from its issuer", who))
			continue
		}
		if crl.List.NextUpdate.IsZero() {
			return nil, fmt.Errorf("CRL %s has no nextUpdate, so its freshness cannot be judged", crl.Name)
		}
		if now.After(crl.List.NextUpdate.Add(t.grace())) {
			return nil, fmt.Errorf("CRL %s from %s is stale: its next update was due %s (grace %s); publish a fresh CRL",
				crl.Name, x509tools.FormatSubject(issuer), crl.List.NextUpdate.UTC().Format(time.RFC3339), t.grace())
		}
		revoked := false
		for _, e := range crl.List.RevokedCertificateEntries {
			if e.SerialNumber == nil || e.SerialNumber.Cmp(cert.SerialNumber) != 0 {
				continue
			}
			revoked = true
			reason := reasonNames[e.ReasonCode]
			if reason == "" {
				reason = fmt.Sprintf("reason %d", e.ReasonCode)
			}
			when := e.RevocationTime.UTC().Format(time.RFC3339)
			switch {
			case e.ReasonCode == reasonKeyCompromise:
				return nil, fmt.Errorf("%s was revoked for keyCompromise at %s (CRL %s): every signature by it is refused", who, when, crl.Name)
			case timestamped && at.Before(e.RevocationTime):
				notes = append(notes, fmt.Sprintf("%s: revoked at %s (%s), after the trusted timestamp %s: accepted, as Windows does", who, when, reason, at.UTC().Format(time.RFC3339)))
			case timestamped:
				return nil, fmt.Errorf("%s was revoked at %s (%s, CRL %s), before the trusted timestamp %s", who, when, reason, crl.Name, at.UTC().Format(time.RFC3339))
			default:
				return nil, fmt.Errorf("%s was revoked at %s (%s, CRL %s) and the signature has no trusted timestamp", who, when, reason, crl.Name)
			}
		}
		if !revoked {
			notes = append(notes, fmt.Sprintf("%s: not revoked (CRL %s, next update %s)", who, crl.Name, crl.List.NextUpdate.UTC().Format(time.RFC3339)))
		}
	}
	return notes, nil
}
