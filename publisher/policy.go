package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// Limits on the files policy set and release add read.
const (
	maxFeatureText = 64 << 10 // a feature text file
	maxPolicySize  = 1 << 20  // a device policy
)

// PolicyOptions are the inputs of `bcpublish policy set`.
type PolicyOptions struct {
	File string
	// Signature is the policy's detached CMS signature (default File.p7s),
	// unless Sign signs it here.
	Signature string
	Sign      CodeSigner
	Now       time.Time
}

// SetPolicy publishes a code-signed device policy as policy/devices.json
// with its signature policy/devices.json.p7s. Agents accept only a policy
// that verifies against their pinned code-signing trust and whose version
// is not lower than the last they accepted, so the version must go up.
func SetPolicy(ctx context.Context, s Store, keys repo.Keys, trust *signer.Trust, o PolicyOptions) (*repo.DevicePolicy, bool, error) {
	data, err := readSmall("--file", o.File, maxPolicySize)
	if err != nil {
		return nil, false, err
	}
	p, err := repo.ParseDevicePolicy(data)
	if err != nil {
		return nil, false, usagef("--file %s: %v", o.File, err)
	}
	if p.Version < 1 {
		return nil, false, usagef(`--file %s: give the policy a "version" (1 or higher, above the published one): agents never accept a policy whose version goes back`, o.File)
	}
	r, err := loadForWrite(ctx, s)
	if err != nil {
		return nil, false, err
	}
	t := repo.NewTarget(repo.DevicePolicyPath, data, nil)
	old, ok, err := r.Lookup(t.Path)
	if err != nil {
		return nil, false, err
	}
	if ok {
		if fmt.Sprintf("%x", []byte(old.Hashes["sha256"])) == t.SHA256 {
			return p, false, nil
		}
		oldData, err := readAll(ctx, s, "targets/"+repo.ConsistentName(t.Path, fmt.Sprintf("%x", []byte(old.Hashes["sha256"]))), 1<<20)
		if err != nil {
			return nil, false, fmt.Errorf("published %s: %w", t.Path, err)
		}
		if op, err := repo.ParseDevicePolicy(oldData); err == nil && p.Version <= op.Version {
			return nil, false, usagef("--file %s: version %d is not above the published policy's version %d", o.File, p.Version, op.Version)
		}
	}
	var sig []byte
	if o.Sign != nil {
		if sig, err = o.Sign(data); err != nil {
			return nil, false, fmt.Errorf("sign %s: %w", o.File, err)
		}
	} else {
		if o.Signature == "" {
			o.Signature = o.File + repo.SignatureSuffix
		}
		if sig, err = readSmall("--signature", o.Signature, signer.MaxSignatureSize); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, false, fmt.Errorf("%w (a device policy changes the consent gate, so it needs the publisher's code signature too: give --signature, or --codesign-cert and --codesign-key)", err)
			}
			return nil, false, err
		}
	}
	crls, err := repoCRLs(ctx, s, r)
	if err != nil {
		return nil, false, err
	}
	if trust, err = trust.WithCRLs(crls); err != nil {
		return nil, false, err
	}
	if _, err := trust.VerifyDetached(bytes.NewReader(data), sig); err != nil {
		return nil, false, fmt.Errorf("%s: %w", o.File, err)
	}
	st := repo.NewTarget(repo.SignaturePath(repo.DevicePolicyPath), sig, nil)
	for _, x := range []repo.Target{t, st} {
		if err := r.Set(x); err != nil {
			return nil, false, err
		}
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	files, err := r.Commit(keys, o.Now)
	if err != nil {
		return nil, false, err
	}
	if err := putBytesIfAbsent(ctx, s, "targets/"+t.StorageName(), data); err != nil {
		return nil, false, err
	}
	if err := putBytesIfAbsent(ctx, s, "targets/"+st.StorageName(), sig); err != nil {
		return nil, false, err
	}
	if err := writeMetadata(ctx, s, r, files); err != nil {
		return nil, false, err
	}
	return p, true, nil
}

