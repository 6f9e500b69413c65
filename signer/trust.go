package signer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/regfile"
)

// Limits on what a trust directory may hold.
const (
	maxTrustFileSize = 1 << 20
	maxTrustFiles    = 256
)

// Trust is a loaded trust directory (DESIGN.md, "Trust directory"):
// the pinned code-signing roots and the allowed publisher identities.
type Trust struct {
	// Dir is where the trust was loaded from, for messages.
	Dir string
	// Roots holds the pinned code-signing roots, and nothing else.
	Roots     *x509.CertPool
	RootCerts []*x509.Certificate
	// TSARoots holds the pinned timestamp-authority roots (may be empty:
	// then timestamps are ignored and certificates are checked at "now").
	TSARoots     *x509.CertPool
	TSARootCerts []*x509.Certificate
	// Publishers are the allowed signer identities; at least one must match.
	Publishers []Identity
	// CRLs are the revocation lists in use: DIR/crl/*.crl and any added
	// with WithCRLs (the repository's trust/crl/ targets).
	CRLs []*CRL
	// CRLGrace is how long past its NextUpdate a CRL is still used. Zero
	// means DefaultCRLGrace.
	CRLGrace time.Duration
	// Now returns the time certificates are checked at when a signature has
	// no trusted timestamp. Nil means time.Now.
	Now func() time.Time
}

// IdentityKind says what an Identity matches.
type IdentityKind string

// Identity kinds, as written in DIR/publishers.
const (
	IdentityOrganization IdentityKind = "O"
	IdentityCommonName   IdentityKind = "CN"
	IdentitySPKI         IdentityKind = "spki-sha256"
)

// Identity is one allowed signer: an organization or common name of the
// leaf, or the SHA-256 of the SubjectPublicKeyInfo of the leaf or an
// intermediate.
type Identity struct {
	Kind  IdentityKind
	Value string
}

func (id Identity) String() string {
	if id.Kind == IdentitySPKI {
		return string(id.Kind) + ":" + id.Value
	}
	return string(id.Kind) + "=" + id.Value
}

// parseIdentity parses one line of a publishers file.
func parseIdentity(line string) (Identity, error) {
	switch {
	case strings.HasPrefix(line, "O="):
		if v := strings.TrimSpace(line[2:]); v != "" {
			return Identity{IdentityOrganization, v}, nil
		}
	case strings.HasPrefix(line, "CN="):
		if v := strings.TrimSpace(line[3:]); v != "" {
			return Identity{IdentityCommonName, v}, nil
		}
	case strings.HasPrefix(line, "spki-sha256:"):
		v := strings.ToLower(strings.TrimSpace(line[len("spki-sha256:"):]))
		if b, err := hex.DecodeString(v); err != nil || len(b) != sha256.Size {
			return Identity{}, fmt.Errorf("%q: spki-sha256 needs 64 hex digits", line)
		}
		return Identity{IdentitySPKI, v}, nil
	}
	return Identity{}, fmt.Errorf("%q: want O=<organization>, CN=<common name> or spki-sha256:<hex>", line)
}

// SPKIHash returns the hex SHA-256 of a certificate's SubjectPublicKeyInfo,
// the value an spki-sha256 publisher line pins.
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// trustDirHelp says what a trust directory holds, for its errors.
const trustDirHelp = `a trust directory holds roots/*.pem (the pinned code-signing root certificates) and publishers (lines such as "O=Beckman Coulter, Inc.")`

