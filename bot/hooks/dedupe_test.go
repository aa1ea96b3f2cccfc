package hooks

import (
	"fmt"
	"testing"
	"time"
)

func TestDeliveriesBoundedAndExpire(t *testing.T) {
	d := newDeliveries(time.Hour, 3)
	t0 := time.Unix(0, 0)
	for i := range 5 {
		if !d.add(fmt.Sprint(i), t0) {
			t.Fatalf("%d not new", i)
		}
	}
	if d.order.Len() != 3 || len(d.byID) != 3 {
		t.Fatalf("kept %d/%d, want 3", d.order.Len(), len(d.byID))
	}
	if d.add("4", t0) {
		t.Fatal("4 seen twice as new")
	}
	if !d.add("0", t0) {
		t.Fatal("the oldest was not forgotten when full")
	}
	if !d.add("4", t0.Add(time.Hour)) {
		t.Fatal("4 remembered past the hour")
	}
	d.forget("4")
	if !d.add("4", t0.Add(time.Hour)) {
		t.Fatal("a forgotten delivery is not new")
	}
}
