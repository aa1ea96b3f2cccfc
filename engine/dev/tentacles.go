package dev

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

// MaxRevisions is how many revisions of a tentacle are kept, as in the
// cluster.
const MaxRevisions = 10

// Tentacles keeps tentacles' revisions in the data directory and runs
// them with the engine; it implements tentacle.Cluster.
type Tentacles struct{ r *Runtime }

var _ tentacle.Cluster = (*Tentacles)(nil)

// tentacleRecord is tentacle.json. The newest revision is the deployed
// one: every deploy and rollback makes a new revision.
type tentacleRecord struct {
	Name      string
	Revisions []revisionRecord // newest first
	// SetSecrets are the secrets last written by SetSecret, sorted: a
	// deploy with secrets keeps them, as the cluster's field ownership
	// does (see SetSecret).
	SetSecrets []string `json:",omitempty"`
}

type revisionRecord struct {
	Number     int
	Version    string
	Digest     string
	DeployedAt time.Time
	DeployedBy string
	RollbackOf int `json:",omitempty"`
}

func (rv revisionRecord) revision() tentacle.Revision {
	return tentacle.Revision{Number: rv.Number, Version: rv.Version, Digest: rv.Digest, DeployedAt: rv.DeployedAt, DeployedBy: rv.DeployedBy}
}

// current is the deployed revision.
func (t tentacleRecord) current() revisionRecord { return t.Revisions[0] }

// The cluster's rules for names, so that what works here works there: a
// tentacle is named like a Service, a secret like a Secret's key.
var (
	tentacleName = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
)

func revisionDir(tdir string, n int) string { return filepath.Join(tdir, "r"+strconv.Itoa(n)) }

// secretsPath is where the engine finds a tentacle's secrets, as it
// finds the cluster's Secret mount: one file per secret. It is a
// symbolic link to a directory beside the revisions, outside what the
// nodes may read, swapped in one rename when the secrets change.
func secretsPath(tdir string) string { return filepath.Join(tdir, "secrets") }

// servicesPath is where the engine finds the rooms granted on the
// enclave's services, as it finds the cluster's mount of them.
func servicesPath(tdir string) string { return filepath.Join(tdir, "services") }

// Deploy makes b the tentacle's new revision in the enclave and retires
// the worker of the one before; the next run starts a worker for it.
// Every deploy makes a revision, even of files already deployed, as in
// the cluster. The tentacle's secrets are kept when b.Secrets is nil (a
// deploy from Slack, a rollback). Otherwise b's secrets replace those
// deploys set (an empty map removes them all), and the ones last set
// with SetSecret stay unless b sets them too, as in the cluster: b taking
// one over when it gives it another value, sharing it when the same.
//
// Whether the enclave takes deploys (frozen, rights) is the caller's
// decision; the enclave must exist and not be terminating
// (enclave.ErrNotFound, with ErrTerminating for the latter).
func (t *Tentacles) Deploy(ctx context.Context, enc string, b *tentacle.Bundle, p enclave.Provenance) (tentacle.Revision, error) {
	name := "?"
	if b != nil && b.Workflow != nil {
		name = b.Workflow.Name
	}
	return t.deploy(ctx, enc, b, p, 0, fmt.Sprintf("deploy tentacle %s in enclave %s", name, enc))
}

