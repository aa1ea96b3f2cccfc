package tentacle

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const diffSpec = `name: weather
version: "1.0.0"
description: Tells the channel about the weather.
triggers:
  - type: manual
  - type: cron
    name: hourly
    schedule: "0 * * * *"
nodes:
  fetch:
    path: ./nodes/fetch.ts
    description: Fetches the forecast.
  notify:
    path: ./nodes/notify.ts
edges:
  - from: fetch
    to: notify
config:
  timeout: 10s
  api_token_hint: SECRETVALUE
  region: eu
contract:
  version: "1"
  dependencies:
    weather:
      protocol: https
      host: api.weather.example
      auth:
        type: token
        secret: weather.token
`

func diffFilesBase() map[string]string {
	return map[string]string{
		FileName:          diffSpec,
		"nodes/fetch.ts":  "export default async () => fetch('https://api.weather.example');",
		"nodes/notify.ts": "export default async (ctx, input) => input;",
		"lib/util.ts":     "export const x = 1;",
	}
}

func bytesOf(files map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for p, s := range files {
		out[p] = []byte(s)
	}
	return out
}

func TestDiff(t *testing.T) {
	// edit changes the spec of the next revision by replacing old with new.
	edit := func(old, new string) func(map[string]string) {
		return func(f map[string]string) {
			if !strings.Contains(f[FileName], old) {
				panic("test spec lacks " + old)
			}
			f[FileName] = strings.Replace(f[FileName], old, new, 1)
		}
	}
	tests := []struct {
		name   string
		change func(next map[string]string)
		want   []string
	}{
		{name: "unchanged", change: func(map[string]string) {}},
		{name: "version", change: edit(`"1.0.0"`, `"1.1.0"`), want: []string{"Version 1.0.0 → 1.1.0"}},
		{
			name: "new step",
			change: func(f map[string]string) {
				edit("  notify:\n", "  enrich:\n    path: ./nodes/enrich.ts\n  notify:\n")(f)
				edit("    to: notify\n", "    to: enrich\n  - from: enrich\n    to: notify\n")(f)
				f["nodes/enrich.ts"] = "export default async (ctx, input) => input;"
			},
			want: []string{"New step: enrich", "New link: enrich → notify", "New link: fetch → enrich", "Removed link: fetch → notify"},
		},
		{
			name: "removed step",
			change: func(f map[string]string) {
				edit("  notify:\n    path: ./nodes/notify.ts\n", "")(f)
				edit("edges:\n  - from: fetch\n    to: notify\n", "")(f)
				delete(f, "nodes/notify.ts")
			},
			want: []string{"Removed step: notify", "Removed link: fetch → notify"},
		},
		{
			name:   "changed code",
			change: func(f map[string]string) { f["nodes/fetch.ts"] += "\n// retry" },
			want:   []string{"Changed code: fetch"},
		},
		{
			name: "moved module",
			change: func(f map[string]string) {
				edit("./nodes/fetch.ts", "./nodes/get.ts")(f)
				f["nodes/get.ts"] = f["nodes/fetch.ts"]
				delete(f, "nodes/fetch.ts")
			},
			want: []string{"Changed code: fetch"},
		},
		{
			name:   "changed schedule",
			change: edit(`"0 * * * *"`, `"30 * * * *"`),
			want:   []string{"New trigger: cron 30 * * * * (hourly)", "Removed trigger: cron 0 * * * * (hourly)"},
		},
		{
			name:   "new webhook",
			change: edit("  - type: manual\n", "  - type: manual\n  - type: webhook\n    path: /hook\n"),
			want:   []string{"New trigger: webhook /hook"},
		},
		{
			name:   "new dependency",
			change: edit("contract:\n  version: \"1\"\n  dependencies:\n", "contract:\n  version: \"1\"\n  dependencies:\n    geo:\n      protocol: https\n      host: api.example.com\n"),
			want:   []string{"Now reaches api.example.com:443 (new dependency geo)"},
		},
		{
			name:   "new dynamic target",
			change: edit("contract:\n  version: \"1\"\n  dependencies:\n", "contract:\n  version: \"1\"\n  dependencies:\n    scan:\n      type: dynamic-target\n      cidr: 10.0.0.0/8\n      dynPorts: [\"443/TCP\"]\n"),
			want:   []string{"Now reaches any host in 10.0.0.0/8 on 443/TCP (new dependency scan)"},
		},
		{
			name:   "removed contract",
			change: func(f map[string]string) { f[FileName] = f[FileName][:strings.Index(f[FileName], "contract:")] },
			want:   []string{"No longer reaches api.weather.example:443 (removed dependency weather)"},
		},
		{
			name:   "moved dependency",
			change: edit("host: api.weather.example", "host: api.weather.example\n      port: 8443"),
			want:   []string{"Dependency weather now reaches api.weather.example:8443 instead of api.weather.example:443"},
		},
		{
			name:   "dependency auth",
			change: edit("secret: weather.token", "secret: weather.key"),
			want:   []string{"Changed dependency weather: auth"},
		},
		{
			name:   "config value",
			change: edit("SECRETVALUE", "NEWSECRET"),
			want:   []string{"Changed config: api_token_hint (values not shown)"},
		},
		{
			name:   "config keys and timeout",
			change: edit("  timeout: 10s\n  api_token_hint: SECRETVALUE\n", "  timeout: 20s\n  retries: 2\n"),
			want:   []string{"Changed config: api_token_hint, retries, timeout (values not shown)"},
		},
		{
			name: "sidecar",
			change: func(f map[string]string) {
				f[FileName] += "sidecars:\n  - name: cache\n    image: redis:7\n    port: 6379\n"
			},
			want: []string{"New sidecar: cache"},
		},
		{
			name: "other files",
			change: func(f map[string]string) {
				f["lib/util.ts"] = "export const x = 2;"
				f["lib/new.ts"] = "export const y = 1;"
				f["data/cities.json"] = "[]"
			},
			want: []string{"New file: data/cities.json", "New file: lib/new.ts", "Changed file: lib/util.ts"},
		},
		{
			name:   "removed file",
			change: func(f map[string]string) { delete(f, "lib/util.ts") },
			want:   []string{"Removed file: lib/util.ts"},
		},
		{
			name: "descriptions",
			change: func(f map[string]string) {
				edit("about the weather", "about the sky")(f)
				edit("Fetches the forecast.", "Fetches.")(f)
			},
			want: []string{"Also changed: description, details of step fetch"},
		},
		{
			name:   "comments only",
			change: func(f map[string]string) { f[FileName] = "# tuned\n" + f[FileName] },
			want:   []string{"Also changed: comments or layout of workflow.yaml"},
		},
		{
			name: "secrets files are never compared",
			change: func(f map[string]string) {
				f[".secrets.yaml"] = "token: hunter2"
				f["nodes/.secrets/token"] = "hunter3"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := diffFilesBase()
			tt.change(next)
			c, err := Diff(bytesOf(diffFilesBase()), bytesOf(next))
			if err != nil {
				t.Fatal(err)
			}
			lines := c.Lines()
			if !slices.Equal(lines, tt.want) {
				t.Errorf("lines = %q, want %q", lines, tt.want)
			}
			if c.Empty() != (len(tt.want) == 0) {
				t.Errorf("Empty() = %v with lines %q", c.Empty(), lines)
			}
			for _, l := range lines {
				for _, secret := range []string{"SECRETVALUE", "NEWSECRET", "hunter", "eu", "10s", "20s"} {
					if strings.Contains(l, secret) {
						t.Errorf("line %q shows %q", l, secret)
					}
				}
			}
			again, _ := Diff(bytesOf(diffFilesBase()), bytesOf(next))
			if !slices.Equal(again.Lines(), lines) {
				t.Errorf("lines vary between runs: %q, then %q", lines, again.Lines())
			}
		})
	}
}

