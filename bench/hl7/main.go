// Command hl7 measures how many HL7 v2 messages a second the hub's MLLP
// listener acknowledges (AA after the message is stored on JetStream), on
// one connection and on several in parallel, with his-bridge consuming
// behind it. It runs the hub in-process: embedded NATS and SQLite by
// default, or the PostgreSQL and NATS named by IMAGINGHUB_TEST_DATABASE_URL
// and IMAGINGHUB_TEST_NATS_URL (a fresh database and stream prefix per run).
//
// Usage:
//
//	go run ./bench/hl7 [-n 5000] [-rounds 1] [-conns 1,8] [-bridge=false] [-drain 60s] [-cpuprofile FILE]
//	go run ./bench/hl7 -peer HOST:PORT [-peer-name NAME] [-n 5000] [-rounds 1] [-conns 1,8]
//
// -drain waits after the runs for his-bridge to apply the backlog and
// reports its rate; -bridge=false leaves his-bridge out: the listener alone,
// as "imaginghub hl7" runs it when the bridges run elsewhere (bench/hl7.sh
// measures both).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imaginghub/imaginghub/config"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
)

func main() {
	n := flag.Int("n", 5000, "messages per run")
	rounds := flag.Int("rounds", 1, "runs per connection count; the median is reported")
	conns := flag.String("conns", "1,8", "parallel connections per run, comma-separated")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	bridge := flag.Bool("bridge", true, "run his-bridge behind the listener in the same process (false: the listener alone)")
	drain := flag.Duration("drain", 0, "after the runs, wait up to this long for his-bridge to apply the backlog and report its rate")
	peer := flag.String("peer", "", "measure the MLLP receiver at this host:port instead of the hub")
	name := flag.String("peer-name", "peer", "what to call the -peer receiver")
	flag.Parse()
	if *peer != "" {
		fmt.Printf("HL7 MLLP acknowledgment throughput of %s at %s\n", *name, *peer)
		if _, err := measureAll(context.Background(), *peer, *n, *rounds, *conns, nil); err != nil {
			fmt.Fprintln(os.Stderr, "bench/hl7:", err)
			os.Exit(1)
		}
		return
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/hl7:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench/hl7:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench/hl7: -rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(*n, *rounds, *conns, *bridge, *drain); err != nil {
		fmt.Fprintln(os.Stderr, "bench/hl7:", err)
		os.Exit(1)
	}
}

func run(n, rounds int, connList string, bridge bool, drain time.Duration) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ihbench-hl7-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.Data.Dir = dir
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HL7.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = ""
	backends := "embedded NATS, SQLite"
	token := strconv.FormatInt(time.Now().UnixNano(), 36)
	if u := os.Getenv("IMAGINGHUB_TEST_NATS_URL"); u != "" {
		cfg.NATS.URL = u
		cfg.Events.SubjectPrefix, cfg.Events.StreamPrefix = "b"+token+".", "B"+strings.ToUpper(token)+"_"
		backends = "external NATS " + u
		defer dropStreams(ctx, u, cfg.Events.StreamPrefix)
	}
	if u := os.Getenv("IMAGINGHUB_TEST_DATABASE_URL"); u != "" {
		dbURL, drop, err := createDatabase(ctx, u, "ih_bench_"+token)
		if err != nil {
			return err
		}
		defer drop()
		cfg.Database.URL = dbURL
		backends += ", PostgreSQL"
	} else if cfg.NATS.URL != "" {
		backends += ", SQLite"
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := hub.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	l, err := hl7intake.New(rt, hisbridge.Routes()...)
	if err != nil {
		return err
	}
	rt.Server.Add(l)
	if bridge {
		b, err := hisbridge.New(rt)
		if err != nil {
			return err
		}
		rt.Server.Add(b)
	}
	if err := rt.Server.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		rt.Server.Shutdown(sctx)
	}()

	shape := "component hl7 alone, as \"imaginghub hl7\" runs it in a split deployment"
	if bridge {
		shape = "components hl7 and his-bridge in one process"
	}
	fmt.Printf("HL7 MLLP acknowledgment throughput (%s; %s); AA only after the JetStream PubAck\n", backends, shape)
	var progress func(run int) string
	if bridge {
		progress = func(run int) string {
			return fmt.Sprintf("; his-bridge had applied %d of %d so far", bridgeProgress(ctx, rt), run*n)
		}
	}
	run, err := measureAll(ctx, l.Addr(), n, rounds, connList, progress)
	if err != nil {
		return err
	}
	if bridge && drain > 0 {
		// How fast his-bridge works off the backlog once the senders stop.
		start, from := time.Now(), bridgeProgress(ctx, rt)
		total := uint64(run * n)
		done := from
		for done < total && time.Since(start) < drain {
			time.Sleep(100 * time.Millisecond)
			done = bridgeProgress(ctx, rt)
		}
		el := time.Since(start)
		fmt.Printf("  his-bridge after the runs: applied %d more in %.1fs (%.0f msg/s), %d of %d in all\n",
			done-from, el.Seconds(), float64(done-from)/el.Seconds(), done, total)
	}
	return nil
}

// measureAll measures each connection count of connList in turn, rounds
// times, and prints a line for each with the median rate, ending with
// progress(run) when it is given. It returns how many runs it made (each
// sends n messages of its own).
func measureAll(ctx context.Context, addr string, n, rounds int, connList string, progress func(run int) string) (int, error) {
	run := 0
	for _, s := range strings.Split(connList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return run, fmt.Errorf("bad -conns value %q", s)
		}
		var rates []float64
		for range rounds {
			run++
			rate, err := measure(ctx, addr, n, c, run)
			if err != nil {
				return run, err
			}
			rates = append(rates, rate)
		}
		tail := ""
		if progress != nil {
			tail = progress(run)
		}
		if rounds == 1 {
			fmt.Printf("  %d connection(s): %d messages, %.0f msg/s acknowledged%s\n", c, n, rates[0], tail)
			continue
		}
		each := make([]string, len(rates))
		for i, r := range rates {
			each[i] = strconv.FormatFloat(r, 'f', 0, 64)
		}
		slices.Sort(rates)
		fmt.Printf("  %d connection(s): %d messages × %d rounds, median %.0f msg/s acknowledged (rounds: %s)%s\n",
			c, n, rounds, rates[len(rates)/2], strings.Join(each, ", "), tail)
	}
	return run, nil
}

// measure sends n distinct ADT^A04 messages over c connections and returns
// acknowledged messages per second.
func measure(ctx context.Context, addr string, n, c, run int) (float64, error) {
	var wg sync.WaitGroup
	errs := make(chan error, c)
	start := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &hl7.Client{Addr: addr, Timeout: 30 * time.Second}
			defer cl.Close()
			for i := w; i < n; i += c {
				msg := fmt.Sprintf("MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A04^ADT_A01|B%d-%07d|P|2.5.1\r"+
					"EVN|A04|20260315100000\rPID|1||BENCH-%d-%07d^^^GENHOSP^MR||Synthetic^Bench||19700101|F\rPV1|1|O\r", run, i, run, i)
				ack, err := cl.Send(ctx, []byte(msg))
				if err != nil {
					errs <- err
					return
				}
				if ack.AckCode() != hl7.AA {
					errs <- fmt.Errorf("MSA-1 %s: %s", ack.AckCode(), ack.Get("MSA-3"))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

func createDatabase(ctx context.Context, base, name string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		return "", nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	admin.Close(ctx)
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}, nil
}
