// Package memcoord is the in-process coordination driver: the embedded
// default when no Redis is configured. State lives in this process only, so
// it coordinates goroutines of one hub, not several hubs.
//
// Timers sit in one min-heap per set keyed by fire time, so arming, claiming
// and completing cost O(log n). Dedupe keys and locks expire lazily: an
// expired entry is treated as absent when touched, and the maps are swept
// whenever they have doubled since the last sweep, which keeps memory within
// twice the live entries at amortised O(1) per insert.
package memcoord

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/imaginghub/imaginghub/coord/driver"
)

// Options configures a Driver. The zero value is ready to use.
type Options struct {
	// Now is the clock used for dedupe and lock expiry; time.Now if nil.
	// Timers use the times callers pass in.
	Now func() time.Time
}

// Driver implements driver.Coordinator in memory.
type Driver struct {
	now func() time.Time

	mu     sync.Mutex
	sets   map[string]*timerSet
	keys   expiring // dedupe keys; value unused
	locks  expiring // lock key -> token
	closed bool
}

var _ driver.Coordinator = (*Driver)(nil)

// New returns an empty in-process driver.
func New(opts Options) *Driver {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Driver{
		now:   now,
		sets:  make(map[string]*timerSet),
		keys:  newExpiring(),
		locks: newExpiring(),
	}
}

// ---- timers ----

type entry struct {
	key    string
	fireAt int64 // Unix ms
	claim  string
	index  int // position in the heap
}

// timerSet is a min-heap on fireAt plus an index by key.
type timerSet struct {
	heap  []*entry
	byKey map[string]*entry
}

func (s *timerSet) Len() int { return len(s.heap) }
func (s *timerSet) Less(i, j int) bool {
	if s.heap[i].fireAt != s.heap[j].fireAt {
		return s.heap[i].fireAt < s.heap[j].fireAt
	}
	return s.heap[i].key < s.heap[j].key // same order as a Redis sorted set
}
func (s *timerSet) Swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.heap[i].index = i
	s.heap[j].index = j
}
func (s *timerSet) Push(x any) {
	e := x.(*entry)
	e.index = len(s.heap)
	s.heap = append(s.heap, e)
}
func (s *timerSet) Pop() any {
	n := len(s.heap) - 1
	e := s.heap[n]
	s.heap[n] = nil
	s.heap = s.heap[:n]
	e.index = -1
	return e
}

func (d *Driver) checkOpen(ctx context.Context) error {
	if d.closed {
		return driver.ErrUnavailable
	}
	return ctx.Err()
}

// ArmTimer implements driver.Coordinator.
func (d *Driver) ArmTimer(ctx context.Context, set, key string, fireAt time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return err
	}
	s := d.sets[set]
	if s == nil {
		s = &timerSet{byKey: make(map[string]*entry)}
		d.sets[set] = s
	}
	if e := s.byKey[key]; e != nil {
		e.fireAt = fireAt.UnixMilli()
		e.claim = ""
		heap.Fix(s, e.index)
		return nil
	}
	e := &entry{key: key, fireAt: fireAt.UnixMilli()}
	s.byKey[key] = e
	heap.Push(s, e)
	return nil
}

func (d *Driver) remove(set string, s *timerSet, e *entry) {
	heap.Remove(s, e.index)
	delete(s.byKey, e.key)
	if len(s.heap) == 0 {
		delete(d.sets, set)
	}
}

// CancelTimer implements driver.Coordinator.
func (d *Driver) CancelTimer(ctx context.Context, set, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return err
	}
	if s := d.sets[set]; s != nil {
		if e := s.byKey[key]; e != nil {
			d.remove(set, s, e)
		}
	}
	return nil
}

