package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a store key: AES-256.
const KeySize = 32

// ErrSealed means a sealed value opens with no key in the keyring: it was
// sealed under a key the ring no longer has (the store key changed without
// the old one being kept as a previous key), or it was altered on disk.
var ErrSealed = errors.New("sealed value opens with no key in the keyring")

// A sealed value on disk is
//
//	version (1) | key id (4) | nonce (12) | AES-256-GCM ciphertext and tag
//
// The key id names the key that sealed it, so opening finds the key
// without trying each, and Rekey knows which values to redo.
const (
	sealVersion  = 1
	keyIDSize    = 4
	nonceSize    = 12
	sealHeader   = 1 + keyIDSize
	sealOverhead = sealHeader + nonceSize + 16
)

type keyID [keyIDSize]byte

// keyIDOf is a short fingerprint of a key. It is a hash under its own
// label, so it says nothing about the key that any other use of SHA-256
// over it would.
func keyIDOf(key []byte) keyID {
	h := sha256.New()
	h.Write([]byte("kraken store key id\x00"))
	h.Write(key)
	var id keyID
	copy(id[:], h.Sum(nil))
	return id
}

// Keyring holds the key that seals new values and older keys that can
// still open old ones. It is immutable and safe for concurrent use.
type Keyring struct {
	current keyID
	aeads   map[keyID]cipher.AEAD // every key in the ring, current included
}

// NewKeyring returns a ring sealing with current and opening with current
// and previous. Each key must be exactly KeySize bytes. A previous key
// equal to current (or to another previous one) is ignored: that is what
// the environment looks like half-way through a rotation.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	r := &Keyring{aeads: make(map[keyID]cipher.AEAD, 1+len(previous))}
	seen := map[keyID][]byte{}
	add := func(key []byte, what string) error {
		if len(key) != KeySize {
			return fmt.Errorf("store: %s is %d bytes; a store key must be exactly %d", what, len(key), KeySize)
		}
		id := keyIDOf(key)
		if other, ok := seen[id]; ok {
			if bytes.Equal(other, key) {
				return nil
			}
			// Two different keys with one fingerprint: 1 in 4 billion.
			return fmt.Errorf("store: %s has the same key id as another key in the ring; generate a new key", what)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		seen[id] = key
		r.aeads[id] = aead
		return nil
	}
	if err := add(current, "the current key"); err != nil {
		return nil, err
	}
	r.current = keyIDOf(current)
	for i, key := range previous {
		if err := add(key, fmt.Sprintf("previous key %d", i+1)); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// String describes the ring without any key material, so a ring that
// ends up in a log line or an error says nothing about its keys.
func (r *Keyring) String() string {
	if r == nil {
		return "store.Keyring(none)"
	}
	if len(r.aeads) == 1 {
		return "store.Keyring(1 key)"
	}
	return fmt.Sprintf("store.Keyring(%d keys)", len(r.aeads))
}

// GoString keeps %#v from printing the ring's fields.
func (r *Keyring) GoString() string { return r.String() }

// ParseKey decodes a store key written as base64 (standard or URL
// alphabet, padded or not; surrounding space is ignored, as a mounted
// Secret file usually ends in a newline). Its errors never repeat s.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("store key is empty")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("store key decodes to %d bytes; it must be %d (make one with: openssl rand -base64 %d)", len(key), KeySize, KeySize)
		}
		return key, nil
	}
	return nil, fmt.Errorf("store key is not base64 (%d characters); make one with: openssl rand -base64 %d", len(s), KeySize)
}

// sealAAD binds a sealed value to its header, bucket and record key, so
// a value copied under another key or into another bucket does not open.
// The bucket name is length-prefixed: ("ab","c") and ("a","bc") differ.
func sealAAD(header []byte, bucket []byte, key string) []byte {
	aad := make([]byte, 0, len(header)+4+len(bucket)+len(key))
	aad = append(aad, header...)
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(bucket)))
	aad = append(aad, bucket...)
	return append(aad, key...)
}

// seal encrypts plain under the current key for bucket and key.
func (r *Keyring) seal(bucket []byte, key string, plain []byte) ([]byte, error) {
	aead := r.aeads[r.current]
	out := make([]byte, sealHeader+nonceSize, sealOverhead+len(plain))
	out[0] = sealVersion
	copy(out[1:sealHeader], r.current[:])
	nonce := out[sealHeader : sealHeader+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(out, nonce, plain, sealAAD(out[:sealHeader], bucket, key)), nil
}

// open decrypts a sealed value of bucket and key; anything that is not
// one this ring sealed, intact and in its place, is ErrSealed.
func (r *Keyring) open(bucket []byte, key string, sealed []byte) ([]byte, error) {
	if len(sealed) < sealOverhead || sealed[0] != sealVersion {
		return nil, ErrSealed
	}
	aead, ok := r.aeads[keyID(sealed[1:sealHeader])]
	if !ok {
		return nil, ErrSealed
	}
	nonce := sealed[sealHeader : sealHeader+nonceSize]
	plain, err := aead.Open(nil, nonce, sealed[sealHeader+nonceSize:], sealAAD(sealed[:sealHeader], bucket, key))
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

// isCurrent reports whether a sealed value names the ring's current key,
// that is, whether Rekey can leave it alone.
func (r *Keyring) isCurrent(sealed []byte) bool {
	return len(sealed) >= sealHeader && sealed[0] == sealVersion && keyID(sealed[1:sealHeader]) == r.current
}
