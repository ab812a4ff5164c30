// echo: a tiny HTTP server for images built without docker (operator/local/images.ts) and run on the real node
// (e2e/realnode.e2e.ts). It answers every request with the value of $MESSAGE and logs one line per request to
// standard output, so `kubectl logs` has a line to show. It listens on $PORT (8080 by default) and stops on
// SIGTERM. Built static (CGO_ENABLED=0), it needs nothing else in its image.
//
// Two behaviours let the real-node tests (e2e/realnode-lifecycle.e2e.ts) make a release fail for real:
// GET /status/NNN answers with HTTP status NNN (100 to 599; a readiness probe on /status/503 never passes),
// and $EXIT_CODE, when set, makes the server exit with that code at start (a container that crashes).
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
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
