package enclave

import (
	"errors"
	"fmt"
	"strings"
)

// Perm is a set of the three rights, with Unix's bit values: read (4),
// write (2), execute (1).
type Perm uint8

const (
	// PermRead lets a person look: list, status, info, members, logs,
	// events, runs.
	PermRead Perm = 4
	// PermWrite lets a person change what is deployed or who is in the
	// enclave: deploy, undeploy, rollback, add, remove, sync.
	PermWrite Perm = 2
	// PermExec lets a person run what is deployed: run, restart, cancel.
	PermExec Perm = 1
)

// Has reports whether p holds every right in need. An empty need is
// never held: asking for nothing is a mistake, and mistakes fail closed.
func (p Perm) Has(need Perm) bool {
	return need != 0 && need <= 7 && p&need == need
}

// String is the three letters Unix shows, e.g. "r-x".
func (p Perm) String() string {
	b := []byte("---")
	if p&PermRead != 0 {
		b[0] = 'r'
	}
	if p&PermWrite != 0 {
		b[1] = 'w'
	}
	if p&PermExec != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// words says what p lets someone do, in plain language.
func (p Perm) words() string {
	var w []string
	if p&PermRead != 0 {
		w = append(w, "look")
	}
	if p&PermWrite != 0 {
		w = append(w, "change things")
	}
	if p&PermExec != 0 {
		w = append(w, "run tentacles")
	}
	switch len(w) {
	case 0:
		return "nothing"
	case 1:
		return w[0]
	case 2:
		return w[0] + " and " + w[1]
	}
	return w[0] + ", " + w[1] + " and " + w[2]
}

// Mode is who may do what in an enclave or on a tentacle: nine bits like
// a Unix file's, owner rwx, member rwx, other rwx. The owner is the
// enclave's owner, members are the people in its Slack channel, others
// are everyone else in the workspace.
//
// A Mode above 0777 is not valid and allows nothing. The zero Mode
// (---------) is valid and allows nothing either, except what only the
// owner may do whatever the mode says (changing the mode among them), so
// an owner can never lock themselves out for good.
type Mode uint16

// The presets. DefaultMode is what a new enclave gets.
const (
	ModePrivate  Mode = 0o700 // rwx------
	ModeTeam     Mode = 0o770 // rwxrwx---
	ModeTeamRun  Mode = 0o750 // rwxr-x---
	ModeOpenRead Mode = 0o774 // rwxrwxr--
	ModeOpenRun  Mode = 0o775 // rwxrwxr-x

	DefaultMode = ModeTeam

	modeMask Mode = 0o777
)

// Preset is a named mode, for /kraken help and the mode command.
type Preset struct {
	Name    string
	Mode    Mode
	Meaning string
}

// presets is sorted by name; Presets hands out copies.
var presets = []Preset{
	{"open-read", ModeOpenRead, "everyone in the workspace can look; the channel's members can do everything"},
	{"open-run", ModeOpenRun, "everyone in the workspace can look and run; the channel's members can do everything"},
	{"private", ModePrivate, "only the owner"},
	{"team", ModeTeam, "the channel's members can do everything (the default)"},
	{"team-run", ModeTeamRun, "the channel's members can look and run; only the owner changes things"},
}

// Presets returns the named modes, sorted by name.
func Presets() []Preset {
	return append([]Preset(nil), presets...)
}

// ErrInvalidMode is what ParseMode's errors wrap.
var ErrInvalidMode = errors.New("invalid mode")

// ParseMode reads a mode written as nine letters (rwxr-x---), as octal
// (750 or 0750) or as a preset's name (team-run). Surrounding spaces and
// the case of a preset's name do not matter.
func ParseMode(s string) (Mode, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%w: no mode given; %s", ErrInvalidMode, modeForms())
	}
	if len(t) == 9 && isSymbolic(t) {
		var m Mode
		for i := 0; i < 9; i++ {
			if t[i] != '-' {
				m |= 1 << (8 - i)
			}
		}
		return m, nil
	}
	if isOctal(t) {
		digits := t
		if len(t) == 4 {
			if t[0] != '0' {
				return 0, fmt.Errorf("%w: %q sets special bits (setuid, setgid, sticky), which enclaves don't have; use three digits like 750", ErrInvalidMode, s)
			}
			digits = t[1:]
		}
		if len(digits) == 3 {
			var m Mode
			for i := 0; i < 3; i++ {
				m = m<<3 | Mode(digits[i]-'0')
			}
			return m, nil
		}
	}
	name := strings.ToLower(t)
	for _, p := range presets {
		if p.Name == name {
			return p.Mode, nil
		}
	}
	if near := nearestPreset(name); near != "" {
		return 0, fmt.Errorf("%w: %q is not a mode; did you mean %q? %s", ErrInvalidMode, s, near, modeForms())
	}
	return 0, fmt.Errorf("%w: %q is not a mode; %s", ErrInvalidMode, s, modeForms())
}

func modeForms() string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.Name
	}
	return "write nine letters like rwxr-x---, three octal digits like 750, or a preset: " + strings.Join(names, ", ")
}

// isSymbolic reports whether s is nine characters of the form [r-][w-][x-]
// three times.
func isSymbolic(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '-' && s[i] != "rwx"[i%3] {
			return false
		}
	}
	return true
}

func isOctal(s string) bool {
	if len(s) != 3 && len(s) != 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// nearestPreset returns the preset within two edits of name, if any.
func nearestPreset(name string) string {
	if len(name) > 32 {
		return ""
	}
	best, bestD := "", 3
	for _, p := range presets {
		if d := editDistance(name, p.Name); d < bestD {
			best, bestD = p.Name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Valid reports whether m uses only the nine permission bits.
func (m Mode) Valid() bool { return m&^modeMask == 0 }

// String is the nine letters, e.g. "rwxr-x---". An invalid mode prints
// as "invalid mode 01000" so it is never mistaken for a real one.
func (m Mode) String() string {
	if !m.Valid() {
		return fmt.Sprintf("invalid mode %#o", uint16(m))
	}
	return m.Perm(RoleOwner).String() + m.Perm(RoleMember).String() + m.Perm(RoleOther).String()
}

// Octal is the mode as four octal digits, e.g. "0750".
func (m Mode) Octal() string { return fmt.Sprintf("%04o", uint16(m)) }

// PresetName is the name of the preset m is, or "".
func (m Mode) PresetName() string {
	for _, p := range presets {
		if p.Mode == m {
			return p.Name
		}
	}
	return ""
}

// Describe is the letters and, for a preset, its name:
// "rwxr-x--- (team-run)".
func (m Mode) Describe() string {
	if n := m.PresetName(); n != "" {
		return m.String() + " (" + n + ")"
	}
	return m.String()
}

// Perm is what m gives a role. RoleNone, and any role of an invalid
// mode, gets nothing.
func (m Mode) Perm(r Role) Perm {
	if !m.Valid() {
		return 0
	}
	switch r {
	case RoleOwner:
		return Perm(m>>6) & 7
	case RoleMember:
		return Perm(m>>3) & 7
	case RoleOther:
		return Perm(m) & 7
	}
	return 0
}

// MarshalText writes the nine letters, so a Mode reads well in JSON,
// YAML and annotations.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("%w: %#o", ErrInvalidMode, uint16(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText accepts everything ParseMode does.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
