package fleet

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/beckmanconnect/bcupdate/internal/kmstest"
)

// memMeta is a MetaStore in memory (the SQL stores' own is tested in
// fleet/sqlstore against SQLite and PostgreSQL).
type memMeta struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memMeta) Meta(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (s *memMeta) PutMetaOnce(_ context.Context, name string, value []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	if _, ok := s.m[name]; !ok {
		s.m[name] = bytes.Clone(value)
	}
	return bytes.Clone(s.m[name]), nil
}

func openKMS(t *testing.T, uri string, meta MetaStore) *kmsKEK {
	t.Helper()
	k, err := openKMSKEK(context.Background(), uri, meta)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseKMSURI(t *testing.T) {
	for _, tc := range []struct {
		uri, want             string
		key, region, endpoint string
	}{
		{uri: "awskms:///alias/bcfleet", key: "alias/bcfleet"},
		{uri: "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab?region=eu-central-1", key: "1234abcd-12ab-34cd-56ef-1234567890ab", region: "eu-central-1"},
		{uri: "awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd", key: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd", region: "eu-west-1"},
		{uri: "awskms:///alias/x?endpoint=http://127.0.0.1:4599", key: "alias/x", endpoint: "http://127.0.0.1:4599"},
		{uri: "awskms:///alias/x?endpoint=https://kms.internal.example", key: "alias/x", endpoint: "https://kms.internal.example"},
		{uri: "awskms:///alias/x?endpoint=http://kms.internal.example", want: "plain http only on loopback"},
		{uri: "awskms:///alias/x?endpoint=ftp://127.0.0.1", want: "want https://HOST"},
		{uri: "awskms:///", want: "no key"},
		{uri: "awskms://kms.example/alias/x", want: "three slashes"},
		{uri: "awskms:///alias/x?profile=p", want: `unknown parameter "profile"`},
		{uri: "awskms:///alias/x?region=", want: "give ?region= once, with a value"},
	} {
		r, err := parseKMSURI(tc.uri)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrUsage) {
				t.Errorf("%s: %v, want a usage error %q", tc.uri, err, tc.want)
			}
			continue
		}
		if err != nil || r.key != tc.key || r.region != tc.region || r.endpoint != tc.endpoint {
			t.Errorf("%s: %+v %v", tc.uri, r, err)
		}
	}
}

// A record sealed under a KMS key opens with it, for its owner only; the
// data key is wrapped in KMS with the record's additional data as the
// encryption context.
func TestKMSSealOpen(t *testing.T) {
	srv := kmstest.Start(t)
	kmstest.Env(t)
	arn := srv.Key(t)
	k := openKMS(t, srv.URI(arn), &memMeta{})
	if k.ID() != arn {
		t.Fatalf("ID %s, want the key's ARN %s", k.ID(), arn)
	}
	plain := []byte(`{"email":"ann.lee@hospital.example","name":"Ann Lee"}`)
	sealed, err := Seal(k, "dev-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("ann.lee")) {
		t.Fatal("plaintext in the sealed record")
	}
	got, err := Open(k, "dev-1", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := Open(k, "dev-2", sealed); err == nil {
		t.Fatal("a record opened for another owner")
	}
	// Every change is refused, but for one: local-kms does not
	// authenticate the key reference at the start of its ciphertext blob
	// (it decrypts with the KeyId given, which Unwrap pins), so a change
	// there unwraps the same data key and opens the same record. AWS KMS
	// authenticates its whole blob.
	blob := 1 + 1 + len(arn) + 1 // version, ID chunk, the blob's length byte
	ref := [2]int{blob + 1, blob + 1 + int(sealed[blob])}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		got, err := Open(k, "dev-1", bad)
		if err == nil && (i < ref[0] || i >= ref[1] || !bytes.Equal(got, plain)) {
			t.Fatalf("a record changed at byte %d opened (to %q)", i, got)
		}
	}
	// A file KEK does not open it, and says which key does.
	file, _ := testKEK(t)
	if _, err := Open(file, "dev-1", sealed); err == nil || !strings.Contains(err.Error(), arn) {
		t.Fatalf("a file KEK on a KMS record: %v", err)
	}
}

// KMS itself refuses a data key wrapped for one record when asked for
// another's (the encryption context differs), whatever the record says.
func TestKMSContextBindsRecord(t *testing.T) {
	srv := kmstest.Start(t)
	kmstest.Env(t)
	k := openKMS(t, srv.URI(srv.Key(t)), &memMeta{})
	dek := bytes.Repeat([]byte{7}, 32)
	wrapped, err := k.Wrap(dek, []byte("dek\nbcfleet-record\ndev-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Unwrap(wrapped, []byte("dek\nbcfleet-record\ndev-1")); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap: %v", err)
	}
	for _, aad := range []string{"dek\nbcfleet-record\ndev-2", "dek\nbcfleet-record\ndev-1 ", ""} {
		if _, err := k.Unwrap(wrapped, []byte(aad)); !errors.Is(err, errSealed) {
			t.Errorf("unwrap for %q: %v, want %v", aad, err, errSealed)
		}
	}
	// The lookup key's context is not a record's: a wrapped data key is
	// never taken for it, nor it for a data key.
	if _, err := k.client.Decrypt(context.Background(), &kms.DecryptInput{KeyId: aws.String(k.arn), CiphertextBlob: wrapped, EncryptionContext: indexKeyContext}); err == nil {
		t.Error("a wrapped data key decrypted as the lookup key")
	}
	// Another key's KEK does not unwrap it (KeyId is pinned).
	other := openKMS(t, srv.URI(srv.Key(t)), &memMeta{})
	if _, err := other.Unwrap(wrapped, []byte("dek\nbcfleet-record\ndev-1")); !errors.Is(err, errSealed) {
		t.Errorf("another key unwrapped it: %v", err)
	}
}

// The lookup key is made once per store, kept wrapped (never in
// plaintext), and the same for every KEK opened on that store, by ARN or
// by alias.
func TestKMSIndexKey(t *testing.T) {
	srv := kmstest.Start(t)
	kmstest.Env(t)
	arn := srv.Key(t)
	srv.Alias(t, "bcfleet", arn)
	meta := &memMeta{}
	a := openKMS(t, srv.URI(arn), meta)
	b := openKMS(t, srv.URI("alias/bcfleet"), meta)
	if len(a.IndexKey()) != 32 || !bytes.Equal(a.IndexKey(), b.IndexKey()) || b.ID() != arn {
		t.Fatalf("two opens of one store: lookup keys differ (or alias ID %s)", b.ID())
	}
	if !bytes.Equal(EmailHash(a, "Ann.Lee@hospital.example"), EmailHash(b, "ann.lee@hospital.example ")) {
		t.Fatal("the email hash differs between two opens")
	}
	stored, err := meta.Meta(context.Background(), indexKeyMeta)
	if err != nil || bytes.Contains(stored, a.IndexKey()) {
		t.Fatalf("the store holds the lookup key in plaintext (or not at all: %v)", err)
	}
	// Another store gets its own lookup key.
	if c := openKMS(t, srv.URI(arn), &memMeta{}); bytes.Equal(c.IndexKey(), a.IndexKey()) {
		t.Fatal("two stores share a lookup key")
	}
	// Several servers opening a new store at once agree on one key.
	shared := &memMeta{}
	keys := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i] = openKMS(t, srv.URI(arn), shared).IndexKey() })
	}
	wg.Wait()
	for i := range keys {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatal("processes opening one store at once made different lookup keys")
		}
	}
	// The store's lookup key under another KMS key: refused, naming both.
	other := srv.Key(t)
	if _, err := openKMSKEK(context.Background(), srv.URI(other), meta); err == nil || !strings.Contains(err.Error(), "under KMS key "+arn+", not "+other) {
		t.Fatalf("another key on the store: %v", err)
	}
}

