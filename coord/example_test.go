package coord_test

import (
	"context"
	"fmt"
	"time"

	"github.com/imaginghub/imaginghub/coord"
)

// A study is stable once no instance arrived for 60 s. Every stored
// instance re-arms the study's timer; a poller claims due timers, emits
// ih.dicom.study.stable, and completes them. An instance that arrives after
// the claim re-arms the timer, so completion is refused and the study is
// announced again once it is quiet.
func ExampleCoordinator_ClaimDue() {
	ctx := context.Background()
	c, err := coord.Open(ctx, "", coord.Options{}) // in-process
	if err != nil {
		panic(err)
	}
	defer c.Close()

	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	const stable = 60 * time.Second
	study := "1.2.826.0.1.3680043.8.498.1"

	// Instances arrive at t0 and t0+10s.
	c.ArmTimer(ctx, "study-stable", study, t0.Add(stable))
	c.ArmTimer(ctx, "study-stable", study, t0.Add(10*time.Second+stable))

	due, _ := c.ClaimDue(ctx, "study-stable", t0.Add(65*time.Second), 30*time.Second, 10)
	fmt.Println("due at t0+65s:", len(due))

	due, _ = c.ClaimDue(ctx, "study-stable", t0.Add(70*time.Second), 30*time.Second, 10)
	fmt.Println("due at t0+70s:", len(due))

	// A straggler arrives while the event is being emitted.
	c.ArmTimer(ctx, "study-stable", study, t0.Add(71*time.Second+stable))
	ok, _ := c.CompleteTimer(ctx, "study-stable", due[0])
	fmt.Println("completed:", ok)

	next, _, _ := c.NextDue(ctx, "study-stable")
	fmt.Println("fires again at t0 +", next.Sub(t0))
	// Output:
	// due at t0+65s: 0
	// due at t0+70s: 1
	// completed: false
	// fires again at t0 + 2m11s
}

// Remember drops a repeated message: the second delivery of the same
// MSH-10 message control ID within the window is not processed again.
func ExampleCoordinator_Remember() {
	ctx := context.Background()
	c, _ := coord.Open(ctx, "", coord.Options{})
	defer c.Close()
	for range 2 {
		first, _ := c.Remember(ctx, "hl7:RIS:MSG00001", 24*time.Hour)
		fmt.Println("process:", first)
	}
	// Output:
	// process: true
	// process: false
}

// Lock makes one process at a time run a job; Refresh keeps it while the
// job runs and reports ErrLockLost if the lease was lost.
func ExampleCoordinator_Lock() {
	ctx := context.Background()
	c, _ := coord.Open(ctx, "", coord.Options{})
	defer c.Close()

	l, err := c.Lock(ctx, "job:nightly-reconcile", 30*time.Second)
	if err != nil {
		panic(err)
	}
	_, held, _ := c.TryLock(ctx, "job:nightly-reconcile", 30*time.Second)
	fmt.Println("second taker got it:", held)
	fmt.Println("refresh:", l.Refresh(ctx, 30*time.Second))
	fmt.Println("unlock:", l.Unlock(ctx))
	// Output:
	// second taker got it: false
	// refresh: <nil>
	// unlock: <nil>
}
