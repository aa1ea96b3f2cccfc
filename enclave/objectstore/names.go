package objectstore

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"regexp"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
)

// Names on the server are derived from the enclave's and tentacle's, so
// every replica finds the same bucket and user without storing anything,
// and a person reading the server's users or buckets sees whose they are.

const (
	maxBucket    = 63  // S3's limit
	maxAccessKey = 128 // AWS's limit; clients may assume it
	maxPrefix    = 20  // leaves room for the enclave's name in the bucket's
)

// dnsLabel is what enclave and tentacle names are, and what Prefix must be.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// hashed is a short, lower-case digest of the parts, for names cut to fit.
func hashed(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h.Sum(nil))[:10])
}

// bucketName is "<prefix>-<enclave>". One too long for S3, or ending the
// way S3 reserves, is cut and ends with "." and a digest of the whole: an
// enclave's name has no dot, so a cut name is never another enclave's.
func bucketName(prefix, encl string) string {
	name := prefix + "-" + encl
	if len(name) <= maxBucket && !reservedBucketSuffix(name) {
		return name
	}
	h := hashed("bucket", prefix, encl)
	cut := strings.TrimRight(name[:min(len(name), maxBucket-1-len(h))], "-")
	return cut + "." + h
}

// S3 refuses bucket names ending with these (AWS keeps them for aliases).
func reservedBucketSuffix(name string) bool {
	for _, s := range []string{"-s3alias", "--ol-s3", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// userPrefix starts the access key of every tentacle of the enclave, so
// Drop finds them all, even ones the bucket's policy has forgotten.
func userPrefix(prefix, encl string) string {
	return prefix + "." + encl + "."
}

// accessKey is "<prefix>.<enclave>.<tentacle>": names have no dots, so it
// reads back unambiguously. Past 128 characters the tentacle's part is cut
// and followed by "." and a digest (a third dot: never a whole name).
func accessKey(prefix, encl, tentacle string) string {
	key := userPrefix(prefix, encl) + tentacle
	if len(key) <= maxAccessKey {
		return key
	}
	h := hashed("user", prefix, encl, tentacle)
	room := maxAccessKey - len(userPrefix(prefix, encl)) - 1 - len(h)
	return userPrefix(prefix, encl) + strings.TrimRight(tentacle[:room], "-") + "." + h
}

func validPrefix(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("prefix is empty")
	case len(p) > maxPrefix:
		return fmt.Errorf("prefix %q is longer than %d characters: bucket names must fit the enclave's name in 63", p, maxPrefix)
	case !dnsLabel.MatchString(p):
		return fmt.Errorf("prefix %q must be lower-case letters, digits and dashes, starting and ending with a letter or digit", p)
	case strings.HasPrefix(p, "xn--"), strings.HasPrefix(p, "sthree-"), strings.HasPrefix(p, "amzn-s3-demo-"):
		return fmt.Errorf("prefix %q starts the way S3 reserves for itself", p)
	}
	return nil
}

func validTentacle(name string) error {
	if len(name) == 0 || len(name) > 63 || !dnsLabel.MatchString(name) {
		return fmt.Errorf("%w: %q must be 1 to 63 lower-case letters, digits and dashes, starting and ending with a letter or digit", ErrTentacleName, name)
	}
	return nil
}

// validEnclave's errors wrap enclave.ErrNameInvalid.
func validEnclave(name string) error { return enclave.ValidateName(name) }
