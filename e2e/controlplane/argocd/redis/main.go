// argocd-redis serves the Redis protocol on one loopback address for Argo CD's application controller and
// repo-server, which keep their caches there. It is miniredis (the in-memory Redis that Argo CD's own tests
// use, at the version Argo CD's go.mod requires), so a machine needs no Redis server: this is a cache, and
// Argo CD rebuilds it from the cluster and Git when it is empty.
//
// Usage: argocd-redis ADDRESS   (for example 127.0.0.1:6379). Stops on SIGINT or SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alicebob/miniredis/v2"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-redis ADDRESS")
		os.Exit(2)
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "argocd-redis: cannot listen on %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "argocd-redis: serving on %s\n", m.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	m.Close()
}