func TestDiffFirstDeploy(t *testing.T) {
	next := diffFilesBase()
	next[".secrets.yaml"] = "token: hunter2"
	c, err := Diff(nil, bytesOf(next))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"First deploy: 2 steps, 2 triggers",
		"Version 1.0.0",
		"Trigger: cron 0 * * * * (hourly)",
		"Trigger: manual",
		"Reaches api.weather.example:443 (dependency weather)",
	}
	if got := c.Lines(); !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
	if c.Empty() || !c.First {
		t.Errorf("first deploy: Empty() = %v, First = %v", c.Empty(), c.First)
	}
	if !slices.Equal(c.NodesAdded, []string{"fetch", "notify"}) || !slices.Equal(c.FilesAdded, []string{"lib/util.ts"}) {
		t.Errorf("nodes added %q, files added %q", c.NodesAdded, c.FilesAdded)
	}
}

func TestDiffOldRules(t *testing.T) {
	// A field today's rules refuse stands for whatever older rules let
	// through: the running revision is still worth comparing by file.
	prev := diffFilesBase()
	prev[FileName] = strings.Replace(prev[FileName], `"1.0.0"`, "1.0.0\nlegacy: true", 1)
	next := diffFilesBase()
	next[FileName] = strings.Replace(next[FileName], `"1.0.0"`, `"1.1.0"`, 1)
	next["nodes/fetch.ts"] += "// v2"
	c, err := Diff(bytesOf(prev), bytesOf(next))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"The running revision's workflow.yaml no longer passes today's checks, so only files are compared",
		"Version 1.0.0 → 1.1.0",
		"Changed file: nodes/fetch.ts",
		"Changed file: workflow.yaml",
	}
	if got := c.Lines(); !slices.Equal(got, want) || !c.FilesOnly || c.Empty() {
		t.Errorf("lines = %q, want %q (FilesOnly %v)", got, want, c.FilesOnly)
	}

	// Not even YAML: the version is unknown.
	prev[FileName] = "name: [\n"
	c, err = Diff(bytesOf(prev), bytesOf(next))
	if err != nil || !c.FilesOnly || c.VersionFrom != "" || !slices.Contains(c.Lines(), "Version 1.1.0") {
		t.Errorf("Diff = %+v, %v", c, err)
	}
}

