package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// An AWS KMS key-encryption key: --kek awskms:///KEY[?region=R&endpoint=URL],
// KEY a key ID, key ARN, alias name (alias/…) or alias ARN of a symmetric
// encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT).
//
// What KMS sees and keeps:
//   - A record's data key is wrapped by kms:Encrypt, with the record's
//     additional data (which binds it to its device) as the encryption
//     context, and unwrapped by kms:Decrypt with the same context and the
//     key pinned (KeyId), so KMS never opens a data key under another key
//     or for another record. CloudTrail logs each unwrap with its context:
//     which device's record was opened, when, by which role.
//   - The key's material never leaves KMS; the service holds data keys
//     only while it seals or opens a record.
//
// The keyed hash for email lookups needs a key the service holds (a KMS
// call per hash would make every enrollment and lookup a KMS call, and
// KMS has no deterministic call on an encryption key). It is 32 random
// bytes made once, wrapped by the KMS key (its own encryption context,
// "bcfleet-purpose: email-index") and kept in the store (MetaStore), so
// that every `bcfleet serve` on one database, and every restart, hashes
// alike; the database never holds it in plaintext. Whoever first opens a
// store with a KMS KEK makes it; PutMetaOnce lets one of several
// processes starting at once win and the others take its key.
//
// The KEK interface has no context (sealing is pure computation for a
// file KEK): each KMS call is bounded by kmsCallTimeout and carries the
// values, not the cancellation, of the context the KEK was opened with,
// so a record being sealed while the server shuts down still completes.

// MetaStore keeps small named values beside the records. The AWS KMS KEK
// keeps its wrapped email-lookup key there.
type MetaStore interface {
	// Meta returns the value of name (ErrNotFound if none).
	Meta(ctx context.Context, name string) ([]byte, error)
	// PutMetaOnce stores value under name unless name has a value, and
	// returns the value name has after the call: value, or the one stored
	// before (perhaps by another process at the same moment). It never
	// replaces a value.
	PutMetaOnce(ctx context.Context, name string, value []byte) ([]byte, error)
}

const (
	kmsScheme = "awskms://"
	// kmsCallTimeout bounds one call to KMS, its retries included.
	kmsCallTimeout = 30 * time.Second
	// indexKeyMeta is the store's name for the wrapped lookup key.
	indexKeyMeta = "kek.email-index-key"
	// indexKeyVersion starts the stored lookup key: the version, the
	// ARN of the key that wrapped it, the KMS ciphertext.
	indexKeyVersion = 1
)

// kmsRef is a parsed awskms:// URI.
type kmsRef struct {
	uri      string
	key      string
	region   string
	endpoint string
}

// parseKMSURI parses awskms:///KEY[?region=R&endpoint=URL]. Plain http
// endpoints are refused except on loopback (a KMS-compatible test
// server).
func parseKMSURI(uri string) (*kmsRef, error) {
	const want = "want awskms:///KEY-ID-OR-ARN-OR-ALIAS[?region=R&endpoint=URL]"
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "awskms" || u.Opaque != "" {
		return nil, errUsage("--kek %s: %s", uri, want)
	}
	if u.Host != "" {
		return nil, errUsage("--kek %s: %s (three slashes: the key follows them; a KMS-compatible server goes in ?endpoint=URL)", uri, want)
	}
	r := &kmsRef{uri: uri, key: strings.TrimPrefix(u.Path, "/")}
	if r.key == "" {
		return nil, errUsage("--kek %s: no key: %s", uri, want)
	}
	q := u.Query()
	for name, v := range q {
		switch name {
		case "region", "endpoint":
			if len(v) != 1 || v[0] == "" {
				return nil, errUsage("--kek %s: give ?%s= once, with a value", uri, name)
			}
		default:
			return nil, errUsage("--kek %s: unknown parameter %q (only region and endpoint)", uri, name)
		}
	}
	r.region, r.endpoint = q.Get("region"), q.Get("endpoint")
	if r.region == "" && strings.HasPrefix(r.key, "arn:") {
		// arn:PARTITION:kms:REGION:ACCOUNT:key/ID or …:alias/NAME
		if parts := strings.SplitN(r.key, ":", 6); len(parts) == 6 {
			r.region = parts[3]
		}
	}
	if r.endpoint != "" {
		e, err := url.Parse(r.endpoint)
		if err != nil || e.Host == "" || (e.Scheme != "https" && e.Scheme != "http") {
			return nil, errUsage("--kek %s: endpoint %q: want https://HOST[:PORT] (http:// only on loopback)", uri, r.endpoint)
		}
		if e.Scheme == "http" && !netaddr.IsLoopback(e.Hostname()) {
			return nil, errUsage("--kek %s: plain http only on loopback: the endpoint %s must be https", uri, r.endpoint)
		}
	}
	return r, nil
}

