// Copyright 2022 The Sigstore Authors.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

// Package v1 holds, of the sigstore_common.proto types that protoc-gen-go
// generates in github.com/sigstore/protobuf-specs v0.5.2, only the two
// enums that github.com/sigstore/sigstore/pkg/signature uses as the keys of
// its algorithm registry: HashAlgorithm and PublicKeyDetails, with the same
// values, names and String. It has no protobuf reflection (no Descriptor,
// Type or Number), so importing it does not link the protobuf runtime. See
// the README beside go.mod.
package v1

import "strconv"

type HashAlgorithm int32

const (
	HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED HashAlgorithm = 0
	HashAlgorithm_SHA2_256                   HashAlgorithm = 1
	HashAlgorithm_SHA2_384                   HashAlgorithm = 2
	HashAlgorithm_SHA2_512                   HashAlgorithm = 3
	// Used for LMS
	//
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	HashAlgorithm_SHA3_256 HashAlgorithm = 4
	// Used for LMS
	//
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	HashAlgorithm_SHA3_384 HashAlgorithm = 5
)

// Enum value maps for HashAlgorithm.
var (
	HashAlgorithm_name = map[int32]string{
		0: "HASH_ALGORITHM_UNSPECIFIED",
		1: "SHA2_256",
		2: "SHA2_384",
		3: "SHA2_512",
		4: "SHA3_256",
		5: "SHA3_384",
	}
	HashAlgorithm_value = map[string]int32{
		"HASH_ALGORITHM_UNSPECIFIED": 0,
		"SHA2_256":                   1,
		"SHA2_384":                   2,
		"SHA2_512":                   3,
		"SHA3_256":                   4,
		"SHA3_384":                   5,
	}
)

func (x HashAlgorithm) Enum() *HashAlgorithm {
	p := new(HashAlgorithm)
	*p = x
	return p
}

// String is the value's name, or its number for a value this version does
// not know, as protobuf's enum String is.
func (x HashAlgorithm) String() string {
	if s, ok := HashAlgorithm_name[int32(x)]; ok {
		return s
	}
	return strconv.Itoa(int(x))
}

type PublicKeyDetails int32

const (
	PublicKeyDetails_PUBLIC_KEY_DETAILS_UNSPECIFIED PublicKeyDetails = 0
	// RSA
	//
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_PKCS1_RSA_PKCS1V5 PublicKeyDetails = 1 // See RFC8017
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_PKCS1_RSA_PSS PublicKeyDetails = 2 // See RFC8017
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_PKIX_RSA_PKCS1V5 PublicKeyDetails = 3
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_PKIX_RSA_PSS PublicKeyDetails = 4
	// RSA public key in PKIX format, PKCS#1v1.5 signature
	PublicKeyDetails_PKIX_RSA_PKCS1V15_2048_SHA256 PublicKeyDetails = 9
	PublicKeyDetails_PKIX_RSA_PKCS1V15_3072_SHA256 PublicKeyDetails = 10
	PublicKeyDetails_PKIX_RSA_PKCS1V15_4096_SHA256 PublicKeyDetails = 11
	// RSA public key in PKIX format, RSASSA-PSS signature
	PublicKeyDetails_PKIX_RSA_PSS_2048_SHA256 PublicKeyDetails = 16 // See RFC4055
	PublicKeyDetails_PKIX_RSA_PSS_3072_SHA256 PublicKeyDetails = 17
	PublicKeyDetails_PKIX_RSA_PSS_4096_SHA256 PublicKeyDetails = 18
	// ECDSA
	//
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_PKIX_ECDSA_P256_HMAC_SHA_256 PublicKeyDetails = 6 // See RFC6979
	PublicKeyDetails_PKIX_ECDSA_P256_SHA_256      PublicKeyDetails = 5 // See NIST FIPS 186-4
	PublicKeyDetails_PKIX_ECDSA_P384_SHA_384      PublicKeyDetails = 12
	PublicKeyDetails_PKIX_ECDSA_P521_SHA_512      PublicKeyDetails = 13
	// Ed 25519
	PublicKeyDetails_PKIX_ED25519    PublicKeyDetails = 7 // See RFC8032
	PublicKeyDetails_PKIX_ED25519_PH PublicKeyDetails = 8
	// These algorithms are deprecated and should not be used, but they
	// were/are being used by most Sigstore clients implementations.
	//
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_PKIX_ECDSA_P384_SHA_256 PublicKeyDetails = 19
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_PKIX_ECDSA_P521_SHA_256 PublicKeyDetails = 20
	// LMS and LM-OTS
	//
	// These algorithms are deprecated and should not be used.
	// There are no plans to support SLH-DSA at this time.
	//
	// USER WARNING: LMS and LM-OTS are both stateful signature schemes.
	// Using them correctly requires discretion and careful consideration
	// to ensure that individual secret keys are not used more than once.
	// In addition, LM-OTS is a single-use scheme, meaning that it
	// MUST NOT be used for more than one signature per LM-OTS key.
	// If you cannot maintain these invariants, you MUST NOT use these
	// schemes.
	//
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_LMS_SHA256 PublicKeyDetails = 14
	// Deprecated: Marked as deprecated in sigstore_common.proto.
	PublicKeyDetails_LMOTS_SHA256 PublicKeyDetails = 15
	// ML-DSA
	//
	// These ML_DSA_44, ML_DSA_65 and ML-DSA_87 algorithms are the pure variants
	// that take data to sign rather than the prehash variants (HashML-DSA), which
	// take digests. While considered quantum-resistant, their usage
	// involves tradeoffs in that signatures and keys are much larger, and
	// this makes deployments more costly.
	//
	// USER WARNING: ML_DSA_44, ML_DSA_65 and ML_DSA_87 are experimental algorithms.
	// In the future they MAY be used by private Sigstore deployments, but
	// they are not yet fully functional. This warning will be removed when
	// these algorithms are widely supported by Sigstore clients and servers,
	// but care should still be taken for production environments.
	//
	// See NIST FIPS 204, RFC 9881 for algorithm identifiers
	PublicKeyDetails_ML_DSA_44 PublicKeyDetails = 23
	PublicKeyDetails_ML_DSA_65 PublicKeyDetails = 21
	PublicKeyDetails_ML_DSA_87 PublicKeyDetails = 22
)

