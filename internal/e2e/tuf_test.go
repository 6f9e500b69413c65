package e2e

import (
	"crypto"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/beckmanconnect/bcupdate/internal/testutil"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func metadataTarget(p string, length int64, sum []byte, custom *json.RawMessage) *metadata.TargetFiles {
	tf := metadata.TargetFile()
	tf.Path = p
	tf.Length = length
	tf.Hashes = metadata.Hashes{"sha256": sum}
	tf.Custom = custom
	return tf
}

func cryptoutilsMarshal(pub crypto.PublicKey) ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

func hashTree(t *testing.T, dir string) string { return testutil.HashTree(t, dir) }

func headInput(bucket, key string) *s3.HeadObjectInput {
	return &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func hexOf(b []byte) string { return fmt.Sprintf("%x", b) }