// kmsKEK is a KEK in AWS KMS (or a KMS-compatible server).
type kmsKEK struct {
	client *kms.Client
	ctx    context.Context // values only: see the comment above
	ref    *kmsRef
	arn    string // the key's ARN: its ID, and the KeyId every call is pinned to
	index  []byte
}

// openKMSKEK opens the key uri names, checks that it can wrap data keys,
// and loads (or makes, once per store) the lookup key from meta.
func openKMSKEK(ctx context.Context, uri string, meta MetaStore) (*kmsKEK, error) {
	ref, err := parseKMSURI(uri)
	if err != nil {
		return nil, err
	}
	if meta == nil {
		return nil, fmt.Errorf("--kek %s: an AWS KMS key needs the store (its wrapped email-lookup key is kept there)", uri)
	}
	client, err := newKMSClient(ctx, ref)
	if err != nil {
		return nil, err
	}
	k := &kmsKEK{client: client, ctx: context.WithoutCancel(ctx), ref: ref}
	cctx, cancel := context.WithTimeout(ctx, kmsCallTimeout)
	defer cancel()
	out, err := client.DescribeKey(cctx, &kms.DescribeKeyInput{KeyId: aws.String(ref.key)})
	if err != nil {
		return nil, k.explain("describe", err)
	}
	md := out.KeyMetadata
	switch {
	case md == nil || aws.ToString(md.Arn) == "":
		return nil, fmt.Errorf("--kek %s: KMS described the key without its ARN", uri)
	case md.KeyUsage != types.KeyUsageTypeEncryptDecrypt || (md.KeySpec != "" && md.KeySpec != types.KeySpecSymmetricDefault):
		return nil, errUsage("--kek %s: key %s is %s %s; a key-encryption key must be a symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)",
			uri, aws.ToString(md.Arn), md.KeySpec, md.KeyUsage)
	case !md.Enabled || (md.KeyState != "" && md.KeyState != types.KeyStateEnabled):
		return nil, fmt.Errorf("--kek %s: key %s is %s, not enabled: enable it in KMS (a key pending deletion can be cancelled with aws kms cancel-key-deletion)",
			uri, aws.ToString(md.Arn), md.KeyState)
	}
	k.arn = aws.ToString(md.Arn)
	if len(k.arn) > 255 {
		return nil, fmt.Errorf("--kek %s: the key's ARN is longer than a sealed record can name (255 bytes)", uri)
	}
	if k.index, err = k.loadIndexKey(ctx, meta); err != nil {
		return nil, err
	}
	return k, nil
}

