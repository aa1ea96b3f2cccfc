package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
)

// DefaultServicesPath is where the cluster mounts the rooms granted on
// the enclave's services, one <dependency>.json file each.
const DefaultServicesPath = "/app/services"

// maxServiceFile bounds one service file; a space is a few hundred bytes.
const maxServiceFile = 64 << 10

// LoadServices reads the rooms on the enclave's services a deploy granted,
// by dependency name. A missing directory means none were granted.
func LoadServices(dir string) (map[string]enclave.Space, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	out := map[string]enclave.Space{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		// A Secret volume keeps its own bookkeeping in dot-entries.
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := readBounded(filepath.Join(dir, e.Name()), maxServiceFile)
		if err != nil {
			return nil, fmt.Errorf("services: %w", err)
		}
		var s enclave.Space
		if err := json.Unmarshal(b, &s); err != nil {
			// The decoder's message may quote the file; it holds credentials.
			return nil, fmt.Errorf("services: %s is not a service description", e.Name())
		}
		out[name] = s
	}
	return out, nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), max)
	}
	b := make([]byte, st.Size())
	_, err = io.ReadFull(f, b)
	return b, err
}
