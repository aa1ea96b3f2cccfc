package objectstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/kraken-ops/kraken/enclave"
)

// Open makes the enclave's bucket, owned by the root key; one that is
// there already is fine.
func (b *Backend) Open(ctx context.Context, encl string) error {
	if err := validEnclave(encl); err != nil {
		return err
	}
	bucket := b.Bucket(encl)
	err := b.s3.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: b.region})
	switch minio.ToErrorResponse(err).Code {
	case "BucketAlreadyOwnedByYou":
		return nil
	case "BucketAlreadyExists":
		// Another key owns it: not something this platform made.
		return fmt.Errorf("enclave %s: bucket %s exists and belongs to someone else: %w", encl, bucket, err)
	}
	if err != nil {
		return b.fail("making bucket "+bucket+" for enclave "+encl, err)
	}
	return nil
}

// Grant makes (or makes again) the tentacle's user, with its derived
// secret, and lets it into its prefix of the enclave's bucket.
func (b *Backend) Grant(ctx context.Context, encl, tentacle string) (enclave.Space, error) {
	if err := validEnclave(encl); err != nil {
		return enclave.Space{}, err
	}
	if err := validTentacle(tentacle); err != nil {
		return enclave.Space{}, err
	}
	bucket, key := b.Bucket(encl), b.AccessKey(encl, tentacle)
	secret := enclave.DeriveSecret(b.key, string(enclave.ObjectStore), encl, tentacle)

	unlock := b.locks.lock(encl)
	defer unlock()
	// The policy first: a missing bucket is found before a user is made
	// for it.
	p, err := b.policy(ctx, encl, bucket)
	if err != nil {
		return enclave.Space{}, err
	}
	// The user before the policy: versitygw refuses a policy naming a
	// principal it does not know.
	if err := b.admin.putUser(ctx, key, secret); err != nil {
		return enclave.Space{}, fmt.Errorf("object store: user %s for tentacle %s of enclave %s: %w", key, tentacle, encl, err)
	}
	if p.grant(key, statements(bucket, key, tentacle)) {
		if err := b.writePolicy(ctx, bucket, p); err != nil {
			return enclave.Space{}, b.fail("letting tentacle "+tentacle+" into bucket "+bucket, err)
		}
	}
	return enclave.Space{
		Kind:     enclave.ObjectStore,
		Protocol: "s3",
		Host:     b.host,
		Port:     b.port,
		TLS:      b.tls,
		Bucket:   bucket,
		Region:   b.region,
		Prefix:   tentacle + "/",
		User:     key,
		Secret:   secret,
		Network:  append([]enclave.Network(nil), b.network...),
	}, nil
}

// Revoke takes the tentacle's statements out of the bucket's policy,
// which shuts it out at once, then deletes its user. Its objects stay.
func (b *Backend) Revoke(ctx context.Context, encl, tentacle string) error {
	if err := validEnclave(encl); err != nil {
		return err
	}
	if err := validTentacle(tentacle); err != nil {
		return err
	}
	bucket, key := b.Bucket(encl), b.AccessKey(encl, tentacle)

	unlock := b.locks.lock(encl)
	defer unlock()
	p, err := b.policy(ctx, encl, bucket)
	switch {
	case errors.Is(err, ErrNotOpen):
		// No bucket, no statements: only the user may be left.
	case err != nil:
		return err
	case p.revoke(key):
		if err := b.writePolicy(ctx, bucket, p); err != nil {
			return b.fail("shutting tentacle "+tentacle+" out of bucket "+bucket, err)
		}
	}
	if err := b.admin.deleteUser(ctx, key); err != nil {
		return fmt.Errorf("object store: deleting user %s of tentacle %s in enclave %s: %w", key, tentacle, encl, err)
	}
	return nil
}

// Usage counts the objects in the enclave's bucket and their bytes. With
// versioning on, older versions count too.
func (b *Backend) Usage(ctx context.Context, encl string) (enclave.Usage, error) {
	if err := validEnclave(encl); err != nil {
		return enclave.Usage{}, err
	}
	bucket := b.Bucket(encl)
	u := enclave.Usage{Kind: enclave.ObjectStore, What: "storage bucket " + bucket}
	exists, err := b.s3.BucketExists(ctx, bucket)
	if err != nil {
		return u, b.fail("looking for bucket "+bucket, err)
	}
	if !exists {
		return u, nil
	}
	u.Exists = true
	versions, err := b.versioned(ctx, bucket)
	if err != nil {
		return u, err
	}
	for obj := range b.s3.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: versions}) {
		if obj.Err != nil {
			return u, b.fail("counting the objects in bucket "+bucket, obj.Err)
		}
		if obj.IsDeleteMarker {
			continue
		}
		u.Objects++
		u.Bytes += obj.Size
	}
	return u, nil
}