// newKMSClient makes a KMS client from the standard AWS configuration
// (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, an instance role, …) and
// the URI's region and endpoint. The HTTP client is the SDK's buildable
// one given through the configuration, so AWS_CA_BUNDLE (or a profile's
// ca_bundle) is added to it as the SDK does; TLS 1.2 or later.
func newKMSClient(ctx context.Context, ref *kmsRef) (*kms.Client, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.MinVersion = tls.VersionTLS12
	}).WithTimeout(kmsCallTimeout)
	opts := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{}), config.WithHTTPClient(httpClient)}
	if ref.region != "" {
		opts = append(opts, config.WithRegion(ref.region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("--kek %s: AWS configuration: %w", ref.uri, err)
	}
	if cfg.Region == "" {
		return nil, errUsage("--kek %s: no AWS region: give ?region=R, a key ARN, or AWS_REGION", ref.uri)
	}
	if cfg.Credentials == nil {
		return nil, noCredentials(ref, nil)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, noCredentials(ref, err)
	}
	var endpointErr error
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		if ref.endpoint != "" {
			o.BaseEndpoint = aws.String(ref.endpoint)
		}
		// An endpoint from the environment (AWS_ENDPOINT_URL_KMS) is held
		// to the same rule as ?endpoint=.
		if o.BaseEndpoint != nil {
			if e, err := url.Parse(*o.BaseEndpoint); err != nil || (e.Scheme == "http" && !netaddr.IsLoopback(e.Hostname())) {
				endpointErr = errUsage("--kek %s: plain http only on loopback: the KMS endpoint %s must be https", ref.uri, *o.BaseEndpoint)
			}
		}
	})
	if endpointErr != nil {
		return nil, endpointErr
	}
	return client, nil
}

func noCredentials(ref *kmsRef, cause error) error {
	return quietErr(fmt.Errorf("--kek %s: no usable AWS credentials; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance or task role (for an SSO profile, run aws sso login)", ref.uri), cause)
}

func (k *kmsKEK) ID() string       { return k.arn }
func (k *kmsKEK) IndexKey() []byte { return k.index }

// Wrap wraps a data key with kms:Encrypt, aad as the encryption context.
func (k *kmsKEK) Wrap(dek, aad []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(k.ctx, kmsCallTimeout)
	defer cancel()
	out, err := k.client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k.arn), Plaintext: dek, EncryptionContext: kmsContext(aad)})
	if err != nil {
		return nil, k.explain("encrypt", err)
	}
	return out.CiphertextBlob, nil
}

// Unwrap unwraps a data key with kms:Decrypt, pinned to this key and
// bound to aad.
func (k *kmsKEK) Unwrap(wrapped, aad []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(k.ctx, kmsCallTimeout)
	defer cancel()
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(k.arn), CiphertextBlob: wrapped, EncryptionContext: kmsContext(aad)})
	if err != nil {
		return nil, k.explain("decrypt", err)
	}
	if len(out.Plaintext) != 32 {
		return nil, errSealed
	}
	return out.Plaintext, nil
}

// kmsContext is the encryption context that binds a wrapped data key to
// its record: the additional data, quoted (ASCII, one line, and one
// quoting per byte string, so two records never share a context), which
// CloudTrail shows as is.
func kmsContext(aad []byte) map[string]string {
	return map[string]string{"bcfleet-aad": strconv.QuoteToASCII(string(aad))}
}

// indexKeyContext is the encryption context of the wrapped lookup key.
var indexKeyContext = map[string]string{"bcfleet-purpose": "email-index"}

// loadIndexKey returns the lookup key the store keeps, wrapped by this
// KMS key, making and storing one first if the store has none.
func (k *kmsKEK) loadIndexKey(ctx context.Context, meta MetaStore) ([]byte, error) {
	stored, err := meta.Meta(ctx, indexKeyMeta)
	if errors.Is(err, ErrNotFound) {
		stored, err = k.newIndexKey(ctx, meta)
	}
	if err != nil {
		return nil, fmt.Errorf("--kek %s: the email-lookup key in the store: %w", k.ref.uri, err)
	}
	r := bytes.NewReader(stored)
	v, err := r.ReadByte()
	if err != nil || v != indexKeyVersion {
		return nil, fmt.Errorf("--kek %s: the store's email-lookup key is not one this version reads (was the database changed?)", k.ref.uri)
	}
	arn, err := readChunk(r)
	if err != nil {
		return nil, fmt.Errorf("--kek %s: the store's email-lookup key is damaged", k.ref.uri)
	}
	if string(arn) != k.arn {
		return nil, fmt.Errorf("--kek %s: this store's email-lookup key (and its records) are under KMS key %s, not %s: give the --kek the store was set up with", k.ref.uri, arn, k.arn)
	}
	blob := stored[len(stored)-r.Len():]
	cctx, cancel := context.WithTimeout(ctx, kmsCallTimeout)
	defer cancel()
	out, err := k.client.Decrypt(cctx, &kms.DecryptInput{KeyId: aws.String(k.arn), CiphertextBlob: blob, EncryptionContext: indexKeyContext})
	if err != nil {
		return nil, fmt.Errorf("the store's email-lookup key: %w", k.explain("decrypt", err))
	}
	if len(out.Plaintext) != 32 {
		return nil, fmt.Errorf("--kek %s: the store's email-lookup key is not 32 bytes", k.ref.uri)
	}
	return out.Plaintext, nil
}

