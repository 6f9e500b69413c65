package publisher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// S3Options configure the S3 backend beyond the standard AWS environment
// (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL_S3, …).
type S3Options struct {
	Endpoint  string // --s3-endpoint, for S3-compatible stores
	Region    string // --s3-region
	PathStyle bool   // --s3-path-style
	// SSE is the server-side encryption of every upload: "AES256"
	// (default) or "aws:kms" (with SSEKMSKeyID, or the bucket's default key).
	SSE         string
	SSEKMSKeyID string
}

// S3Store is a repository in an S3 bucket under a prefix. Tags are ETags;
// immutable objects are written with If-None-Match: *, and timestamp.json is
// replaced with If-Match on the ETag the publisher read.
type S3Store struct {
	client *s3.Client
	bucket string
	prefix string
	sse    types.ServerSideEncryption
	kmsKey string
	ref    string
}

var _ Store = (*S3Store)(nil)

// OpenS3 opens s3://bucket/prefix with the standard AWS configuration.
func OpenS3(ctx context.Context, ref string, o S3Options) (*S3Store, error) {
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("--repo %s: want s3://bucket/prefix", ref)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	sse := types.ServerSideEncryptionAes256
	switch o.SSE {
	case "", "AES256":
	case "aws:kms":
		sse = types.ServerSideEncryptionAwsKms
	default:
		return nil, fmt.Errorf("--sse %q: want AES256 or aws:kms", o.SSE)
	}
	// The SDK's own warnings (IMDS fallbacks, checksums) would be a second
	// line beside the error that says what to do.
	opts := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: AWS configuration: %w", ref, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Credentials != nil {
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			return nil, quiet(fmt.Errorf("%s: no usable AWS credentials; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for an SSO profile, run aws sso login)", ref), err)
		}
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle || so.UsePathStyle
		// Non-AWS servers: checksums only when the API requires them.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// Our own HTTP client (given here, not through config: the
		// environment may set AWS_CA_BUNDLE), TLS 1.2 or later.
		so.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{}
			}
			t.TLSClientConfig.MinVersion = tls.VersionTLS12
		}).WithTimeout(10 * time.Minute)
	})
	return &S3Store{client: client, bucket: u.Host, prefix: prefix, sse: sse, kmsKey: o.SSEKMSKeyID, ref: ref}, nil
}

func (s *S3Store) key(name string) string { return s.prefix + name }

// s3err turns S3 errors into the Store's and adds a hint for the common
// mistakes.
func (s *S3Store) s3err(op, name string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("%s: %w", name, ErrChanged)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden":
			return fmt.Errorf("%s %s/%s: access denied (%s): check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and the bucket policy", op, s.ref, name, ae.ErrorCode())
		case "NoSuchBucket":
			return fmt.Errorf("%s: bucket %s does not exist", s.ref, s.bucket)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		case http.StatusPreconditionFailed, http.StatusConflict:
			return fmt.Errorf("%s: %w", name, ErrChanged)
		case http.StatusForbidden:
			return fmt.Errorf("%s %s/%s: access denied: check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and the bucket policy", op, s.ref, name)
		}
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return quiet(fmt.Errorf("%s %s/%s: cannot reach the S3 server (%v); check --s3-endpoint (or AWS_ENDPOINT_URL_S3) and that the server is running", op, s.ref, name, ne), err)
	}
	return fmt.Errorf("%s %s/%s: %w", op, s.ref, name, err)
}

// quietError reads as err and wraps both err and cause: for a library
// error whose text would bury what to do (the AWS SDK's chain of
// operations and retries), still reachable with errors.Is and errors.As.
type quietError struct{ err, cause error }

func (e *quietError) Error() string   { return e.err.Error() }
func (e *quietError) Unwrap() []error { return []error{e.err, e.cause} }

func quiet(err, cause error) error { return &quietError{err, cause} }

// Get opens an object for reading.
func (s *S3Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		return nil, s.s3err("get", name, err)
	}
	return out.Body, nil
}

// Read reads a small object and its ETag.
func (s *S3Store) Read(ctx context.Context, name string, limit int64) ([]byte, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		return nil, "", s.s3err("get", name, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("get %s: larger than %d bytes", name, limit)
	}
	return b, aws.ToString(out.ETag), nil
}

// Exists reports whether an object is present.
func (s *S3Store) Exists(ctx context.Context, name string) (bool, error) {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err == nil {
		return true, nil
	}
	err = s.s3err("head", name, err)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Size returns an object's length in bytes (a HEAD request); a missing
// object is an error wrapping fs.ErrNotExist.
func (s *S3Store) Size(ctx context.Context, name string) (int64, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		return 0, s.s3err("head", name, err)
	}
	if out.ContentLength == nil {
		return 0, fmt.Errorf("head %s/%s: the server gave no length", s.ref, name)
	}
	return *out.ContentLength, nil
}

// List returns the object names under prefix.
func (s *S3Store) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.key(prefix))})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.s3err("list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, strings.TrimPrefix(aws.ToString(o.Key), s.prefix))
		}
	}
	sort.Strings(out)
	return out, nil
}

// headers gives each object the Content-Type and Cache-Control a CDN
// needs: timestamp.json must be fetched fresh; versioned metadata and
// hash-named targets never change.
func headers(name string) (contentType, cacheControl string) {
	contentType = "application/octet-stream"
	if strings.HasSuffix(name, ".json") {
		contentType = "application/json"
	}
	cacheControl = "public, max-age=31536000, immutable"
	if name == "metadata/timestamp.json" {
		cacheControl = "no-cache"
	}
	return
}

func (s *S3Store) put(ctx context.Context, name string, body io.ReadSeeker, size int64, ifNoneMatch, ifMatch *string) error {
	ct, cc := headers(name)
	in := &s3.PutObjectInput{
		Bucket: &s.bucket, Key: aws.String(s.key(name)), Body: body, ContentLength: aws.Int64(size),
		ContentType: aws.String(ct), CacheControl: aws.String(cc), ServerSideEncryption: s.sse,
		IfNoneMatch: ifNoneMatch, IfMatch: ifMatch,
	}
	if s.sse == types.ServerSideEncryptionAwsKms && s.kmsKey != "" {
		in.SSEKMSKeyId = aws.String(s.kmsKey)
	}
	_, err := s.client.PutObject(ctx, in)
	if err != nil {
		return s.s3err("put", name, err)
	}
	return nil
}

// PutIfAbsent writes an immutable object with If-None-Match: *. A body
// that is not size bytes long is refused before anything is sent (and the
// Content-Length sent is size, so S3 stores that many or nothing).
func (s *S3Store) PutIfAbsent(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	if err := checkSize(name, r, size); err != nil {
		return err
	}
	err := s.put(ctx, name, r, size, aws.String("*"), nil)
	if errors.Is(err, ErrChanged) {
		return fmt.Errorf("%s: %w", name, ErrExists)
	}
	return err
}

// Swap replaces an object with If-Match on its ETag (If-None-Match: * when
// tag is empty).
func (s *S3Store) Swap(ctx context.Context, name, tag string, data []byte) error {
	body := strings.NewReader(string(data))
	if tag == "" {
		return s.put(ctx, name, body, int64(len(data)), aws.String("*"), nil)
	}
	return s.put(ctx, name, body, int64(len(data)), nil, aws.String(tag))
}

// Delete removes an object.
func (s *S3Store) Delete(ctx context.Context, name string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		return s.s3err("delete", name, err)
	}
	return nil
}
