package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
)

func newRing(t *testing.T, previous ...[]byte) (*Keyring, []byte) {
	t.Helper()
	key := make([]byte, KeySize)
	rand.Read(key)
	return ring(t, key, previous...), key
}

func TestKeyringSealOpen(t *testing.T) {
	ring, oldKey := newRing(t)
	rotated, _ := newRing(t, oldKey)
	other, _ := newRing(t)
	plain := []byte("refresh token of alex")
	sealed, err := ring.Seal("kraken/kraken-identities", "T1.U1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("the sealed value holds the plain text")
	}
	tamper := bytes.Clone(sealed)
	tamper[len(tamper)-1] ^= 1
	tests := []struct {
		name       string
		ring       *Keyring
		where, key string
		sealed     []byte
		want       error
	}{
		{"same place and key", ring, "kraken/kraken-identities", "T1.U1", sealed, nil},
		{"a ring keeping the key as previous", rotated, "kraken/kraken-identities", "T1.U1", sealed, nil},
		{"another key", ring, "kraken/kraken-identities", "T1.U2", sealed, ErrSealed},
		{"another place", ring, "kraken/other", "T1.U1", sealed, ErrSealed},
		{"another ring", other, "kraken/kraken-identities", "T1.U1", sealed, ErrSealed},
		{"altered", ring, "kraken/kraken-identities", "T1.U1", tamper, ErrSealed},
		{"truncated", ring, "kraken/kraken-identities", "T1.U1", sealed[:10], ErrSealed},
		{"no ring", nil, "kraken/kraken-identities", "T1.U1", sealed, ErrNoKeyring},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.where, tt.key, tt.sealed)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
			if tt.want == nil && !bytes.Equal(got, plain) {
				t.Fatalf("Open gave %q, want %q", got, plain)
			}
		})
	}
	if _, err := ring.Seal("", "k", plain); err == nil {
		t.Error("Seal with no place: no error")
	}
	if _, err := (*Keyring)(nil).Seal("p", "k", plain); !errors.Is(err, ErrNoKeyring) {
		t.Errorf("Seal with no ring: %v, want ErrNoKeyring", err)
	}
}

// A value sealed outside the store does not open as a sealed bucket's
// record of the same name and key, so one cannot be passed off as the
// other.
func TestKeyringSealApartFromBuckets(t *testing.T) {
	ring, _ := newRing(t)
	db := openAt(t, filepath.Join(t.TempDir(), "k.db"), ring)
	ctx := context.Background()
	b := NewSealedBucket[string](db, "secrets")
	if err := b.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Seal("secrets", "k", []byte(`"v"`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Open("secrets", "k", sealed); err != nil {
		t.Fatal(err)
	}
	raw := rawSealed(t, db, "secrets", "k")
	if _, err := ring.Open("secrets", "k", raw); !errors.Is(err, ErrSealed) {
		t.Errorf("a bucket's record opened with Open: %v, want ErrSealed", err)
	}
}
