package client

import "sync"

// maxParallel bounds how many components the agent works on at once
// (checking channels, downloading, verifying): enough to hide round trips
// on a fleet PC's network, few enough not to flood a site's proxy.
const maxParallel = 8

// forEach calls fn(i) for i in [0, n) on at most workers goroutines and
// returns when all calls have. fn must only write what belongs to its i.
func forEach(n, workers int, fn func(i int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
