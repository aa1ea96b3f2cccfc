package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Postgres truncates identifiers longer than NAMEDATALEN-1 bytes without
// a word, so two long names could silently become one object.
const maxIdent = 63

var (
	// enclaveName is a DNS label, as the enclave package requires.
	enclaveName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// tentacleName is kebab-case, as the tentacle package requires.
	tentacleName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	// prefixName has no '_', so the first '_' of a name always ends the
	// prefix.
	prefixName = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
)

// Names keep the enclave's and tentacle's names as they are, dashes
// included, and join them with '_'. Neither name can hold a '_', so the
// mapping is one to one and people recognise what they see:
//
//	database and owner role  kraken_payments-eu
//	tentacle login role      kraken_payments-eu_report-daily
//	tentacle schema          report-daily
//
// Turning dashes into underscores instead would make enclave a-b with
// tentacle c and enclave a with tentacle b-c the same role. The price is
// that the names must be quoted in SQL, which the backend always does,
// and a tentacle seldom has to: its schema is its search_path.
//
// A name longer than 63 bytes keeps its beginning and ends in "__" and a
// hash of the whole name. No name that fits contains "__" (its parts are
// not empty and hold no '_'), so a shortened name never equals one that
// was not shortened.

// spaceNames are the enclave's objects: its database and the NOLOGIN role
// that owns it (roles and databases do not share a namespace).
type spaceNames struct {
	database string
	owner    string
}

// roomNames are one tentacle's objects: its login role, unique on the
// server, and its schema, unique in the enclave's database.
type roomNames struct {
	role   string
	schema string
}

func checkEnclave(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("postgres: the enclave name is empty")
	case len(name) > 63:
		return fmt.Errorf("postgres: enclave name %q is longer than 63 characters", name)
	case !enclaveName.MatchString(name):
		return fmt.Errorf("postgres: enclave name %q must be lower-case letters, digits and dashes, starting and ending with a letter or digit", name)
	}
	return nil
}

func checkTentacle(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("postgres: the tentacle name is empty")
	case len(name) > 63:
		return fmt.Errorf("postgres: tentacle name %q is longer than 63 characters", name)
	case !tentacleName.MatchString(name):
		return fmt.Errorf("postgres: tentacle name %q must be kebab-case (lower-case letters and digits separated by single dashes)", name)
	}
	return nil
}

func checkPrefix(prefix string) error {
	if !prefixName.MatchString(prefix) {
		return fmt.Errorf("postgres: prefix %q must be 1 to 16 lower-case letters and digits, starting with a letter", prefix)
	}
	return nil
}

func namesOf(prefix, enclave string) (spaceNames, error) {
	if err := checkEnclave(enclave); err != nil {
		return spaceNames{}, err
	}
	n := ident(prefix+"_"+enclave, false)
	return spaceNames{database: n, owner: n}, nil
}

func roomNamesOf(prefix, enclave, tentacle string) (roomNames, error) {
	if err := checkEnclave(enclave); err != nil {
		return roomNames{}, err
	}
	if err := checkTentacle(tentacle); err != nil {
		return roomNames{}, err
	}
	return roomNames{
		role: ident(prefix+"_"+enclave+"_"+tentacle, false),
		// A tentacle called public must not be handed the database's
		// public schema; pg_* and information_schema hold a '_' and so
		// are no tentacle's name.
		schema: ident(tentacle, tentacle == "public"),
	}, nil
}

// ident returns name, or when it is too long (or hashed is set) its
// first bytes, "__" and a hash of all of it.
func ident(name string, hashed bool) string {
	if len(name) <= maxIdent && !hashed {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:6])
	keep := name[:min(len(name), maxIdent-2-len(h))]
	return strings.TrimRight(keep, "-_") + "__" + h
}
