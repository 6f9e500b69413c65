package client

import (
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// namingFetcher remembers the last file go-tuf fetched, so that a refusal
// of its content (go-tuf's parse errors name no file) says which file.
type namingFetcher struct {
	fetcher.Fetcher
	last string
}

// DownloadFile implements fetcher.Fetcher.
func (n *namingFetcher) DownloadFile(urlPath string, maxLength int64, timeout time.Duration) ([]byte, error) {
	n.last = urlPath
	return n.Fetcher.DownloadFile(urlPath, maxLength, timeout)
}

// blame prefixes a verification failure with the file last fetched.
func (n *namingFetcher) blame(err error) error {
	if n.last == "" || !errors.Is(err, ErrVerification) {
		return err
	}
	return fmt.Errorf("metadata/%s: %w", path.Base(n.last), err)
}
