package postgres

import (
	"fmt"
	"strings"
	"testing"
)

var long63 = strings.Repeat("a", 62) + "z"

func TestNames(t *testing.T) {
	tests := []struct {
		name               string
		enclave, tentacle  string
		database, role     string // "" when the name is hashed: checked below
		schema             string
		hashedDB, hashedRl bool
	}{
		{"short", "payments", "reports", "kraken_payments", "kraken_payments_reports", "reports", false, false},
		{"dashes stay", "payments-eu", "report-daily", "kraken_payments-eu", "kraken_payments-eu_report-daily", "report-daily", false, false},
		{"double dash in enclave", "a--b", "c", "kraken_a--b", "kraken_a--b_c", "c", false, false},
		{"digits first", "1a", "9", "kraken_1a", "kraken_1a_9", "9", false, false},
		{"tentacle named public", "x", "public", "kraken_x", "kraken_x_public", "", false, false},
		{"longest enclave", long63, "t", "", "", "t", true, true},
		{"long tentacle", "e", long63, "kraken_e", "", long63, false, true},
		{"role just fits", strings.Repeat("e", 27), strings.Repeat("t", 28), "kraken_" + strings.Repeat("e", 27), "kraken_" + strings.Repeat("e", 27) + "_" + strings.Repeat("t", 28), strings.Repeat("t", 28), false, false},
		{"role one too long", strings.Repeat("e", 27), strings.Repeat("t", 29), "kraken_" + strings.Repeat("e", 27), "", strings.Repeat("t", 29), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := namesOf("kraken", tt.enclave)
			if err != nil {
				t.Fatal(err)
			}
			r, err := roomNamesOf("kraken", tt.enclave, tt.tentacle)
			if err != nil {
				t.Fatal(err)
			}
			if s.owner != s.database {
				t.Errorf("owner %q, database %q: want the same name", s.owner, s.database)
			}
			check := func(what, got, want string, hashed bool) {
				t.Helper()
				if len(got) > maxIdent {
					t.Errorf("%s %q is %d bytes, over %d", what, got, len(got), maxIdent)
				}
				if got != strings.ToLower(got) {
					t.Errorf("%s %q is not lower case", what, got)
				}
				if hashed != strings.Contains(got, "__") {
					t.Errorf("%s %q: hashed = %v, want %v", what, got, !hashed, hashed)
				}
				if want != "" && got != want {
					t.Errorf("%s = %q, want %q", what, got, want)
				}
			}
			check("database", s.database, tt.database, tt.hashedDB)
			check("role", r.role, tt.role, tt.hashedRl)
			check("schema", r.schema, tt.schema, tt.tentacle == "public")
			if tt.tentacle == "public" && !strings.HasPrefix(r.schema, "public__") {
				t.Errorf("schema of tentacle public = %q, want public__<hash>", r.schema)
			}
			if tt.hashedDB && !strings.HasPrefix(s.database, "kraken_aaaa") {
				t.Errorf("shortened database %q lost its beginning", s.database)
			}
			s2, _ := namesOf("kraken", tt.enclave)
			r2, _ := roomNamesOf("kraken", tt.enclave, tt.tentacle)
			if s2 != s || r2 != r {
				t.Errorf("names differ between calls: %v %v, then %v %v", s, r, s2, r2)
			}
		})
	}
}

func TestNamesRefuseOddInput(t *testing.T) {
	tests := []struct {
		enclave, tentacle, want string
	}{
		{"", "t", "enclave name is empty"},
		{"e", "", "tentacle name is empty"},
		{"Payments", "t", "must be lower-case"},
		{"pay_ments", "t", "must be lower-case"},
		{"pay.ments", "t", "must be lower-case"},
		{"-payments", "t", "must be lower-case"},
		{"payments-", "t", "must be lower-case"},
		{`pay"ments`, "t", "must be lower-case"},
		{"paymënts", "t", "must be lower-case"},
		{long63 + "a", "t", "longer than 63"},
		{"e", "Report", "kebab-case"},
		{"e", "re_port", "kebab-case"},
		{"e", "re--port", "kebab-case"},
		{"e", "report-", "kebab-case"},
		{"e", "re port", "kebab-case"},
		{"e", "'; DROP ROLE postgres; --", "kebab-case"},
		{"e", long63 + "a", "longer than 63"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%q", tt.enclave, tt.tentacle), func(t *testing.T) {
			_, err := roomNamesOf("kraken", tt.enclave, tt.tentacle)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("roomNamesOf(%q, %q) = %v, want an error saying %q", tt.enclave, tt.tentacle, err, tt.want)
			}
		})
	}
}

// TestNamesDoNotCollide feeds pairs that a careless mapping would merge:
// dashes against underscores, the split between enclave and tentacle,
// owner roles against tentacle roles, and long names that share their
// first 63 bytes.
func TestNamesDoNotCollide(t *testing.T) {
	var enclaves, tentacles []string
	for _, base := range []string{"a", "a-b", "a-b-c", "a--b", "b", "b-c", "c", "public", "x1", long63, long63[:62] + "y", strings.Repeat("a", 40)} {
		enclaves = append(enclaves, base)
		if tentacleName.MatchString(base) {
			tentacles = append(tentacles, base)
		}
	}
	for i := range 20 {
		// Long names equal but for their last characters.
		enclaves = append(enclaves, fmt.Sprintf("%s-%02d", strings.Repeat("e", 60), i))
		tentacles = append(tentacles, fmt.Sprintf("%s-%02d", strings.Repeat("t", 60), i))
	}
	roles := map[string]string{}     // server-wide: owner and tentacle roles
	databases := map[string]string{} // server-wide
	claim := func(m map[string]string, name, by string) {
		t.Helper()
		if prev, ok := m[name]; ok && prev != by {
			t.Fatalf("%s and %s both get %q", prev, by, name)
		}
		m[name] = by
	}
	for _, e := range enclaves {
		s, err := namesOf("kraken", e)
		if err != nil {
			t.Fatal(err)
		}
		claim(databases, s.database, "enclave "+e)
		claim(roles, s.owner, "owner of "+e)
		schemas := map[string]string{} // per database
		for _, tn := range tentacles {
			r, err := roomNamesOf("kraken", e, tn)
			if err != nil {
				t.Fatal(err)
			}
			claim(roles, r.role, "tentacle "+e+"/"+tn)
			claim(schemas, r.schema, "tentacle "+tn)
			if r.schema == "public" || strings.HasPrefix(r.schema, "pg_") || r.schema == "information_schema" {
				t.Errorf("tentacle %s gets the reserved schema %q", tn, r.schema)
			}
			for _, n := range []string{r.role, r.schema} {
				if len(n) > maxIdent {
					t.Errorf("%q is %d bytes", n, len(n))
				}
			}
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, p := range []string{"kraken", "k", "kt0123456789abcd"} {
		if err := checkPrefix(p); err != nil {
			t.Errorf("checkPrefix(%q) = %v", p, err)
		}
	}
	// '_' would make the prefix's end ambiguous.
	for _, p := range []string{"", "Kraken", "kra_ken", "kra-ken", "1kraken", "kt0123456789abcde"} {
		if err := checkPrefix(p); err == nil {
			t.Errorf("checkPrefix(%q) accepted it", p)
		}
	}
}
