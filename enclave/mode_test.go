package enclave

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	ok := []struct {
		in   string
		want Mode
	}{
		{"rwxr-x---", 0o750},
		{"rwxrwx---", 0o770},
		{"---------", 0},
		{"rwxrwxrwx", 0o777},
		{"r--r--r--", 0o444},
		{"--x--x--x", 0o111},
		{"750", 0o750},
		{"0750", 0o750},
		{"000", 0},
		{"0000", 0},
		{"777", 0o777},
		{"0777", 0o777},
		{"private", 0o700},
		{"team", 0o770},
		{"team-run", 0o750},
		{"open-read", 0o774},
		{"open-run", 0o775},
		{"  team-run\n", 0o750},
		{"Team-Run", 0o750},
		{" 640 ", 0o640},
		{"\trw-r-----", 0o640},
	}
	for _, tt := range ok {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseMode(%q) = %v, %v; want %#o", tt.in, got, err, uint16(tt.want))
			}
		})
	}

	bad := []struct {
		in, msg string
	}{
		{"", "no mode given"},
		{"   ", "no mode given"},
		{"rwxr-x--", "not a mode"},
		{"rwxr-x----", "not a mode"},
		{"-rwxr-x---", "not a mode"},
		{"wrxr-x---", "not a mode"},
		{"rwxr-x--r", "not a mode"},
		{"RWXR-X---", "not a mode"},
		{"rwx r-x --", "not a mode"},
		{"758", "not a mode"},
		{"75", "not a mode"},
		{"07500", "not a mode"},
		{"1750", "special bits"},
		{"4755", "special bits"},
		{"0o750", "not a mode"},
		{"-750", "not a mode"},
		{"+750", "not a mode"},
		{"u=rwx,g=rx", "not a mode"},
		{"teem", `did you mean "team"`},
		{"privat", `did you mean "private"`},
		{"open_run", `did you mean "open-run"`},
		{"teamrun", `did you mean "team-run"`},
		{"public", "not a mode"},
		{strings.Repeat("x", 1000), "not a mode"},
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if err == nil {
				t.Fatalf("ParseMode(%q) = %v, want an error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalidMode) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseMode(%q) error = %v, want ErrInvalidMode mentioning %q", tt.in, err, tt.msg)
			}
			if got != 0 {
				t.Fatalf("ParseMode(%q) returned %v with its error, want 0", tt.in, got)
			}
		})
	}
	// The error lists every form and preset, so a person can fix it.
	_, err := ParseMode("nonsense")
	for _, want := range []string{"rwxr-x---", "750", "open-read", "open-run", "private", "team", "team-run"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// symbolic formats the nine bits independently of Mode.String.
func symbolic(m int) string {
	var b strings.Builder
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b.WriteByte("rwx"[i%3])
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestModeRoundTripEveryMode(t *testing.T) {
	n := 0
	for i := 0; i <= 0o777; i++ {
		m := Mode(i)
		want := symbolic(i)
		if !m.Valid() {
			t.Fatalf("Mode(%#o).Valid() = false", i)
		}
		if got := m.String(); got != want {
			t.Fatalf("Mode(%#o).String() = %q, want %q", i, got, want)
		}
		if got := m.Octal(); got != fmt.Sprintf("%04o", i) {
			t.Fatalf("Mode(%#o).Octal() = %q", i, got)
		}
		for _, s := range []string{want, fmt.Sprintf("%03o", i), fmt.Sprintf("%04o", i), m.String(), m.Octal(), m.Octal()[1:]} {
			got, err := ParseMode(s)
			if err != nil || got != m {
				t.Fatalf("ParseMode(%q) = %v, %v; want %#o", s, got, err, i)
			}
			n++
		}
		text, err := m.MarshalText()
		if err != nil || string(text) != want {
			t.Fatalf("Mode(%#o).MarshalText() = %q, %v", i, text, err)
		}
		var back Mode
		if err := back.UnmarshalText(text); err != nil || back != m {
			t.Fatalf("UnmarshalText(%q) = %v, %v", text, back, err)
		}
		// Each role's Perm is the matching octal digit.
		digits := fmt.Sprintf("%03o", i)
		for k, r := range []Role{RoleOwner, RoleMember, RoleOther} {
			if got := m.Perm(r); int(got) != int(digits[k]-'0') {
				t.Fatalf("Mode(%#o).Perm(%v) = %v, want %c", i, r, got, digits[k])
			}
		}
		if m.Perm(RoleNone) != 0 || m.Perm(Role(9)) != 0 {
			t.Fatalf("Mode(%#o) gives RoleNone or an unknown role rights", i)
		}
	}
	t.Logf("%d parses of 512 modes round-tripped", n)
}

func TestInvalidMode(t *testing.T) {
	for _, m := range []Mode{0o1000, 0o1777, 0o4755, 0xffff} {
		if m.Valid() {
			t.Errorf("Mode(%#o).Valid() = true", uint16(m))
		}
		if !strings.HasPrefix(m.String(), "invalid mode") {
			t.Errorf("Mode(%#o).String() = %q", uint16(m), m.String())
		}
		for _, r := range []Role{RoleOwner, RoleMember, RoleOther} {
			if m.Perm(r) != 0 {
				t.Errorf("invalid Mode(%#o) gives %v %v", uint16(m), r, m.Perm(r))
			}
		}
		if _, err := m.MarshalText(); !errors.Is(err, ErrInvalidMode) {
			t.Errorf("Mode(%#o).MarshalText() error = %v", uint16(m), err)
		}
	}
	var m Mode = 0o750
	if err := m.UnmarshalText([]byte("nope")); err == nil || m != 0o750 {
		t.Errorf("UnmarshalText(nope) = %v and changed the mode to %v", err, m)
	}
}

func TestPresets(t *testing.T) {
	// Written out by hand from the design, not from the code.
	want := []struct{ name, letters string }{
		{"open-read", "rwxrwxr--"},
		{"open-run", "rwxrwxr-x"},
		{"private", "rwx------"},
		{"team", "rwxrwx---"},
		{"team-run", "rwxr-x---"},
	}
	got := Presets()
	if len(got) != len(want) {
		t.Fatalf("Presets() has %d entries, want %d", len(got), len(want))
	}
	if !slices.IsSortedFunc(got, func(a, b Preset) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("Presets() is not sorted by name")
	}
	for i, w := range want {
		p := got[i]
		if p.Name != w.name || p.Mode.String() != w.letters || p.Meaning == "" {
			t.Errorf("preset %d = %+v (%s), want %s %s with a meaning", i, p, p.Mode, w.name, w.letters)
		}
		if m, err := ParseMode(w.name); err != nil || m.String() != w.letters {
			t.Errorf("ParseMode(%q) = %v, %v", w.name, m, err)
		}
		if p.Mode.PresetName() != w.name {
			t.Errorf("%s.PresetName() = %q", w.letters, p.Mode.PresetName())
		}
		if d := p.Mode.Describe(); d != w.letters+" ("+w.name+")" {
			t.Errorf("Describe() = %q", d)
		}
	}
	if DefaultMode.String() != "rwxrwx---" || DefaultMode.PresetName() != "team" {
		t.Errorf("DefaultMode = %s (%s), want team", DefaultMode, DefaultMode.PresetName())
	}
	if Mode(0o640).PresetName() != "" || Mode(0o640).Describe() != "rw-r-----" {
		t.Errorf("a mode that is no preset has a name: %q", Mode(0o640).Describe())
	}
	// Presets hands out a copy.
	got[0].Name, got[0].Mode = "hacked", 0o777
	if Presets()[0].Name != "open-read" || Presets()[0].Mode != ModeOpenRead {
		t.Errorf("changing Presets()'s result changed the presets")
	}
}

func TestPerm(t *testing.T) {
	for have := Perm(0); have <= 7; have++ {
		if have.Has(0) {
			t.Errorf("%v.Has(0) = true: asking for nothing must fail", have)
		}
		for need := Perm(1); need <= 7; need++ {
			if got, want := have.Has(need), have&need == need; got != want {
				t.Errorf("%v.Has(%v) = %v", have, need, got)
			}
		}
		if have.Has(8) || have.Has(0xff) {
			t.Errorf("%v has bits above rwx", have)
		}
	}
	if Perm(7).String() != "rwx" || Perm(5).String() != "r-x" || Perm(0).String() != "---" {
		t.Errorf("Perm.String: %s %s %s", Perm(7), Perm(5), Perm(0))
	}
	for p, w := range map[Perm]string{0: "nothing", 4: "look", 5: "look and run tentacles", 7: "look, change things and run tentacles"} {
		if p.words() != w {
			t.Errorf("%v.words() = %q, want %q", p, p.words(), w)
		}
	}
}

func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"rwxr-x---", "750", "0750", "team", "team-run", "open-read", "", "1750", "teem", "rwxr-x--", " 777 ", "0o750", "\x00", "rwx\u00a0r-x---"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMode(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidMode) || m != 0 {
				t.Fatalf("ParseMode(%q) = %v, %v: errors must wrap ErrInvalidMode and return 0", s, m, err)
			}
			return
		}
		if !m.Valid() {
			t.Fatalf("ParseMode(%q) = %#o, not a valid mode", s, uint16(m))
		}
		for _, again := range []string{m.String(), m.Octal(), m.Octal()[1:]} {
			if m2, err := ParseMode(again); err != nil || m2 != m {
				t.Fatalf("ParseMode(%q) = %v but ParseMode(%q) = %v, %v", s, m, again, m2, err)
			}
		}
		// What parses is one of the three forms.
		t2 := strings.ToLower(strings.TrimSpace(s))
		if len(t2) != 9 && len(t2) != 3 && len(t2) != 4 && m.PresetName() == "" {
			t.Fatalf("ParseMode(%q) = %v from an unexpected form", s, m)
		}
	})
}
