package e2e

import (
	"encoding/json"

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
