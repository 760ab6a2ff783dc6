package main

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"interop/netrpcshared"
)

// benchKey holds the 16-byte value the timed Gets read, the workload the Swift
// host's `bench` command times too.
const benchKey = "bench"

// bench makes o.calls kv Gets of benchKey on one dispensed client, from
// o.concurrency goroutines, each Get timed and checked.
func bench(client plugin.ClientProtocol, res *result, o options, watch *watchdog) error {
	raw, err := dispense(client, netrpcshared.KVName, watch)
	if err != nil {
		return err
	}
	kv := raw.(*netrpcshared.KVClient)
	want := []byte("0123456789abcdef")
	watch.step("bench put")
	if err := kv.Put(benchKey, want); err != nil {
		return fmt.Errorf("put %s: %w", benchKey, err)
	}

	watch.step("bench gets")
	latencies := make([][]time.Duration, o.concurrency)
	failures := make([]error, o.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < o.concurrency; g++ {
		// The first calls % concurrency goroutines take one call more.
		n := o.calls / o.concurrency
		if g < o.calls%o.concurrency {
			n++
		}
		wg.Add(1)
		go func(g, n int) {
			defer wg.Done()
			own := make([]time.Duration, 0, n)
			for i := 0; i < n; i++ {
				t0 := time.Now()
				value, err := kv.Get(benchKey)
				own = append(own, time.Since(t0))
				watch.tick()
				if err == nil && !bytes.Equal(value, want) {
					err = fmt.Errorf("returned %q, want %q", value, want)
				}
				if err != nil {
					failures[g] = fmt.Errorf("timed get %d of goroutine %d: %w", i, g, err)
					return
				}
			}
			latencies[g] = own
		}(g, n)
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range failures {
		if err != nil {
			return err
		}
	}

	var all []time.Duration
	for _, own := range latencies {
		all = append(all, own...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res.P50Micros = micros(percentile(all, 0.50))
	res.P99Micros = micros(percentile(all, 0.99))
	res.CallsPerSecond = math.Round(float64(len(all))/elapsed.Seconds()*10) / 10
	return nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// micros is d in µs, to 0.1 µs.
func micros(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)*10) / 10
}