// Failures say which key and what to do, on one line.
func TestKMSErrors(t *testing.T) {
	srv := kmstest.Start(t)
	kmstest.Env(t)
	ctx := context.Background()
	oneLine := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want %q", want)
		}
		t.Log(err)
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v\nwant %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "RequestID") {
			t.Errorf("not one plain line: %q", err)
		}
	}
	t.Run("wrong key", func(t *testing.T) {
		_, err := openKMSKEK(ctx, srv.URI("alias/no-such-key"), &memMeta{})
		oneLine(t, err, "KMS key alias/no-such-key not found", "check the key ID")
		_, err = openKMSKEK(ctx, srv.URI("1234abcd-12ab-34cd-56ef-1234567890ab"), &memMeta{})
		oneLine(t, err, "1234abcd-12ab-34cd-56ef-1234567890ab not found")
	})
	t.Run("disabled key", func(t *testing.T) {
		arn := srv.Key(t)
		if _, err := srv.Client(t).DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
		_, err := openKMSKEK(ctx, srv.URI(arn), &memMeta{})
		oneLine(t, err, arn, "not enabled")
	})
	t.Run("signing key", func(t *testing.T) {
		out, err := srv.Client(t).CreateKey(ctx, &kms.CreateKeyInput{KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = openKMSKEK(ctx, srv.URI(aws.ToString(out.KeyMetadata.Arn)), &memMeta{})
		oneLine(t, err, "must be a symmetric encryption key")
	})
	t.Run("no credentials", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		_, err := openKMSKEK(ctx, srv.URI("alias/x"), &memMeta{})
		oneLine(t, err, "no usable AWS credentials", "AWS_PROFILE")
	})
	t.Run("access denied", func(t *testing.T) {
		deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(400)
			w.Write([]byte(`{"__type":"AccessDeniedException","message":"User is not authorized to perform: kms:DescribeKey"}`))
		}))
		defer deny.Close()
		_, err := openKMSKEK(ctx, "awskms:///alias/bcfleet?endpoint="+deny.URL, &memMeta{})
		oneLine(t, err, "access to KMS key alias/bcfleet denied (AccessDeniedException)", "kms:Decrypt")
	})
	t.Run("AWS_CA_BUNDLE", func(t *testing.T) {
		deny := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(400)
			w.Write([]byte(`{"__type":"AccessDeniedException","message":"no"}`))
		}))
		deny.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
		deny.StartTLS()
		defer deny.Close()
		uri := "awskms:///alias/bcfleet?endpoint=" + deny.URL
		_, err := openKMSKEK(ctx, uri, &memMeta{})
		oneLine(t, err, "does not trust", "AWS_CA_BUNDLE")
		bundle := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: deny.Certificate().Raw}), 0o600)
		t.Setenv("AWS_CA_BUNDLE", bundle)
		_, err = openKMSKEK(ctx, uri, &memMeta{})
		oneLine(t, err, "denied (AccessDeniedException)") // TLS now verified: the server's answer
	})
	t.Run("server down", func(t *testing.T) {
		down := kmstest.Start(t)
		arn := down.Key(t)
		k := openKMS(t, down.URI(arn), &memMeta{})
		sealed, err := Seal(k, "dev-1", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		down.Stop()
		_, err = Seal(k, "dev-1", []byte("x"))
		oneLine(t, err, "cannot reach KMS at "+down.Endpoint)
		_, err = Open(k, "dev-1", sealed)
		oneLine(t, err, "cannot reach KMS at "+down.Endpoint)
		_, err = openKMSKEK(ctx, down.URI(arn), &memMeta{})
		oneLine(t, err, "cannot reach KMS at "+down.Endpoint, "that the server is running")
	})
	t.Run("no store", func(t *testing.T) {
		_, err := OpenKEKWithStore(ctx, srv.URI("alias/x"), nil)
		oneLine(t, err, "cannot keep the KMS key's email-lookup key")
	})
}
