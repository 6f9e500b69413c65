package fleet

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// Personal data at rest (the enrollee's email and name, consent names) is
// sealed with envelope encryption: each record gets its own random
// 256-bit data key, the record is sealed with it under AES-256-GCM, and
// the data key is wrapped by the key-encryption key (KEK), which never
// enters the database. Lookups by email use a keyed hash (HMAC-SHA256
// under a key derived from the KEK), so the database holds no plaintext
// and no unkeyed hash of it. The record's owner (the device ID) is bound
// as additional data: a sealed record moved to another row does not open.
//
// The KEK is a file (file://, below) or a key in AWS KMS (awskms://,
// kms.go): the file KEK wraps in memory and derives the lookup key from
// itself; the KMS KEK wraps in KMS and keeps a random lookup key, wrapped
// by KMS, in the store.

// KEK wraps and unwraps data keys.
type KEK interface {
	// ID names the key (it is stored with each record, so a rotation can
	// tell which key opens which record).
	ID() string
	Wrap(dek, aad []byte) ([]byte, error)
	Unwrap(wrapped, aad []byte) ([]byte, error)
	// IndexKey is the key of the keyed hash for lookups.
	IndexKey() []byte
}

// kekFilePrefix starts a KEK file: the version, then base64 of 32 bytes.
const kekFilePrefix = "bcfleet-kek-v1:"

// GenerateKEK writes a new key-encryption key to path (mode 0600); it
// refuses to overwrite a file that exists.
func GenerateKEK(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return errUsage("%s exists: a key-encryption key is never overwritten (the data it sealed would be lost); give a new file", path)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, []byte(kekFilePrefix+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// OpenKEK opens a KEK by URI: file://PATH (or a plain path). The file must
// not be readable by group or others. An AWS KMS KEK (awskms://) needs
// the store and a context: open it with OpenKEKWithStore.
func OpenKEK(uri string) (KEK, error) {
	switch {
	case strings.HasPrefix(uri, "file://"):
		return loadFileKEK(strings.TrimPrefix(uri, "file://"))
	case strings.HasPrefix(uri, kmsScheme):
		return nil, fmt.Errorf("--kek %s: an AWS KMS key needs the store (its wrapped email-lookup key is kept there): open it with OpenKEKWithStore", uri)
	case strings.Contains(uri, "://"):
		return nil, errUsage("--kek %s: want file://PATH or awskms:///KEY-ID-OR-ARN-OR-ALIAS[?region=R&endpoint=URL]", uri)
	default:
		return loadFileKEK(uri)
	}
}

// OpenKEKWithStore opens a KEK by URI: file://PATH (or a plain path, as
// OpenKEK), or awskms:///KEY[?region=R&endpoint=URL] for a key in AWS KMS
// (kms.go), whose wrapped email-lookup key st keeps (st must be a
// MetaStore; sqlstore's is). A KMS KEK calls KMS with ctx's values for
// as long as it is used.
func OpenKEKWithStore(ctx context.Context, uri string, st Store) (KEK, error) {
	if !strings.HasPrefix(uri, kmsScheme) {
		return OpenKEK(uri)
	}
	meta, ok := st.(MetaStore)
	if !ok {
		return nil, fmt.Errorf("--kek %s: this store cannot keep the KMS key's email-lookup key (no MetaStore)", uri)
	}
	return openKMSKEK(ctx, uri, meta)
}

func loadFileKEK(path string) (KEK, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--kek %s: %w (make one with bcfleet kek generate FILE)", path, errors.Unwrap(err))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("--kek %s: permissions %o are too open for a key; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(data))
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, kekFilePrefix))
	if !strings.HasPrefix(s, kekFilePrefix) || err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("--kek %s: not a key-encryption key (bcfleet kek generate writes one)", path)
	}
	return newAESKEK(raw), nil
}

// aesKEK is a 256-bit KEK held in memory.
type aesKEK struct {
	aead  cipher.AEAD
	id    string
	index []byte
}

func newAESKEK(key []byte) *aesKEK {
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	id := sha256.Sum256(append([]byte("bcfleet-kek-id\n"), key...))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("bcfleet-email-index"))
	return &aesKEK{aead: aead, id: base64.RawURLEncoding.EncodeToString(id[:9]), index: mac.Sum(nil)}
}

func (k *aesKEK) ID() string       { return k.id }
func (k *aesKEK) IndexKey() []byte { return k.index }

func (k *aesKEK) Wrap(dek, aad []byte) ([]byte, error) {
	return sealGCM(k.aead, dek, aad)
}

func (k *aesKEK) Unwrap(wrapped, aad []byte) ([]byte, error) {
	return openGCM(k.aead, wrapped, aad)
}

func sealGCM(aead cipher.AEAD, plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, aad), nil
}

func openGCM(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, errSealed
	}
	out, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errSealed
	}
	return out, nil
}

var errSealed = errors.New("sealed record does not open (another key-encryption key, or the record was changed or moved)")

// sealVersion starts a sealed record.
const sealVersion = 1

// Seal seals plain for owner: version, KEK ID, wrapped data key, and the
// record under the data key, both bound to owner.
func Seal(k KEK, owner string, plain []byte) ([]byte, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	aad := []byte("bcfleet-record\n" + owner)
	wrapped, err := k.Wrap(dek, append([]byte("dek\n"), aad...))
	if err != nil {
		return nil, err
	}
	if len(k.ID()) > 255 || len(wrapped) > 255 {
		return nil, fmt.Errorf("key-encryption key %s: its ID (%d bytes) or wrapped data key (%d bytes) is longer than a sealed record holds (255)", k.ID(), len(k.ID()), len(wrapped))
	}
	block, _ := aes.NewCipher(dek)
	aead, _ := cipher.NewGCM(block)
	body, err := sealGCM(aead, plain, aad)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteByte(sealVersion)
	writeChunk(&b, []byte(k.ID()))
	writeChunk(&b, wrapped)
	b.Write(body)
	return b.Bytes(), nil
}

// Open opens a record Seal made for owner.
func Open(k KEK, owner string, sealed []byte) ([]byte, error) {
	r := bytes.NewReader(sealed)
	if v, err := r.ReadByte(); err != nil || v != sealVersion {
		return nil, errSealed
	}
	id, err := readChunk(r)
	if err != nil {
		return nil, errSealed
	}
	if string(id) != k.ID() {
		return nil, fmt.Errorf("sealed record is under key-encryption key %s, not %s (the --kek given)", id, k.ID())
	}
	wrapped, err := readChunk(r)
	if err != nil {
		return nil, errSealed
	}
	aad := []byte("bcfleet-record\n" + owner)
	dek, err := k.Unwrap(wrapped, append([]byte("dek\n"), aad...))
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(r)
	block, _ := aes.NewCipher(dek)
	aead, _ := cipher.NewGCM(block)
	return openGCM(aead, body, aad)
}

// EmailHash is the keyed hash of an email address for lookups: case and
// surrounding spaces do not matter.
func EmailHash(k KEK, email string) []byte {
	mac := hmac.New(sha256.New, k.IndexKey())
	mac.Write([]byte(strings.ToLower(strings.TrimSpace(email))))
	return mac.Sum(nil)
}

func writeChunk(b *bytes.Buffer, p []byte) {
	b.WriteByte(byte(len(p)))
	b.Write(p)
}

func readChunk(r *bytes.Reader) ([]byte, error) {
	n, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	return p, nil
}
