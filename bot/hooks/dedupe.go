package hooks

import (
	"container/list"
	"sync"
	"time"
)

// deliveries remembers delivery ids for a while, so a provider's
// redelivery of one event runs the tentacle once. It is bounded: past max
// ids the oldest are forgotten, which only weakens de-duplication for
// very old deliveries, never memory.
type deliveries struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	order *list.List // of delivery, oldest first
	byID  map[string]*list.Element
}

type delivery struct {
	id string
	at time.Time
}

func newDeliveries(ttl time.Duration, max int) *deliveries {
	return &deliveries{ttl: ttl, max: max, order: list.New(), byID: map[string]*list.Element{}}
}

// add records id and reports whether it was new; a seen id is not
// refreshed, so the window runs from the first delivery.
func (d *deliveries) add(id string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for e := d.order.Front(); e != nil && now.Sub(e.Value.(delivery).at) >= d.ttl; e = d.order.Front() {
		d.drop(e)
	}
	if _, seen := d.byID[id]; seen {
		return false
	}
	if d.order.Len() >= d.max {
		d.drop(d.order.Front())
	}
	d.byID[id] = d.order.PushBack(delivery{id: id, at: now})
	return true
}

// forget drops id, for a delivery that was not run after all (the bot
// was stopping), so the provider's retry is run.
func (d *deliveries) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.byID[id]; ok {
		d.drop(e)
	}
}

func (d *deliveries) drop(e *list.Element) {
	d.order.Remove(e)
	delete(d.byID, e.Value.(delivery).id)
}