// Enum value maps for PublicKeyDetails.
var (
	PublicKeyDetails_name = map[int32]string{
		0:  "PUBLIC_KEY_DETAILS_UNSPECIFIED",
		1:  "PKCS1_RSA_PKCS1V5",
		2:  "PKCS1_RSA_PSS",
		3:  "PKIX_RSA_PKCS1V5",
		4:  "PKIX_RSA_PSS",
		9:  "PKIX_RSA_PKCS1V15_2048_SHA256",
		10: "PKIX_RSA_PKCS1V15_3072_SHA256",
		11: "PKIX_RSA_PKCS1V15_4096_SHA256",
		16: "PKIX_RSA_PSS_2048_SHA256",
		17: "PKIX_RSA_PSS_3072_SHA256",
		18: "PKIX_RSA_PSS_4096_SHA256",
		6:  "PKIX_ECDSA_P256_HMAC_SHA_256",
		5:  "PKIX_ECDSA_P256_SHA_256",
		12: "PKIX_ECDSA_P384_SHA_384",
		13: "PKIX_ECDSA_P521_SHA_512",
		7:  "PKIX_ED25519",
		8:  "PKIX_ED25519_PH",
		19: "PKIX_ECDSA_P384_SHA_256",
		20: "PKIX_ECDSA_P521_SHA_256",
		14: "LMS_SHA256",
		15: "LMOTS_SHA256",
		23: "ML_DSA_44",
		21: "ML_DSA_65",
		22: "ML_DSA_87",
	}
	PublicKeyDetails_value = map[string]int32{
		"PUBLIC_KEY_DETAILS_UNSPECIFIED": 0,
		"PKCS1_RSA_PKCS1V5":              1,
		"PKCS1_RSA_PSS":                  2,
		"PKIX_RSA_PKCS1V5":               3,
		"PKIX_RSA_PSS":                   4,
		"PKIX_RSA_PKCS1V15_2048_SHA256":  9,
		"PKIX_RSA_PKCS1V15_3072_SHA256":  10,
		"PKIX_RSA_PKCS1V15_4096_SHA256":  11,
		"PKIX_RSA_PSS_2048_SHA256":       16,
		"PKIX_RSA_PSS_3072_SHA256":       17,
		"PKIX_RSA_PSS_4096_SHA256":       18,
		"PKIX_ECDSA_P256_HMAC_SHA_256":   6,
		"PKIX_ECDSA_P256_SHA_256":        5,
		"PKIX_ECDSA_P384_SHA_384":        12,
		"PKIX_ECDSA_P521_SHA_512":        13,
		"PKIX_ED25519":                   7,
		"PKIX_ED25519_PH":                8,
		"PKIX_ECDSA_P384_SHA_256":        19,
		"PKIX_ECDSA_P521_SHA_256":        20,
		"LMS_SHA256":                     14,
		"LMOTS_SHA256":                   15,
		"ML_DSA_44":                      23,
		"ML_DSA_65":                      21,
		"ML_DSA_87":                      22,
	}
)

func (x PublicKeyDetails) Enum() *PublicKeyDetails {
	p := new(PublicKeyDetails)
	*p = x
	return p
}

// String is the value's name, or its number for a value this version does
// not know, as protobuf's enum String is.
func (x PublicKeyDetails) String() string {
	if s, ok := PublicKeyDetails_name[int32(x)]; ok {
		return s
	}
	return strconv.Itoa(int(x))
}
