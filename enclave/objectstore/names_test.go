package objectstore

import (
	"strings"
	"testing"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

func TestBucketName(t *testing.T) {
	long := strings.Repeat("e", 63)
	for _, tc := range []struct {
		prefix, encl string
		want         string // "" when it is cut: then only its form is checked
	}{
		{"kraken", "payments", "kraken-payments"},
		{"k", "a", "k-a"},
		{"kraken", long, ""},
		{"kraken", "data-s3alias", ""},
		{"kraken", strings.Repeat("a", 50) + "-" + strings.Repeat("b", 12), ""},
	} {
		got := bucketName(tc.prefix, tc.encl)
		if err := s3utils.CheckValidBucketNameStrict(got); err != nil || len(got) > 63 || reservedBucketSuffix(got) {
			t.Errorf("bucketName(%q, %q) = %q: not a valid bucket name: %v", tc.prefix, tc.encl, got, err)
		}
		if got != bucketName(tc.prefix, tc.encl) {
			t.Errorf("bucketName(%q, %q) is not deterministic", tc.prefix, tc.encl)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("bucketName(%q, %q) = %q, want %q", tc.prefix, tc.encl, got, tc.want)
		}
		if tc.want == "" && (!strings.HasPrefix(got, tc.prefix+"-") || strings.Count(got, ".") != 1) {
			t.Errorf("bucketName(%q, %q) = %q: a cut name starts with the prefix and has one dot", tc.prefix, tc.encl, got)
		}
	}
	// Cut names of enclaves alike up to the cut differ.
	a, b := bucketName("kraken", long), bucketName("kraken", long[:62]+"f")
	if a == b {
		t.Errorf("two long enclaves share bucket %q", a)
	}
}

func TestAccessKey(t *testing.T) {
	if got := accessKey("kraken", "payments", "reports"); got != "kraken.payments.reports" {
		t.Errorf("accessKey = %q", got)
	}
	e, t1, t2 := strings.Repeat("e", 63), strings.Repeat("t", 63), strings.Repeat("t", 62)+"u"
	k1, k2 := accessKey("kraken-platform-x", e, t1), accessKey("kraken-platform-x", e, t2)
	if len(k1) > maxAccessKey || k1 == k2 || !strings.HasPrefix(k1, userPrefix("kraken-platform-x", e)) {
		t.Errorf("long access keys %q and %q: want distinct, at most %d, under the enclave's prefix", k1, k2, maxAccessKey)
	}
	// Another enclave's users never fall under this one's prefix.
	if strings.HasPrefix(accessKey("kraken", "pay", "x"), userPrefix("kraken", "pa")) {
		t.Error("enclave pa's prefix covers enclave pay's users")
	}
}