// ParseFeatures turns --feature ID[:consent] and --feature-text ID=FILE
// flags into features. A text file holds the title on its first line and
// the full description after it. Consent defaults to "required".
func ParseFeatures(specs, texts []string) ([]repo.Feature, error) {
	var out []repo.Feature
	index := map[string]int{}
	for _, spec := range specs {
		id, consent, found := strings.Cut(spec, ":")
		if !found {
			consent = repo.ConsentRequired
		}
		if err := repo.ValidateName("feature", id); err != nil {
			return nil, usagef("--feature %s: %v", spec, err)
		}
		switch consent {
		case repo.ConsentRequired, repo.ConsentPHIDevices, repo.ConsentNone:
		default:
			return nil, usagef("--feature %s: consent %q: want required, phi-devices or none", spec, consent)
		}
		if _, dup := index[id]; dup {
			return nil, usagef("--feature %s given twice", id)
		}
		index[id] = len(out)
		out = append(out, repo.Feature{ID: id, Consent: consent, Title: id})
	}
	for _, t := range texts {
		id, file, ok := strings.Cut(t, "=")
		if !ok || file == "" {
			return nil, usagef("--feature-text %q: want ID=FILE", t)
		}
		i, known := index[id]
		if !known {
			return nil, usagef("--feature-text %s: no --feature %s", t, id)
		}
		data, err := regfile.Read(file, maxFeatureText) // as readSmall does
		if err != nil {
			return nil, usagef("--feature-text %s=%w", id, err)
		}
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
		title, desc, _ := strings.Cut(string(data), "\n")
		out[i].Title = strings.TrimSpace(title)
		out[i].Description = strings.TrimSpace(desc)
	}
	for _, f := range out {
		if f.Consent != repo.ConsentNone && f.Description == "" {
			return nil, usagef("--feature %s (consent %s) needs --feature-text %s=FILE with a title line and a full description: a person must read what they authorize", f.ID, f.Consent, f.ID)
		}
	}
	return out, nil
}

// AddCRL publishes a certificate revocation list as trust/crl/<name>.crl,
// so agents get it with TUF's freshness and rollback protection. A CRL
// already past its nextUpdate is refused: agents would fail closed on it.
func AddCRL(ctx context.Context, s Store, keys repo.Keys, file, name string, now time.Time) (string, *signer.CRL, error) {
	data, err := readSmall("--crl", file, signer.MaxCRLSize)
	if err != nil {
		return "", nil, err
	}
	crl, err := signer.ParseCRL(data, file)
	if err != nil {
		return "", nil, usagef("--crl: %v", err)
	}
	if crl.List.NextUpdate.IsZero() || now.After(crl.List.NextUpdate) {
		return "", nil, usagef("--crl %s: its nextUpdate %s has passed; agents would refuse it, get a fresh CRL from the CA", file, crl.List.NextUpdate.UTC().Format(time.RFC3339))
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	if err := repo.ValidateName("CRL", name); err != nil {
		return "", nil, usagef("--name: %v", err)
	}
	r, err := loadForWrite(ctx, s)
	if err != nil {
		return "", nil, err
	}
	t := repo.NewTarget(repo.CRLPath(name), data, nil)
	if old, ok, err := r.Lookup(t.Path); err != nil {
		return "", nil, err
	} else if ok && fmt.Sprintf("%x", []byte(old.Hashes["sha256"])) == t.SHA256 {
		return t.Path, crl, nil
	}
	if err := r.Set(t); err != nil {
		return "", nil, err
	}
	files, err := r.Commit(keys, now)
	if err != nil {
		return "", nil, err
	}
	if err := putBytesIfAbsent(ctx, s, "targets/"+t.StorageName(), data); err != nil {
		return "", nil, err
	}
	if err := writeMetadata(ctx, s, r, files); err != nil {
		return "", nil, err
	}
	return t.Path, crl, nil
}
