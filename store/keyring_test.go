package store

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// testKey is a distinct, recognisable key per seed.
func testKey(seed byte) []byte { return bytes.Repeat([]byte{seed}, KeySize) }

func TestParseKey(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i*37 + 250) // some bytes encode to + / - _
	}
	for _, s := range []struct {
		name, in string
		wantErr  string // "" for success
	}{
		{"standard, padded", base64.StdEncoding.EncodeToString(key), ""},
		{"standard, unpadded", base64.RawStdEncoding.EncodeToString(key), ""},
		{"URL, padded", base64.URLEncoding.EncodeToString(key), ""},
		{"URL, unpadded", base64.RawURLEncoding.EncodeToString(key), ""},
		{"file ending in a newline", base64.StdEncoding.EncodeToString(key) + "\n", ""},
		{"empty", "", "store key is empty"},
		{"only space", " \n", "store key is empty"},
		{"not base64", "this-is-not*base64!" + strings.Repeat("x", 30), "not base64"},
		{"too short", base64.StdEncoding.EncodeToString(key[:16]), "decodes to 16 bytes; it must be 32"},
		{"too long", base64.StdEncoding.EncodeToString(append(key, 1)), "decodes to 33 bytes; it must be 32"},
		{"hex is not base64 of 32 bytes", fmt.Sprintf("%x", key), "decodes to 48 bytes"},
	} {
		t.Run(s.name, func(t *testing.T) {
			got, err := ParseKey(s.in)
			if s.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if !bytes.Equal(got, key) {
					t.Fatal("ParseKey decoded another key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("ParseKey error = %v, want one saying %q", err, s.wantErr)
			}
			if in := strings.TrimSpace(s.in); len(in) > 4 && strings.Contains(err.Error(), in[:5]) {
				t.Fatal("ParseKey's error repeats the key it was given")
			}
		})
	}
}

func TestNewKeyring(t *testing.T) {
	a, b := testKey(1), testKey(2)
	for _, s := range []struct {
		name     string
		current  []byte
		previous [][]byte
		wantErr  string
		wantKeys int
	}{
		{"current only", a, nil, "", 1},
		{"current and previous", b, [][]byte{a}, "", 2},
		{"previous equal to current is ignored", a, [][]byte{a}, "", 1},
		{"previous repeated is ignored", b, [][]byte{a, a}, "", 2},
		{"no current", nil, nil, "the current key is 0 bytes", 0},
		{"short current", a[:16], nil, "the current key is 16 bytes; a store key must be exactly 32", 0},
		{"long previous", a, [][]byte{b, append(b, 0)}, "previous key 2 is 33 bytes", 0},
	} {
		t.Run(s.name, func(t *testing.T) {
			r, err := NewKeyring(s.current, s.previous...)
			if s.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), s.wantErr) {
					t.Fatalf("NewKeyring error = %v, want one saying %q", err, s.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.aeads) != s.wantKeys {
				t.Errorf("ring has %d keys, want %d", len(r.aeads), s.wantKeys)
			}
			if r.current != keyIDOf(s.current) {
				t.Error("the ring seals with a key other than current")
			}
		})
	}
}

// A ring printed by mistake shows no key material, whatever the verb.
func TestKeyringPrintsNoKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	r, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, r)
		for _, leak := range []string{string(key), fmt.Sprintf("%x", key), "0123456789abcdef"} {
			if strings.Contains(out, leak) {
				t.Errorf("%s prints key material: %q", verb, out)
			}
		}
	}
}