func TestDiffBadNext(t *testing.T) {
	next := bytesOf(diffFilesBase())
	next[FileName] = []byte("name: weather\n")
	_, err := Diff(bytesOf(diffFilesBase()), next)
	var se *SpecError
	if !errors.As(err, &se) {
		t.Errorf("err = %v, want a *SpecError", err)
	}
	delete(next, FileName)
	if _, err := Diff(nil, next); err == nil || !strings.Contains(err.Error(), "no workflow.yaml") {
		t.Errorf("err = %v", err)
	}
}

// Changes never carries config values or file contents, whatever the
// field; Lines is checked above, this covers the struct callers may
// render themselves.
func TestDiffHoldsNoValues(t *testing.T) {
	next := diffFilesBase()
	next[FileName] = strings.Replace(next[FileName], "SECRETVALUE", "NEWSECRET", 1)
	next["lib/util.ts"] = "export const password = 'hunter2';"
	c, err := Diff(bytesOf(diffFilesBase()), bytesOf(next))
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, list := range [][]string{c.NodesChanged, c.ConfigChanged, c.FilesChanged, c.Other, {c.VersionFrom, c.VersionTo}} {
		all = append(all, list...)
	}
	for _, d := range c.Dependencies {
		all = append(all, d.Before, d.After)
	}
	for _, s := range all {
		if strings.Contains(s, "SECRET") || strings.Contains(s, "hunter") {
			t.Errorf("Changes holds %q", s)
		}
	}
	if !slices.Equal(c.ConfigChanged, []string{"api_token_hint"}) {
		t.Errorf("config changed = %q", c.ConfigChanged)
	}
}