func (t *Tentacles) deploy(ctx context.Context, enc string, b *tentacle.Bundle, p enclave.Provenance, rollbackOf int, op string) (tentacle.Revision, error) {
	secrets, err := checkBundle(b)
	if err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	if rollbackOf == 0 {
		for name := range b.Workflow.Services() {
			if _, ok := b.Services[name]; !ok {
				return tentacle.Revision{}, fmt.Errorf("%s: dependency %s is one of the enclave's services, and no room on it was granted for this deploy", op, name)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	wf := b.Workflow
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.enclaveTakesTentacles(enc); err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	tdir := r.tentacleDir(enc, wf.Name)
	rec, err := r.readTentacle(enc, wf.Name)
	switch {
	case errors.Is(err, tentacle.ErrNotDeployed):
		rec = tentacleRecord{Name: wf.Name}
	case err != nil:
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	n := 1
	if len(rec.Revisions) > 0 {
		n = rec.current().Number + 1
	}
	if err := writeRevision(tdir, wf.Name, n, b.Files); err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	if secrets != nil {
		if secrets, rec.SetSecrets, err = keepSetSecrets(tdir, secrets, rec.SetSecrets); err != nil {
			return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
		}
		if err := writeSecrets(tdir, secrets); err != nil {
			return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	// A rollback keeps the rooms as they are, as the cluster keeps its
	// Secret; a deploy brings the ones its contract asks for now.
	if rollbackOf == 0 {
		if err := writeServices(tdir, b.Services); err != nil {
			return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	rv := revisionRecord{
		Number: n, Version: wf.Version, Digest: b.Digest(),
		DeployedAt: at(p).Truncate(time.Second), DeployedBy: cmp.Or(p.Actor, "system"),
		RollbackOf: rollbackOf,
	}
	sameAs := 0 // the newest revision with the same files
	if i := slices.IndexFunc(rec.Revisions, func(o revisionRecord) bool { return o.Digest == rv.Digest }); i >= 0 {
		sameAs = rec.Revisions[i].Number
	}
	var pruned []revisionRecord
	rec.Revisions = append([]revisionRecord{rv}, rec.Revisions...)
	if len(rec.Revisions) > MaxRevisions {
		rec.Revisions, pruned = rec.Revisions[:MaxRevisions], rec.Revisions[MaxRevisions:]
	}
	// The record is the commit: until it is written, the new revision's
	// directory is an orphan the next deploy of that number replaces.
	if err := r.writeTentacle(enc, rec); err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	for _, old := range pruned {
		if err := os.RemoveAll(revisionDir(tdir, old.Number)); err != nil {
			r.log.Warn("could not remove an old tentacle revision", "enclave", enc, "tentacle", wf.Name, "revision", old.Number, "err", err)
		}
	}
	k := key{enc, wf.Name}
	r.retire(k)
	live := r.liveOf(k)
	live.lastError = ""
	msg := fmt.Sprintf("revision %d (version %s) deployed by %s", n, rv.Version, rv.DeployedBy)
	reason := "Deployed"
	if rollbackOf > 0 {
		reason = "RolledBack"
		msg = fmt.Sprintf("revision %d deployed by %s: a rollback to the files of revision %d", n, rv.DeployedBy, rollbackOf)
	} else if sameAs > 0 {
		msg += fmt.Sprintf(", with the same files as revision %d", sameAs)
	}
	live.event(false, reason, msg)
	_, warnings := engine.NetAllowList(wf, b.Services)
	for _, w := range warnings {
		r.log.Warn("tentacle egress: "+w, "enclave", enc, "tentacle", wf.Name)
	}
	r.log.Info("tentacle deployed", "enclave", enc, "tentacle", wf.Name, "revision", n,
		"version", rv.Version, "digest", rv.Digest, "by", rv.DeployedBy, "rollbackOf", rollbackOf, "secretsChanged", secrets != nil)
	out := rv.revision()
	out.Warnings = warnings
	return out, nil
}

// checkBundle refuses what the cluster would refuse, or what would only
// fail once the engine starts (a node file missing or too big), and
// encodes the secrets as the engine reads them back: one JSON file per
// secret. nil secrets means keep those there are.
func checkBundle(b *tentacle.Bundle) (map[string][]byte, error) {
	if b == nil || b.Workflow == nil {
		return nil, errors.New("the bundle has no workflow")
	}
	wf := b.Workflow
	if !tentacleName.MatchString(wf.Name) || len(wf.Name) > 63 {
		return nil, fmt.Errorf("tentacle name %q cannot be used in a cluster: it must start with a letter and have at most 63 characters", wf.Name)
	}
	if err := b.CheckPaths(); err != nil {
		return nil, err
	}
	if err := b.CheckSize(); err != nil {
		return nil, err
	}
	if _, ok := b.Files[tentacle.FileName]; !ok {
		return nil, fmt.Errorf("the bundle has no %s", tentacle.FileName)
	}
	for _, id := range wf.NodeIDs {
		if _, ok := b.Files[path.Clean(wf.Nodes[id].Path)]; !ok {
			return nil, fmt.Errorf("node %s: its file %s is not in the bundle", id, wf.Nodes[id].Path)
		}
	}
	if b.Secrets == nil {
		return nil, nil
	}
	out := make(map[string][]byte, len(b.Secrets))
	for _, k := range slices.Sorted(maps.Keys(b.Secrets)) {
		if err := tentacle.CheckSecretKey(k); err != nil {
			return nil, err
		}
		data, err := json.Marshal(b.Secrets[k])
		if err != nil {
			// Never the value, nor the encoder's message that may quote it.
			return nil, fmt.Errorf("secret %q cannot be encoded as JSON", k)
		}
		out[k] = data
	}
	if err := checkSecretsSize(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkSecretsSize refuses a set of secrets bigger than a Secret holds.
func checkSecretsSize(secrets map[string][]byte) error {
	total := 0
	for k, data := range secrets {
		total += len(k) + len(data)
	}
	if total > tentacle.MaxSecretSize {
		return fmt.Errorf("%w: its secrets add up to %d bytes, more than the %d a tentacle may have", tentacle.ErrTooLarge, total, tentacle.MaxSecretSize)
	}
	return nil
}

// keepSetSecrets adds to a deploy's secrets those last set with
// SetSecret (set, sorted) that the deploy does not set, and returns them
// with the ones still SetSecret's: a deploy that sets one to another
// value takes it over. r.mu must be held.
func keepSetSecrets(tdir string, secrets map[string][]byte, set []string) (map[string][]byte, []string, error) {
	if len(set) == 0 {
		return secrets, nil, nil
	}
	current, err := readSecrets(tdir)
	if err != nil {
		return nil, nil, err
	}
	secrets = maps.Clone(secrets)
	var still []string
	for _, k := range set {
		cur, ok := current[k]
		switch data, deployed := secrets[k]; {
		case !ok:
			// Gone: nothing to keep.
		case !deployed:
			secrets[k] = cur
			still = append(still, k)
		case bytes.Equal(data, cur):
			still = append(still, k)
		}
	}
	if err := checkSecretsSize(secrets); err != nil {
		return nil, nil, fmt.Errorf("%w (with the secrets set one by one, which it keeps)", err)
	}
	return secrets, still, nil
}

// readSecrets reads the tentacle's secrets as written: name to file
// content. None when there are none.
func readSecrets(tdir string) (map[string][]byte, error) {
	dir := secretsPath(tdir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[e.Name()] = data
	}
	return out, nil
}

// SetSecret sets one secret of a deployed tentacle, or removes it when
// value is empty, keeping the others, and retires the tentacle's worker
// so that the next run starts one that reads the change. The value is
// stored as a deploy stores a string secret, as JSON, so the nodes see
// ctx.secrets[key] === value; it is never logged (the log and the event
// name the key only).
//
// As in the cluster, a secret written here stays through deploys without
// secrets and rollbacks, and through deploys with secrets that do not
// set it (see Deploy). The key must be a name Deploy accepts (letters,
// digits, '-', '_', '.', not starting with '.', at most 253 characters),
// the value UTF-8 of at most 64 KiB (tentacle.ErrTooLarge);
// tentacle.ErrNotDeployed when there is no such tentacle.
func (t *Tentacles) SetSecret(ctx context.Context, enc, name, secret, value string, p enclave.Provenance) error {
	op := fmt.Sprintf("set a secret of tentacle %s in enclave %s", name, enc)
	if err := tentacle.CheckSecretKey(secret); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	removing := value == ""
	if removing {
		op = fmt.Sprintf("remove secret %s of tentacle %s in enclave %s", secret, name, enc)
	} else {
		op = fmt.Sprintf("set secret %s of tentacle %s in enclave %s", secret, name, enc)
	}
	if err := tentacle.CheckSecretValue(value); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readTentacle(enc, name)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	tdir := r.tentacleDir(enc, name)
	secrets, err := readSecrets(tdir)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	set := rec.SetSecrets
	cur, had := secrets[secret]
	changed := false
	if removing {
		if had {
			delete(secrets, secret)
			changed = true
		}
		set = slices.DeleteFunc(slices.Clone(set), func(k string) bool { return k == secret })
	} else if data, _ := json.Marshal(value); !had || !bytes.Equal(cur, data) {
		// Only a change makes it SetSecret's, as only a change moves a
		// field's ownership in the cluster.
		secrets[secret] = data
		changed = true
		if !slices.Contains(set, secret) {
			set = append(slices.Clone(set), secret)
			slices.Sort(set)
		}
	}
	if changed {
		if err := checkSecretsSize(secrets); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := writeSecrets(tdir, secrets); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if !slices.Equal(set, rec.SetSecrets) {
		rec.SetSecrets = set
		if err := r.writeTentacle(enc, rec); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	k := key{enc, name}
	r.retire(k)
	by := cmp.Or(p.Actor, "system")
	live := r.liveOf(k)
	live.lastError = ""
	if removing {
		live.event(false, "SecretRemoved", fmt.Sprintf("secret %s removed by %s; restarted", secret, by))
	} else {
		live.event(false, "SecretSet", fmt.Sprintf("secret %s set by %s; restarted", secret, by))
	}
	r.log.Info("tentacle secret changed", "enclave", enc, "tentacle", name, "secret", secret, "removed", removing, "by", by)
	return nil
}

// writeRevision writes revision n's files to a temporary directory,
// loads the tentacle from it as the engine will, and renames it into
// place: a revision's directory is complete or absent.
func writeRevision(tdir, name string, n int, files map[string][]byte) error {
	tmp, err := os.MkdirTemp(tdir, ".r"+strconv.Itoa(n)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // gone once renamed
	for p, data := range files {
		full := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			return err
		}
	}
	wf, err := tentacle.Load(tmp)
	if err != nil {
		return fmt.Errorf("the tentacle would not start: %w", err)
	}
	if wf.Name != name {
		return fmt.Errorf("the bundle's %s names tentacle %q, not %q", tentacle.FileName, wf.Name, name)
	}
	dst := revisionDir(tdir, n)
	// A directory of that number is what a deploy that died before its
	// record was written left: no revision uses it.
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// writeSecrets writes the secrets to a new private directory and points
// the secrets link at it in one rename, as Kubernetes updates a mounted
// Secret: the engine reads the old set or the new one, never a mix.
func writeSecrets(tdir string, secrets map[string][]byte) error {
	dir, err := os.MkdirTemp(tdir, ".secrets-") // 0700
	if err != nil {
		return err
	}
	for k, data := range secrets {
		if err := os.WriteFile(filepath.Join(dir, k), data, 0o600); err != nil {
			os.RemoveAll(dir)
			return err
		}
	}
	link := filepath.Join(tdir, ".secrets-link.tmp")
	os.Remove(link)
	if err := os.Symlink(filepath.Base(dir), link); err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := os.Rename(link, secretsPath(tdir)); err != nil {
		os.Remove(link)
		os.RemoveAll(dir)
		return err
	}
	// The sets no longer linked (the previous one, or one a crash left).
	entries, err := os.ReadDir(tdir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".secrets-") && e.Name() != filepath.Base(dir) {
			os.RemoveAll(filepath.Join(tdir, e.Name()))
		}
	}
	return nil
}

// writeServices replaces the granted rooms with services, one
// <dependency>.json each, readable by the bot's user only.
func writeServices(tdir string, services map[string]enclave.Space) error {
	tmp, err := os.MkdirTemp(tdir, ".services-") // 0700
	if err != nil {
		return err
	}
	for name, sp := range services {
		data, err := json.Marshal(sp)
		if err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("service of dependency %s cannot be encoded", name)
		}
		if err := os.WriteFile(filepath.Join(tmp, name+".json"), data, 0o600); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	if err := os.RemoveAll(servicesPath(tdir)); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return os.Rename(tmp, servicesPath(tdir))
}

// Status reports the tentacle. It is ready as soon as it is deployed: its
// worker starts with the first run.
func (t *Tentacles) Status(ctx context.Context, enc, name string) (tentacle.Status, error) {
	op := fmt.Sprintf("status of tentacle %s in enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return tentacle.Status{}, fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readTentacle(enc, name)
	if err != nil {
		return tentacle.Status{}, fmt.Errorf("%s: %w", op, err)
	}
	return r.status(enc, rec), nil
}

// status is rec's Status. r.mu must be held.
func (r *Runtime) status(enc string, rec tentacleRecord) tentacle.Status {
	cur := rec.current()
	live := r.liveOf(key{enc, rec.Name})
	return tentacle.Status{
		Name: rec.Name, Version: cur.Version, Revision: cur.Number,
		Ready: true, Replicas: 1, ReadyReplicas: 1,
		Restarts: live.restarts, LastError: live.lastError,
		DeployedAt: cur.DeployedAt, DeployedBy: cur.DeployedBy,
	}
}

// List reports every tentacle of the enclave, sorted by name; none when
// there is no such enclave.
func (t *Tentacles) List(ctx context.Context, enc string) ([]tentacle.Status, error) {
	op := "list tentacles in enclave " + enc
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if enclave.ValidateName(enc) != nil {
		return nil, nil
	}
	names, err := listDirs(r.tentaclesDir(enc))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var out []tentacle.Status
	for _, name := range names {
		rec, err := r.readTentacle(enc, name)
		if errors.Is(err, tentacle.ErrNotDeployed) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, r.status(enc, rec))
	}
	return out, nil
}

// Logs returns the last opts.TailLines (100 when not positive) lines the
// tentacle's engine logged in this process, of every revision. Follow is
// not supported: what there is comes back and the stream ends.
func (t *Tentacles) Logs(ctx context.Context, enc, name string, opts tentacle.LogOptions) (io.ReadCloser, error) {
	op := fmt.Sprintf("logs of tentacle %s in enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.readTentacle(enc, name); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	n := opts.TailLines
	if n <= 0 {
		n = 100
	}
	lines := r.liveOf(key{enc, name}).logs.tail(n)
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	return io.NopCloser(strings.NewReader(sb.String())), nil
}

// Events lists what happened to the tentacle in this process, newest
// first: deploys, rollbacks, restarts, failed runs and workers that did
// not start.
func (t *Tentacles) Events(ctx context.Context, enc, name string) ([]tentacle.Event, error) {
	op := fmt.Sprintf("events of tentacle %s in enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.readTentacle(enc, name); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := slices.Clone(r.liveOf(key{enc, name}).events)
	slices.Reverse(out)
	return out, nil
}

// Revisions lists the tentacle's kept revisions, newest first;
// tentacle.ErrNotDeployed when it has none.
func (t *Tentacles) Revisions(ctx context.Context, enc, name string) ([]tentacle.Revision, error) {
	op := fmt.Sprintf("revisions of tentacle %s in enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readTentacle(enc, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := make([]tentacle.Revision, len(rec.Revisions))
	for i, rv := range rec.Revisions {
		out[i] = rv.revision()
	}
	return out, nil
}

// Files returns the files of revision rev (zero: the deployed one),
// without secrets: tentacle.ErrNotDeployed when there is no tentacle,
// tentacle.ErrNoRevision when rev is not kept.
func (t *Tentacles) Files(ctx context.Context, enc, name string, rev int) (map[string][]byte, error) {
	op := fmt.Sprintf("files of tentacle %s in enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readTentacle(enc, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if rev == 0 {
		rev = rec.current().Number
	}
	if !slices.ContainsFunc(rec.Revisions, func(rv revisionRecord) bool { return rv.Number == rev }) {
		return nil, fmt.Errorf("%s: %w: revision %d is not kept (the last %d are)", op, tentacle.ErrNoRevision, rev, MaxRevisions)
	}
	files, err := readFiles(revisionDir(r.tentacleDir(enc, name), rev))
	if err != nil {
		return nil, fmt.Errorf("%s: revision %d: %w", op, rev, err)
	}
	return files, nil
}

// readFiles reads a revision's directory back into a bundle's files.
func readFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		files[p] = data
		return err
	})
	return files, err
}

// Restart stops the tentacle's worker; the next run starts a fresh one.
func (t *Tentacles) Restart(ctx context.Context, enc, name string, p enclave.Provenance) error {
	op := fmt.Sprintf("restart tentacle %s in enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.readTentacle(enc, name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	k := key{enc, name}
	r.retire(k)
	by := cmp.Or(p.Actor, "system")
	live := r.liveOf(k)
	live.restarts++
	live.lastError = ""
	live.event(false, "Restarted", "restarted by "+by)
	r.log.Info("tentacle restarted", "enclave", enc, "tentacle", name, "by", by)
	return nil
}

// Rollback deploys the files of revision rev (the newest one before the
// deployed revision when rev is 0) as a new revision. Secrets stay as
// they are: they are not part of revisions.
func (t *Tentacles) Rollback(ctx context.Context, enc, name string, rev int, p enclave.Provenance) (tentacle.Revision, error) {
	op := fmt.Sprintf("roll back tentacle %s in enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	rec, err := r.readTentacle(enc, name)
	if err != nil {
		r.mu.Unlock()
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	cur := rec.current().Number
	if rev == 0 {
		for _, rv := range rec.Revisions {
			if rv.Number < cur {
				rev = rv.Number
				break
			}
		}
		if rev == 0 {
			r.mu.Unlock()
			return tentacle.Revision{}, fmt.Errorf("%s: %w: revision %d is the oldest one kept", op, tentacle.ErrNoRevision, cur)
		}
	}
	var files map[string][]byte
	if slices.ContainsFunc(rec.Revisions, func(rv revisionRecord) bool { return rv.Number == rev }) {
		files, err = readFiles(revisionDir(r.tentacleDir(enc, name), rev))
	} else {
		err = fmt.Errorf("%w: revision %d is not kept (the last %d are)", tentacle.ErrNoRevision, rev, MaxRevisions)
	}
	r.mu.Unlock()
	if err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	b, err := tentacle.BundleFromFiles(files, nil)
	if err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: revision %d: %w", op, rev, err)
	}
	if b.Workflow.Name != name {
		return tentacle.Revision{}, fmt.Errorf("%s: revision %d holds tentacle %s", op, rev, b.Workflow.Name)
	}
	return t.deploy(ctx, enc, b, p, rev, op)
}

// Undeploy removes the tentacle: its worker, revisions, secrets, logs
// and events.
func (t *Tentacles) Undeploy(ctx context.Context, enc, name string, p enclave.Provenance) error {
	op := fmt.Sprintf("undeploy tentacle %s from enclave %s", name, enc)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.readEnclave(enc); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if _, err := r.readTentacle(enc, name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	k := key{enc, name}
	r.retire(k)
	if err := r.trash(r.tentacleDir(enc, name)); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	delete(r.live, k)
	r.log.Info("tentacle undeployed", "enclave", enc, "tentacle", name, "by", cmp.Or(p.Actor, "system"))
	return nil
}

// enclaveTakesTentacles checks that enc exists and is not being
// removed. r.mu must be held.
func (r *Runtime) enclaveTakesTentacles(enc string) error {
	rec, err := r.readEnclave(enc)
	if err != nil {
		return err
	}
	if rec.Enclave.Terminating {
		return fmt.Errorf("%w: %w", ErrTerminating, enclave.ErrNotFound)
	}
	return nil
}

// readTentacle reads tentacle.json; tentacle.ErrNotDeployed when either
// name is not one a tentacle could have or there is no record. r.mu must
// be held.
func (r *Runtime) readTentacle(enc, name string) (tentacleRecord, error) {
	if enclave.ValidateName(enc) != nil || !tentacleName.MatchString(name) || len(name) > 63 {
		// Never a path: the names may come from anyone.
		return tentacleRecord{}, tentacle.ErrNotDeployed
	}
	data, err := os.ReadFile(filepath.Join(r.tentacleDir(enc, name), "tentacle.json"))
	if errors.Is(err, os.ErrNotExist) {
		return tentacleRecord{}, tentacle.ErrNotDeployed
	}
	if err != nil {
		return tentacleRecord{}, err
	}
	var rec tentacleRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return tentacleRecord{}, fmt.Errorf("the record of tentacle %s is damaged: %w", name, err)
	}
	if rec.Name != name || len(rec.Revisions) == 0 {
		return tentacleRecord{}, fmt.Errorf("the record of tentacle %s is damaged: it names %q with %d revisions", name, rec.Name, len(rec.Revisions))
	}
	return rec, nil
}

// writeTentacle writes tentacle.json. r.mu must be held.
func (r *Runtime) writeTentacle(enc string, rec tentacleRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.tentacleDir(enc, rec.Name), "tentacle.json"), append(data, '\n'), 0o600)
}
