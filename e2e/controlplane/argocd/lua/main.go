// argocd-lua evaluates Argo CD resource health checks (the Lua of argocd-cm's
// resource.customizations.health.<group>_<kind>) with Argo CD's own code: util/lua's VM.ExecuteHealthLua,
// the function the application controller calls, so the sandbox (unless useOpenLibs, only the base, table and
// package libraries, and Argo CD's safe os.time/os.date through require("os"): no string, math or io), the 1 s
// timeout, the conversion of the object into Lua tables and the validation of the returned status are Argo
// CD's, not a copy of them.
//
// Protocol: standard input holds JSON documents, one after another (JSON lines or one document). Each is a
// request {"script": "...", "obj": {...}, "useOpenLibs": false} or an array of requests; for each document
// one line of JSON is written to standard output: a result, or an array of results in the same order.
// A result is {"health": {"status": "...", "message": "..."}} (health is null when the script returns nil)
// or {"error": "..."} when the script fails, as Argo CD would report it.
// The object is decoded as the Kubernetes client decodes it (integers stay integers), as Argo CD reads it
// from its cluster cache.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

type request struct {
	Script      string          `json:"script"`
	Obj         json.RawMessage `json:"obj"`
	UseOpenLibs bool            `json:"useOpenLibs"`
}

type result struct {
	Health *health.HealthStatus `json:"health"`
	Error  string               `json:"error,omitempty"`
}

func evaluate(req request) result {
	obj := map[string]any{}
	if len(req.Obj) > 0 && !bytes.Equal(bytes.TrimSpace(req.Obj), []byte("null")) {
		if err := utiljson.Unmarshal(req.Obj, &obj); err != nil {
			return result{Error: fmt.Sprintf("obj: %v", err)}
		}
	}
	vm := lua.VM{UseOpenLibs: req.UseOpenLibs}
	status, err := vm.ExecuteHealthLua(&unstructured.Unstructured{Object: obj}, req.Script)
	if err != nil {
		return result{Error: err.Error()}
	}
	return result{Health: status}
}

func run(in io.Reader, out *bufio.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(in))
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the input: %w", err)
		}
		doc = bytes.TrimSpace(doc)
		var err error
		if len(doc) > 0 && doc[0] == '[' {
			var reqs []request
			if err = json.Unmarshal(doc, &reqs); err != nil {
				return fmt.Errorf("a batch must be an array of {script, obj}: %w", err)
			}
			results := make([]result, len(reqs))
			for i, req := range reqs {
				results[i] = evaluate(req)
			}
			err = enc.Encode(results)
		} else {
			var req request
			if err = json.Unmarshal(doc, &req); err != nil {
				return fmt.Errorf("a request must be {script, obj}: %w", err)
			}
			err = enc.Encode(evaluate(req))
		}
		if err != nil {
			return err
		}
		// One result line per document as soon as it is evaluated, so a caller can stream requests.
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

func main() {
	if err := run(os.Stdin, bufio.NewWriter(os.Stdout)); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(2)
	}
}