// ClaimDue implements driver.Coordinator.
func (d *Driver) ClaimDue(ctx context.Context, set string, now time.Time, lease time.Duration, limit int, claim string) ([]driver.Timer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return nil, err
	}
	s := d.sets[set]
	if s == nil {
		return nil, nil
	}
	nowMS := now.UnixMilli()
	until := nowMS + lease.Milliseconds()
	var out []driver.Timer
	// lease >= 1 ms, so a claimed entry sinks below now and the loop ends.
	for len(out) < limit && len(s.heap) > 0 && s.heap[0].fireAt <= nowMS {
		e := s.heap[0]
		e.fireAt = until
		e.claim = claim
		heap.Fix(s, 0)
		out = append(out, driver.Timer{Key: e.key, FireAt: time.UnixMilli(until), Claim: claim})
	}
	return out, nil
}

// CompleteTimer implements driver.Coordinator.
func (d *Driver) CompleteTimer(ctx context.Context, set string, t driver.Timer) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return false, err
	}
	s := d.sets[set]
	if s == nil {
		return false, nil
	}
	e := s.byKey[t.Key]
	if e == nil || e.claim != t.Claim {
		return false, nil
	}
	d.remove(set, s, e)
	return true, nil
}

// NextDue implements driver.Coordinator.
func (d *Driver) NextDue(ctx context.Context, set string) (time.Time, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return time.Time{}, false, err
	}
	s := d.sets[set]
	if s == nil || len(s.heap) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(s.heap[0].fireAt), true, nil
}

// ---- expiring keys ----

type item struct {
	value   string
	expires time.Time
}

// expiring is a map whose entries lapse at their expiry time.
type expiring struct {
	m         map[string]item
	sweepAt   int // sweep when len(m) reaches this
	minSweeps int
}

func newExpiring() expiring {
	return expiring{m: make(map[string]item), sweepAt: 1024, minSweeps: 1024}
}

// get returns the live value of key.
func (x *expiring) get(key string, now time.Time) (string, bool) {
	it, ok := x.m[key]
	if !ok {
		return "", false
	}
	if !now.Before(it.expires) {
		delete(x.m, key)
		return "", false
	}
	return it.value, true
}

func (x *expiring) set(key, value string, now time.Time, ttl time.Duration) {
	x.m[key] = item{value: value, expires: now.Add(ttl)}
	if len(x.m) >= x.sweepAt {
		for k, it := range x.m {
			if !now.Before(it.expires) {
				delete(x.m, k)
			}
		}
		x.sweepAt = max(2*len(x.m), x.minSweeps)
	}
}

// Remember implements driver.Coordinator.
func (d *Driver) Remember(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return false, err
	}
	now := d.now()
	if _, ok := d.keys.get(key, now); ok {
		return false, nil
	}
	d.keys.set(key, "", now, ttl)
	return true, nil
}

// Forget implements driver.Coordinator.
func (d *Driver) Forget(ctx context.Context, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return err
	}
	delete(d.keys.m, key)
	return nil
}

// TryLock implements driver.Coordinator.
func (d *Driver) TryLock(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return false, err
	}
	now := d.now()
	if _, held := d.locks.get(key, now); held {
		return false, nil
	}
	d.locks.set(key, token, now, ttl)
	return true, nil
}

// RefreshLock implements driver.Coordinator.
func (d *Driver) RefreshLock(ctx context.Context, key, token string, ttl time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return err
	}
	now := d.now()
	if v, held := d.locks.get(key, now); !held || v != token {
		return driver.ErrLockLost
	}
	d.locks.m[key] = item{value: token, expires: now.Add(ttl)}
	return nil
}

// Unlock implements driver.Coordinator.
func (d *Driver) Unlock(ctx context.Context, key, token string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkOpen(ctx); err != nil {
		return err
	}
	if v, held := d.locks.get(key, d.now()); !held || v != token {
		return driver.ErrLockLost
	}
	delete(d.locks.m, key)
	return nil
}

// Ping implements driver.Coordinator.
func (d *Driver) Ping(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.checkOpen(ctx)
}

// Close implements driver.Coordinator; it drops all state.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.sets, d.keys, d.locks = nil, newExpiring(), newExpiring()
	return nil
}
