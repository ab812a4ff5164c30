// pause: the sandbox ("pause") container of every pod on the real node (operator/local/realnode.ts). It holds the
// pod's namespaces, reaps the zombies of a pod that shares its process namespace, and exits 0 on SIGINT or
// SIGTERM, as Kubernetes' own pause does. Built static (CGO_ENABLED=0) and put FROM scratch by the harness.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
