// Command viewers holds N dashboard viewers on amwi's live stream (/events) for a while
// and reports how many pulses they got; scripts/bench-dashboard.sh measures the daemon
// meanwhile. Loopback only, bounded in time.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8000/events", "live stream URL")
	n := flag.Int("n", 50, "viewers")
	d := flag.Duration("duration", time.Minute, "how long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *d)
	defer cancel()
	var pulses, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", *url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "event: pulse") {
					pulses.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("viewers=%d failed=%d pulses=%d per_viewer_per_s=%.2f\n", *n, failed.Load(), pulses.Load(),
		float64(pulses.Load())/float64(*n)/d.Seconds())
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
