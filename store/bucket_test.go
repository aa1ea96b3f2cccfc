package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

type binding struct {
	Channel string
	Enclave string
	Since   time.Time
}

func TestBucketCRUD(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	b := NewBucket[binding](db, "bindings")

	if _, ok, err := b.Get(ctx, "C1"); ok || err != nil {
		t.Fatalf("get before any write: %v %v", ok, err)
	}
	if err := b.Delete(ctx, "C1"); err != nil {
		t.Fatalf("delete before any write: %v", err)
	}
	want := binding{"C1", "alpha", t0}
	if err := b.Put(ctx, "C1", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := b.Get(ctx, "C1")
	if err != nil || !ok || got.Enclave != want.Enclave || !got.Since.Equal(want.Since) {
		t.Fatalf("get: %+v %v %v", got, ok, err)
	}
	want.Enclave = "beta"
	if err := b.Put(ctx, "C1", want); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Get(ctx, "C1"); got.Enclave != "beta" {
		t.Errorf("after overwrite: %+v", got)
	}
	// Another bucket with the same key is separate, even one named like
	// the store's own buckets.
	other := NewBucket[string](db, "audit")
	if _, ok, _ := other.Get(ctx, "C1"); ok {
		t.Error("a record leaked into another bucket")
	}
	if err := other.Put(ctx, "C1", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "C1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, "C1"); ok {
		t.Error("still there after delete")
	}
	if v, ok, _ := other.Get(ctx, "C1"); !ok || v != "x" {
		t.Errorf("other bucket: %q %v", v, ok)
	}
	for _, key := range []string{"", strings.Repeat("k", 40000)} {
		if err := b.Put(ctx, key, want); err == nil {
			t.Errorf("put with a %d-byte key succeeded", len(key))
		}
	}
	// A record that does not decode as T is an error, not a zero value.
	if _, _, err := NewBucket[int](db, "audit").Get(ctx, "C1"); err == nil {
		t.Error("decoding a string as an int succeeded")
	}
}

func TestBucketList(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	b := NewBucket[string](db, "runs")
	for _, k := range []string{"hello/003", "hello/001", "other/001", "hello/002", "hellox/001", "h"} {
		if err := b.Put(ctx, k, k); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"hello/", 0, []string{"hello/001", "hello/002", "hello/003"}},
		{"hello/", 2, []string{"hello/001", "hello/002"}},
		{"hello", 0, []string{"hello/001", "hello/002", "hello/003", "hellox/001"}},
		{"", 0, []string{"h", "hello/001", "hello/002", "hello/003", "hellox/001", "other/001"}},
		{"", -1, []string{"h", "hello/001", "hello/002", "hello/003", "hellox/001", "other/001"}},
		{"zzz", 0, nil},
		{"other/001", 0, []string{"other/001"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q limit %d", tt.prefix, tt.limit), func(t *testing.T) {
			got, err := b.List(ctx, tt.prefix, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if got, err := NewBucket[string](db, "never-written").List(ctx, "", 0); err != nil || len(got) != 0 {
		t.Errorf("list of an unwritten bucket: %v %v", got, err)
	}
}

func TestBucketUpdate(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	b := NewBucket[[]string](db, "memory")

	push := func(msg string) func([]string, bool) ([]string, error) {
		return func(v []string, exists bool) ([]string, error) {
			if exists != (v != nil) {
				return nil, fmt.Errorf("exists=%v with %v", exists, v)
			}
			return append(v, msg), nil
		}
	}
	if got, err := b.Update(ctx, "C1", push("hi")); err != nil || !reflect.DeepEqual(got, []string{"hi"}) {
		t.Fatalf("create: %v %v", got, err)
	}
	if got, err := b.Update(ctx, "C1", push("there")); err != nil || !reflect.DeepEqual(got, []string{"hi", "there"}) {
		t.Fatalf("modify: %v %v", got, err)
	}
	stop := errors.New("stop")
	_, err := b.Update(ctx, "C1", func(v []string, _ bool) ([]string, error) { return append(v, "lost"), stop })
	if !errors.Is(err, stop) {
		t.Fatalf("failing update: %v", err)
	}
	if got, _, _ := b.Get(ctx, "C1"); !reflect.DeepEqual(got, []string{"hi", "there"}) {
		t.Errorf("after a failing update: %v", got)
	}
}

func TestBucketUpdateIsAtomic(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	b := NewBucket[int](db, "counters")
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := b.Update(ctx, "n", func(v int, _ bool) (int, error) { return v + 1, nil }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n, _, _ := b.Get(ctx, "n"); n != workers*each {
		t.Errorf("counter %d, want %d", n, workers*each)
	}
}

func TestBucketDeleteFunc(t *testing.T) {
	type run struct {
		Tentacle string
		Started  time.Time
	}
	for _, batch := range []int{pruneBatch, 3} {
		t.Run(fmt.Sprint("batch ", batch), func(t *testing.T) {
			ctx := context.Background()
			db := openTest(t, Options{})
			db.batch = batch
			b := NewBucket[run](db, "runs")
			for i := range 10 {
				for _, tn := range []string{"a", "b"} {
					k := fmt.Sprintf("%s/%03d", tn, i)
					if err := b.Put(ctx, k, run{tn, t0.Add(time.Duration(i) * time.Hour)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Keep a's runs from the last 3 hours (retention); b is untouched.
			cutoff := t0.Add(7 * time.Hour)
			var seen []string
			n, err := b.DeleteFunc(ctx, "a/", func(k string, r run) bool {
				seen = append(seen, k)
				return r.Started.Before(cutoff)
			})
			if err != nil || n != 7 {
				t.Fatalf("deleted %d (%v), want 7", n, err)
			}
			if len(seen) != 10 {
				t.Errorf("looked at %d records, want 10: %v", len(seen), seen)
			}
			a, _ := b.List(ctx, "a/", 0)
			bs, _ := b.List(ctx, "b/", 0)
			if len(a) != 3 || len(bs) != 10 || !a[0].Started.Equal(cutoff) {
				t.Errorf("left a=%v b=%d", a, len(bs))
			}
		})
	}
}

func TestNewBucketEmptyNamePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	NewBucket[int](openTest(t, Options{}), "")
}