// newIndexKey makes a lookup key, wraps it and stores it unless another
// process stored one first; it returns what the store then holds.
func (k *kmsKEK) newIndexKey(ctx context.Context, meta MetaStore) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, kmsCallTimeout)
	defer cancel()
	out, err := k.client.Encrypt(cctx, &kms.EncryptInput{KeyId: aws.String(k.arn), Plaintext: key, EncryptionContext: indexKeyContext})
	clear(key)
	if err != nil {
		return nil, k.explain("encrypt", err)
	}
	var b bytes.Buffer
	b.WriteByte(indexKeyVersion)
	writeChunk(&b, []byte(k.arn))
	b.Write(out.CiphertextBlob)
	return meta.PutMetaOnce(ctx, indexKeyMeta, b.Bytes())
}

// explain turns a KMS failure into one line that names the key and what
// to do; the SDK's error stays reachable with errors.As.
func (k *kmsKEK) explain(op string, err error) error {
	key := k.ref.key
	if k.arn != "" {
		key = k.arn
	}
	where := "region " + k.client.Options().Region
	if k.ref.endpoint != "" {
		where = k.ref.endpoint
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFoundException":
			return quietErr(fmt.Errorf("--kek %s: KMS key %s not found in %s: check the key ID, ARN or alias and the region", k.ref.uri, key, where), err)
		case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "IncompleteSignature":
			return quietErr(fmt.Errorf("--kek %s: access to KMS key %s denied (%s): the AWS credentials' policy and the key policy must allow kms:DescribeKey, kms:Encrypt and kms:Decrypt", k.ref.uri, key, ae.ErrorCode()), err)
		case "DisabledException", "KMSInvalidStateException", "KeyUnavailableException":
			return quietErr(fmt.Errorf("--kek %s: KMS key %s cannot be used now (%s): enable it, or cancel its deletion", k.ref.uri, key, ae.ErrorCode()), err)
		case "InvalidCiphertextException", "IncorrectKeyException":
			if op == "decrypt" {
				return quietErr(errSealed, err)
			}
		case "ThrottlingException", "LimitExceededException":
			return quietErr(fmt.Errorf("--kek %s: KMS is throttling calls to %s (%s): try again, or ask for a higher request quota", k.ref.uri, key, ae.ErrorCode()), err)
		}
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return quietErr(fmt.Errorf("--kek %s: KMS at %s presented a certificate this machine does not trust (%v): for a private CA, set AWS_CA_BUNDLE to its PEM file", k.ref.uri, where, ce.Err), err)
	}
	var ne *net.OpError
	var de *net.DNSError
	if errors.As(err, &ne) || errors.As(err, &de) {
		return quietErr(fmt.Errorf("--kek %s: cannot reach KMS at %s: check the network, the region (and ?endpoint=, AWS_ENDPOINT_URL_KMS) and that the server is running", k.ref.uri, where), err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return quietErr(fmt.Errorf("--kek %s: KMS at %s did not answer within %s: check the network and the endpoint", k.ref.uri, where, kmsCallTimeout), err)
	}
	return fmt.Errorf("--kek %s: kms %s with key %s: %w", k.ref.uri, op, key, err)
}

// quietError reads as err and wraps both err and cause: the SDK's text
// (operation, attempts, request ID) would bury what to do, but stays
// reachable with errors.Is and errors.As.
type quietError struct{ err, cause error }

func (e *quietError) Error() string   { return e.err.Error() }
func (e *quietError) Unwrap() []error { return []error{e.err, e.cause} }

func quietErr(err, cause error) error {
	if cause == nil {
		return err
	}
	return &quietError{err, cause}
}
