package coord_test

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/coord"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

// model is the obvious, slow statement of timer semantics the drivers are
// checked against.
type model struct {
	timers map[string]modelTimer
	claims int
}

type modelTimer struct {
	fireAt time.Time
	claim  int // 0: unclaimed
}

func (m *model) claimDue(now time.Time, lease time.Duration, limit int) []string {
	var due []string
	for k, t := range m.timers {
		if !t.fireAt.After(now) {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b string) int {
		return cmp.Or(m.timers[a].fireAt.Compare(m.timers[b].fireAt), cmp.Compare(a, b))
	})
	if len(due) > limit {
		due = due[:limit]
	}
	m.claims++
	for _, k := range due {
		m.timers[k] = modelTimer{fireAt: now.Add(lease), claim: m.claims}
	}
	return due
}

// FuzzTimers applies a random sequence of timer operations to the model and
// to each backend (Redis too when IMAGINGHUB_TEST_REDIS_URL is set) and
// requires identical answers. Each 4 bytes of input are one operation.
func FuzzTimers(f *testing.F) {
	f.Add([]byte{0, 1, 10, 0, 0, 2, 5, 0, 2, 0, 10, 3, 3, 0, 0, 0, 4, 0, 0, 0})
	f.Add([]byte{0, 1, 10, 0, 2, 0, 10, 0, 0, 1, 20, 0, 3, 0, 0, 0, 2, 0, 11, 0, 2, 0, 30, 0, 3, 0, 1, 0})
	f.Add([]byte{0, 0, 1, 0, 0, 1, 1, 0, 0, 2, 1, 0, 2, 0, 1, 2, 1, 1, 0, 0, 2, 0, 255, 255, 3, 0, 0, 0, 4, 0, 0, 0})

	type backend struct {
		name string
		c    *coord.Coordinator
	}
	backends := []backend{{"memory", newMemory(f)}}
	if os.Getenv(testenv.EnvRedisURL) != "" {
		backends = append(backends, backend{"redis", newRedis(f)})
	}
	base := time.UnixMilli(1_770_000_000_000)
	run := 0

	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 4*64 {
			ops = ops[:4*64]
		}
		run++
		set := "fuzz" + strconv.Itoa(run) // a fresh set per input
		ctx := t.Context()
		m := &model{timers: make(map[string]modelTimer)}
		type claimed struct {
			model  int
			timers []coord.Timer // per backend
		}
		var stash []claimed
		for i := 0; i+4 <= len(ops); i += 4 {
			op, key := ops[i]%5, "k"+strconv.Itoa(int(ops[i+1]%8))
			a, b := time.Duration(ops[i+2])*time.Millisecond, int(ops[i+3])
			where := fmt.Sprintf("op %d (%d %s %v %d)", i/4, op, key, a, b)
			switch op {
			case 0:
				m.timers[key] = modelTimer{fireAt: base.Add(a)}
				for _, be := range backends {
					if err := be.c.ArmTimer(ctx, set, key, base.Add(a)); err != nil {
						t.Fatalf("%s: %s arm: %v", be.name, where, err)
					}
				}
			case 1:
				delete(m.timers, key)
				for _, be := range backends {
					if err := be.c.CancelTimer(ctx, set, key); err != nil {
						t.Fatalf("%s: %s cancel: %v", be.name, where, err)
					}
				}
			case 2:
				lease, limit := time.Duration(1+b%50)*time.Millisecond, 1+b%4
				want := m.claimDue(base.Add(a), lease, limit)
				cl := claimed{model: m.claims}
				for _, be := range backends {
					got, err := be.c.ClaimDue(ctx, set, base.Add(a), lease, limit)
					if err != nil {
						t.Fatalf("%s: %s claim: %v", be.name, where, err)
					}
					var keys []string
					for _, tm := range got {
						keys = append(keys, tm.Key)
						if !tm.FireAt.Equal(base.Add(a + lease)) {
							t.Fatalf("%s: %s: FireAt %v, want %v", be.name, where, tm.FireAt, base.Add(a+lease))
						}
					}
					if !slices.Equal(keys, want) {
						t.Fatalf("%s: %s: claimed %q, model %q", be.name, where, keys, want)
					}
					cl.timers = append(cl.timers, got...)
				}
				if len(want) > 0 {
					stash = append(stash, cl)
				}
			case 3:
				if len(stash) == 0 {
					continue
				}
				cl := stash[int(ops[i+2])%len(stash)]
				n := len(cl.timers) / len(backends)
				j := b % n
				k := cl.timers[j].Key
				want := m.timers[k].claim == cl.model && cl.model != 0
				if _, ok := m.timers[k]; !ok {
					want = false
				}
				if want {
					delete(m.timers, k)
				}
				for bi, be := range backends {
					ok, err := be.c.CompleteTimer(ctx, set, cl.timers[bi*n+j])
					if err != nil || ok != want {
						t.Fatalf("%s: %s complete %s = %v, %v; model %v", be.name, where, k, ok, err, want)
					}
				}
			case 4:
				var want time.Time
				for _, tm := range m.timers {
					if want.IsZero() || tm.fireAt.Before(want) {
						want = tm.fireAt
					}
				}
				for _, be := range backends {
					got, ok, err := be.c.NextDue(ctx, set)
					if err != nil || ok != !want.IsZero() || (ok && !got.Equal(want)) {
						t.Fatalf("%s: %s NextDue = %v, %v, %v; model %v", be.name, where, got, ok, err, want)
					}
				}
			}
		}
	})
}
