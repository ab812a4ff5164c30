// echo: a tiny HTTP server for images built without docker (operator/local/images.ts) and run on the real node
// (e2e/realnode.e2e.ts). It answers every request with the value of $MESSAGE and logs one line per request to
// standard output, so `kubectl logs` has a line to show. It listens on $PORT (8080 by default) and stops on
// SIGTERM. Built static (CGO_ENABLED=0), it needs nothing else in its image.
//
// Two behaviours let the real-node tests (e2e/realnode-lifecycle.e2e.ts) make a release fail for real:
// GET /status/NNN answers with HTTP status NNN (100 to 599; a readiness probe on /status/503 never passes),
// and $EXIT_CODE, when set, makes the server exit with that code at start (a container that crashes).
//
// Run under the name "worker" (the image's /bin/worker is a copy of it), it is instead a background worker, as
// the image-app sample's worker process: it serves nothing, takes a job from the queue given by --queue (or
// $QUEUE_NAME) every $WORKER_INTERVAL (2s by default), logs one line per job, and stops on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if filepath.Base(os.Args[0]) == "worker" {
		worker()
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	message := os.Getenv("MESSAGE")
	logger := log.New(os.Stdout, "", 0)
	if exit := os.Getenv("EXIT_CODE"); exit != "" {
		code, err := strconv.Atoi(exit)
		if err != nil {
			code = 1
		}
		logger.Printf("echo: exiting with code %d (EXIT_CODE=%s)", code, exit)
		os.Exit(code)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("echo: %s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/")); strings.HasPrefix(r.URL.Path, "/status/") && err == nil && code >= 100 && code <= 599 {
			w.WriteHeader(code)
		}
		fmt.Fprintln(w, message)
	})
	server := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	logger.Printf("echo: listening on :%s", port)
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		logger.Printf("echo: %v", err)
		os.Exit(1)
	}
	logger.Printf("echo: stopped")
}

// worker takes a job every interval until SIGTERM, logging each: what a queue worker's logs look like.
func worker() {
	logger := log.New(os.Stdout, "", 0)
	flags := flag.NewFlagSet("worker", flag.ExitOnError)
	queue := flags.String("queue", os.Getenv("QUEUE_NAME"), "the queue to take jobs from")
	_ = flags.Parse(os.Args[1:])
	if *queue == "" {
		*queue = "default"
	}
	interval := 2 * time.Second
	if v := os.Getenv("WORKER_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			logger.Printf("worker: WORKER_INTERVAL=%q is not a positive duration", v)
			os.Exit(2)
		}
		interval = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Printf("worker: taking jobs from queue %s every %s", *queue, interval)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for job := 1; ; job++ {
		select {
		case <-ctx.Done():
			logger.Printf("worker: stopped after %d jobs", job-1)
			return
		case <-ticker.C:
			logger.Printf("worker: job %d from queue %s done", job, *queue)
		}
	}
}
