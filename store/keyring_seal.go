package store

import "errors"

// Seal encrypts plain under the ring's current key for a value kept
// outside the store, bound to where it is kept and the key it is kept
// under: a sealed value copied elsewhere, or under another key, does not
// open. where must name the place uniquely (a Kubernetes Secret's
// namespace and name, say). What Seal seals never opens as a sealed
// bucket's record, nor the reverse: where is bound with a leading NUL,
// which no bucket name of the bot has.
func (r *Keyring) Seal(where, key string, plain []byte) ([]byte, error) {
	if err := checkWhere(r, where); err != nil {
		return nil, err
	}
	return r.seal(external(where), key, plain)
}

// Open decrypts what Seal sealed for where and key, with whichever key of
// the ring sealed it. Anything else (another place or key, a key the
// ring does not hold, altered bytes) is ErrSealed.
func (r *Keyring) Open(where, key string, sealed []byte) ([]byte, error) {
	if err := checkWhere(r, where); err != nil {
		return nil, err
	}
	return r.open(external(where), key, sealed)
}

// external keeps the places of Seal apart from bucket names.
func external(where string) []byte { return append([]byte{0}, where...) }

func checkWhere(r *Keyring, where string) error {
	switch {
	case r == nil:
		return ErrNoKeyring
	case where == "":
		return errors.New("store: sealing needs the name of the place the value is kept")
	}
	return nil
}
