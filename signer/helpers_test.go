package signer_test

import (
	"encoding/pem"
	"testing"

	"github.com/sassoftware/relic/v8/lib/pkcs7"
	"github.com/sassoftware/relic/v8/lib/pkcs9"
)

func pemCRL(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// graftTimestamp moves the timestamp token of donor onto sig.
func graftTimestamp(t *testing.T, sig, donor []byte) []byte {
	t.Helper()
	d, err := pkcs7.Unmarshal(donor)
	if err != nil {
		t.Fatal(err)
	}
	var tok pkcs7.ContentInfoSignedData
	if err := d.Content.SignerInfos[0].UnauthenticatedAttributes.GetOne(pkcs9.OidAttributeTimeStampToken, &tok); err != nil {
		t.Fatal(err)
	}
	p, err := pkcs7.Unmarshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	si := &p.Content.SignerInfos[0]
	si.RawContent = nil
	if err := pkcs9.AddStampToSignedData(si, tok); err != nil {
		t.Fatal(err)
	}
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
