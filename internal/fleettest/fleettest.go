// Package fleettest has what the fleet's tests share: one POST to a
// device endpoint, with the headers a device sends.
package fleettest

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// Post sends body to url with headers and returns the status and body.
func Post(t testing.TB, url string, body []byte, headers map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