// Drop shuts every tentacle of the enclave out, deletes their users, then
// every object (every version), unfinished uploads and the bucket.
func (b *Backend) Drop(ctx context.Context, encl string) error {
	if err := validEnclave(encl); err != nil {
		return err
	}
	bucket := b.Bucket(encl)

	unlock := b.locks.lock(encl)
	defer unlock()
	exists, err := b.s3.BucketExists(ctx, bucket)
	if err != nil {
		return b.fail("looking for bucket "+bucket, err)
	}
	if exists {
		if err := b.s3.SetBucketPolicy(ctx, bucket, ""); err != nil && !gone(err) {
			return b.fail("removing the policy of bucket "+bucket, err)
		}
	}
	// By the name's prefix rather than the policy's principals, so users
	// left by a Revoke cut short go too.
	users, err := b.admin.users(ctx)
	if err != nil {
		return fmt.Errorf("object store: listing users to delete enclave %s's: %w", encl, err)
	}
	mine := userPrefix(b.prefix, encl)
	for _, key := range users {
		if !strings.HasPrefix(key, mine) {
			continue
		}
		if err := b.admin.deleteUser(ctx, key); err != nil {
			return fmt.Errorf("object store: deleting user %s of enclave %s: %w", key, encl, err)
		}
	}
	if !exists {
		return nil
	}
	if err := b.empty(ctx, bucket); err != nil {
		return err
	}
	if err := b.s3.RemoveBucket(ctx, bucket); err != nil && !gone(err) {
		return b.fail("removing bucket "+bucket, err)
	}
	return nil
}

// empty deletes every object version and unfinished upload in the bucket.
func (b *Backend) empty(ctx context.Context, bucket string) error {
	versions, err := b.versioned(ctx, bucket)
	if err != nil {
		return err
	}
	objects := make(chan minio.ObjectInfo)
	listErr := make(chan error, 1)
	go func() {
		defer close(objects)
		for obj := range b.s3.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: versions}) {
			if obj.Err != nil {
				listErr <- obj.Err
				return
			}
			select {
			case objects <- obj:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Every answer is read, so neither the lister nor minio's deleter is
	// left blocked; the first failure is told.
	var failed error
	for e := range b.s3.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
		if e.Err != nil && !gone(e.Err) && failed == nil {
			failed = b.fail(fmt.Sprintf("deleting object %s in bucket %s", e.ObjectName, bucket), e.Err)
		}
	}
	if failed != nil {
		return failed
	}
	select {
	case err := <-listErr:
		return b.fail("listing the objects of bucket "+bucket, err)
	default:
	}
	for up := range b.s3.ListIncompleteUploads(ctx, bucket, "", true) {
		if up.Err != nil {
			return b.fail("listing the unfinished uploads of bucket "+bucket, up.Err)
		}
		if err := b.s3.RemoveIncompleteUpload(ctx, bucket, up.Key); err != nil && !gone(err) {
			return b.fail("aborting an upload of "+up.Key+" in bucket "+bucket, err)
		}
	}
	return nil
}

// policy reads the bucket's policy; a bucket without one has an empty one.
func (b *Backend) policy(ctx context.Context, encl, bucket string) (policy, error) {
	doc, err := b.s3.GetBucketPolicy(ctx, bucket)
	if minio.ToErrorResponse(err).Code == minio.NoSuchBucket {
		return policy{}, fmt.Errorf("enclave %s: %w: bucket %s (open the enclave first)", encl, ErrNotOpen, bucket)
	}
	if err != nil {
		return policy{}, b.fail("reading the policy of bucket "+bucket, err)
	}
	p, err := parsePolicy(doc)
	if err != nil {
		return policy{}, fmt.Errorf("object store: bucket %s: %w", bucket, err)
	}
	return p, nil
}

// writePolicy writes the policy. versitygw refuses a policy naming a
// user it does not know, so a user deleted behind the platform's back
// would block every grant and revoke in the enclave: when the policy is
// refused, statements of users gone from the server are taken out (with
// a warning) and it is written again.
func (b *Backend) writePolicy(ctx context.Context, bucket string, p policy) error {
	err := b.setPolicy(ctx, bucket, p)
	if minio.ToErrorResponse(err).Code != "MalformedPolicy" {
		return err
	}
	users, lerr := b.admin.users(ctx)
	if lerr != nil {
		return fmt.Errorf("%w (and listing users to find stale statements: %w)", err, lerr)
	}
	known := make(map[string]bool, len(users))
	for _, u := range users {
		known[u] = true
	}
	var stale []string
	p.Statement = slices.DeleteFunc(p.Statement, func(s statement) bool {
		if known[s.owner()] {
			return false
		}
		if !slices.Contains(stale, s.owner()) {
			stale = append(stale, s.owner())
		}
		return true
	})
	if len(stale) == 0 {
		return err
	}
	b.log.Warn("object store: bucket policy named users no longer on the server; their statements were taken out",
		"bucket", bucket, "users", stale)
	return b.setPolicy(ctx, bucket, p)
}

// setPolicy writes the policy, or deletes it when no statement is left
// (S3 refuses a policy without statements).
func (b *Backend) setPolicy(ctx context.Context, bucket string, p policy) error {
	if len(p.Statement) == 0 {
		// An empty policy deletes it.
		err := b.s3.SetBucketPolicy(ctx, bucket, "")
		if gone(err) {
			return nil
		}
		return err
	}
	return b.s3.SetBucketPolicy(ctx, bucket, p.String())
}

func (b *Backend) versioned(ctx context.Context, bucket string) (bool, error) {
	v, err := b.s3.GetBucketVersioning(ctx, bucket)
	if err != nil {
		return false, b.fail("reading the versioning of bucket "+bucket, err)
	}
	return v.Enabled() || v.Suspended(), nil
}

// gone is true for S3 errors meaning what was to be removed is not there.
func gone(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchBucket, minio.NoSuchBucketPolicy, minio.NoSuchKey, minio.NoSuchUpload, minio.NoSuchVersion:
		return true
	}
	return false
}