// LoadTrust reads a trust directory. It fails if there is no root or no
// publisher, because such a directory would accept nothing or anything.
func LoadTrust(dir string) (*Trust, error) {
	t := &Trust{Dir: dir, Roots: x509.NewCertPool(), TSARoots: x509.NewCertPool()}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		what := "is not a directory"
		if err != nil {
			what = "does not exist"
			if !errors.Is(err, fs.ErrNotExist) {
				what = err.Error()
			}
		}
		return nil, fmt.Errorf("trust directory %s %s; %s", dir, what, trustDirHelp)
	}
	var err error
	if t.RootCerts, err = loadCAs(dir, "roots", t.Roots); err != nil {
		return nil, err
	}
	if len(t.RootCerts) == 0 {
		return nil, fmt.Errorf("trust directory %s: no root certificates in %s; %s", dir, filepath.Join(dir, "roots", "*.pem"), trustDirHelp)
	}
	if t.TSARootCerts, err = loadCAs(dir, "tsa-roots", t.TSARoots); err != nil {
		return nil, err
	}
	crlFiles, err := listFiles(filepath.Join(dir, "crl"), ".crl")
	if err != nil {
		return nil, fmt.Errorf("trust directory %s: %w", dir, err)
	}
	for _, f := range crlFiles {
		data, err := readLimited(f)
		if err != nil {
			return nil, fmt.Errorf("trust directory: %w", err)
		}
		c, err := ParseCRL(data, f)
		if err != nil {
			return nil, fmt.Errorf("trust directory: %w", err)
		}
		t.CRLs = append(t.CRLs, c)
	}
	pubFile := filepath.Join(dir, "publishers")
	data, err := readLimited(pubFile)
	if err != nil {
		return nil, fmt.Errorf("trust directory: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := parseIdentity(line)
		if err != nil {
			return nil, fmt.Errorf("trust directory: %s line %d: %w", pubFile, n, err)
		}
		t.Publishers = append(t.Publishers, id)
	}
	if len(t.Publishers) == 0 {
		return nil, fmt.Errorf(`trust directory: %s lists no publisher; add a line such as "O=Beckman Coulter, Inc."`, pubFile)
	}
	return t, nil
}

// loadCAs adds every certificate of DIR/sub/*.pem to pool; each must be a CA.
func loadCAs(dir, sub string, pool *x509.CertPool) ([]*x509.Certificate, error) {
	files, err := listFiles(filepath.Join(dir, sub), ".pem")
	if err != nil {
		return nil, fmt.Errorf("trust directory %s: %w", dir, err)
	}
	var out []*x509.Certificate
	for _, f := range files {
		certs, err := LoadCertificates(f)
		if err != nil {
			return nil, fmt.Errorf("trust directory: %w", err)
		}
		for _, c := range certs {
			if !c.IsCA || !c.BasicConstraintsValid {
				return nil, fmt.Errorf("trust directory: %s: %s is not a CA certificate", f, c.Subject)
			}
			pool.AddCert(c)
			out = append(out, c)
		}
	}
	return out, nil
}

// LoadCertificates reads every CERTIFICATE block of a PEM file, in order.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	var seen []string
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		seen = append(seen, block.Type)
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d is not a valid X.509 certificate: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, noCertificate(path, seen)
	}
	return certs, nil
}

// noCertificate is the error of a certificate file without a certificate,
// saying what it holds instead (the PEM block types seen).
func noCertificate(path string, seen []string) error {
	for _, t := range seen {
		switch {
		case strings.HasSuffix(t, "PRIVATE KEY"):
			return fmt.Errorf("%s holds a private key, not a certificate; give the PEM certificate (chain) file", path)
		case t == "PUBLIC KEY":
			return fmt.Errorf("%s holds a public key, such as a TUF role key's .pub, not a certificate; give the PEM certificate (chain) file", path)
		}
	}
	return fmt.Errorf("%s: no PEM certificate found; want PEM \"CERTIFICATE\" blocks", path)
}

// readLimited reads a certificate, CRL or publishers file: a regular file
// (a device or FIFO is refused without reading or waiting on it), its size
// checked before it is read.
func readLimited(path string) ([]byte, error) {
	return regfile.Read(path, maxTrustFileSize)
}

func listFiles(dir, ext string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ext) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) > maxTrustFiles {
		return nil, fmt.Errorf("%s: more than %d files", dir, maxTrustFiles)
	}
	sort.Strings(out)
	return out, nil
}

// WithCRLs returns a copy of t that also uses the given CRLs (DER or PEM),
// keyed by a name for messages.
func (t *Trust) WithCRLs(named map[string][]byte) (*Trust, error) {
	c := *t
	c.CRLs = append([]*CRL(nil), t.CRLs...)
	names := make([]string, 0, len(named))
	for n := range named {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		crl, err := ParseCRL(named[n], n)
		if err != nil {
			return nil, err
		}
		c.CRLs = append(c.CRLs, crl)
	}
	return &c, nil
}

func (t *Trust) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}
